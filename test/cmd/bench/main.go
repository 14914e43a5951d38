// Command bench measures the controller on the local cluster with simulated
// nodes whose pulls finish at once, side by side with the floor any
// watch-driven controller pays on the same API server: latency (ours,
// Kruise's and Tekton's shares), API requests, status writes and jobs per
// run, CPU and memory of our controller, Tekton's and OpenKruise's manager,
// and pods created. A real Prometheus scrapes the controller throughout, and
// each panel of docs/dashboard is drawn from its answers. `make bench` runs
// it; it prints a table and writes JSON, an SVG plot and the panels under
// bench/results (the panels also into docs/dashboard, for docs/metrics.md).
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

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/test/cluster"
	"github.com/imageprepull/imageprepull/test/dashboard"
)

func main() {
	levels := flag.String("levels", "10,100,1000", "CustomRuns created at once, one load level each")
	levels3 := flag.String("levels3", "100", "CustomRuns created at once with three images each, one load level each (empty: none)")
	nodes := flag.Int("nodes", 200, "simulated nodes")
	pool := flag.Int("pool", 2, "nodes each run pre-pulls onto (a label selector over a pool of that many)")
	failing := flag.Int("failing", 10, "runs at once whose image fails on one node of each pool (ThresholdNotMet; 0 skips it)")
	large := flag.Int("large", 2000, "nodes for the one-run large-cluster case (0 skips it)")
	digests := flag.Int("digests", 100, "runs at once each pre-pulling an image pushed to the local registry, given with its digest (each node checked against it), beside the level of as many runs without (0 skips it)")
	atLimits := flag.Int("limits", 20, "runs at once at the validation limits: 4 images and 5,000 node names, 256 KiB of them, each (0 skips it)")
	out := flag.String("out", filepath.Join("bench", "results"), "where the JSON and the plot go")
	dashboardOut := flag.String("dashboard-out", filepath.Dir(dashboard.Path), "where the dashboard's panels, drawn from the bench's Prometheus, go for docs/metrics.md")
	tektonDefaults := flag.Bool("tekton-defaults", false, "run Tekton's controller with its defaults instead of the tuning its performance guide shows")
	kruiseArgs := flag.String("kruise-args", "", "flags added to OpenKruise's manager, comma-separated (--rest-config-qps=300,--rest-config-burst=600, say); none: its defaults")
	idleFor := flag.Duration("idle", time.Minute, "each idle window's length, before the levels: no runs, then the floor probe alone (0 skips them)")
	payoffs := flag.Int("payoff", 3, "images for the payoff level on the real node (root only; 0 skips it)")
	payoffMbit := flag.Float64("payoff-mbit", 100, "the payoff level's bandwidth from the registry to the node, Mbit/s")
	payoffMiB := flag.Int("payoff-mib", 200, "the size of the payoff level's images, MiB (random layers on the demo app)")
	pipelines := flag.Int("pipelines", 3, "PipelineRuns of the seed's pipeline whole each way (ImagePrePull, and the seed's kubectl Task) on the real node, through the payoff level's link and image size (root only; 0 skips it)")
	realNodes := flag.Int("realnodes", 3, fmt.Sprintf("real nodes (2 to %d) for the several-node level: a Deployment of one pod per node after a pre-pull at full parallelism, after one at parallelism 1, and with none, through the payoff level's link and image size (root only; 0 skips it)", cluster.MaxRealNodes))
	realNodesRounds := flag.Int("realnodes-rounds", 2, "rounds of the several-node level")
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
	var kruise []string
	if *kruiseArgs != "" {
		kruise = strings.Split(*kruiseArgs, ",")
	}
	po := payoffOpts{n: *payoffs, mbit: *payoffMbit, mib: *payoffMiB, pipelines: *pipelines, realNodes: *realNodes, realNodesRounds: *realNodesRounds, idle: *idleFor}
	if err := run(ctx, ns, ns3, *failing, *digests, *atLimits, *nodes, *pool, *large, po, *out, *dashboardOut, prof, !*tektonDefaults, kruise); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// command is how to run this bench again: make, the OpenKruise release and
// the flags it was given.
func command(kruiseVersion string) string {
	cmd := "make bench KRUISE_VERSION=" + kruiseVersion
	if len(os.Args) > 1 {
		cmd += " BENCH_FLAGS='" + strings.Join(os.Args[1:], " ") + "'"
	}
	return cmd
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

// onRealNode runs a level of the real node, named by its flag, unless the
// flag says 0 or this machine has no real node: then it returns why not.
func onRealNode(level string, n int, logf func(string, ...any), run func() error) (skipped string, err error) {
	switch why := cluster.RealNodeUnavailable(); {
	case n == 0:
		skipped = "-" + level + "=0"
	case why != "":
		skipped = "no real node here: " + why
	default:
		if err := run(); err != nil {
			return "", fmt.Errorf("%s level: %w", level, err)
		}
		return "", nil
	}
	logf("%s level skipped: %s", level, skipped)
	return skipped, nil
}

// payoffOpts are the payoff level's flags.
type payoffOpts struct {
	n    int
	mbit float64
	mib  int
	// pipelines is the number of PipelineRuns each way of the pipelines level.
	pipelines int
	// realNodes and realNodesRounds are the several-node level's nodes and rounds.
	realNodes, realNodesRounds int
	// idle is each idle window's length (not the payoff's, but passed with it).
	idle time.Duration
}

func run(ctx context.Context, levels, levels3 []int, failing, digests, atLimits, nodes, pool, large int, po payoffOpts, out, dashboardOut string, prof profile, tuneTekton bool, kruiseArgs []string) error {
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
	c, err := cluster.Start(ctx, cluster.Options{Root: root, Nodes: ns, RealNode: "off", TektonArgs: tektonArgs, KruiseArgs: kruiseArgs,
		Log: func(f string, a ...any) { logf("cluster: "+f, a...) }})
	if err != nil {
		return err
	}
	defer c.Stop()
	logf("starting the do-nothing controller beside ours (test/cmd/watchonly)")
	if err := c.Controllers.StartWatchOnly(ctx); err != nil {
		return err
	}
	prometheus, err := c.Prometheus.Start(ctx, scrapeInterval)
	if err != nil {
		return err
	}
	scraped := time.Now()
	b, err := newBench(ctx, c, nodes/pool, pool, prof)
	if err != nil {
		return err
	}
	res := results{Machine: machine(), Command: command(c.KruiseVersion), Kruise: c.KruiseVersion, Started: start.UTC(), Nodes: nodes, NodesPerRun: pool}

	logf("floor: a watch sees one object change and writes another, 100 times")
	if res.Floor, err = b.floor(ctx, 100); err != nil {
		return err
	}
	if po.idle > 0 {
		logf("idle: %s with no runs, then %s with the floor probe alone", po.idle, po.idle)
		idle, err := b.idle(ctx, po.idle)
		if err != nil {
			return err
		}
		res.Idle = &idle
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
	if failing > 0 {
		logf("failing: %d runs at once, one node of each run's pool failing its image", failing)
		if err := b.failOnePerPool(ctx, failingLevel); err != nil {
			return err
		}
		l, err := b.level(ctx, failingLevel, failing, 1, "")
		if err != nil {
			return err
		}
		res.Levels = append(res.Levels, l)
	}
	if digests > 0 {
		logf("digests: %d runs at once, one image each given with its digest", digests)
		if err := b.pushPinned(ctx, digests); err != nil {
			return err
		}
		l, err := b.level(ctx, digestsLevel, digests, 1, digestsLevel)
		if err != nil {
			return err
		}
		res.Levels = append(res.Levels, l)
	}
	if atLimits > 0 {
		logf("limits: %d runs at once at the validation limits (%d images, %d node names of %d KiB)", atLimits, limitsImages, v1alpha1.MaxNodeNames, v1alpha1.MaxNodeNameBytes>>10)
		l, err := b.level(ctx, limitsLevel, atLimits, limitsImages, "limits")
		if err != nil {
			return err
		}
		res.Levels = append(res.Levels, l)
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
	for _, l := range append(pointers(res.Levels), res.Large, res.LargeWorkload) {
		if l == nil {
			continue
		}
		wall, _ := time.ParseDuration(l.Wall)
		l.Background = map[string]float64{}
		for _, p := range []string{"ours", cluster.WatchOnly, "tekton-controller", "kruise-manager"} {
			l.Background[p] = res.Idle.background(p, wall, l.Runs, l.Floor.N)
		}
	}
	// Last: the real node's pods are the point of these levels, and its
	// kruise-daemon would pull what the levels above name.
	if res.PayoffSkipped, err = onRealNode("payoff", po.n, logf, func() (err error) {
		logf("payoff: %d images of %d MiB through %.0f Mbit/s onto the real node, pre-pulled and not", po.n, po.mib, po.mbit)
		res.Payoff, err = payoff(ctx, c, po.n, po.mbit, po.mib, logf)
		return err
	}); err != nil {
		return err
	}
	if res.PipelinesSkipped, err = onRealNode("pipelines", po.pipelines, logf, func() (err error) {
		logf("pipelines: the seed's pipeline whole, %d runs each way (ImagePrePull, the seed's kubectl Task), images of %d MiB through %.0f Mbit/s", po.pipelines, po.mib, po.mbit)
		res.Pipelines, err = pipelinesLevel(ctx, c, po.pipelines, po.mbit, po.mib, logf)
		return err
	}); err != nil {
		return err
	}
	if res.RealNodesSkipped, err = onRealNode("realnodes", po.realNodes, logf, func() (err error) {
		logf("realnodes: %d real nodes, %d rounds, images of %d MiB through %.0f Mbit/s", po.realNodes, po.realNodesRounds, po.mib, po.mbit)
		res.RealNodes, err = realNodesLevel(ctx, c, po.realNodes, po.realNodesRounds, po.mbit, po.mib, logf)
		return err
	}); err != nil {
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
	if len(res.Levels) == 0 && res.Large == nil {
		// The payoff level alone: no run load to plot, and docs/metrics.md's
		// dashboard panels stay those of the last run that had one.
		fmt.Printf("\nwrote %s (no load level ran: no latency plot, no dashboard panels)\n", jsonPath)
		return nil
	}
	svgPath := filepath.Join(out, stamp+"-latency.svg")
	if err := os.WriteFile(svgPath, res.plot(), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s and %s\n", jsonPath, svgPath)
	return drawDashboard(ctx, prometheus, scraped, stamp, out, dashboardOut)
}

// drawDashboard evaluates every query of the dashboard docs/dashboard ships
// with the Prometheus that scraped the controller through the bench, and
// draws each panel as SVG, into out and dashboardOut (docs/metrics.md shows those).
func drawDashboard(ctx context.Context, prometheus string, from time.Time, stamp, out, dashboardOut string) error {
	board, err := dashboard.Load(dashboard.Path)
	if err != nil {
		return err
	}
	to := time.Now()
	// About 240 points, and Grafana's $__rate_interval for that step:
	// max(step + scrape interval, 4 scrape intervals).
	step := max(to.Sub(from)/240, time.Second).Round(time.Second)
	rate := max(step+scrapeInterval, 4*scrapeInterval)
	results, err := dashboard.Evaluate(ctx, prometheus, board, from, to, step, rate)
	if err != nil {
		return err
	}
	for _, r := range results {
		caption := fmt.Sprintf("Drawn by make bench (%s) from a real Prometheus's answers to this panel's queries; not a Grafana screenshot.", stamp)
		if len(r.Empty) > 0 {
			caption = fmt.Sprintf("No data for %d of its queries over this bench's window (%s scrapes). ", len(r.Empty), scrapeInterval) + caption
		}
		svg := dashboard.SVG(r, caption)
		for _, dir := range []string{out, dashboardOut} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			name := fmt.Sprintf("%s-panel-%d.svg", stamp, r.Panel.ID)
			if dir == dashboardOut {
				name = fmt.Sprintf("panel-%d.svg", r.Panel.ID)
			}
			if err := os.WriteFile(filepath.Join(dir, name), svg, 0o644); err != nil {
				return err
			}
		}
	}
	fmt.Printf("drew %d dashboard panels into %s and %s\n", len(results), out, dashboardOut)
	return nil
}

// scrapeInterval is how often the bench's Prometheus scrapes the controller:
// as a cluster's would, since each scrape is CPU the controller spends.
const scrapeInterval = 15 * time.Second

// tektonTuning is the example of Tekton's "Controller Performance
// Configuration" guide (docs/tekton-controller-performance-configuration.md):
// with its defaults (2 workers, 20 requests/s: Tekton doubles client-go's 5 twice)
// Tekton needs minutes to turn 1,000 PipelineRuns into CustomRuns, and a
// platform that runs that many at once tunes it.
var tektonTuning = []string{"-threads-per-controller", "32", "-kube-api-qps", "50", "-kube-api-burst", "50"}

func pointers(levels []level) []*level {
	var out []*level
	for i := range levels {
		out = append(out, &levels[i])
	}
	return out
}

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
