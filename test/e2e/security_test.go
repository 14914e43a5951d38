//go:build e2e

package e2e

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// The controller acts only in the CustomRun's own namespace: a policy of
// another namespace is not found, a pull secret of another namespace is
// refused, and the jobs land beside the run.
func TestNamespaceIsolation(t *testing.T) {
	other := namespace(t)
	create(t, other, `apiVersion: custom.kruise.dev/v1alpha1
kind: ImagePrePull
metadata: {name: elsewhere}
spec: {images: ["registry.local/app:v1"]}
`)
	ns := namespace(t)
	for _, tc := range []struct {
		name, task, reason string
		want               []string
	}{
		{"policy", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull, name: elsewhere}
`, v1alpha1.ReasonNotFound.String(), []string{`ImagePrePull "elsewhere" not found in namespace "` + ns + `"`}},
		{"secret", `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/app:v1"}, {name: pullSecrets, value: ["` + other + `/regcred"]}]
`, v1alpha1.ReasonInvalidParams.String(), []string{"params.pullSecrets[0]", "own namespace"}},
	} {
		create(t, ns, pipelineRun("pr-"+tc.name, tc.task))
		waitPipelineRun(t, ns, "pr-"+tc.name, prTimeout)
		run := customRuns(t, ns, "pr-"+tc.name)["prepull"]
		if cond(run).Reason != tc.reason {
			t.Errorf("%s: %+v", tc.name, cond(run))
		}
		contains(t, tc.name, cond(run).Message, tc.want...)
	}
	if n := len(jobs(t, other)) + len(jobs(t, ns)); n != 0 {
		t.Errorf("%d ImagePullJobs were created", n)
	}
}

// The API server says what the controller's ServiceAccount may do; it must
// be exactly what config/ grants for the controller's work. A permission
// added to the ClusterRole without a use fails here (and in
// test/manifests_test.go, which checks the rules against the code's calls).
func TestServiceAccountPermissions(t *testing.T) {
	ns := namespace(t)
	out, err := c.Kubectl(context.Background(), "auth", "can-i", "--list", "-n", ns,
		"--as=system:serviceaccount:imageprepull:imageprepull-controller")
	if err != nil {
		t.Fatal(err)
	}
	// Lines read "RESOURCE   [NON-RESOURCE URLS]   [NAMES]   [VERBS]".
	row := regexp.MustCompile(`^(\S+)\s+\[[^]]*\]\s+\[[^]]*\]\s+\[([^]]*)\]$`)
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n")[1:] {
		m := row.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || strings.HasPrefix(line, " ") || strings.HasPrefix(m[1], "selfsubject") {
			continue // non-resource URLs, and the self-reviews every user may make
		}
		verbs := strings.Fields(m[2])
		sort.Strings(verbs)
		got[m[1]] = strings.Join(verbs, " ")
	}
	want := map[string]string{
		"customruns.tekton.dev":                     "get list watch",
		"customruns.tekton.dev/status":              "update",
		"customruns.tekton.dev/finalizers":          "update",
		"imageprepulls.custom.kruise.dev":           "list watch",
		"imagepulljobs.apps.kruise.io":              "create delete get list patch watch",
		"nodeimages.apps.kruise.io":                 "get list",
		"subjectaccessreviews.authorization.k8s.io": "create",
		"deployments.apps":                          "get",
		"statefulsets.apps":                         "get",
		"daemonsets.apps":                           "get",
		"clonesets.apps.kruise.io":                  "get",
		"statefulsets.apps.kruise.io":               "get",
		"daemonsets.apps.kruise.io":                 "get",
		"pods":                                      "list",
		"nodes":                                     "list",
		"events":                                    "create patch",
		// A run's pull Secrets, read to check its digests in the registry
		// once the API server said the run's ServiceAccount may get them.
		"secrets": "get",
	}
	for res, verbs := range got {
		if want[res] != verbs {
			t.Errorf("the controller may %q on %s in a user namespace; config/ should grant %q", verbs, res, want[res])
		}
	}
	for res := range want {
		if _, ok := got[res]; !ok {
			t.Errorf("the controller may not use %s", res)
		}
	}
}

// The CRD's schema and CEL rules reject invalid ImagePrePulls at the API
// server, naming the field.
func TestCRDRejectsInvalidObjects(t *testing.T) {
	ns := namespace(t)
	for _, tc := range []struct{ name, spec, want string }{
		{"digest", `images: ["nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000"]`, "spec.images[0]"},
		{"uppercase repository", `images: ["NGINX:1"]`, "spec.images[0]"},
		{"duplicate images", `images: ["nginx:1", "nginx:1"]`, "spec.images[1]"},
		{"names and labels", `nodeSelector: {names: [a], matchLabels: {tier: web}}`, "names and matchLabels/matchExpressions are mutually exclusive"},
		{"node and pod selectors", `nodeSelector: {names: [a]}
  podSelector: {matchLabels: {app: web}}`, "nodeSelector and podSelector are mutually exclusive"},
		{"empty pod selector", `podSelector: {}`, "an empty podSelector"},
		{"In without values", `nodeSelector: {matchExpressions: [{key: zone, operator: In}]}`, "In and NotIn need values"},
		{"bad operator", `nodeSelector: {matchExpressions: [{key: zone, operator: Like, values: [a]}]}`, "spec.nodeSelector.matchExpressions[0].operator"},
		{"parallelism zero", `parallelism: 0`, "spec.parallelism"},
		{"huge timeout", `pullTimeoutSeconds: 9999999`, "spec.pullTimeoutSeconds"},
		{"negative backoff", `backoffLimit: -1`, "spec.backoffLimit"},
		{"threshold word", `successThreshold: most`, "spec.successThreshold"},
		{"threshold over 100%", `successThreshold: "101%"`, "spec.successThreshold"},
		{"negative threshold", `successThreshold: -2`, "spec.successThreshold"},
		{"pull policy", `imagePullPolicy: Never`, "spec.imagePullPolicy"},
		{"secret of another namespace", `pullSecrets: ["kube-system/regcred"]`, "spec.pullSecrets[0]"},
		{"unknown field", `parralelism: 3`, `unknown field "spec.parralelism"`},
		{"wait as string", `wait: "yes"`, "spec.wait"},
		{"bad node name", `nodeSelector: {names: ["Node_1"]}`, "spec.nodeSelector.names[0]"},
		{"too many images", `images: [` + strings.Repeat(`"a:1",`, 32) + `"b:1"]`, "spec.images"},
	} {
		_, err := kubectlStdin("apiVersion: custom.kruise.dev/v1alpha1\nkind: ImagePrePull\nmetadata: {name: bad}\nspec:\n  "+tc.spec+"\n",
			"create", "-n", ns, "--validate=strict", "-f", "-")
		if err == nil {
			t.Errorf("%s: the API server accepted it", tc.name)
			continue
		}
		contains(t, tc.name, err.Error(), tc.want)
	}
}
