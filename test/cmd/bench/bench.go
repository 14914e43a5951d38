package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/procfs"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	kruiseinformers "github.com/openkruise/kruise-api/client/informers/externalversions"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	tektoninformers "github.com/tektoncd/pipeline/pkg/client/informers/externalversions"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"knative.dev/pkg/apis"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/registry"
	"github.com/imageprepull/imageprepull/test/cluster"
	"github.com/imageprepull/imageprepull/test/simulator"
)

// bench holds the cluster and what its watches saw, with when.
type bench struct {
	c     *cluster.Cluster
	pools int
	// poolSize is the nodes of a pool: node-%04d, pool after pool.
	poolSize int
	prof     profile

	mu         sync.Mutex
	runSeen    map[string]time.Time // ns/name: the CustomRun first seen
	runDone    map[string]time.Time
	runReason  map[string]string
	prCreated  map[string]time.Time // ns/name: the create call returned
	prDone     map[string]time.Time
	jobCreated map[string]time.Time // ns/job
	jobDone    map[string]time.Time
	jobRun     map[string]string // ns/job -> ns/run
	// floorSeen: when the watch saw floor run NAME's status say V ("NAME=V").
	floorSeen map[string]time.Time
	// watchEvents counts, per namespace and resource, the CustomRun and
	// ImagePullJob watch events the bench saw: the controller's informers
	// receive and decode the same ones.
	watchEvents map[string]int
	floorReady  bool
	probes      int
	// webhookRetries counts the creates made again after Tekton's webhook
	// did not answer in time.
	webhookRetries atomic.Int64
	// pinned are the digests level's images, one a run: pushed to the local
	// registry, as repository:tag@digest.
	pinned []string
}

func newBench(ctx context.Context, c *cluster.Cluster, pools, poolSize int, prof profile) (*bench, error) {
	b := &bench{c: c, pools: pools, poolSize: poolSize, prof: prof,
		runSeen: map[string]time.Time{}, runDone: map[string]time.Time{}, runReason: map[string]string{},
		prCreated: map[string]time.Time{}, prDone: map[string]time.Time{},
		jobCreated: map[string]time.Time{}, jobDone: map[string]time.Time{}, jobRun: map[string]string{},
		floorSeen: map[string]time.Time{}, watchEvents: map[string]int{}}
	tf := tektoninformers.NewSharedInformerFactory(c.Tekton, 0)
	kf := kruiseinformers.NewSharedInformerFactory(c.Kruise, 0)
	handlers := []struct {
		inf cache.SharedIndexInformer
		see func(obj any, now time.Time)
	}{
		{tf.Tekton().V1beta1().CustomRuns().Informer(), b.seeRun},
		{tf.Tekton().V1().PipelineRuns().Informer(), b.seePipelineRun},
		{kf.Apps().V1alpha1().ImagePullJobs().Informer(), b.seeJob},
	}
	for _, h := range handlers {
		see := h.see
		if _, err := h.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { see(obj, time.Now()) },
			UpdateFunc: func(_, obj any) { see(obj, time.Now()) },
		}); err != nil {
			return nil, err
		}
	}
	tf.Start(ctx.Done())
	kf.Start(ctx.Done())
	for _, synced := range []map[string]bool{typed(tf.WaitForCacheSync(ctx.Done())), typed(kf.WaitForCacheSync(ctx.Done()))} {
		for what, ok := range synced {
			if !ok {
				return nil, fmt.Errorf("syncing the %s watch", what)
			}
		}
	}
	return b, nil
}

func typed[K comparable](m map[K]bool) map[string]bool {
	out := map[string]bool{}
	for k, v := range m {
		out[fmt.Sprint(k)] = v
	}
	return out
}

func key(m metav1.Object) string { return m.GetNamespace() + "/" + m.GetName() }

func (b *bench) seeRun(obj any, now time.Time) {
	run := obj.(*v1beta1.CustomRun)
	if run.Namespace == floorNamespace {
		b.seeFloor(run, now)
		return
	}
	k := key(run)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.watchEvents[run.Namespace+" customruns"]++
	if _, ok := b.runSeen[k]; !ok {
		b.runSeen[k] = now
	}
	if _, ok := b.runDone[k]; !ok && run.IsDone() {
		b.runDone[k] = now
		b.runReason[k] = run.Status.GetCondition(apis.ConditionSucceeded).Reason
	}
}

func (b *bench) seePipelineRun(obj any, now time.Time) {
	pr := obj.(*pipelinev1.PipelineRun)
	k := key(pr)
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.prDone[k]; !ok && pr.IsDone() {
		b.prDone[k] = now
	}
}

func (b *bench) seeJob(obj any, now time.Time) {
	job := obj.(*kruisev1alpha1.ImagePullJob)
	k := key(job)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.watchEvents[job.Namespace+" imagepulljobs"]++
	if _, ok := b.jobCreated[k]; !ok {
		b.jobCreated[k] = now
		b.jobRun[k] = job.Namespace + "/" + job.Labels["tekton.dev/customRun"]
	}
	if _, ok := b.jobDone[k]; !ok && job.Status.CompletionTime != nil {
		b.jobDone[k] = now
	}
}

// floorNamespace holds the floor probe's two CustomRuns, of a custom task
// no controller runs: their status writes take the path ours take (Tekton's
// webhook admits customruns/status), and nothing else writes them.
const floorNamespace = "bench-floor"

// seeFloor answers a write to floor run a's status with one to b's: the
// probe's reconcile.
func (b *bench) seeFloor(run *v1beta1.CustomRun, now time.Time) {
	c := run.Status.GetCondition(apis.ConditionSucceeded)
	if c == nil || c.Message == "" {
		return
	}
	b.mu.Lock()
	k := run.Name + "=" + c.Message
	_, seen := b.floorSeen[k]
	if !seen {
		b.floorSeen[k] = now
	}
	b.mu.Unlock()
	if run.Name == "a" && !seen {
		go func() { _ = b.writeFloor(context.Background(), "b", c.Message) }()
	}
}

// writeFloor writes v into a floor run's status, as a status update.
func (b *bench) writeFloor(ctx context.Context, name, v string) error {
	patch := fmt.Sprintf(`{"status":{"conditions":[{"type":"Succeeded","status":"Unknown","reason":"Floor","message":%q,"lastTransitionTime":%q}]}}`,
		v, time.Now().UTC().Format(time.RFC3339))
	_, err := b.c.Tekton.TektonV1beta1().CustomRuns(floorNamespace).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	return err
}

// floor measures n times how long after a watch sees one object change it
// sees another that a client wrote in answer: the least any watch-driven
// controller adds, on this API server, under this load.
func (b *bench) floor(ctx context.Context, n int) (stats, error) {
	var samples []time.Duration
	for i := 0; i < n; i++ {
		d, err := b.probe(ctx)
		if err != nil {
			return stats{}, err
		}
		samples = append(samples, d)
		time.Sleep(20 * time.Millisecond)
	}
	return summarize(samples), nil
}

// probe writes object a once and returns how long after the watch saw that
// write it saw the answering write to b.
func (b *bench) probe(ctx context.Context) (time.Duration, error) {
	b.mu.Lock()
	if !b.floorReady {
		b.mu.Unlock()
		if _, err := b.c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: floorNamespace}}, metav1.CreateOptions{}); err != nil {
			return 0, err
		}
		for _, name := range []string{"a", "b"} {
			if _, err := b.c.Tekton.TektonV1beta1().CustomRuns(floorNamespace).Create(ctx, &v1beta1.CustomRun{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec:       v1beta1.CustomRunSpec{CustomRef: &v1beta1.TaskRef{APIVersion: "bench.example.dev/v1", Kind: "Floor"}},
			}, metav1.CreateOptions{}); err != nil {
				return 0, err
			}
		}
		b.mu.Lock()
		b.floorReady = true
	}
	b.probes++
	v := strconv.Itoa(b.probes)
	b.mu.Unlock()
	if err := b.writeFloor(ctx, "a", v); err != nil {
		return 0, err
	}
	var d time.Duration
	err := wait.PollUntilContextTimeout(ctx, time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		b.mu.Lock()
		defer b.mu.Unlock()
		ta, okA := b.floorSeen["a="+v]
		tb, okB := b.floorSeen["b="+v]
		d = tb.Sub(ta)
		return okA && okB, nil
	})
	if err != nil {
		return 0, fmt.Errorf("floor probe %s: %w", v, err)
	}
	return d, nil
}

// floorDuring probes the floor until stop is closed, so that a load level's
// latency is set beside the floor under the same load.
func (b *bench) floorDuring(ctx context.Context, stop <-chan struct{}) <-chan []time.Duration {
	out := make(chan []time.Duration, 1)
	go func() {
		var samples []time.Duration
		defer func() { out <- samples }()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			if d, err := b.probe(ctx); err == nil {
				samples = append(samples, d)
			}
		}
	}()
	return out
}

// level creates n PipelineRuns at once, each pre-pulling images onto one
// pool of nodes (or every node, with selector "all"), waits for them all,
// and measures.
func (b *bench) level(ctx context.Context, name string, n, images int, selector string) (level, error) {
	ns := "bench-" + name
	if _, err := b.c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return level{}, err
	}
	if err := b.c.AllowPrePulls(ctx, ns, "default"); err != nil {
		return level{}, err
	}
	if selector == "workload" {
		if err := b.createWorkload(ctx, ns); err != nil {
			return level{}, err
		}
	}
	pid := b.c.Controllers.PID()
	cpu0 := cpuSeconds(pid)
	// Tekton's controller, OpenKruise's manager, kube-controller-manager and
	// kube-scheduler, measured the same way.
	// The do-nothing controller too: ours' floor.
	others := map[string]*cost{"tekton-controller": {}, "kruise-manager": {}, "kube-controller-manager": {}, "kube-scheduler": {}, cluster.WatchOnly: {}}
	for name, o := range others {
		o.pid = b.c.PID(name)
		o.cpu0 = cpuSeconds(o.pid)
	}
	auditFrom := fileSize(b.c.AuditLog)
	reads0 := b.c.Registries.RequestsBy(registry.UserAgent)
	retries0 := b.webhookRetries.Load()
	start := time.Now()
	stopFloor := make(chan struct{})
	floorSamples := b.floorDuring(ctx, stopFloor)
	profiled := b.profileDuring(ctx, name)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	// Runs at the validation limits are PipelineRuns of 260 KiB each: Tekton's
	// webhook validates one in about half a second of CPU, and twenty at once
	// on two cores pass its 10 s call timeout. They are made one at a time.
	workers := 20
	if selector == "limits" {
		workers = 1
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				pr := pipelineRun(ns, i, b.images(name, i, images, selector), selector, b.pools, b.pools*b.poolSize)
				if err := b.createPipelineRun(ctx, pr); err != nil {
					errs <- err
					continue
				}
				b.mu.Lock()
				b.prCreated[ns+"/"+pr.Name] = time.Now()
				b.mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		return level{}, fmt.Errorf("creating PipelineRuns: %w", err)
	}

	var peakRSS int64
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 15*time.Minute, true, func(context.Context) (bool, error) {
		peakRSS = max(peakRSS, rssBytes(pid))
		for _, o := range others {
			o.peakRSS = max(o.peakRSS, rssBytes(o.pid))
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		done := 0
		for k := range b.prCreated {
			if _, ok := b.prDone[k]; ok && strings.HasPrefix(k, ns+"/") {
				done++
			}
		}
		return done == n, nil
	})
	if err != nil {
		return level{}, fmt.Errorf("%s: not every PipelineRun finished: %w", name, err)
	}
	wall := time.Since(start)
	cpu := cpuSeconds(pid) - cpu0
	for _, o := range others {
		o.cpu = cpuSeconds(o.pid) - o.cpu0
	}
	if err := <-profiled; err != nil {
		return level{}, fmt.Errorf("profiling the controller: %w", err)
	}
	close(stopFloor)
	floor := summarize(<-floorSamples)
	time.Sleep(2500 * time.Millisecond) // the audit log's batch wait
	requests, err := countRequests(b.c.AuditLog, auditFrom)
	if err != nil {
		return level{}, err
	}

	l := level{Name: name, Runs: n, ImagesPerRun: images, Wall: wall.Round(10 * time.Millisecond).String(), Floor: floor,
		ControllerCPUSeconds: round(cpu, 2), ControllerCPUSecondsPer100Runs: round(cpu/float64(n)*100, 2),
		ControllerPeakRSSMiB: round(float64(max(peakRSS, hwmBytes(pid)))/(1<<20), 1),
		RequestsPerRun:       map[string]float64{}, Outcomes: map[string]int{}, Others: map[string]processCost{}}
	for name, o := range others {
		l.Others[name] = processCost{CPUSecondsPer100Runs: round(o.cpu/float64(n)*100, 2),
			PeakRSSMiB: round(float64(max(o.peakRSS, hwmBytes(o.pid)))/(1<<20), 1)}
	}
	var ours, oursStart, kruise, tekton, pipeline []time.Duration
	var slowest []slowRun
	b.mu.Lock()
	for k := range b.prCreated {
		if !strings.HasPrefix(k, ns+"/") {
			continue
		}
		runKey := k + "-prepull"
		l.Outcomes[b.runReason[runKey]]++
		var first, lastCreated, last time.Time
		for job, run := range b.jobRun {
			if run != runKey {
				continue
			}
			c := b.jobCreated[job]
			if first.IsZero() || c.Before(first) {
				first = c
			}
			if c.After(lastCreated) {
				lastCreated = c
			}
			if d := b.jobDone[job]; d.After(last) {
				last = d
			}
		}
		if last.IsZero() {
			continue // wait: false, or no job: nothing to split
		}
		ours = append(ours, b.runDone[runKey].Sub(last))
		oursStart = append(oursStart, lastCreated.Sub(b.runSeen[runKey]))
		slowest = append(slowest, slowRun{Run: runKey, LastJobDone: last, RunDone: b.runDone[runKey], OursMs: ms(b.runDone[runKey].Sub(last))})
		kruise = append(kruise, last.Sub(first))
		tekton = append(tekton, b.runSeen[runKey].Sub(b.prCreated[k])+b.prDone[k].Sub(b.runDone[runKey]))
		pipeline = append(pipeline, b.prDone[k].Sub(b.prCreated[k]))
	}
	l.WatchEventsPerRun = map[string]float64{
		"customruns":    round(float64(b.watchEvents[ns+" customruns"])/float64(n), 2),
		"imagepulljobs": round(float64(b.watchEvents[ns+" imagepulljobs"])/float64(n), 2),
	}
	b.mu.Unlock()
	l.Ours, l.OursStart, l.Kruise, l.Tekton, l.Pipeline = summarize(ours), summarize(oursStart), summarize(kruise), summarize(tekton), summarize(pipeline)
	sort.Slice(slowest, func(i, j int) bool { return slowest[i].OursMs > slowest[j].OursMs })
	l.SlowestOurs = slowest[:min(len(slowest), 5)]
	total := 0
	for k, v := range requests {
		l.RequestsPerRun[k] = round(float64(v)/float64(n), 2)
		total += v
	}
	l.RequestsPerRunTotal = round(float64(total)/float64(n), 2)
	l.StatusWritesPerRun = round(float64(requests["update customruns/status"]+requests["patch customruns/status"]+
		requests["update customruns/status (409)"])/float64(n), 2)
	l.JobCreatesPerImage = round(float64(requests["create imagepulljobs"])/float64(n*images), 2)
	l.TektonWebhookRetries = b.webhookRetries.Load() - retries0
	l.RegistryReadsPerRun = round(float64(b.c.Registries.RequestsBy(registry.UserAgent)-reads0)/float64(n), 2)
	for k, v := range requests {
		// Any refusal of a status write but a conflict: the write that
		// starts or ends a run did not land.
		if strings.HasPrefix(k, "update customruns/status (") && k != "update customruns/status (409)" {
			l.StatusWritesFailed += v
		}
	}
	return l, nil
}

// createPipelineRun creates pr, again when Tekton's webhook did not answer
// within its call timeout (the API server's 500), as a client would.
func (b *bench) createPipelineRun(ctx context.Context, pr *pipelinev1.PipelineRun) error {
	var err error
	for try := 0; try < 5; try++ {
		if _, err = b.c.Tekton.TektonV1().PipelineRuns(pr.Namespace).Create(ctx, pr, metav1.CreateOptions{}); err == nil ||
			!apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "failed calling webhook") {
			return err
		}
		b.webhookRetries.Add(1)
	}
	return err
}

// cost follows one process's CPU and memory through a level.
type cost struct {
	pid       int
	cpu0, cpu float64
	peakRSS   int64
}

// profileDuring writes the controller's CPU profile if this level is the one
// to profile; the channel tells when it is written, or why not.
func (b *bench) profileDuring(ctx context.Context, level string) <-chan error {
	done := make(chan error, 1)
	if b.prof.path == "" || level != b.prof.level {
		done <- nil
		return done
	}
	go func() {
		data, err := b.c.Controllers.CPUProfile(ctx, b.prof.d)
		if err == nil {
			err = os.WriteFile(b.prof.path, data, 0o644)
		}
		done <- err
	}()
	return done
}

// images are run i's images: for the digests level, its image pushed to the
// local registry, given with its digest; else names no registry has (the
// simulated nodes pull them all the same).
func (b *bench) images(level string, i, images int, selector string) []string {
	if selector == digestsLevel {
		return []string{b.pinned[i]}
	}
	var refs []string
	for k := 0; k < images; k++ {
		refs = append(refs, fmt.Sprintf("registry.local/bench/%s-%d-%d:v1", level, i, k))
	}
	return refs
}

// pushPinned pushes one small image a run of the digests level to the local
// registry, and keeps each as repository:tag@digest.
func (b *bench) pushPinned(ctx context.Context, n int) error {
	b.pinned = b.pinned[:0]
	for i := 0; i < n; i++ {
		ref := fmt.Sprintf("%s/bench/%s-%d:v1", b.c.Registry, digestsLevel, i)
		if err := b.c.Registries.Push(ctx, ref, map[string]string{"run.txt": ref}); err != nil {
			return err
		}
		d, err := b.c.Registries.Digest(ctx, ref)
		if err != nil {
			return err
		}
		b.pinned = append(b.pinned, ref+"@"+d)
	}
	return nil
}

// digestsLevel names the level whose runs give their image's digest: what
// checking each node against it costs, beside a level of as many runs
// without.
const digestsLevel = "digests"

func pipelineRun(ns string, i int, refs []string, selector string, pools, nodes int) *pipelinev1.PipelineRun {
	params := pipelinev1.Params{{Name: "images", Value: pipelinev1.ParamValue{Type: pipelinev1.ParamTypeArray, ArrayVal: refs}}}
	switch selector {
	case "limits":
		params = append(params, pipelinev1.Param{Name: "nodeNames", Value: pipelinev1.ParamValue{Type: pipelinev1.ParamTypeArray, ArrayVal: limitNodeNames(i%pools, nodes/pools)}})
	case "all":
		params = append(params, pipelinev1.Param{Name: "parallelism", Value: *pipelinev1.NewStructuredValues("1000")})
	case "workload":
		params = append(params, pipelinev1.Param{Name: "parallelism", Value: *pipelinev1.NewStructuredValues("1000")},
			pipelinev1.Param{Name: "workload", Value: *pipelinev1.NewStructuredValues("deployment/" + benchWorkload)},
			pipelinev1.Param{Name: "nodes", Value: *pipelinev1.NewStructuredValues("eligible")})
	default:
		params = append(params, pipelinev1.Param{Name: "nodeSelector", Value: *pipelinev1.NewStructuredValues("pool=" + poolName(i%pools))})
	}
	return &pipelinev1.PipelineRun{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pr-%04d", i), Namespace: ns},
		Spec: pipelinev1.PipelineRunSpec{
			Timeouts: &pipelinev1.TimeoutFields{Pipeline: &metav1.Duration{Duration: 15 * time.Minute}},
			PipelineSpec: &pipelinev1.PipelineSpec{Tasks: []pipelinev1.PipelineTask{{
				Name:    "prepull",
				TaskRef: &pipelinev1.TaskRef{APIVersion: "custom.kruise.dev/v1alpha1", Kind: "ImagePrePull"},
				Params:  params,
			}}},
		},
	}
}

// The limits level: runs as large as validation accepts.
const (
	limitsLevel  = "limits"
	limitsImages = v1alpha1.MaxJobNodeNameBytes / v1alpha1.MaxNodeNameBytes // 4
)

// limitNodeNames are 5,000 node names of as near 256 KiB as validation
// accepts: the names of pool's nodes, then names of nodes that do not exist
// (OpenKruise skips them) to fill the rest. What the level measures is the
// names' weight on the controller, not pulls: a run pulls onto its pool only.
func limitNodeNames(pool, poolSize int) []string {
	names := make([]string, 0, v1alpha1.MaxNodeNames)
	size := 0
	for i := pool * poolSize; i < (pool+1)*poolSize; i++ {
		names = append(names, fmt.Sprintf("node-%04d", i))
		size += len(names[len(names)-1])
	}
	left := v1alpha1.MaxNodeNames - len(names)
	width := (v1alpha1.MaxNodeNameBytes - size) / left
	for i := 0; i < left; i++ {
		names = append(names, fmt.Sprintf("absent-%0*d", width-len("absent-"), i))
	}
	return names
}

// benchWorkload is the Deployment the workload level pre-pulls for.
const benchWorkload = "web"

// createWorkload makes the Deployment a workload run targets (every node is
// eligible: no nodeSelector, no taint to tolerate) and lets the namespace's
// runs read it, as the run's authorization asks.
func (b *bench) createWorkload(ctx context.Context, ns string) error {
	labels := map[string]string{"app": benchWorkload}
	if _, err := b.c.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: benchWorkload},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.local/bench/web:v1"}}},
		}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	return b.c.AllowServiceAccount(ctx, ns, "default", "read-web", rbacv1.PolicyRule{
		APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{benchWorkload}, Verbs: []string{"get"},
	})
}

// failingLevel names the level whose images fail on one node of each pool.
const failingLevel = "failing"

// failOnePerPool makes the first node of every pool fail the images of level
// (kruise-daemon's NotFound), as a registry missing a tag on one mirror would.
func (b *bench) failOnePerPool(ctx context.Context, level string) error {
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, simulator.AnnotationFail, "/bench/"+level+"-"))
	for p := 0; p < b.pools; p++ {
		name := fmt.Sprintf("node-%04d", p*b.poolSize)
		if _, err := b.c.Kube.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// addNodes adds simulated nodes until there are total, many at a time.
func (b *bench) addNodes(ctx context.Context, have, total int) error {
	work := make(chan int)
	errs := make(chan error, total)
	var wg sync.WaitGroup
	for w := 0; w < 50; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := b.c.Nodes.Add(ctx, cluster.Node{Name: fmt.Sprintf("node-%04d", i), Labels: map[string]string{"pool": "large"}}); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := have; i < total; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return nil
}

// pods counts the Pods in the cluster but the workload level's Deployment's
// own (its ReplicaSet makes them): runs of this custom task make none.
func (b *bench) pods(ctx context.Context) (int, error) {
	l, err := b.c.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: "app!=" + benchWorkload})
	if err != nil {
		return 0, err
	}
	for _, p := range l.Items {
		fmt.Fprintf(os.Stderr, "bench: a pod in the cluster: %s/%s (%s, owned by %v)\n", p.Namespace, p.Name, p.Status.Phase, p.OwnerReferences)
	}
	return len(l.Items), nil
}

// countRequests counts the controller's requests in the audit log from
// offset on, by verb and resource[/subresource].
func countRequests(path string, offset int64) (map[string]int, error) {
	out := map[string]int{}
	err := cluster.ReadAudit(path, offset, func(ev cluster.AuditEvent) {
		// A request counts once: when answered, or for a watch when it starts.
		if ev.Stage != "ResponseComplete" && !(ev.Verb == "watch" && ev.Stage == "ResponseStarted") {
			return
		}
		res := ev.Resource()
		if res == "" {
			res = "(non-resource)"
		}
		// Refusals (409 conflicts, say) are counted apart: they are requests,
		// and they say something went stale.
		k := ev.Verb + " " + res
		if c := ev.ResponseStatus.Code; c >= 400 {
			k += fmt.Sprintf(" (%d)", c)
		}
		out[k]++
	})
	return out, err
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// cpuSeconds is the process's user and system CPU time.
func cpuSeconds(pid int) float64 {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0
	}
	st, err := p.Stat()
	if err != nil {
		return 0
	}
	return st.CPUTime()
}

// memory is the process's resident set now and at its peak (VmRSS, VmHWM).
func memory(pid int) (rss, hwm int64) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, 0
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, 0
	}
	return int64(st.VmRSS), int64(st.VmHWM)
}

func rssBytes(pid int) int64 { rss, _ := memory(pid); return rss }
func hwmBytes(pid int) int64 { _, hwm := memory(pid); return hwm }

func round(v float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// stats are percentiles of durations, in milliseconds.
type stats struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50Ms"`
	P95 float64 `json:"p95Ms"`
	P99 float64 `json:"p99Ms"`
	Max float64 `json:"maxMs"`
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 1) }

func summarize(d []time.Duration) stats {
	if len(d) == 0 {
		return stats{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	p := func(q float64) float64 {
		i := int(q*float64(len(d))+0.999999) - 1
		return ms(d[max(i, 0)])
	}
	return stats{N: len(d), P50: p(0.50), P95: p(0.95), P99: p(0.99), Max: p(1)}
}

// medianOf is the nearest-rank median (as summarize's P50) of one figure of
// each of xs: a level's per-run figures, already in their unit.
func medianOf[T any](xs []T, figure func(T) float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	vs := make([]float64, 0, len(xs))
	for _, x := range xs {
		vs = append(vs, figure(x))
	}
	slices.Sort(vs)
	return vs[(len(vs)+1)/2-1]
}
