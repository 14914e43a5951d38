//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/test/cluster"
)

// The whole chain on one real node: PipelineRun -> CustomRun ->
// ImagePullJob -> NodeImage -> kruise-daemon -> CRI -> containerd -> the
// local registry -> the image in containerd -> status back to the run.
// The real node runs only for these tests: ImagePullJobs of the other
// tests select every node and pull images no registry here has.
func TestRealNode(t *testing.T) {
	ctx := context.Background()
	if why := cluster.RealNodeUnavailable(); why != "" && os.Getenv("REAL_NODE") != "on" {
		t.Skipf("no real node on this machine: %s (CI sets REAL_NODE=on, which makes this a failure)", why)
	}
	_, hostVarRunBefore := os.Lstat("/hostvarrun")
	if err := c.RealNode.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Teardown leaves no process, mount or /hostvarrun it made behind.
		if err := c.RealNode.Remove(ctx); err != nil {
			t.Error(err)
		}
		if _, err := os.Lstat("/hostvarrun"); os.IsNotExist(hostVarRunBefore) && !os.IsNotExist(err) {
			t.Errorf("/hostvarrun is still there after the real nodes stopped (%v)", err)
		}
	})
	// One run on the real node alone; params are YAML flow items.
	var prepull realNodePrePull = func(t *testing.T, ns string, params ...string) *v1beta1.CustomRun {
		t.Helper()
		create(t, ns, pipelineRun("pr", fmt.Sprintf(`
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: nodeNames, value: [%s]}, %s]
`, cluster.RealNodeName, strings.Join(params, ", "))))
		waitPipelineRun(t, ns, "pr", prTimeout)
		return customRuns(t, ns, "pr")["prepull"]
	}
	image := func(repo string) string {
		return fmt.Sprintf("%s/e2e/%s:v-%d", c.Registry, repo, time.Now().UnixNano())
	}

	t.Run("the kubelet registered its node and reports it Ready", func(t *testing.T) {
		node, err := c.Kube.CoreV1().Nodes().Get(ctx, cluster.RealNodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		server, err := c.Kube.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		info := node.Status.NodeInfo
		if info.KubeletVersion != server.GitVersion || !strings.HasPrefix(info.ContainerRuntimeVersion, "containerd://") {
			t.Fatalf("node info %+v, want the kubelet at %s on containerd", info, server.GitVersion)
		}
		ready := false
		for _, cond := range node.Status.Conditions {
			ready = ready || cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue
		}
		// Its status is the kubelet's own: written by the kubelet, as the Node.
		writers := map[string]bool{}
		for _, m := range node.ManagedFields {
			if m.Subresource == "status" {
				writers[m.Manager] = true
			}
		}
		if !ready || !writers["kubelet"] || len(writers) != 1 {
			t.Fatalf("Ready %v, status written by %v, want Ready and by the kubelet only; conditions %+v", ready, writers, node.Status.Conditions)
		}
		if len(node.Spec.Taints) != 1 || node.Spec.Taints[0].Key != cluster.RealNodeTaint.Key {
			t.Fatalf("taints %+v, want %+v as the kubelet registered it", node.Spec.Taints, cluster.RealNodeTaint)
		}
	})

	// What docs/access.md binds lets a ServiceAccount's runs pre-pull and no
	// more: a Task step running as it cannot make an ImagePullJob itself.
	t.Run("a pod running as a runner ServiceAccount may not make ImagePullJobs", func(t *testing.T) {
		ns := namespace(t)
		if _, err := c.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := c.AllowPrePulls(ctx, ns, "builder"); err != nil {
			t.Fatal(err)
		}
		img, err := c.KoBuild(ctx, c.Registry+"/e2e/makejob", "v1", "./test/cmd/makejob")
		if err != nil {
			t.Fatal(err)
		}
		server, serverName := c.RealNode.ServerForPods()
		spec := corev1.PodSpec{
			ServiceAccountName: "builder", RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "step", Image: img, Args: []string{server, serverName}}},
		}
		cluster.OnRealNode(&spec)
		if _, err := c.Kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "step"}, Spec: spec}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var report struct {
			User    string `json:"user"`
			Status  int    `json:"status"`
			Message string `json:"message"`
		}
		var last *corev1.Pod
		err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			pod, err := c.Kube.CoreV1().Pods(ns).Get(ctx, "step", metav1.GetOptions{})
			if err != nil || len(pod.Status.ContainerStatuses) == 0 {
				return false, nil
			}
			last = pod
			done := pod.Status.ContainerStatuses[0].State.Terminated
			return done != nil && json.Unmarshal([]byte(done.Message), &report) == nil, nil
		})
		if err != nil {
			t.Fatalf("no report from the pod: %v; pod %+v", err, last)
		}
		if report.User != "system:serviceaccount:"+ns+":builder" || report.Status != 403 ||
			!strings.Contains(report.Message, `cannot create resource "imagepulljobs"`) {
			t.Fatalf("the pod as builder: %+v, want authenticated as the ServiceAccount and 403 Forbidden", report)
		}
		if run := prepullAs(t, ns, "its-run", "builder", "registry.local/app:runner-pod"); !cond(run).IsTrue() {
			t.Errorf("the ServiceAccount's own run: %+v, want it to pre-pull", cond(run))
		}
	})

	// What the step is for: the rollout after the pipeline starts its pods
	// from the image the pre-pull put on the node, without pulling.
	t.Run("a rollout starts from the pre-pulled image, by tag and by digest", func(t *testing.T) {
		ns := namespace(t)
		repo, tagged, digest := demoApp(t, "web")
		pinned := repo + digest
		run := prepull(t, ns, `{name: image, value: "`+tagged+`"}`)
		if !cond(run).IsTrue() {
			t.Fatalf("pre-pull of %s: %+v", tagged, cond(run))
		}
		startedFromThePrePull(t, rollOut(t, ns, "by-tag", tagged), tagged)
		// GitOps tools pin the digest the push printed; the pre-pull was by tag.
		startedFromThePrePull(t, rollOut(t, ns, "by-digest", pinned), pinned)

		// The control: an image the pre-pull did not name is pulled as the pod starts.
		control := tagged + "-control"
		if err := c.Registries.PushVariant(ctx, tagged, control, map[string]string{"control.txt": control}); err != nil {
			t.Fatal(err)
		}
		pulledAtStart(t, rollOut(t, ns, "control", control), control)
	})

	t.Run("a later task's pod reads the results and hands them on", testALaterTaskPodReadsTheResults)
	t.Run("the seed's pipeline whole: built in a pod, pre-pulled, rolled out", testTheSeedPipelineWhole)
	t.Run("the seed's kubectl Task applies its job and ends, the pull after it", testTheSeedsKubectlTask)

	t.Run("a tag pushed again: the digest is pulled and each node checked", func(t *testing.T) { testATagPushedAgain(t, prepull) })
	t.Run("a node that joins after the pre-pull pulls at rollout", testANodeThatJoinsAfterThePrePull)
	t.Run("an index is checked against each node's platform", testAnIndexIsCheckedPerPlatform)

	// The node's network is closed: it reaches the cluster's registries and
	// API server, nothing else, and a pull from anywhere else fails at once.
	t.Run("the node reaches no other registry", func(t *testing.T) {
		// A registry on the host's loopback that the node was not given.
		hostOnly := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
		defer hostOnly.Close()
		for img, want := range map[string]string{
			"10.255.255.1:5000/e2e/outside:v1":                                "network is unreachable",
			"docker.io/library/busybox:1.36":                                  "network is unreachable",
			strings.TrimPrefix(hostOnly.URL, "http://") + "/e2e/host-only:v1": "connection refused",
		} {
			run := prepull(t, namespace(t), `{name: image, value: "`+img+`"}`, `{name: backoffLimit, value: "0"}`)
			if cond(run).IsTrue() {
				t.Fatalf("pulled %s: %+v", img, cond(run))
			}
			t.Logf("%s: %s", img, cond(run).Message)
			contains(t, "message", cond(run).Message, cluster.RealNodeName, want)
		}
	})

	t.Run("a real pull puts the image in containerd", func(t *testing.T) {
		img := image("app")
		if err := c.Registries.Push(ctx, img, map[string]string{"hello.txt": "hello from " + img}); err != nil {
			t.Fatal(err)
		}
		run := prepull(t, namespace(t), `{name: image, value: "`+img+`"}`)
		if !cond(run).IsTrue() || result(run, v1alpha1.ResultSucceeded) != "1" || result(run, v1alpha1.ResultDesired) != "1" {
			t.Fatalf("CustomRun %+v, results %+v", cond(run), run.Status.Results)
		}
		contains(t, "message", cond(run).Message, "1/1 nodes have "+img)
		if has, err := c.RealNode.Has(ctx, img); err != nil || !has {
			out, _ := c.RealNode.Ctr(ctx, "images", "ls", "-q")
			t.Fatalf("containerd on %s does not list %s (%v):\n%s", cluster.RealNodeName, img, err, out)
		}

		// IfNotPresent: present, so containerd is not asked again; Always: it pulls again.
		before := c.Registries.ManifestRequests(img)
		if before == 0 {
			t.Fatalf("the registry saw no manifest request for %s", img)
		}
		run = prepull(t, namespace(t), `{name: image, value: "`+img+`"}`, `{name: imagePullPolicy, value: IfNotPresent}`)
		if !cond(run).IsTrue() || c.Registries.ManifestRequests(img) != before {
			t.Fatalf("IfNotPresent on a node that has the image: %+v, manifest requests %d -> %d", cond(run), before, c.Registries.ManifestRequests(img))
		}
		run = prepull(t, namespace(t), `{name: image, value: "`+img+`"}`, `{name: imagePullPolicy, value: Always}`)
		if !cond(run).IsTrue() || c.Registries.ManifestRequests(img) <= before {
			t.Fatalf("Always: %+v, manifest requests %d -> %d", cond(run), before, c.Registries.ManifestRequests(img))
		}
	})

	t.Run("a missing tag fails with containerd not found", func(t *testing.T) {
		img := image("app") + "-missing"
		run := prepull(t, namespace(t), `{name: image, value: "`+img+`"}`, `{name: backoffLimit, value: "0"}`)
		if cond(run).IsTrue() || cond(run).Reason != v1alpha1.ReasonThresholdNotMet.String() || result(run, v1alpha1.ResultFailedNodes) != cluster.RealNodeName {
			t.Fatalf("CustomRun %+v, results %+v", cond(run), run.Status.Results)
		}
		t.Logf("message: %s", cond(run).Message)
		contains(t, "message", cond(run).Message, "0/1 nodes have "+img, cluster.RealNodeName+" ("+img+")", "not found")
		if has, _ := c.RealNode.Has(ctx, img); has {
			t.Fatalf("containerd lists %s, which the registry does not have", img)
		}
	})

	t.Run("pull secrets reach a registry that wants a password", func(t *testing.T) {
		img := fmt.Sprintf("%s/e2e/private:v-%d", c.Registries.Auth, time.Now().UnixNano())
		if err := c.Registries.Push(ctx, img, map[string]string{"secret.txt": "private"}); err != nil {
			t.Fatal(err)
		}
		ns := namespace(t)
		run := prepull(t, ns, `{name: image, value: "`+img+`"}`, `{name: backoffLimit, value: "0"}`)
		if cond(run).IsTrue() {
			t.Fatalf("pulled %s without credentials: %+v", img, cond(run))
		}
		t.Logf("message without the secret: %s", cond(run).Message)
		contains(t, "message without the secret", cond(run).Message, cluster.RealNodeName, "401 Unauthorized",
			"a registry refused a pull (unauthorized): if it needs credentials, name a kubernetes.io/dockerconfigjson Secret in pullSecrets")

		ns = namespace(t)
		// A misspelt Secret (one the ServiceAccount may read, but that is not
		// there): OpenKruise pulls without it, and the message says what to check.
		if err := c.AllowServiceAccount(ctx, ns, "default", "misspelt-pull-secret", rbacv1.PolicyRule{
			Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"registry-cred"},
		}); err != nil {
			t.Fatal(err)
		}
		run = prepull(t, ns, `{name: image, value: "`+img+`"}`, `{name: pullSecrets, value: [registry-cred]}`, `{name: backoffLimit, value: "0"}`)
		if cond(run).IsTrue() {
			t.Fatalf("pulled %s with a Secret that does not exist: %+v", img, cond(run))
		}
		t.Logf("message with a misspelt secret: %s", cond(run).Message)
		contains(t, "message with a misspelt secret", cond(run).Message, cluster.RealNodeName, "401 Unauthorized",
			"check that pullSecrets registry-cred exist in namespace "+ns+" and hold credentials for it (OpenKruise pulls without a named Secret it cannot find)")

		withSecret := func() string {
			ns := namespace(t)
			createPullSecret(t, ns, "registry-creds", c.Registries.Auth, c.Registries.AuthUser, c.Registries.AuthPassword)
			// The run's ServiceAccount may read the Secret it names, as docs/access.md shows.
			if _, err := c.Kubectl(ctx, "-n", ns, "create", "role", "default-pull-secrets", "--verb=get", "--resource=secrets", "--resource-name=registry-creds"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Kubectl(ctx, "-n", ns, "create", "rolebinding", "default-pull-secrets", "--role=default-pull-secrets", "--serviceaccount="+ns+":default"); err != nil {
				t.Fatal(err)
			}
			return ns
		}
		run = prepull(t, withSecret(), `{name: image, value: "`+img+`"}`, `{name: pullSecrets, value: [registry-creds]}`)
		if !cond(run).IsTrue() {
			t.Fatalf("with the secret: %+v", cond(run))
		}
		if has, err := c.RealNode.Has(ctx, img); err != nil || !has {
			t.Fatalf("containerd does not list %s after the pull with the secret (%v)", img, err)
		}

		// With a digest the controller reads the private registry too, with
		// the same Secret, to check the node.
		digest, id := pushed(t, img)
		run = prepull(t, withSecret(), `{name: image, value: "`+img+`"}`, `{name: digest, value: "`+digest+`"}`, `{name: pullSecrets, value: [registry-creds]}`)
		if !cond(run).IsTrue() || result(run, v1alpha1.ResultImageIDs) != id {
			t.Fatalf("with the secret and a digest: %+v, imageIDs %q, want %s", cond(run), result(run, v1alpha1.ResultImageIDs), id)
		}
	})
}
