// Command bench measures the controller on the local cluster with simulated
// nodes whose pulls finish at once, side by side with the floor any
// watch-driven controller pays on the same API server: latency (ours,
// Kruise's and Tekton's shares), API requests, status writes and jobs per
// run, controller CPU and memory, and pods created. `make bench` runs it;
// it prints a table and writes JSON and an SVG plot under bench/results.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openkruise/imageprepull/test/cluster"
)

func main() {
	levels := flag.String("levels", "10,100,1000", "CustomRuns created at once, one load level each")
	levels3 := flag.String("levels3", "100", "CustomRuns created at once with three images each, one load level each (empty: none)")
	nodes := flag.Int("nodes", 200, "simulated nodes")
	pool := flag.Int("pool", 2, "nodes each run pre-pulls onto (a label selector over a pool of that many)")
	large := flag.Int("large", 2000, "nodes for the one-run large-cluster case (0 skips it)")
	out := flag.String("out", filepath.Join("bench", "results"), "where the JSON and the plot go")
	tektonDefaults := flag.Bool("tekton-defaults", false, "run Tekton's controller with its defaults instead of the tuning its performance guide shows")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the controller, taken from the start of the largest level, to this file")
	profileFor := flag.Duration("profile-for", time.Minute, "how long -cpuprofile profiles")
	flag.Parse()
	ns, err := counts("levels", *levels)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ns3, err := counts("levels3", *levels3)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	prof := profile{path: *cpuProfile, d: *profileFor}
	switch {
	case len(ns) > 0:
		prof.level = fmt.Sprintf("l%d", slices.Max(ns))
	case len(ns3) > 0:
		prof.level = fmt.Sprintf("l%dx3", slices.Max(ns3))
	}
	if err := run(ctx, ns, ns3, *nodes, *pool, *large, *out, prof, !*tektonDefaults); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// profile says which level's controller CPU to profile, for how long, and where to write it.
type profile struct {
	path  string
	d     time.Duration
	level string
}

// counts parses a flag's comma-separated list of positive numbers.
func counts(name, list string) ([]int, error) {
	var ns []int
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-%s: %q is not a positive number", name, s)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

func run(ctx context.Context, levels, levels3 []int, nodes, pool, large int, out string, prof profile, tuneTekton bool) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }
	var ns []cluster.Node
	for i := 0; i < nodes; i++ {
		ns = append(ns, cluster.Node{Name: fmt.Sprintf("node-%04d", i), Labels: map[string]string{"pool": poolName(i / pool)}})
	}
	var tektonArgs []string
	if tuneTekton {
		tektonArgs = tektonTuning
	}
	start := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{Root: root, Nodes: ns, RealNode: "off", TektonArgs: tektonArgs,
		Log: func(f string, a ...any) { logf("cluster: "+f, a...) }})
	if err != nil {
		return err
	}
	defer c.Stop()
	b, err := newBench(ctx, c, nodes/pool, prof)
	if err != nil {
		return err
	}
	res := results{Machine: machine(), Command: "make bench KRUISE_VERSION=" + c.KruiseVersion, Kruise: c.KruiseVersion, Started: start.UTC(), Nodes: nodes, NodesPerRun: pool}

	logf("floor: a watch sees one object change and writes another, 100 times")
	if res.Floor, err = b.floor(ctx, 100); err != nil {
		return err
	}
	for _, set := range []struct {
		counts       []int
		images       int
		suffix, what string
	}{{levels, 1, "", "one image"}, {levels3, 3, "x3", "three images"}} {
		for _, n := range set.counts {
			logf("load: %d runs at once, %s each", n, set.what)
			l, err := b.level(ctx, fmt.Sprintf("l%d%s", n, set.suffix), n, set.images, "")
			if err != nil {
				return err
			}
			res.Levels = append(res.Levels, l)
		}
	}
	if large > 0 {
		logf("large cluster: %d nodes, one run across all of them", large)
		if err := b.addNodes(ctx, nodes, large); err != nil {
			return err
		}
		l, err := b.level(ctx, "large", 1, 1, "all")
		if err != nil {
			return err
		}
		res.Large = &l
		logf("large cluster: one run for a Deployment's eligible nodes, all %d of them", large)
		w, err := b.level(ctx, "large-workload", 1, 1, "workload")
		if err != nil {
			return err
		}
		res.LargeWorkload = &w
	}
	if res.Pods, err = b.pods(ctx); err != nil {
		return err
	}
	res.Wall = time.Since(start).Round(time.Second).String()

	res.print(os.Stdout)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	stamp := start.UTC().Format("20060102-150405")
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	jsonPath := filepath.Join(out, stamp+".json")
	if err := os.WriteFile(jsonPath, append(data, '\n'), 0o644); err != nil {
		return err
	}
	svgPath := filepath.Join(out, stamp+"-latency.svg")
	if err := os.WriteFile(svgPath, res.plot(), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s and %s\n", jsonPath, svgPath)
	return nil
}

// tektonTuning is the example of Tekton's "Controller Performance
// Configuration" guide (docs/tekton-controller-performance-configuration.md):
// with its defaults (2 workers, 20 requests/s: Tekton doubles client-go's 5 twice)
// Tekton needs minutes to turn 1,000 PipelineRuns into CustomRuns, and a
// platform that runs that many at once tunes it.
var tektonTuning = []string{"-threads-per-controller", "32", "-kube-api-qps", "50", "-kube-api-burst", "50"}

func poolName(i int) string { return fmt.Sprintf("p%03d", i) }

// machine describes where the numbers came from.
func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	var mem string
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0]); len(f) >= 2 {
			if kb, err := strconv.Atoi(f[1]); err == nil {
				mem = fmt.Sprintf(", %d GiB", (kb+512*1024)/1024/1024)
			}
		}
	}
	return fmt.Sprintf("%d cores (%s)%s", runtime.NumCPU(), model, mem)
}
