//go:build e2e

package e2e

import (
	"context"
	"fmt"
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

// prepullAs runs one pre-pull as a ServiceAccount and waits for its end.
func prepullAs(t *testing.T, ns, name, serviceAccount, image string, pullSecrets ...string) *v1beta1.CustomRun {
	t.Helper()
	params := v1beta1.Params{{Name: "image", Value: *v1beta1.NewStructuredValues(image)},
		{Name: "nodeNames", Value: *v1beta1.NewStructuredValues("web-a1", "web-a2")}}
	if len(pullSecrets) > 0 {
		params = append(params, v1beta1.Param{Name: "pullSecrets", Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeArray, ArrayVal: pullSecrets}})
	}
	_, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Create(context.Background(), &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1beta1.CustomRunSpec{
			CustomRef:          &v1beta1.TaskRef{APIVersion: "custom.kruise.dev/v1alpha1", Kind: "ImagePrePull"},
			ServiceAccountName: serviceAccount,
			Params:             params,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return waitCustomRun(t, ns, name, prTimeout, "done", func(r *v1beta1.CustomRun) bool { return r.IsDone() })
}

// A run acts as its ServiceAccount: one without the imageprepull-runner
// binding fails with ServiceAccountNotAuthorized and creates nothing; with
// it, the same run pre-pulls; a pull Secret it may not read is named.
func TestRunActsAsItsServiceAccount(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()

	run := prepullAs(t, ns, "nobody", "nobody", "registry.local/app:authz")
	if cond(run).Reason != v1alpha1.ReasonNotAuthorized.String() {
		t.Fatalf("CustomRun %+v, want ServiceAccountNotAuthorized", cond(run))
	}
	contains(t, "message", cond(run).Message, "ServiceAccount "+ns+"/nobody may not pre-pull in namespace "+ns+" (create prepulls.custom.kruise.dev)",
		"kubectl -n "+ns+" create rolebinding imageprepull-runner --clusterrole=imageprepull-runner --serviceaccount="+ns+":nobody")
	if n := len(jobs(t, ns)); n != 0 {
		t.Fatalf("%d ImagePullJobs for an unauthorized run", n)
	}

	// Bound, it may (another ServiceAccount: a refusal is kept a few seconds).
	if _, err := c.Kube.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "builder-runner"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "imageprepull-runner"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "builder", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if run := prepullAs(t, ns, "builder", "builder", "registry.local/app:authz"); !cond(run).IsTrue() {
		t.Fatalf("CustomRun %+v, want it to succeed once bound", cond(run))
	}

	// A pull Secret builder may not read.
	if _, err := c.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "theirs"},
		Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	run = prepullAs(t, ns, "secret", "builder", "registry.local/app:authz2", "theirs")
	if cond(run).Reason != v1alpha1.ReasonNotAuthorized.String() {
		t.Fatalf("CustomRun %+v, want ServiceAccountNotAuthorized", cond(run))
	}
	contains(t, "message", cond(run).Message, `ServiceAccount `+ns+`/builder may not get Secret "theirs" (named in pullSecrets)`)
	if n := len(jobs(t, ns)); n != 1 {
		t.Errorf("%d ImagePullJobs, want the one of the authorized run", n)
	}
}

// The platform's policy in config-imageprepull takes effect on the next run,
// without a restart; a malformed change keeps the last good policy and is
// logged naming the key; a controller that starts with it stops, naming it.
func TestPlatformPolicyConfigMap(t *testing.T) {
	ns := namespace(t)
	setPolicy(t, map[string]string{"allowed-images": "registry.local/team/**"})
	waitPolicy(t, ns, "registry.local/other:v1", v1alpha1.ReasonImageNotAllowed.String())
	run := prepullAs(t, ns, "allowed", "", "registry.local/team/app:v1")
	if !cond(run).IsTrue() {
		t.Fatalf("an allowed image: %+v", cond(run))
	}

	// A malformed change: the last good policy stays, and the log says why.
	setPolicy(t, map[string]string{"allowed-images": "registry.local/team/**", "default-parallelism": "lots"})
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		logs, err := c.Controllers.Logs()
		// knative logs the error quoted (%q) in a JSON line: look for its unquoted words.
		return err == nil && strings.Contains(logs, "default-parallelism") && strings.Contains(logs, "is not a whole number from 1 to 10000"), nil
	})
	if err != nil {
		t.Fatalf("no log line names the malformed key: %v", err)
	}
	run = prepullAs(t, ns, "still-refused", "", "registry.local/other:v2")
	if cond(run).Reason != v1alpha1.ReasonImageNotAllowed.String() {
		t.Errorf("after a malformed change: %+v, want the last good policy's ImageNotAllowed", cond(run))
	}
	contains(t, "message", cond(run).Message, `image "registry.local/other:v2" is not allowed here`, "registry.local/team/**")

	// Starting with it, a controller stops at once, naming the key.
	err = c.Controllers.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "default-parallelism") {
		t.Errorf("a controller started with a malformed policy: %v", err)
	}
}

// setPolicy writes config-imageprepull's data; the test's end restores it.
func setPolicy(t *testing.T, data map[string]string) {
	t.Helper()
	ctx := context.Background()
	cm, err := c.Kube.CoreV1().ConfigMaps(cluster.Namespace).Get(ctx, "config-imageprepull", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := cm.Data
	cm.Data = data
	if _, err := c.Kube.CoreV1().ConfigMaps(cluster.Namespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cm, err := c.Kube.CoreV1().ConfigMaps(cluster.Namespace).Get(ctx, "config-imageprepull", metav1.GetOptions{})
		if err == nil {
			cm.Data = before
			_, err = c.Kube.CoreV1().ConfigMaps(cluster.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Error(err)
		}
	})
}

// waitPolicy runs pre-pulls of image until one ends with reason: the
// controller sees a ConfigMap change through its watch, moments later.
func waitPolicy(t *testing.T, ns, image, reason string) {
	t.Helper()
	for i := 0; i < 50; i++ {
		run := prepullAs(t, ns, fmt.Sprintf("probe-%d", i), "", image)
		if cond(run).Reason == reason {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no run of %s ended %s: the policy change did not take effect", image, reason)
}

// What docs/access.md tells admins to bind (imageprepull-runner) lets a
// ServiceAccount's runs pre-pull and nothing else: the ServiceAccount itself,
// as kubectl --as acts for it, may not make an ImagePullJob, which would go
// around the platform's policy. (TestRealNode tries the same from a pod
// running as it.)
func TestRunnerCannotMakeImagePullJobs(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	if _, err := c.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.AllowPrePulls(ctx, ns, "builder"); err != nil {
		t.Fatal(err)
	}
	as := "--as=system:serviceaccount:" + ns + ":builder"
	if out, _ := c.Kubectl(ctx, "auth", "can-i", "create", "imagepulljobs.apps.kruise.io", "-n", ns, as); strings.TrimSpace(out) != "no" {
		t.Errorf("kubectl auth can-i create imagepulljobs as the runner: %q, want no", out)
	}
	job := `apiVersion: apps.kruise.io/v1alpha1
kind: ImagePullJob
metadata: {name: direct, namespace: ` + ns + `}
spec: {image: "registry.local/evil/miner:v1", completionPolicy: {type: Always}}
`
	out, err := kubectlStdin(job, "create", "-f", "-", as)
	if err == nil || !strings.Contains(out+err.Error(), "Forbidden") || !strings.Contains(out+err.Error(), `cannot create resource "imagepulljobs"`) {
		t.Errorf("kubectl create of an ImagePullJob as the runner: %v %s, want Forbidden", err, out)
	}
	if run := prepullAs(t, ns, "its-run", "builder", "registry.local/app:runner"); !cond(run).IsTrue() {
		t.Errorf("the runner's own run: %+v, want it to pre-pull", cond(run))
	}
	if js := jobs(t, ns); len(js) != 1 || js[0].Name == "direct" {
		t.Errorf("ImagePullJobs %d, want the run's only", len(js))
	}
}
