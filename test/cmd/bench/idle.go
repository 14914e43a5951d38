package main

import (
	"context"
	"time"

	"github.com/imageprepull/imageprepull/test/cluster"
)

// Idle is what each process costs with no run in the cluster, in
// CPU-seconds per minute: over a window with nothing but what runs all day
// (informer resyncs, leader-election renewals, Prometheus's scrapes of the
// controller, the simulated nodes' leases), and over one with the floor
// probe patching its two CustomRuns as it does during every level. The
// second gives what one probe costs each process: every controller with a
// cluster-wide CustomRun informer decodes the probe's writes, during every
// level too.
type Idle struct {
	WindowSeconds float64            `json:"windowSeconds"`
	Quiet         map[string]float64 `json:"cpuSecondsPerMinuteQuiet"`
	Probing       map[string]float64 `json:"cpuSecondsPerMinuteWithFloorProbe"`
	Probes        int                `json:"floorProbesInProbingWindow"`
}

// idleProcesses are the processes the idle windows measure; "ours" is the
// controller.
var idleProcesses = []string{"ours", cluster.WatchOnly, "tekton-controller", "kruise-manager", "kube-controller-manager", "kube-scheduler", "kube-apiserver"}

func (b *bench) pidOf(name string) int {
	if name == "ours" {
		return b.c.Controllers.PID()
	}
	return b.c.PID(name)
}

// idle measures the two windows, quiet first.
func (b *bench) idle(ctx context.Context, window time.Duration) (Idle, error) {
	res := Idle{WindowSeconds: window.Seconds()}
	measure := func(during func()) map[string]float64 {
		cpu0 := map[string]float64{}
		for _, p := range idleProcesses {
			cpu0[p] = cpuSeconds(b.pidOf(p))
		}
		start := time.Now()
		during()
		minutes := time.Since(start).Minutes()
		out := map[string]float64{}
		for _, p := range idleProcesses {
			out[p] = round((cpuSeconds(b.pidOf(p))-cpu0[p])/minutes, 3)
		}
		return out
	}
	res.Quiet = measure(func() {
		select {
		case <-ctx.Done():
		case <-time.After(window):
		}
	})
	res.Probing = measure(func() {
		stop := make(chan struct{})
		samples := b.floorDuring(ctx, stop)
		select {
		case <-ctx.Done():
		case <-time.After(window):
		}
		close(stop)
		res.Probes = len(<-samples)
	})
	return res, ctx.Err()
}

// background is the part of a level's CPU per 100 runs that is not its
// runs': the quiet rate over the level's wall, plus what each floor probe
// costs (the probing window's extra over its probes) times the probes made
// during the level (fewer than at rest: each waits longer under load).
func (i *Idle) background(process string, wall time.Duration, runs, probes int) float64 {
	if i == nil || runs == 0 || i.Probes == 0 {
		return 0
	}
	perProbe := (i.Probing[process] - i.Quiet[process]) * i.WindowSeconds / 60 / float64(i.Probes)
	return round((i.Quiet[process]*wall.Minutes()+perProbe*float64(probes))/float64(runs)*100, 3)
}
