package imageprepull

import (
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
)

// A selector's nodes are counted from the Node list before any job: a run
// over max-nodes-per-run is refused with nothing made, whether or not it
// waits for its pulls (OpenKruise sends pulls the moment a job exists).
func TestSelectorNodesAreCountedBeforeAnyJob(t *testing.T) {
	for _, wait := range []string{"true", "false"} {
		t.Run("wait "+wait, func(t *testing.T) {
			e := newEnv(t)
			e.setPolicy(map[string]string{config.KeyMaxNodesPerRun: "2"})
			for _, n := range []string{"web-1", "web-2", "web-3"} {
				e.node(n, map[string]string{"pool": "web"})
			}
			e.node("batch-1", map[string]string{"pool": "batch"})
			e.create(newRun("run", str("image", app), str("nodeSelector", "pool=web"), str("wait", wait)))
			e.failsAtOnce("run", v1alpha1.ReasonLimitExceeded,
				"the run targets 3 nodes, more than config-imageprepull max-nodes-per-run allows (2); counted: node selector pool=web matches 3")
			if n := len(e.jobList()); n != 0 {
				t.Errorf("%d jobs for a run over the limit", n)
			}
			e.create(newRun("batch", str("image", app), str("nodeSelector", "pool=batch"), str("wait", wait)))
			if c := condition(e.mustReconcile("batch")); c.IsFalse() {
				t.Errorf("a run within the limit: %+v", c)
			}
		})
	}
}

// A pod selector reaches the nodes where the namespace's active pods it
// matches are scheduled, as OpenKruise counts them.
func TestPodSelectorNodesAreCountedBeforeAnyJob(t *testing.T) {
	e := newEnv(t)
	e.setPolicy(map[string]string{config.KeyMaxNodesPerRun: "2"})
	e.pod("web-1", "node-a", webLabels, corev1.PodRunning)
	e.pod("web-2", "node-b", webLabels, corev1.PodRunning)
	e.pod("web-3", "node-b", webLabels, corev1.PodRunning)
	e.pod("web-old", "node-c", webLabels, corev1.PodSucceeded)
	e.create(newRun("two", str("image", app), str("podSelector", "app=web")))
	if c := condition(e.mustReconcile("two")); c.IsFalse() {
		t.Fatalf("pods on two nodes (and a finished one on a third): %+v", c)
	}
	e.pod("web-4", "node-d", webLabels, corev1.PodRunning)
	e.clock.Step(countedFor + time.Second) // a count is reused that long
	e.create(newRun("three", str("image", app), str("podSelector", "app=web")))
	e.failsAtOnce("three", v1alpha1.ReasonLimitExceeded, "the run targets 3 nodes", "pod selector app=web matches 3")
}

// allow-all-nodes: "false" refuses a selector that matches every node as it
// refuses no selector at all; one that leaves a node out is allowed.
func TestASelectorMatchingEveryNodeIsEveryNode(t *testing.T) {
	e := newEnv(t)
	e.setPolicy(map[string]string{config.KeyAllowAllNodes: "false"})
	e.node("a", map[string]string{"kubernetes.io/os": "linux", "pool": "web"})
	e.node("b", map[string]string{"kubernetes.io/os": "linux", "pool": "web"})
	e.node("c", map[string]string{"kubernetes.io/os": "linux", "pool": "batch"})
	e.create(newRun("linux", str("image", app), str("nodeSelector", "kubernetes.io/os=linux")))
	e.failsAtOnce("linux", v1alpha1.ReasonLimitExceeded,
		"the run targets every node, which config-imageprepull allow-all-nodes does not allow (node selector kubernetes.io/os=linux matches 3 of 3)")
	e.create(newRun("web", str("image", app), str("nodeSelector", "pool=web")))
	if c := condition(e.mustReconcile("web")); c.IsFalse() {
		t.Errorf("a selector that leaves a node out: %+v", c)
	}
	if n := len(e.jobList()); n != 1 {
		t.Errorf("%d jobs, want the allowed run's", n)
	}
}

// max-parallelism caps how many nodes one run's job may send a pull to at once.
func TestMaxParallelism(t *testing.T) {
	e := newEnv(t)
	e.setPolicy(map[string]string{config.KeyMaxParallelism: "20"})
	e.create(newRun("run", str("image", app), str("parallelism", "50")))
	e.failsAtOnce("run", v1alpha1.ReasonLimitExceeded, "parallelism: 50 is more than config-imageprepull max-parallelism allows (20)")
	e.create(newRun("ok", str("image", app), str("parallelism", "20")))
	if c := condition(e.mustReconcile("ok")); c.IsFalse() {
		t.Errorf("parallelism at the cap: %+v", c)
	}
}

func TestPlatformPolicy(t *testing.T) {
	t.Run("an image the policy does not allow", func(t *testing.T) {
		e := newEnv(t)
		e.setPolicy(map[string]string{config.KeyAllowedImages: "registry.example.com/team/*\nghcr.io/acme/**"})
		e.create(newRun("ok", arr("images", app, "ghcr.io/acme/tools/cli:v1")))
		if c := condition(e.mustReconcile("ok")); c.IsFalse() {
			t.Fatalf("condition = %+v", c)
		}
		e.create(newRun("run", arr("images", app, "nginx:1.27")))
		e.failsAtOnce("run", v1alpha1.ReasonImageNotAllowed, `image "nginx:1.27" is not allowed here`,
			"config-imageprepull allowed-images allows only registry.example.com/team/*, ghcr.io/acme/**")
	})
	t.Run("authorization off", func(t *testing.T) {
		e := newEnv(t)
		e.setPolicy(map[string]string{config.KeyAuthorize: "false"})
		e.deny = func(authorizationv1.SubjectAccessReviewSpec) bool { return true }
		e.create(newRun("run", str("image", app)))
		if c := condition(e.mustReconcile("run")); c.IsFalse() || len(e.reviews) != 0 {
			t.Errorf("condition %+v after %d reviews: want no review and the run going", c, len(e.reviews))
		}
	})
	t.Run("platform defaults, which params override", func(t *testing.T) {
		e := newEnv(t)
		e.setPolicy(map[string]string{config.KeyParallelism: "3", config.KeyPullTimeoutSeconds: "120", config.KeyBackoffLimit: "1"})
		e.create(newRun("run", str("image", app), str("backoffLimit", "5")))
		e.mustReconcile("run")
		job := e.jobList()[0]
		if job.Spec.Parallelism.IntValue() != 3 || *job.Spec.PullPolicy.TimeoutSeconds != 120 || *job.Spec.PullPolicy.BackoffLimit != 5 {
			t.Errorf("parallelism %v, pull timeout %d, backoff %d: want 3 and 120 from the policy, 5 from the param",
				job.Spec.Parallelism, *job.Spec.PullPolicy.TimeoutSeconds, *job.Spec.PullPolicy.BackoffLimit)
		}
	})
}

func TestLimits(t *testing.T) {
	t.Run("max-retries", func(t *testing.T) {
		e := newEnv(t)
		e.setPolicy(map[string]string{config.KeyMaxRetries: "2"})
		e.create(newRun("run", str("image", app), retries(3)))
		e.failsAtOnce("run", v1alpha1.ReasonLimitExceeded, "retries: 3 is more than config-imageprepull max-retries allows (2)")
	})
	t.Run("max-retries tightened while a run retries", func(t *testing.T) {
		e := newEnv(t)
		e.create(newRun("run", str("image", app), retries(3)))
		e.mustReconcile("run")
		e.setPolicy(map[string]string{config.KeyMaxRetries: "0"})
		e.setJobStatus(e.jobList()[0].Name, completed(2, 1, "node-2"))
		run := e.mustReconcile("run")
		if c := condition(run); !c.IsFalse() || len(run.Status.RetriesStatus) != 0 {
			t.Errorf("condition %+v after %d retries, want a failure with none", c, len(run.Status.RetriesStatus))
		}
	})
	t.Run("allow-all-nodes", func(t *testing.T) {
		e := newEnv(t)
		e.setPolicy(map[string]string{config.KeyAllowAllNodes: "false"})
		e.create(newRun("run", str("image", app)))
		e.failsAtOnce("run", v1alpha1.ReasonLimitExceeded, "the run targets every node, which config-imageprepull allow-all-nodes does not allow")
		e.create(newRun("named", str("image", app), arr("nodeNames", "node-1")))
		if c := condition(e.mustReconcile("named")); c.IsFalse() {
			t.Errorf("a run naming its nodes: %+v", c)
		}
	})
	t.Run("max-nodes-per-run, names", func(t *testing.T) {
		e := newEnv(t)
		e.setPolicy(map[string]string{config.KeyMaxNodesPerRun: "2"})
		e.create(newRun("run", str("image", app), arr("nodeNames", "n1", "n2", "n3")))
		e.failsAtOnce("run", v1alpha1.ReasonLimitExceeded, "the run targets 3 nodes, more than config-imageprepull max-nodes-per-run allows (2)")
		if n := len(e.jobList()); n != 0 {
			t.Errorf("%d jobs", n)
		}
	})
	t.Run("max-nodes-per-run, counted by OpenKruise", func(t *testing.T) {
		e := newEnv(t)
		e.setPolicy(map[string]string{config.KeyMaxNodesPerRun: "2"})
		e.create(newRun("run", str("image", app), str("nodeSelector", "pool=web")))
		e.mustReconcile("run")
		e.setJobStatus(e.jobList()[0].Name, pulling(3, 0, 0))
		e.failsAtOnce("run", v1alpha1.ReasonLimitExceeded, "the run targets 3 nodes, more than config-imageprepull max-nodes-per-run allows (2)")
		if n := len(e.jobList()); n != 0 {
			t.Errorf("%d jobs left after the run exceeded the limit", n)
		}
	})
}

// Runs of one selector in a burst count its nodes once: a count is reused
// for countedFor.
func TestNodeCountsAreReusedForAWhile(t *testing.T) {
	e := newEnv(t)
	e.node("web-1", map[string]string{"pool": "web"})
	for _, name := range []string{"a", "b", "c"} {
		e.create(newRun(name, str("image", app), str("nodeSelector", "pool=web")))
		e.mustReconcile(name)
	}
	if n := countActions(e.kube.Actions(), "list", "nodes"); n != 1 {
		t.Errorf("%d lists of nodes for three runs of one selector, want 1", n)
	}
	e.clock.Step(countedFor + time.Second)
	e.create(newRun("d", str("image", app), str("nodeSelector", "pool=web")))
	e.mustReconcile("d")
	if n := countActions(e.kube.Actions(), "list", "nodes"); n != 2 {
		t.Errorf("%d lists of nodes once the count expired, want 2", n)
	}
}
