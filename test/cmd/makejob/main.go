// Command makejob is what a Task step running as a pipeline's ServiceAccount
// could try: create an ImagePullJob itself, around the controller. It runs in
// a pod on the real node, authenticates with the pod's ServiceAccount token
// and verifies the API server with the pod's CA, as in-cluster clients do,
// and writes what the API server answered to the termination log:
// {"user": who it authenticated as, "status": the create's HTTP status,
// "message": the API server's message}. e2e reads it from the pod's status.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

const sa = "/var/run/secrets/kubernetes.io/serviceaccount/"

func main() {
	if len(os.Args) != 3 {
		fail("usage: makejob https://HOST:PORT SERVER-NAME")
	}
	server, serverName := os.Args[1], os.Args[2]
	token, err := os.ReadFile(sa + "token")
	if err != nil {
		fail(err.Error())
	}
	ns, err := os.ReadFile(sa + "namespace")
	if err != nil {
		fail(err.Error())
	}
	ca, err := os.ReadFile(sa + "ca.crt")
	if err != nil {
		fail(err.Error())
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		fail("no certificate in ca.crt")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: serverName}}}
	call := func(path string, body any) (int, map[string]any) {
		raw, _ := json.Marshal(body)
		req, err := http.NewRequest(http.MethodPost, server+path, bytes.NewReader(raw))
		if err != nil {
			fail(err.Error())
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			fail(err.Error())
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		var obj map[string]any
		_ = json.Unmarshal(out, &obj)
		return resp.StatusCode, obj
	}
	_, who := call("/apis/authentication.k8s.io/v1/selfsubjectreviews",
		map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
	status, answer := call("/apis/apps.kruise.io/v1alpha1/namespaces/"+string(ns)+"/imagepulljobs", map[string]any{
		"apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
		"metadata": map[string]any{"name": "from-a-step"},
		"spec":     map[string]any{"image": "registry.local/evil/miner:v1", "completionPolicy": map[string]any{"type": "Always"}},
	})
	user := ""
	if st, ok := who["status"].(map[string]any); ok {
		if info, ok := st["userInfo"].(map[string]any); ok {
			user, _ = info["username"].(string)
		}
	}
	msg, _ := answer["message"].(string)
	report, _ := json.Marshal(map[string]any{"user": user, "status": status, "message": msg})
	if err := os.WriteFile("/dev/termination-log", report, 0o644); err != nil {
		fail(err.Error())
	}
	fmt.Println(string(report))
}

func fail(msg string) {
	_ = os.WriteFile("/dev/termination-log", []byte(msg), 0o644)
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}
