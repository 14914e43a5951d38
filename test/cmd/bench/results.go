package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/imageprepull/imageprepull/test/cluster"
)

// results is what one `make bench` measured; bench/results/*.json holds it.
type results struct {
	Machine string `json:"machine"`
	Command string `json:"command"`
	// Kruise is the OpenKruise release of the cluster (manager and CRDs;
	// the simulator answers as its kruise-daemon).
	Kruise      string    `json:"kruiseVersion"`
	Started     time.Time `json:"started"`
	Wall        string    `json:"wall"`
	Nodes       int       `json:"nodes"`
	NodesPerRun int       `json:"nodesPerRun"`
	Floor       stats     `json:"floor"`
	// Idle is the idle windows' cost, before the levels.
	Idle   *Idle   `json:"idle,omitempty"`
	Levels []level `json:"levels"`
	Large  *level  `json:"largeCluster,omitempty"`
	// LargeWorkload is one run over the large cluster's nodes that a
	// Deployment's pod template could be scheduled on (workload, nodes:
	// eligible): every node.
	LargeWorkload *level `json:"largeClusterWorkload,omitempty"`
	Pods          int    `json:"podsInCluster"`
	// Payoff is the payoff level, on the real node; PayoffSkipped says why
	// it did not run.
	Payoff        *Payoff `json:"payoff,omitempty"`
	PayoffSkipped string  `json:"payoffSkipped,omitempty"`
	// Pipelines is the seed's pipeline whole, with ImagePrePull and with the
	// seed's kubectl Task, on the real node; PipelinesSkipped says why it did not run.
	Pipelines        *Pipelines `json:"pipelines,omitempty"`
	PipelinesSkipped string     `json:"pipelinesSkipped,omitempty"`
	// RealNodes is the payoff over several real nodes; RealNodesSkipped
	// says why it did not run.
	RealNodes        *RealNodes `json:"realNodes,omitempty"`
	RealNodesSkipped string     `json:"realNodesSkipped,omitempty"`
}

// level is one load level: runs created at once.
type level struct {
	Name         string `json:"name"`
	Runs         int    `json:"runs"`
	ImagesPerRun int    `json:"imagesPerRun"`
	Wall         string `json:"wall"`
	// Ours is from the last ImagePullJob of a run seen complete to the run
	// seen done; Kruise's from its first job seen to its last seen complete;
	// Tekton's from the PipelineRun created to the CustomRun seen, plus from
	// the CustomRun seen done to the PipelineRun seen done.
	Ours stats `json:"oursMs"`
	// OursStart is from the run seen to its last ImagePullJob seen: the
	// start of a run is ours too, before Kruise can begin.
	OursStart stats `json:"oursStartMs"`
	// Floor is the floor probe's latency while this level ran.
	Floor  stats `json:"floorUnderLoadMs"`
	Kruise stats `json:"kruiseMs"`
	Tekton stats `json:"tektonMs"`
	// Pipeline is what the pipeline sees: from the PipelineRun created to
	// the PipelineRun seen done.
	Pipeline                       stats          `json:"pipelineMs"`
	Outcomes                       map[string]int `json:"outcomes"`
	ControllerCPUSeconds           float64        `json:"controllerCpuSeconds"`
	ControllerCPUSecondsPer100Runs float64        `json:"controllerCpuSecondsPer100Runs"`
	ControllerPeakRSSMiB           float64        `json:"controllerPeakRssMiB"`
	// Others are the other processes' costs in the same level, by process
	// name: Tekton's controller, OpenKruise's manager, kube-controller-manager,
	// kube-scheduler, and the do-nothing controller (cluster.WatchOnly).
	Others              map[string]processCost `json:"others"`
	RequestsPerRunTotal float64                `json:"requestsPerRun"`
	RequestsPerRun      map[string]float64     `json:"requestsPerRunByVerbAndResource"`
	// StatusWritesPerRun counts every status write, those refused with 409 too.
	StatusWritesPerRun float64 `json:"statusWritesPerRun"`
	// StatusWritesFailed counts the status writes refused for any reason but
	// a conflict (a status too large for etcd, say).
	StatusWritesFailed int `json:"statusWritesFailed"`
	// RegistryReadsPerRun counts the controller's requests to the local
	// registries (its User-Agent), per run: reading what a digest is, to
	// check each node.
	RegistryReadsPerRun float64 `json:"registryReadsPerRun,omitempty"`
	// TektonWebhookRetries counts the PipelineRuns the bench created again
	// after Tekton's webhook did not answer within its call timeout.
	TektonWebhookRetries int64 `json:"tektonWebhookRetries,omitempty"`
	// SlowestOurs are the runs with the largest share of ours, with when the
	// bench saw their last job complete and the run done, to look up in the
	// controller's log and the audit log (KEEP_CLUSTER_DIR=1 keeps them).
	SlowestOurs []slowRun `json:"slowestOurs"`
	// WatchEventsPerRun are the events, by resource, that the controller's
	// informers decode per run (counted by the bench's own watches).
	WatchEventsPerRun map[string]float64 `json:"watchEventsPerRun"`
	// JobCreatesPerImage counts the creates that made a job; a create
	// refused because the job exists is in RequestsPerRun, as
	// "create imagepulljobs (409)".
	JobCreatesPerImage float64 `json:"imagePullJobCreatesPerImage"`
	// Background is, by process ("ours", cluster.WatchOnly,
	// "tekton-controller", "kruise-manager"), the part of its CPU per 100 runs that its runs did
	// not cause: its idle rate over the level's wall and the floor probes
	// made during the level (Idle.background).
	Background map[string]float64 `json:"backgroundCpuSecondsPer100Runs,omitempty"`
}

func (r results) print(w io.Writer) {
	fmt.Fprintf(w, "\nmachine: %s; OpenKruise %s; %d simulated nodes, %d per run; whole bench %s\n", r.Machine, r.Kruise, r.Nodes, r.NodesPerRun, r.Wall)
	fmt.Fprintf(w, "floor at rest (a watch sees A, a client writes B, the watch sees B): p50 %.1f ms, p95 %.1f ms, p99 %.1f ms (n=%d)\n",
		r.Floor.P50, r.Floor.P95, r.Floor.P99, r.Floor.N)
	fmt.Fprintf(w, "ours: from the run's last ImagePullJob seen complete to the CustomRun seen done; start: from the CustomRun seen to its last ImagePullJob seen;\nfloor: the same probe during the level\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "level\truns\timages\twall\tours p50\tp95\tp99\tfloor p50\tp99\tours/floor p99\tstart p50\tp99\tkruise p50\ttekton p50\tpipeline p50\tp99\treq/run\tstatus writes/run\tjobs/image\tcpu s/100 runs\tpeak RSS MiB\twatch-only cpu s/100\ttekton cpu s/100\tRSS\tkruise cpu s/100\tRSS\tkcm cpu s/100\tscheduler cpu s/100\toutcomes\t")
	all := r.Levels
	for _, l := range []*level{r.Large, r.LargeWorkload} {
		if l != nil {
			all = append(all[:len(all):len(all)], *l)
		}
	}
	for _, l := range all {
		ratio := 0.0
		if l.Floor.P99 > 0 {
			ratio = l.Ours.P99 / l.Floor.P99
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1fx\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.2f\t%d\t%.2f\t%.2f\t%.1f\t%.2f\t%.2f\t%.1f\t%.2f\t%.1f\t%.2f\t%.2f\t%s\t\n",
			l.Name, l.Runs, l.ImagesPerRun, l.Wall, l.Ours.P50, l.Ours.P95, l.Ours.P99, l.Floor.P50, l.Floor.P99, ratio, l.OursStart.P50, l.OursStart.P99, l.Kruise.P50, l.Tekton.P50, l.Pipeline.P50, l.Pipeline.P99,
			l.RequestsPerRunTotal, l.StatusWritesPerRun, l.StatusWritesFailed, l.JobCreatesPerImage, l.ControllerCPUSecondsPer100Runs,
			l.ControllerPeakRSSMiB, l.Others[cluster.WatchOnly].CPUSecondsPer100Runs,
			l.Others["tekton-controller"].CPUSecondsPer100Runs, l.Others["tekton-controller"].PeakRSSMiB,
			l.Others["kruise-manager"].CPUSecondsPer100Runs, l.Others["kruise-manager"].PeakRSSMiB,
			l.Others["kube-controller-manager"].CPUSecondsPer100Runs, l.Others["kube-scheduler"].CPUSecondsPer100Runs, outcomes(l.Outcomes))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nPods in the cluster after every run: %d\n", r.Pods)
	r.printIdle(w, all)
	r.printPayoff(w)
	r.printPipelines(w)
	r.printRealNodes(w)
	for _, l := range all {
		if l.RegistryReadsPerRun > 0 {
			fmt.Fprintf(w, "\nregistry requests per run by the controller, %s: %.2f", l.Name, l.RegistryReadsPerRun)
		}
	}
	fmt.Fprintln(w)
	for _, l := range all {
		fmt.Fprintf(w, "\nrequests per run, %s:", l.Name)
		keys := make([]string, 0, len(l.RequestsPerRun))
		for k := range l.RequestsPerRun {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, " %s %.2f;", k, l.RequestsPerRun[k])
		}
		fmt.Fprintf(w, "\nwatch events per run, %s: customruns %.2f; imagepulljobs %.2f\n", l.Name,
			l.WatchEventsPerRun["customruns"], l.WatchEventsPerRun["imagepulljobs"])
		fmt.Fprintf(w, "slowest of ours, %s:", l.Name)
		for _, s := range l.SlowestOurs {
			fmt.Fprintf(w, " %s %.0f ms (last job seen complete %s);", s.Run, s.OursMs, s.LastJobDone.UTC().Format("15:04:05.000"))
		}
		fmt.Fprintln(w)
	}
}

// processCost is what one process of the platform spent in a level.
type processCost struct {
	CPUSecondsPer100Runs float64 `json:"cpuSecondsPer100Runs"`
	PeakRSSMiB           float64 `json:"peakRssMiB"`
}

// slowRun is one run's share of ours, with its ends.
type slowRun struct {
	Run         string    `json:"run"`
	LastJobDone time.Time `json:"lastJobSeenComplete"`
	RunDone     time.Time `json:"runSeenDone"`
	OursMs      float64   `json:"oursMs"`
}

func outcomes(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// plot draws our share's p50/p95/p99 per load level, with the floor's p99
// at rest as a line and its p99 under each level's load as a mark over the
// level, as SVG.
func (r results) plot() []byte {
	const w, h, left, bottom, top = 760, 360, 70, 50, 40
	levels := r.Levels
	if r.Large != nil {
		levels = append(levels[:len(levels):len(levels)], *r.Large)
	}
	maxMs := r.Floor.P99
	for _, l := range levels {
		maxMs = max(maxMs, l.Ours.P99, l.Floor.P99)
	}
	maxMs *= 1.15
	if maxMs == 0 {
		maxMs = 1
	}
	y := func(ms float64) float64 { return float64(h-bottom) - ms/maxMs*float64(h-bottom-top) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">Our share of a pre-pull's latency by load (ms; last job complete to CustomRun done)</text>`+"\n", left)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, h-bottom, w-10, h-bottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top, left, h-bottom)
	for i := 0; i <= 4; i++ {
		ms := maxMs * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%.0f</text><line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#ddd"/>`+"\n",
			left-6, y(ms)+4, ms, left, y(ms), w-10, y(ms))
	}
	slot := float64(w-left-20) / float64(max(len(levels), 1))
	colors := []string{"#9ecae1", "#4292c6", "#08519c"}
	for i, l := range levels {
		x0 := float64(left) + 10 + slot*float64(i)
		bw := (slot - 20) / 3
		for j, v := range []float64{l.Ours.P50, l.Ours.P95, l.Ours.P99} {
			fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="%s"/>`+"\n", x0+bw*float64(j), y(v), bw-2, y(0)-y(v), colors[j])
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">%s (%d runs)</text>`+"\n", x0+bw*1.5, h-bottom+18, l.Name, l.Runs)
		if l.Floor.N > 0 {
			fy := y(l.Floor.P99)
			fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#d62728" stroke-width="3"/>`+"\n", x0-4, fy, x0+bw*3+2, fy)
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="#d62728" text-anchor="middle">floor p99 under load %.0f</text>`+"\n", x0+bw*1.5, fy-5, l.Floor.P99)
		}
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#d62728" stroke-dasharray="6 4"/>`+"\n", left, y(r.Floor.P99), w-10, y(r.Floor.P99))
	fmt.Fprintf(&b, `<text x="%d" y="%.0f" fill="#d62728" text-anchor="end">floor p99 %.0f ms</text>`+"\n", w-12, y(r.Floor.P99)-4, r.Floor.P99)
	for j, name := range []string{"p50", "p95", "p99"} {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", left+10+j*60, h-18, colors[j], left+24+j*60, h-9, name)
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

func (r results) printPayoff(w io.Writer) {
	if r.Payoff == nil {
		fmt.Fprintf(w, "\npayoff level: not run: %s\n", r.PayoffSkipped)
		return
	}
	p := r.Payoff
	fmt.Fprintf(w, "\npayoff on the real node (kubelet, containerd), layers served at %.0f Mbit/s, images of %d MiB (%d random layers on %s):\n", p.Mbit, p.ImageMiB, p.Layers, p.BaseImage)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "image\tpre-pull s\tpod start pre-pulled s\tpod start pulled s\tkubelet's Pulled event (not pre-pulled)\t")
	for i, ro := range p.Rollouts {
		fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t%.2f\t%s\t\n", i+1, ro.PrePullMs/1000, ro.WarmStartMs/1000, ro.ColdStartMs/1000, ro.ColdPulled)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "medians: pre-pull %.2f s; pod start %.2f s pre-pulled (the floor: the image present), %.2f s pulled at start: %.1fx\n",
		p.PrePullMs/1000, p.WarmMs/1000, p.ColdMs/1000, p.Ratio)
}

func (r results) printPipelines(w io.Writer) {
	if r.Pipelines == nil {
		fmt.Fprintf(w, "\npipelines level: not run: %s\n", r.PipelinesSkipped)
		return
	}
	p := r.Pipelines
	fmt.Fprintf(w, "\nthe seed's pipeline whole on the real node, each way, images of %d MiB served at %.0f Mbit/s (API timestamps, whole seconds):\n", p.ImageMiB, p.Mbit)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "way\tPipelineRun\tpush to rollout Ready s\tpre-pull task s\tjob done after push s\trollout pod start s\tpods\tSecrets\tthe rollout pod's Pulled event\t")
	for _, f := range p.Runs {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%d\t%s\t%s\t\n", f.Way, f.PipelineRun, f.PushToReady, f.PrePull, f.JobDone, f.RolloutStart, f.Pods, strings.Join(f.Secrets, ","), f.Pulled)
	}
	_ = tw.Flush()
	for _, way := range []string{wayImagePrePull, wayKubectlTask} {
		m := p.Medians[way]
		fmt.Fprintf(w, "%s, medians of %d: push to rollout Ready %.0f s, pre-pull task %.0f s, job done %.0f s after the push, rollout pod start %.0f s; %d of %d rollout pods found the image present\n",
			way, m.Runs, m.PushToReady, m.PrePull, m.JobDone, m.RolloutStart, m.FromPrePull, m.Runs)
	}
}

func (r results) printIdle(w io.Writer, all []level) {
	if r.Idle == nil {
		return
	}
	fmt.Fprintf(w, "\nidle, CPU-s per minute over %.0f s each (quiet / with the floor probe alone, %d probes):", r.Idle.WindowSeconds, r.Idle.Probes)
	for _, p := range idleProcesses {
		fmt.Fprintf(w, " %s %.3f / %.3f;", p, r.Idle.Quiet[p], r.Idle.Probing[p])
	}
	fmt.Fprintln(w, "\nbackground in each level's CPU s/100 runs (the quiet rate over its wall, plus its floor probes at their idle cost), ours / watch-only / tekton / kruise:")
	for _, l := range all {
		fmt.Fprintf(w, "  %s (%d probes): %.3f of %.2f / %.3f of %.2f / %.3f of %.2f / %.3f of %.2f\n", l.Name, l.Floor.N, l.Background["ours"], l.ControllerCPUSecondsPer100Runs,
			l.Background[cluster.WatchOnly], l.Others[cluster.WatchOnly].CPUSecondsPer100Runs,
			l.Background["tekton-controller"], l.Others["tekton-controller"].CPUSecondsPer100Runs,
			l.Background["kruise-manager"], l.Others["kruise-manager"].CPUSecondsPer100Runs)
	}
}

func (r results) printRealNodes(w io.Writer) {
	if r.RealNodes == nil {
		fmt.Fprintf(w, "\nrealnodes level: not run: %s\n", r.RealNodesSkipped)
		return
	}
	p := r.RealNodes
	fmt.Fprintf(w, "\n%d real nodes (a kubelet and containerd each), one link at %.0f Mbit/s, images of %d MiB (%d random layers on %s); a Deployment of one pod per node:\n",
		p.Nodes, p.Mbit, p.ImageMiB, p.Layers, p.BaseImage)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\tphase\ts\tpod starts s\tlink MiB\tlink use\t")
	for i, rd := range p.Rounds {
		for _, ph := range rd.Phases {
			var starts []string
			for _, s := range ph.PodStartsMs {
				starts = append(starts, fmt.Sprintf("%.1f", s/1000))
			}
			fmt.Fprintf(tw, "%d\t%s\t%.1f\t%s\t%.0f\t%.0f%%\t\n", i+1, ph.Name, ph.Ms/1000, strings.Join(starts, " "), ph.LinkMiB, ph.LinkUse*100)
		}
	}
	_ = tw.Flush()
	m := p.Medians
	fmt.Fprintf(w, "medians of %d rounds: every pod Ready %.1f s after a pre-pull of %.1f s (parallelism %d; %.1f s after one of %.1f s at parallelism 1), %.1f s with none; slowest pod %.1f s / %.1f s / %.1f s\n",
		len(p.Rounds), m[phaseRolloutAll].Ms/1000, m[phasePrePullAll].Ms/1000, p.Nodes, m[phaseRolloutOne].Ms/1000, m[phasePrePullOne].Ms/1000, m[phaseRolloutCold].Ms/1000,
		m[phaseRolloutAll].SlowestPodMs/1000, m[phaseRolloutOne].SlowestPodMs/1000, m[phaseRolloutCold].SlowestPodMs/1000)
}
