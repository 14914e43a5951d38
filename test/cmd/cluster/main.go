// Command cluster runs the local cluster for people and scripts:
//
//	cluster up     start it, print the KUBECONFIG line, and keep it up until Ctrl-C
//	cluster demo   the same, after running examples/local-demo and describing it with tkn
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

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/yaml"

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

// demo does what the seed's pipeline does, as far as this cluster can: its
// build-test-push Task needs Tekton's step images, which this closed network
// cannot fetch, so the demo builds and pushes the demo app itself (ko, into
// the local registry, tagged <branch>-<short sha> as the seed tags it), then
// runs the pipeline's pre-pull step for exactly that reference, shows the
// image in the real node's containerd, and rolls it out there.
func demo(ctx context.Context, c *cluster.Cluster, root string) error {
	repo := c.Registry + "/demo/hello-world"
	branch, sha := gitTag(root)
	tag := branch + "-" + sha
	fmt.Printf("\nBuilding examples/demo-app and pushing %s:%s (ko build)...\n", repo, tag)
	ref, err := c.KoBuild(ctx, repo, tag, "./examples/demo-app")
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s\n", ref)

	if _, err := c.Kubectl(ctx, "apply", "-f", filepath.Join(root, "examples", "seed-pipeline", "20-imageprepull.yaml")); err != nil {
		return err
	}
	// Runs act as their ServiceAccount: the demo's runs are default's, in default.
	if err := c.AllowPrePulls(ctx, "default", "default"); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	fmt.Println("bound the ClusterRole imageprepull-runner to ServiceAccount default/default, so that its runs may pre-pull:\n" +
		"  kubectl -n default create rolebinding imageprepull-runner-default --clusterrole=imageprepull-runner --serviceaccount=default:default")
	data, err := os.ReadFile(filepath.Join(root, "examples", "local-demo", "pipelinerun.yaml"))
	if err != nil {
		return err
	}
	pr := &pipelinev1.PipelineRun{}
	if err := yaml.UnmarshalStrict(data, pr); err != nil {
		return fmt.Errorf("examples/local-demo/pipelinerun.yaml: %w", err)
	}
	pr.Namespace = "default"
	for i, p := range pr.Spec.Params {
		switch p.Name {
		case "docker_repo":
			pr.Spec.Params[i].Value = *pipelinev1.NewStructuredValues(repo)
		case "branch":
			pr.Spec.Params[i].Value = *pipelinev1.NewStructuredValues(branch)
		case "short_sha":
			pr.Spec.Params[i].Value = *pipelinev1.NewStructuredValues(sha)
		}
	}
	if pr, err = c.Tekton.TektonV1().PipelineRuns("default").Create(ctx, pr, metav1.CreateOptions{}); err != nil {
		return err
	}
	name := pr.Name
	nodes := "the node-type=web nodes"
	if c.RealNode.Name() != "" {
		nodes += " (the real node " + c.RealNode.Name() + " among them)"
	}
	fmt.Printf("\nPipelineRun %s: pre-pulling %s:%s onto %s...\n", name, repo, tag, nodes)
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		pr, err = c.Tekton.TektonV1().PipelineRuns("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil && !pr.Status.GetCondition(apis.ConditionSucceeded).IsUnknown(), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for PipelineRun %s: %w", name, err)
	}
	for _, args := range [][]string{{"pipelinerun", "describe", name}, {"customrun", "list"}} {
		fmt.Printf("\n$ tkn %s\n", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, c.Tools.Path("tkn"), append(args, "--kubeconfig", c.Kubeconfig, "-n", "default")...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("tkn %s: %w", strings.Join(args, " "), err)
		}
	}
	runs, err := c.Tekton.TektonV1beta1().CustomRuns("default").List(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/pipelineRun=" + name})
	if err != nil || len(runs.Items) == 0 {
		return fmt.Errorf("the CustomRun of %s: %v", name, err)
	}
	fmt.Printf("\n$ tkn customrun describe %s\n", runs.Items[0].Name)
	cmd := exec.CommandContext(ctx, c.Tools.Path("tkn"), "customrun", "describe", runs.Items[0].Name, "--kubeconfig", c.Kubeconfig, "-n", "default")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return err
	}
	if c := pr.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
		return fmt.Errorf("PipelineRun %s: %s: %s", name, c.Reason, c.Message)
	}
	if c.RealNode.Name() == "" {
		fmt.Printf("\n(%s)\n", c.RealNode.Notice)
		return nil
	}
	fmt.Printf("\n$ ctr --namespace k8s.io images ls name==%s:%s   # on %s\n", repo, tag, c.RealNode.Name())
	out, err := c.RealNode.Ctr(ctx, "images", "ls", "name=="+repo+":"+tag)
	fmt.Print(out)
	if err != nil {
		return err
	}
	if has, err := c.RealNode.Has(ctx, repo+":"+tag); err != nil || !has {
		return fmt.Errorf("the real node's containerd does not have %s:%s (%v)", repo, tag, err)
	}
	return rollouts(ctx, c, repo+":"+tag)
}

// rollouts does what the pre-pull is for: it rolls the image out onto the
// real node, where the kubelet starts it without pulling; then, for
// comparison, the same image again after removing it from the node, as a
// node that was not pre-pulled starts it.
func rollouts(ctx context.Context, c *cluster.Cluster, image string) error {
	fmt.Printf("\nRolling %s out onto %s (a Deployment, imagePullPolicy left to its default)...\n", image, c.RealNode.Name())
	warm, err := rollout(ctx, c, "hello-world", image)
	if err != nil {
		return err
	}
	if err := c.Kube.AppsV1().Deployments("default").Delete(ctx, "hello-world", metav1.DeleteOptions{}); err != nil {
		return err
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := c.Kube.CoreV1().Pods("default").Get(ctx, warm.Pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		return fmt.Errorf("waiting for pod %s to go: %w", warm.Pod.Name, err)
	}
	fmt.Printf("\nThe same image without the pre-pull: removed from %s (through the CRI), rolled out again...\n", c.RealNode.Name())
	if err := c.RealNode.RemoveImage(ctx, image); err != nil {
		return err
	}
	cold, err := rollout(ctx, c, "hello-world-cold", image)
	if err != nil {
		return err
	}
	fmt.Printf("\nPod start, created to Ready, on %s: %s from the pre-pulled image, %s pulling it at start (%s).\n"+
		"The registry here is on loopback and the demo app is 4.7 MiB: a pull too short to tell apart through the readiness\n"+
		"probe's 1 s period. Through 100 Mbit/s, 200 MiB images start in about 1 s pre-pulled against 18 s (make bench's payoff\n"+
		"level, docs/benchmarks.md).\n", c.RealNode.Name(), warm.Start.Round(time.Millisecond), cold.Start.Round(time.Millisecond), cold.pulled)
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
	fmt.Printf("\n$ kubectl get pod %s -o wide\n", r.Pod.Name)
	out, err := c.Kubectl(ctx, "get", "pod", r.Pod.Name, "-o", "wide")
	fmt.Print(out)
	if err != nil {
		return r, err
	}
	events, err := c.StartEvents(ctx, r.Pod)
	if err != nil {
		return r, err
	}
	fmt.Printf("\n$ kubectl get events --field-selector involvedObject.name=%s\n  %s\n", r.Pod.Name, strings.Join(events, "\n  "))
	for _, e := range events {
		// "Pulled: Successfully pulled image "..." in 113ms (113ms including waiting). ..."
		if _, after, ok := strings.Cut(e, "Successfully pulled image "); ok {
			if _, took, ok := strings.Cut(after, " in "); ok {
				r.pulled = "the kubelet's pull: " + strings.Fields(took)[0]
			}
		}
	}
	return r, nil
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
