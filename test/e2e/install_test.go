//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The cluster was installed with `ko apply -f config/` and runs the binary
// from the image ko pushed (test/cluster): check what users would see.
func TestInstalledWithKo(t *testing.T) {
	ctx := context.Background()
	if !strings.Contains(c.ControllerImage, c.Registry+"/imageprepull/") || !strings.Contains(c.ControllerImage, "@sha256:") {
		t.Errorf("controller image %q is not a digest in the local registry", c.ControllerImage)
	}
	if strings.Contains(c.KoApplyOutput, "Warning") {
		t.Errorf("ko apply -f config/ warned (the namespace has pod-security warn=restricted):\n%s", c.KoApplyOutput)
	}
	// Every object in config/ exists.
	out, err := c.Kubectl(ctx, "get", "-f", filepath.Join("..", "..", "config"), "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"namespace/imageprepull", "serviceaccount/imageprepull-controller",
		"clusterrole.rbac.authorization.k8s.io/imageprepull-controller", "clusterrole.rbac.authorization.k8s.io/imageprepull-edit",
		"customresourcedefinition.apiextensions.k8s.io/imageprepulls.custom.kruise.dev", "deployment.apps/imageprepull-controller",
		"configmap/config-logging", "rolebinding.rbac.authorization.k8s.io/imageprepull-controller"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("%s is missing after ko apply:\n%s", want, out)
		}
	}
}

// Pod Security admission enforces on Pods, not Deployments: a Pod made from
// the Deployment's template must be admitted by a restricted namespace.
func TestPodPassesRestrictedProfile(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	nsObj, err := c.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsObj.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
	if _, err := c.Kube.CoreV1().Namespaces().Update(ctx, nsObj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	dep, err := c.Kube.AppsV1().Deployments("imageprepull").Get(ctx, "imageprepull-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "controller", Namespace: ns},
		Spec:       dep.Spec.Template.Spec,
	}
	pod.Spec.ServiceAccountName = "default"
	b, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubectlStdin(string(b), "create", "--dry-run=server", "-f", "-"); err != nil {
		t.Fatalf("the restricted profile refused the controller's pod: %v", err)
	}
	// And the check can fail: the same pod with privilege escalation is refused.
	pod.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
	b, _ = yaml.Marshal(pod)
	if _, err := kubectlStdin(string(b), "create", "--dry-run=server", "-f", "-"); err == nil || !strings.Contains(err.Error(), "restricted") {
		t.Errorf("a pod that breaks the restricted profile was admitted: %v", err)
	}
}
