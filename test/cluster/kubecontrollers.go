package cluster

import (
	"context"
	"crypto/tls"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KubeControllers are kube-controller-manager and kube-scheduler, built from
// k8s.io/kubernetes at kube-apiserver's version, with the flags of a single
// control-plane node where they matter here: every default controller (the
// garbage collector, the workload and node lifecycle controllers, the
// ServiceAccount and root-CA publishers), each with its own ServiceAccount's
// credentials, tokens signed with the API server's service-account key,
// leader election on as kubeadm leaves it. Neither needs root: they only
// talk to the API server.
type KubeControllers struct {
	h                  *host
	api                *api
	manager, scheduler *process
}

// Start starts both and waits until the controllers run.
func (k *KubeControllers) Start(ctx context.Context) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	cp := k.api.cp
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a loopback component with a self-signed cert
	// Both authenticate and authorize their own HTTPS clients through the
	// API server, as in a cluster.
	delegated := []string{"--kubeconfig=" + cp.Kubeconfig, "--authentication-kubeconfig=" + cp.Kubeconfig,
		"--authorization-kubeconfig=" + cp.Kubeconfig, "--bind-address=127.0.0.1", "--leader-elect=true", "--v=0"}
	if k.manager, err = k.h.run(ctx, program{
		name: "kube-controller-manager", bin: k.h.tools.Path("kube-controller-manager"),
		args: append([]string{"--secure-port=" + strconv.Itoa(ports[0]),
			"--controllers=*", "--use-service-account-credentials=true",
			"--service-account-private-key-file=" + filepath.Join(cp.certDir, "sa.key"),
			"--root-ca-file=" + filepath.Join(cp.certDir, "apiserver.crt")}, delegated...),
		ready:       httpOK(insecure, "https://127.0.0.1:"+strconv.Itoa(ports[0])+"/healthz", ""),
		readyWithin: 2 * time.Minute, waitingFor: "kube-controller-manager /healthz",
	}); err != nil {
		return err
	}
	if k.scheduler, err = k.h.run(ctx, program{
		name: "kube-scheduler", bin: k.h.tools.Path("kube-scheduler"),
		args:        append([]string{"--secure-port=" + strconv.Itoa(ports[1])}, delegated...),
		ready:       httpOK(insecure, "https://127.0.0.1:"+strconv.Itoa(ports[1])+"/healthz", ""),
		readyWithin: 2 * time.Minute, waitingFor: "kube-scheduler /healthz",
	}); err != nil {
		return err
	}
	// The ServiceAccount controller makes each namespace's default
	// ServiceAccount: wait for the first one, which says the controllers
	// hold their lease and run.
	return until(ctx, 2*time.Minute, "kube-controller-manager to make the default ServiceAccount", nil, func(ctx context.Context) error {
		_, err := k.api.kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// Stop stops both.
func (k *KubeControllers) Stop() {
	k.scheduler.stop(10 * time.Second)
	k.manager.stop(10 * time.Second)
}
