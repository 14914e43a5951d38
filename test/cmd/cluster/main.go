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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"knative.dev/pkg/apis"

	"github.com/openkruise/imageprepull/test/cluster"
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
		Log: logf,
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

func demo(ctx context.Context, c *cluster.Cluster, root string) error {
	if _, err := c.Kubectl(ctx, "apply", "-f", filepath.Join(root, "examples", "seed-pipeline", "20-imageprepull.yaml")); err != nil {
		return err
	}
	out, err := c.Kubectl(ctx, "create", "-f", filepath.Join(root, "examples", "local-demo", "pipelinerun.yaml"), "-o", "name")
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(strings.TrimSpace(out), "pipelinerun.tekton.dev/")
	fmt.Printf("\nPipelineRun %s: pre-pulling onto the node-type=web nodes...\n", name)
	var pr *pipelinev1.PipelineRun
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		pr, err = c.Tekton.TektonV1().PipelineRuns("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil && !pr.Status.GetCondition(apis.ConditionSucceeded).IsUnknown(), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for PipelineRun %s: %w", name, err)
	}
	tkn := exec.Command(filepath.Join(root, "hack", "build-tools.sh"), "--path", "tkn")
	tknPath, _ := tkn.Output()
	for _, args := range [][]string{{"pipelinerun", "describe", name}, {"customrun", "list"}} {
		fmt.Printf("\n$ tkn %s\n", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, strings.TrimSpace(string(tknPath)), append(args, "--kubeconfig", c.Kubeconfig, "-n", "default")...)
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
	cmd := exec.CommandContext(ctx, strings.TrimSpace(string(tknPath)), "customrun", "describe", runs.Items[0].Name, "--kubeconfig", c.Kubeconfig, "-n", "default")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return err
	}
	if c := pr.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
		return fmt.Errorf("PipelineRun %s: %s: %s", name, c.Reason, c.Message)
	}
	return nil
}
