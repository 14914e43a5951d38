package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"

	"github.com/imageprepull/imageprepull/test/cluster"
)

// realNodesNamespace holds the several-node level's runs and rollouts.
const realNodesNamespace = "bench-realnodes"

// RealNodes is the payoff over several real nodes (each its own kubelet,
// containerd, network namespace, cgroups and pod range) that pull from one
// registry through one link, as a node pool pulls from a remote registry:
// per round, a Deployment of one pod per node rolled out after a pre-pull
// at full parallelism, after one at parallelism 1, and with no pre-pull.
type RealNodes struct {
	Nodes     int              `json:"nodes"`
	Mbit      float64          `json:"bandwidthMbitPerSecond"`
	ImageMiB  int              `json:"imageMiB"`
	Layers    int              `json:"randomLayers"`
	BaseImage string           `json:"baseImage"`
	Rounds    []RealNodesRound `json:"rounds"`
	// Medians over the rounds (nearest rank), by phase name.
	Medians map[string]PhaseMedians `json:"medians"`
}

// RealNodesRound is one round's phases, in the order they ran.
type RealNodesRound struct {
	Phases []Phase `json:"phases"`
}

// The phases of a round: each way's pre-pull, then its rollout.
const (
	phasePrePullAll  = "pre-pull, parallelism = nodes"
	phaseRolloutAll  = "rollout after it"
	phasePrePullOne  = "pre-pull, parallelism 1"
	phaseRolloutOne  = "rollout after that one"
	phaseRolloutCold = "rollout, not pre-pulled"
)

// Phase is one pre-pull (CustomRun created to Succeeded) or one rollout
// (its first pod's creation to its last pod's Ready), as this process saw
// them, and what went over the link meanwhile.
type Phase struct {
	Name string  `json:"name"`
	Ms   float64 `json:"ms"`
	// PodStartsMs are a rollout's pods' starts (each pod's creation to its
	// Ready), fastest first; SlowestPodMs the last of them.
	PodStartsMs  []float64 `json:"podStartsMs,omitempty"`
	SlowestPodMs float64   `json:"slowestPodMs,omitempty"`
	// Pulled are the kubelet's Pulled events of a rollout's pods, by node.
	Pulled map[string]string `json:"pulledEvents,omitempty"`
	// LinkMiB is what the link carried during the phase; LinkUse that over
	// what it could have carried (its bandwidth times the phase's length).
	LinkMiB float64 `json:"linkMiB"`
	LinkUse float64 `json:"linkUse"`
}

// PhaseMedians are a phase's medians over the rounds.
type PhaseMedians struct {
	Ms           float64 `json:"ms"`
	SlowestPodMs float64 `json:"slowestPodMs,omitempty"`
	LinkUse      float64 `json:"linkUse"`
}

// realNodesLevel runs the several-node level: n real nodes, rounds rounds,
// images of mib MiB (the demo app under random layers) through mbit Mbit/s.
func realNodesLevel(ctx context.Context, c *cluster.Cluster, n, rounds int, mbit float64, mib int, logf func(string, ...any)) (*RealNodes, error) {
	if n < 2 || n > cluster.MaxRealNodes {
		return nil, fmt.Errorf("-realnodes=%d: want 2 to %d (0 skips the level)", n, cluster.MaxRealNodes)
	}
	nodes := c.RealNodes(n)
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			if err := nodes[i].Remove(context.Background()); err != nil {
				logf("realnodes: %v", err)
			}
		}
	}()
	for _, node := range nodes {
		if err := node.Start(ctx); err != nil {
			return nil, err
		}
	}
	base, err := prePullsIn(ctx, c, realNodesNamespace)
	if err != nil {
		return nil, err
	}
	// The app's own layers on every node before anything is timed: each way
	// then pulls only the random layers.
	if _, err := c.RollOutAcross(ctx, realNodesNamespace, "warm-up", base, n, 5*time.Minute); err != nil {
		return nil, err
	}
	if err := removeRollout(ctx, c, realNodesNamespace, "warm-up"); err != nil {
		return nil, err
	}
	const layers = 4
	res := &RealNodes{Nodes: n, Mbit: mbit, ImageMiB: mib, Layers: layers, BaseImage: base}
	c.Registries.LimitBandwidth(mbit * 1e6)
	defer c.Registries.LimitBandwidth(0)
	pool := v1beta1.Param{Name: "nodeSelector", Value: *v1beta1.NewStructuredValues(cluster.RealNodeLabel + "=true")}
	parallelism := func(p int) v1beta1.Param {
		return v1beta1.Param{Name: "parallelism", Value: *v1beta1.NewStructuredValues(strconv.Itoa(p))}
	}
	for i := range rounds {
		all := fmt.Sprintf("%s/bench/nodes:all-%d", c.Registry, i)
		one := fmt.Sprintf("%s/bench/nodes:one-%d", c.Registry, i)
		cold := fmt.Sprintf("%s/bench/nodes:cold-%d", c.Registry, i)
		for _, img := range []string{all, one, cold} {
			if err := c.Registries.PushLarge(ctx, base, img, layers, int64(mib)<<20/layers); err != nil {
				return nil, err
			}
		}
		var rd RealNodesRound
		measure := func(name string, do func() (Phase, error)) error {
			before := c.Registries.LinkBytes()
			p, err := do()
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", i+1, name, err)
			}
			p.Name = name
			p.LinkMiB = round(float64(c.Registries.LinkBytes()-before)/(1<<20), 1)
			if p.Ms > 0 {
				p.LinkUse = round(p.LinkMiB*(1<<20)*8/(p.Ms/1000)/(mbit*1e6), 2)
			}
			rd.Phases = append(rd.Phases, p)
			logf("realnodes %d/%d: %s: %.1f s, slowest pod %.1f s, %.0f MiB over the link (%.0f%% of it)", i+1, rounds, name, p.Ms/1000, p.SlowestPodMs/1000, p.LinkMiB, p.LinkUse*100)
			return nil
		}
		prePullPhase := func(run, image string, p int) func() (Phase, error) {
			return func() (Phase, error) {
				d, err := prePull(ctx, c, realNodesNamespace, run, image, pool, parallelism(p))
				return Phase{Ms: ms(d)}, err
			}
		}
		rolloutPhase := func(name, image, want string) func() (Phase, error) {
			return func() (Phase, error) {
				s, err := c.RollOutAcross(ctx, realNodesNamespace, name, image, n, 15*time.Minute)
				if err != nil {
					return Phase{}, err
				}
				p := Phase{Ms: ms(s.Ready), Pulled: map[string]string{}}
				for _, r := range s.Pods {
					if p.Pulled[r.Pod.Spec.NodeName], err = pulled(ctx, c, r.Pod, want); err != nil {
						return p, err
					}
					p.PodStartsMs = append(p.PodStartsMs, ms(r.Start))
				}
				slices.Sort(p.PodStartsMs)
				p.SlowestPodMs = p.PodStartsMs[len(p.PodStartsMs)-1]
				return p, nil
			}
		}
		for _, step := range []struct {
			name string
			do   func() (Phase, error)
		}{
			{phasePrePullAll, prePullPhase(fmt.Sprintf("all-%d", i), all, n)},
			{phaseRolloutAll, rolloutPhase(fmt.Sprintf("all-%d", i), all, "already present on machine")},
			{phasePrePullOne, prePullPhase(fmt.Sprintf("one-%d", i), one, 1)},
			{phaseRolloutOne, rolloutPhase(fmt.Sprintf("one-%d", i), one, "already present on machine")},
			{phaseRolloutCold, rolloutPhase(fmt.Sprintf("cold-%d", i), cold, "Successfully pulled image")},
		} {
			if err := measure(step.name, step.do); err != nil {
				return nil, err
			}
		}
		res.Rounds = append(res.Rounds, rd)
		// Keep the nodes' disks to one round's images at a time.
		for _, name := range []string{"all", "one", "cold"} {
			if err := removeRollout(ctx, c, realNodesNamespace, fmt.Sprintf("%s-%d", name, i)); err != nil {
				return nil, err
			}
		}
		for _, node := range nodes {
			for _, img := range []string{all, one, cold} {
				if err := node.RemoveImage(ctx, img); err != nil {
					return nil, err
				}
			}
		}
	}
	res.Medians = map[string]PhaseMedians{}
	for _, name := range []string{phasePrePullAll, phaseRolloutAll, phasePrePullOne, phaseRolloutOne, phaseRolloutCold} {
		var phases []Phase
		for _, r := range res.Rounds {
			for _, p := range r.Phases {
				if p.Name == name {
					phases = append(phases, p)
				}
			}
		}
		res.Medians[name] = PhaseMedians{
			Ms:           medianOf(phases, func(p Phase) float64 { return p.Ms }),
			SlowestPodMs: medianOf(phases, func(p Phase) float64 { return p.SlowestPodMs }),
			LinkUse:      medianOf(phases, func(p Phase) float64 { return p.LinkUse }),
		}
	}
	return res, nil
}
