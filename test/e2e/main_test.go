//go:build e2e

// Package e2e runs PipelineRuns through real Tekton and real OpenKruise on
// the local cluster (test/cluster), with this controller built from
// cmd/controller and authenticated by its own ServiceAccount.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imageprepull/imageprepull/test/cluster"
	"github.com/imageprepull/imageprepull/test/simulator"
)

var c *cluster.Cluster

// Images whose names say how the simulated pulls go.
var (
	failEverywhere = regexp.MustCompile(`:missing-`)
	slow           = regexp.MustCompile(`/slow-`)
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cfg := simulator.Config{FailImages: failEverywhere, SlowImages: slow, SlowPull: time.Hour}
	cfg.PullTime.Min, cfg.PullTime.Max = 50*time.Millisecond, 300*time.Millisecond
	c, err = cluster.Start(ctx, cluster.Options{
		Root: root,
		Nodes: []cluster.Node{
			{Name: "web-a1", Labels: map[string]string{"node-type": "web", "zone": "a"}},
			{Name: "web-a2", Labels: map[string]string{"node-type": "web", "zone": "a"}},
			{Name: "web-b1", Labels: map[string]string{"node-type": "web", "zone": "b"}},
			{Name: "batch-b1", Labels: map[string]string{"node-type": "batch", "zone": "b"}},
		},
		Simulator: cfg,
		// TestRealNode starts it for its own cases only.
		RealNode: "off",
		Log:      func(f string, a ...any) { fmt.Fprintf(os.Stderr, "cluster: "+f+"\n", a...) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the local cluster:", err)
		return 1
	}
	defer c.Stop()
	// web-b1 fails every image whose repository starts with "flaky-".
	if err := annotateNode(context.Background(), "web-b1", simulator.AnnotationFail, `/flaky-`); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if !c.Controllers.Running() {
		fmt.Fprintln(os.Stderr, "the controller died during the tests:\n"+c.Controllers.Tail(50))
		return 1
	}
	run, skip := flag.Lookup("test.run").Value.String(), flag.Lookup("test.skip").Value.String()
	if code == 0 && (run == "" || run == ".") && skip == "" {
		// The whole suite ran: what the controller did is what it needs.
		time.Sleep(2500 * time.Millisecond) // the audit log's batch wait
		if problems := rbacAgainstAudit(c.AuditLog); len(problems) > 0 {
			fmt.Fprintln(os.Stderr, "RBAC against the audit log of the whole suite:\n  "+strings.Join(problems, "\n  "))
			return 1
		}
		fmt.Fprintln(os.Stderr, "RBAC against the audit log of the whole suite: every granted rule used, no request refused")
	}
	return code
}
