package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// Namespace is where config/ installs the controller.
const Namespace = "imageprepull"

// installAndStartController installs config/ as users do, with ko, and runs
// the controller binary from the image ko pushed as a process (the
// Deployment's pod never runs here: the one kubelet's node is tainted for the
// tests' rollouts, and its network reaches no Service), authenticated as the
// Deployment's ServiceAccount, so that every test exercises the shipped
// artifact and RBAC.
func (c *Cluster) installAndStartController(ctx context.Context) (err error) {
	if c.opts.PlainBuild {
		if _, err := c.Kubectl(ctx, "apply", "-f", filepath.Join(c.opts.Root, "config")); err != nil {
			return err
		}
		c.Controllers.binary = filepath.Join(c.Dir, "controller")
		if err := c.Tools.GoBuild(ctx, "./cmd/controller", c.Controllers.binary); err != nil {
			return err
		}
	} else if c.Controllers.binary, err = c.koInstall(ctx); err != nil {
		return err
	}
	return c.runInstalled(ctx)
}

// runInstalled runs the installed controller binary as the Deployment's
// pods, authenticated as its ServiceAccount.
func (c *Cluster) runInstalled(ctx context.Context) error {
	if _, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "crd/imageprepulls.custom.kruise.dev"); err != nil {
		return err
	}
	if err := c.scaleDeploymentToZero(ctx); err != nil {
		return err
	}
	tok, err := c.Kube.CoreV1().ServiceAccounts(Namespace).CreateToken(ctx, "imageprepull-controller",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](48 * 3600)}},
		metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("a token for the controller's ServiceAccount: %w", err)
	}
	c.Controllers.kubeconfig = filepath.Join(c.Dir, "kubeconfig-controller")
	if err := c.ControlPlane.WriteKubeconfig(c.Controllers.kubeconfig, "system:serviceaccount:"+Namespace+":imageprepull-controller", tok.Status.Token); err != nil {
		return err
	}
	return c.Controllers.Start(ctx)
}

// AllowPrePulls binds the ClusterRole imageprepull-runner (config/) to a
// ServiceAccount of a namespace, as a namespace's admin does so that its
// pipelines' runs may pre-pull (Tekton gives runs that name none "default").
// The RoleBinding is named imageprepull-runner-SA.
func (c *Cluster) AllowPrePulls(ctx context.Context, namespace, serviceAccount string) error {
	_, err := c.Kube.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "imageprepull-runner-" + serviceAccount, Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "imageprepull-runner"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: namespace}},
	}, metav1.CreateOptions{})
	return err
}

// AllowServiceAccount binds a Role named name, holding rules, to a
// ServiceAccount of namespace: what a namespace's admin grants a run's
// ServiceAccount (its workload to read, say).
func (c *Cluster) AllowServiceAccount(ctx context.Context, namespace, serviceAccount, name string, rules ...rbacv1.PolicyRule) error {
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Rules: rules}
	if _, err := c.Kube.RbacV1().Roles(namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := c.Kube.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: namespace}},
	}, metav1.CreateOptions{})
	return err
}

// scaleDeploymentToZero scales the installed Deployment to 0: Replicas plays
// its pods as processes, and its own pod would wait Pending (the simulated
// nodes have no kubelet, the real node is tainted). A pod the scheduler
// bound to a simulated node before the scale waits for a kubelet to confirm
// its deletion forever, so it is deleted at once, as for a node that is gone.
func (c *Cluster) scaleDeploymentToZero(ctx context.Context) error {
	if _, err := c.Kubectl(ctx, "-n", Namespace, "scale", "deployment/imageprepull-controller", "--replicas=0"); err != nil {
		return err
	}
	return c.removeControllerPods(ctx)
}

// removeControllerPods waits until the Deployment's ReplicaSets are scaled
// to 0, then deletes what pods they left without waiting for a kubelet.
func (c *Cluster) removeControllerPods(ctx context.Context) error {
	const selector = "app.kubernetes.io/name=imageprepull,app.kubernetes.io/component=controller"
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		sets, err := c.Kube.AppsV1().ReplicaSets(Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		for _, rs := range sets.Items {
			if rs.Spec.Replicas == nil || *rs.Spec.Replicas != 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the controller's ReplicaSets to scale to 0: %w", err)
	}
	return c.Kube.CoreV1().Pods(Namespace).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{LabelSelector: selector})
}
