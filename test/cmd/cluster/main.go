// Command cluster runs the local cluster for people and scripts:
//
//	cluster up     start it, print the KUBECONFIG line, and keep it up until Ctrl-C
//	cluster demo   the same, after running examples/local-demo (the seed's pipeline whole) and describing it with tkn
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"knative.dev/pkg/apis"

	"github.com/imageprepull/imageprepull/test/cluster"
)

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "up" && os.Args[1] != "demo") {
		fmt.Fprintln(os.Stderr, "usage: cluster up|demo")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, mode string) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "cluster: "+format+"\n", args...) }
	c, err := cluster.Start(ctx, cluster.Options{
		Root: root,
		Nodes: []cluster.Node{
			{Name: "node-1", Labels: map[string]string{"node-type": "web"}},
			{Name: "node-2", Labels: map[string]string{"node-type": "web"}},
			{Name: "node-3", Labels: map[string]string{"node-type": "web"}},
			{Name: "node-4", Labels: map[string]string{"node-type": "batch"}},
		},
		// The real node (where it can run) is one of the web nodes the
		// helloworld policy selects.
		RealNodeLabels: map[string]string{"node-type": "web"},
		Log:            logf,
	})
	if err != nil {
		return err
	}
	defer c.Stop()
	if mode == "demo" {
		if err := demo(ctx, c, root); err != nil {
			fmt.Fprintln(os.Stderr, c.Logs(20))
			return err
		}
	}
	// .local/ tells `make cluster-down` and scripts where the cluster is.
	state := filepath.Join(root, ".local")
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(state, "ready"))
	for name, content := range map[string]string{
		"pid": strconv.Itoa(os.Getpid()), "kubeconfig-path": c.Kubeconfig,
		"registry": c.Registry, "base-image": c.BaseImage, "ready": "",
	} {
		if err := os.WriteFile(filepath.Join(state, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("\nThe local cluster is up:\n\n  export KUBECONFIG=%s\n\nCtrl-C (or make cluster-down) stops it and removes %s.\n", c.Kubeconfig, c.Dir)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "cluster: stopping")
	return nil
}

// demo runs the seed's pipeline whole (examples/local-demo): examples/demo-app
// built, tested and pushed inside a pod on the real node (go and ko: kaniko
// cannot be fetched here), pre-pulled by tag and digest onto the helloworld
// policy's nodes, then rolled out by a kubectl task. tkn describes each task,
// and the kubelet's events show whether the rollout's pod pulled. Then, for
// comparison, the same image rolls out again after it is removed from the
// node, as on a node that was not pre-pulled.
func demo(ctx context.Context, c *cluster.Cluster, root string) error {
	if c.RealNode.Name() == "" {
		return fmt.Errorf("the seed's pipeline runs its build and deploy tasks in pods, which only the real node runs, and it cannot run here: %s", c.RealNode.Notice)
	}
	branch, sha := gitTag(root)
	// Runs act as their ServiceAccount: the demo's runs are default's, in default.
	if err := c.AllowPrePulls(ctx, "default", "default"); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	fmt.Println("bound the ClusterRole imageprepull-runner to ServiceAccount default/default, so that its runs may pre-pull:\n" +
		"  kubectl -n default create rolebinding imageprepull-runner-default --clusterrole=imageprepull-runner --serviceaccount=default:default")
	fmt.Println("\nMaking the step images (go and ko; kubectl) and applying examples/local-demo...")
	pr, err := c.PrepareLocalDemo(ctx, cluster.LocalDemo{Namespace: "default", Branch: branch, ShortSHA: sha})
	if err != nil {
		return err
	}
	if pr, err = c.Tekton.TektonV1().PipelineRuns("default").Create(ctx, pr, metav1.CreateOptions{}); err != nil {
		return err
	}
	name := pr.Name
	fmt.Printf("\nPipelineRun %s: build, test and push examples/demo-app (tag %s-%s) in a pod on %s, pre-pull it onto\n"+
		"the node-type=web nodes (%s among them), roll it out...\n", name, branch, sha, c.RealNode.Name(), c.RealNode.Name())
	err = wait.PollUntilContextTimeout(ctx, time.Second, 15*time.Minute, true, func(ctx context.Context) (bool, error) {
		pr, err = c.Tekton.TektonV1().PipelineRuns("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil && !pr.Status.GetCondition(apis.ConditionSucceeded).IsUnknown(), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for PipelineRun %s: %w", name, err)
	}
	if err := tkn(ctx, c, "pipelinerun", "describe", name); err != nil {
		return err
	}
	runs, err := c.Tekton.TektonV1beta1().CustomRuns("default").List(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/pipelineRun=" + name})
	if err != nil || len(runs.Items) == 0 {
		return fmt.Errorf("the CustomRun of %s: %v", name, err)
	}
	if err := tkn(ctx, c, "customrun", "describe", runs.Items[0].Name); err != nil {
		return err
	}
	if c := pr.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
		return fmt.Errorf("PipelineRun %s: %s: %s", name, c.Reason, c.Message)
	}
	var image string
	for _, r := range pr.Status.Results {
		if r.Name == "image" {
			image = r.Value.StringVal
		}
	}
	tagged := c.Registry + "/demo/hello-world:" + branch + "-" + sha
	fmt.Printf("\n$ ctr --namespace k8s.io images ls name==%s   # on %s\n", tagged, c.RealNode.Name())
	out, err := c.RealNode.Ctr(ctx, "images", "ls", "name=="+tagged)
	fmt.Print(out)
	if err != nil {
		return err
	}
	pods, err := c.Kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=helloworld,pod-template-hash"})
	if err != nil || len(pods.Items) != 1 {
		return fmt.Errorf("the deploy task's pod of Deployment helloworld: %v (%d pods)", err, len(pods.Items))
	}
	warm, err := podEvents(ctx, c, &pods.Items[0])
	if err != nil {
		return err
	}
	return rolloutWithoutThePrePull(ctx, c, image, warm)
}

// tkn runs tkn against the cluster's default namespace, showing the command.
func tkn(ctx context.Context, c *cluster.Cluster, args ...string) error {
	fmt.Printf("\n$ tkn %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, c.Tools.Path("tkn"), append(args, "--kubeconfig", c.Kubeconfig, "-n", "default")...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tkn %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// rolloutWithoutThePrePull rolls image out once more after removing it from
// the real node, as a node that was not pre-pulled starts it, and sets the
// kubelet's pull beside the pipeline's rollout.
func rolloutWithoutThePrePull(ctx context.Context, c *cluster.Cluster, image, warm string) error {
	if err := c.Kube.AppsV1().Deployments("default").Delete(ctx, "helloworld", metav1.DeleteOptions{}); err != nil {
		return err
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := c.Kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=helloworld,pod-template-hash"})
		return err == nil && len(pods.Items) == 0, nil
	}); err != nil {
		return fmt.Errorf("waiting for the pods of Deployment helloworld to go: %w", err)
	}
	fmt.Printf("\nThe same image without the pre-pull: removed from %s (through the CRI), rolled out again...\n", c.RealNode.Name())
	if err := c.RealNode.RemoveImage(ctx, image); err != nil {
		return err
	}
	cold, err := rollout(ctx, c, "hello-world-cold", image)
	if err != nil {
		return err
	}
	fmt.Printf("\nOn %s, the kubelet: %s for the pipeline's rollout; %s without the pre-pull.\n"+
		"The registry here is on loopback and the demo app is 4.7 MiB: a pull too short to matter. Through 100 Mbit/s,\n"+
		"200 MiB images start in about 1 s pre-pulled against 18 s (make bench's payoff level, docs/benchmarks.md).\n",
		c.RealNode.Name(), warm, cold.pulled)
	return nil
}

// demoRollout is a rollout and, where the kubelet pulled, how long its pull took.
type demoRollout struct {
	cluster.Rollout
	pulled string
}

// rollout rolls image out as the Deployment name and prints its pod and
// the kubelet's events for it.
func rollout(ctx context.Context, c *cluster.Cluster, name, image string) (demoRollout, error) {
	var r demoRollout
	var err error
	r.Rollout, err = c.RollOut(ctx, "default", name, image, 3*time.Minute)
	if err != nil {
		return r, err
	}
	r.pulled, err = podEvents(ctx, c, r.Pod)
	return r, err
}

// podEvents prints a pod and the kubelet's events for it, and says whether
// the kubelet pulled its image, and how long that took.
func podEvents(ctx context.Context, c *cluster.Cluster, pod *corev1.Pod) (string, error) {
	fmt.Printf("\n$ kubectl get pod %s -o wide\n", pod.Name)
	out, err := c.Kubectl(ctx, "get", "pod", pod.Name, "-o", "wide")
	fmt.Print(out)
	if err != nil {
		return "", err
	}
	events, err := c.StartEvents(ctx, pod)
	if err != nil {
		return "", err
	}
	fmt.Printf("\n$ kubectl get events --field-selector involvedObject.name=%s\n  %s\n", pod.Name, strings.Join(events, "\n  "))
	pulled := "no pull (the image already present)"
	for _, e := range events {
		// "Pulled: Successfully pulled image "..." in 113ms (113ms including waiting). ..."
		if _, after, ok := strings.Cut(e, "Successfully pulled image "); ok {
			if _, took, ok := strings.Cut(after, " in "); ok {
				pulled = "a pull of " + strings.Fields(took)[0]
			}
		}
	}
	return pulled, nil
}

// gitTag is the seed's <branch> and <short sha> for the repository at root;
// outside a git checkout, "local" and "0000000".
func gitTag(root string) (branch, sha string) {
	branch, sha = "local", "0000000"
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--abbrev-ref", "HEAD").Output(); err == nil {
		// A tag may hold [A-Za-z0-9_.-] only.
		b := strings.Map(func(r rune) rune {
			if r == '_' || r == '.' || r == '-' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
				return r
			}
			return '-'
		}, strings.TrimSpace(string(out)))
		if b != "" && b != "HEAD" {
			branch = b
		}
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short=9", "HEAD").Output(); err == nil {
		sha = strings.TrimSpace(string(out))
	}
	return branch, sha
}
