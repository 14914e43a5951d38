//go:build chaos

// Package chaos runs CustomRuns through faults on the local cluster: the
// controller killed with -9 and restarted, the leader of two replicas
// killed, kube-apiserver restarted, OpenKruise's manager stopped for 30 s,
// an ImagePullJob and a running CustomRun deleted behind the controller's
// back. Every run must still end the way its simulated pulls dictate, with
// exactly one ImagePullJob per image per attempt ever created.
package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	kruiseinformers "github.com/openkruise/kruise-api/client/informers/externalversions"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"knative.dev/pkg/apis"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/test/cluster"
	"github.com/imageprepull/imageprepull/test/simulator"
)

const (
	// markWithin is how soon after a timeout a leading replica must mark it.
	markWithin = 15 * time.Second
	ns         = "chaos"
	runs       = 200
	waves      = 10
)

// expectation is how a run must end.
type expectation struct {
	reason  string
	timeout time.Duration
}

func TestChaos(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	cfg := simulator.Config{SlowImages: regexp.MustCompile(`/slow-`), SlowPull: time.Hour, Seed: 7}
	cfg.PullTime.Min, cfg.PullTime.Max = 200*time.Millisecond, 3*time.Second
	// Two pools of six nodes, the runs alternating between them: Kruise's
	// imagepulljob controller slows down sharply with the number of jobs on
	// one NodeImage (every NodeImage write re-queues all of them behind a
	// resourceVersion expectation), and this suite tests outcomes, not that.
	var nodes []cluster.Node
	for i := 1; i <= 12; i++ {
		nodes = append(nodes, cluster.Node{Name: fmt.Sprintf("node-%d", i), Labels: map[string]string{"pool": fmt.Sprintf("pool-%d", (i-1)/6)}})
	}
	c, err := cluster.Start(ctx, cluster.Options{Root: root, Nodes: nodes, Simulator: cfg, RealNode: "off",
		Log: func(f string, a ...any) { t.Logf("cluster: "+f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	defer func() {
		if t.Failed() {
			t.Log(c.Logs(40))
		}
	}()
	for _, name := range []string{"node-6", "node-12"} {
		n, err := c.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Annotations = map[string]string{simulator.AnnotationFail: `/flaky-`}
		if _, err := c.Kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Two replicas with a short lease, so that a failover shows within the test.
	if _, err := c.Kubectl(ctx, "patch", "configmap", "config-leader-election", "-n", cluster.Namespace, "--type=merge",
		"-p", `{"data":{"lease-duration":"15s","renew-deadline":"10s","retry-period":"2s"}}`); err != nil {
		t.Fatal(err)
	}
	c.Controllers.KillAll()
	// The first controller held the lease with the shipped 60s duration; a
	// candidate waits a whole duration from when it first sees a lease, so
	// start the replicas as a fresh install with the short lease would.
	if err := c.Kube.CoordinationV1().Leases(cluster.Namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	startReplicas := func() {
		for i := 0; i < 2; i++ {
			if err := c.Controllers.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	startReplicas()
	if _, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.AllowPrePulls(ctx, ns, "default"); err != nil {
		t.Fatal(err)
	}

	created := watchJobs(ctx, t, c)
	want := map[string]expectation{}
	var faults []string
	fault := func(f string, args ...any) {
		faults = append(faults, fmt.Sprintf(f, args...))
		t.Logf("fault %d: %s", len(faults), faults[len(faults)-1])
	}

	// The runs come in waves while the faults happen.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for w := 0; w < waves; w++ {
			for i := w * runs / waves; i < (w+1)*runs/waves; i++ {
				name, images, e := plan(i)
				if err := createRun(ctx, c, name, fmt.Sprintf("pool-%d", i/2%2), images, e.timeout); err != nil {
					t.Errorf("creating %s: %v", name, err)
					return
				}
				mu.Lock()
				want[name] = e
				mu.Unlock()
			}
			time.Sleep(3 * time.Second)
		}
	}()

	// outages are when no replica could act on a run: a run whose deadline
	// falls in one can only be marked after it.
	var outages [][2]time.Time
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3; i++ {
		time.Sleep(time.Duration(1000+rnd.IntN(3000)) * time.Millisecond)
		down := time.Now()
		c.Controllers.KillAll()
		fault("kill -9 both controller replicas (%d of 3), then restart them", i+1)
		startReplicas()
		outages = append(outages, [2]time.Time{down, waitLeader(ctx, t, c)})
	}

	down := time.Now()
	leader, took := killLeader(ctx, t, c)
	outages = append(outages, [2]time.Time{down, time.Now()})
	fault("kill -9 the leader %s; the other replica led after %s (lease 15s)", leader, took.Round(100*time.Millisecond))
	if took > 30*time.Second {
		t.Errorf("failover took %s, more than the lease (15s) and a retry period allow", took)
	}

	down = time.Now()
	if err := c.ControlPlane.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	// A leader that could not renew for the renew deadline steps down and
	// campaigns again: no replica acts until one has renewed since.
	back := waitRenewed(ctx, t, c, time.Now())
	outages = append(outages, [2]time.Time{down, back})
	fault("restart kube-apiserver (a replica led again %s after it went down)", time.Since(down).Round(100*time.Millisecond))

	c.OpenKruise.StopManager()
	fault("stop the OpenKruise manager for 30s (its webhooks refuse ImagePullJobs meanwhile)")
	time.Sleep(30 * time.Second)
	if err := c.OpenKruise.StartManager(ctx, "ImagePullJobGate=true"); err != nil {
		t.Fatal(err)
	}

	// A job deleted behind the controller's back fails its run; a deleted run loses its jobs.
	for _, name := range []string{"victim-job", "victim-run"} {
		if err := createRun(ctx, c, name, "pool-0", []string{"registry.local/slow-victim:v1"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	want["victim-job"] = expectation{reason: v1alpha1.ReasonImagePullJobDeleted.String()}
	mu.Unlock()
	victimJob := waitJobOf(ctx, t, c, "victim-job")
	if err := c.Kruise.AppsV1alpha1().ImagePullJobs(ns).Delete(ctx, victimJob, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	fault("delete ImagePullJob %s of a running run", victimJob)
	waitJobOf(ctx, t, c, "victim-run")
	if err := c.Tekton.TektonV1beta1().CustomRuns(ns).Delete(ctx, "victim-run", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	fault("delete the running CustomRun victim-run")
	wg.Wait()

	// Every run ends as its pulls dictate.
	right, wrong := 0, 0
	var maxLate time.Duration
	for name, e := range want {
		run := waitDone(ctx, t, c, name)
		cond := run.Status.GetCondition(apis.ConditionSucceeded)
		if cond.Reason != e.reason {
			wrong++
			t.Errorf("%s ended %s (%s), want %s", name, cond.Reason, cond.Message, e.reason)
			continue
		}
		if e.timeout > 0 {
			// A replica must mark the run within markWithin of its deadline, or
			// of the end of an outage that began before it could.
			deadline := run.Status.StartTime.Add(e.timeout)
			for _, o := range outages {
				if !o[0].After(deadline.Add(markWithin)) && o[1].After(deadline) {
					deadline = o[1]
				}
			}
			over := run.Status.CompletionTime.Sub(deadline)
			maxLate = max(maxLate, over)
			if over > markWithin {
				t.Errorf("%s stayed Running %s past its timeout (and any controller outage)", name, over)
			}
		}
		right++
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := c.Kruise.AppsV1alpha1().ImagePullJobs(ns).List(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/customRun=victim-run"})
		return err == nil && len(l.Items) == 0, nil
	})
	if err != nil {
		t.Errorf("the deleted run's ImagePullJobs are still there")
	}

	dups := created.duplicates()
	for _, d := range dups {
		t.Errorf("more than one ImagePullJob for %s", d)
	}
	logs, err := c.Controllers.Logs()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs, "panic") {
		t.Errorf("the controller's log has a panic")
	}
	counted := checkReplicaCounts(ctx, t, c)
	summary := fmt.Sprintf("runs %d; faults injected %d; outcomes right %d, wrong %d; ImagePullJobs created %d; duplicate jobs %d; latest timeout mark %s after the deadline; %s",
		len(want), len(faults), right, wrong, created.count(), len(dups), maxLate.Round(time.Second), counted)
	t.Log(summary)
	fmt.Fprintln(os.Stderr, "chaos:", summary)
}

// plan says what run i pulls and how it must end: flaky images fail on
// node-6 and node-12, one in each pool (ThresholdNotMet at 100%), slow ones never finish (CustomRunTimedOut).
func plan(i int) (string, []string, expectation) {
	name := fmt.Sprintf("run-%03d", i)
	switch {
	case i%10 == 9:
		return name, []string{fmt.Sprintf("registry.local/slow-%d:v1", i)}, expectation{reason: "CustomRunTimedOut", timeout: 40 * time.Second}
	case i%2 == 1:
		return name, []string{fmt.Sprintf("registry.local/flaky-%d:v1", i)}, expectation{reason: v1alpha1.ReasonThresholdNotMet.String()}
	case i%4 == 0:
		return name, []string{fmt.Sprintf("registry.local/app-%d:v1", i), fmt.Sprintf("registry.local/side-%d:v1", i)}, expectation{reason: "Succeeded"}
	}
	return name, []string{fmt.Sprintf("registry.local/app-%d:v1", i)}, expectation{reason: "Succeeded"}
}

func createRun(ctx context.Context, c *cluster.Cluster, name, pool string, images []string, timeout time.Duration) error {
	if timeout == 0 {
		timeout = 8 * time.Minute
	}
	run := &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1beta1.CustomRunSpec{
			CustomRef: &v1beta1.TaskRef{APIVersion: "custom.kruise.dev/v1alpha1", Kind: "ImagePrePull"},
			Timeout:   &metav1.Duration{Duration: timeout},
			Params: v1beta1.Params{
				{Name: "images", Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeArray, ArrayVal: images}},
				{Name: "pullTimeoutSeconds", Value: *v1beta1.NewStructuredValues("10")},
				{Name: "nodeSelector", Value: *v1beta1.NewStructuredValues("pool=" + pool)},
			},
		},
	}
	// The API server may be restarting: try for a while.
	return wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Create(ctx, run, metav1.CreateOptions{})
		return err == nil || strings.Contains(err.Error(), "already exists"), nil
	})
}

func waitDone(ctx context.Context, t *testing.T, c *cluster.Cluster, name string) *v1beta1.CustomRun {
	t.Helper()
	var run *v1beta1.CustomRun
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 8*time.Minute, true, func(ctx context.Context) (bool, error) {
		r, err := c.Tekton.TektonV1beta1().CustomRuns(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		run = r
		return r.IsDone(), nil
	})
	if err != nil {
		t.Fatalf("%s not done: %+v", name, run.Status.GetCondition(apis.ConditionSucceeded))
	}
	return run
}

func waitJobOf(ctx context.Context, t *testing.T, c *cluster.Cluster, run string) string {
	t.Helper()
	var job string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := c.Kruise.AppsV1alpha1().ImagePullJobs(ns).List(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/customRun=" + run})
		if err != nil || len(l.Items) == 0 {
			return false, nil
		}
		job = l.Items[0].Name
		return l.Items[0].Status.StartTime != nil, nil
	})
	if err != nil {
		t.Fatalf("no started ImagePullJob for %s", run)
	}
	return job
}

// waitLeader waits until a live replica leads, and returns when.
func waitLeader(ctx context.Context, t *testing.T, c *cluster.Cluster) time.Time {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		logs, err := c.Controllers.Logs()
		if err != nil {
			return false, nil
		}
		l, err := c.Kube.CoordinationV1().Leases(cluster.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, lease := range l.Items {
			if h := lease.Spec.HolderIdentity; h != nil && *h != "" && strings.Contains(logs, *h+`\" has started leading`) && c.Controllers.Alive(*h) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no replica leads: %v", err)
	}
	return time.Now()
}

// waitRenewed waits until a live replica renews the lease after since, and
// returns when.
func waitRenewed(ctx context.Context, t *testing.T, c *cluster.Cluster, since time.Time) time.Time {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := c.Kube.CoordinationV1().Leases(cluster.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, lease := range l.Items {
			h, r := lease.Spec.HolderIdentity, lease.Spec.RenewTime
			if strings.Contains(lease.Name, "imageprepull") && h != nil && r != nil && r.After(since) && c.Controllers.Alive(*h) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no replica renewed the lease: %v", err)
	}
	return time.Now()
}

// killLeader kills the replica holding the lease and returns it and how long
// until the other one held it.
func killLeader(ctx context.Context, t *testing.T, c *cluster.Cluster) (string, time.Duration) {
	t.Helper()
	var lease *coordinationv1.Lease
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := c.Kube.CoordinationV1().Leases(cluster.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for i := range l.Items {
			if strings.Contains(l.Items[i].Name, "imageprepull") && l.Items[i].Spec.HolderIdentity != nil && *l.Items[i].Spec.HolderIdentity != "" {
				lease = &l.Items[i]
				return c.Controllers.Kill(*lease.Spec.HolderIdentity), nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no leader to kill: %v", err)
	}
	killed := *lease.Spec.HolderIdentity
	start := time.Now()
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := c.Kube.CoordinationV1().Leases(cluster.Namespace).Get(ctx, lease.Name, metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != killed && *l.Spec.HolderIdentity != "", nil
	})
	if err != nil {
		t.Fatalf("no replica took over from %s", killed)
	}
	return killed, time.Since(start)
}

// jobLedger counts the ImagePullJobs ever created, by run, image and attempt.
type jobLedger struct {
	mu   sync.Mutex
	uids map[string]map[types.UID]bool
}

// watchJobs records every ImagePullJob created from now on. An informer
// relists after the API server restarts; a job created and deleted while it
// was down would be missed, which the test accepts.
func watchJobs(ctx context.Context, t *testing.T, c *cluster.Cluster) *jobLedger {
	t.Helper()
	l := &jobLedger{uids: map[string]map[types.UID]bool{}}
	f := kruiseinformers.NewSharedInformerFactoryWithOptions(c.Kruise, 0, kruiseinformers.WithNamespace(ns))
	inf := f.Apps().V1alpha1().ImagePullJobs().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		job := obj.(*kruisev1alpha1.ImagePullJob)
		owner := metav1.GetControllerOf(job)
		if owner == nil {
			return
		}
		key := fmt.Sprintf("%s %s attempt %s", owner.UID, job.Spec.Image, job.Labels["custom.kruise.dev/attempt"])
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.uids[key] == nil {
			l.uids[key] = map[types.UID]bool{}
		}
		l.uids[key][job.UID] = true
	}}); err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return l
}

func (l *jobLedger) duplicates() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, uids := range l.uids {
		if len(uids) > 1 {
			out = append(out, fmt.Sprintf("%s (%d jobs)", k, len(uids)))
		}
	}
	return out
}

func (l *jobLedger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, uids := range l.uids {
		n += len(uids)
	}
	return n
}

// checkReplicaCounts: a live replica counts only the ends its own status
// writes made, so its count of finished runs is at most the runs that ended
// since it started (it can have led no earlier), and the live replicas'
// counts together are at most the runs that ended.
func checkReplicaCounts(ctx context.Context, t *testing.T, c *cluster.Cluster) string {
	replicas, err := c.Controllers.Scrape(ctx)
	if err != nil {
		t.Errorf("scraping the replicas: %v", err)
		return "replicas not scraped"
	}
	runs, err := c.Tekton.TektonV1beta1().CustomRuns("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ends []time.Time
	for _, r := range runs.Items {
		if cond := r.Status.GetCondition(apis.ConditionSucceeded); r.IsDone() && cond != nil {
			ends = append(ends, cond.LastTransitionTime.Inner.Time)
		}
	}
	var parts []string
	total := 0.0
	for i, r := range replicas {
		m, err := cluster.ParseMetrics(r.Text)
		if err != nil {
			t.Errorf("parsing replica %d's /metrics: %v", i, err)
			continue
		}
		n := m.Sum("imageprepull_runs_finished_total", nil)
		since := 0
		for _, end := range ends {
			if !end.Before(r.Started.Truncate(time.Second)) { // condition times are whole seconds
				since++
			}
		}
		if n > float64(since) {
			t.Errorf("replica %d counted %v finished runs; only %d ended since it started", i, n, since)
		}
		total += n
		parts = append(parts, fmt.Sprintf("%v of %d", n, since))
	}
	if total > float64(len(ends)) {
		t.Errorf("the live replicas counted %v finished runs together; %d ended", total, len(ends))
	}
	return "finished runs counted by the live replicas (of those ended since each started): " + strings.Join(parts, ", ")
}
