package imageprepull

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	kruisefake "github.com/openkruise/kruise-api/client/clientset/versioned/fake"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	tektonfake "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/fake"
	tektonclient "github.com/tektoncd/pipeline/pkg/client/injection/client/fake"
	customruninformer "github.com/tektoncd/pipeline/pkg/client/injection/informers/pipeline/v1beta1/customrun/fake"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clientgotesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	testclock "k8s.io/utils/clock/testing"
	"knative.dev/pkg/apis"
	kubeclient "knative.dev/pkg/client/injection/kube/client/fake"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/controller"
	kreconciler "knative.dev/pkg/reconciler"
	rtesting "knative.dev/pkg/reconciler/testing"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	customclient "github.com/imageprepull/imageprepull/pkg/client/injection/client/fake"
	imageprepullinformer "github.com/imageprepull/imageprepull/pkg/client/injection/informers/custom/v1alpha1/imageprepull/fake"
	"github.com/imageprepull/imageprepull/pkg/config"
	"github.com/imageprepull/imageprepull/pkg/kruise"
	kruiseclient "github.com/imageprepull/imageprepull/pkg/kruise/client/fake"
)

const ns = "ci"

// policyNamespace is where config-imageprepull lives, as the controller's own namespace.
const policyNamespace = "imageprepull"

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// env is one controller over fake clients: the generated CustomRun
// reconciler around ours, and the real ImagePullJob informer on Kruise's
// fake clientset.
type env struct {
	t        *testing.T
	ctx      context.Context
	tekton   *tektonfake.Clientset
	kruise   *kruisefake.Clientset
	clock    *testclock.FakeClock
	recorder *record.FakeRecorder
	runs     cache.Indexer
	rec      controller.Reconciler
	r        *Reconciler
	kube     *kubefake.Clientset
	policy   *configmap.ManualWatcher
	// reviews are the SubjectAccessReviews asked; deny refuses those it matches.
	reviews  []authorizationv1.SubjectAccessReviewSpec
	deny     func(authorizationv1.SubjectAccessReviewSpec) bool
	jobs     *kruise.JobInformer
	watching chan struct{}
	version  atomic.Int64
}

// fixFakeKruise makes Kruise's fake clientset behave like an API server in
// the two ways the tests rely on: every write gets a new resourceVersion
// (the fake tracker keeps whatever it is given), and an informer's watch
// starts where its list ended. The fake's watch starts from the moment it
// is made, so a change between an informer's list and its watch would never
// reach the informer (kubernetes#95372): every change of ImagePullJobs is
// logged in order, and a watch replays the log from the last list on.
func (e *env) fixFakeKruise() {
	e.watching = make(chan struct{})
	var once sync.Once
	stamp := func(action clientgotesting.Action) (bool, runtime.Object, error) {
		var obj runtime.Object
		switch a := action.(type) {
		case clientgotesting.CreateAction:
			obj = a.GetObject()
		case clientgotesting.UpdateAction:
			obj = a.GetObject()
		}
		if m, ok := obj.(metav1.Object); ok {
			m.SetResourceVersion(strconv.FormatInt(e.version.Add(1), 10))
			if m.GetUID() == "" {
				m.SetUID(types.UID(fmt.Sprintf("uid-%d", e.version.Load())))
			}
		}
		return false, nil, nil
	}
	e.kruise.PrependReactor("create", "*", stamp)
	e.kruise.PrependReactor("update", "*", stamp)

	changes := &changeLog{}
	changes.cond = sync.NewCond(&changes.mu)
	gvr := kruisev1alpha1.SchemeGroupVersion.WithResource("imagepulljobs")
	all, err := e.kruise.Tracker().Watch(gvr, "")
	if err != nil {
		e.t.Fatal(err)
	}
	go changes.follow(e.ctx, all)
	e.kruise.PrependReactor("list", "imagepulljobs", func(clientgotesting.Action) (bool, runtime.Object, error) {
		changes.mu.Lock()
		changes.listed = len(changes.events)
		changes.mu.Unlock()
		return false, nil, nil
	})
	e.kruise.PrependWatchReactor("imagepulljobs", func(action clientgotesting.Action) (bool, watch.Interface, error) {
		once.Do(func() { close(e.watching) })
		return true, changes.watch(e.ctx, action.GetNamespace()), nil
	})
}

// changeLog is every change of the fake's ImagePullJobs, in order, and
// where the last list stood in it.
type changeLog struct {
	mu     sync.Mutex
	cond   *sync.Cond
	events []watch.Event
	listed int
}

func (l *changeLog) follow(ctx context.Context, w watch.Interface) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			l.cond.Broadcast()
			return
		case ev := <-w.ResultChan():
			l.mu.Lock()
			l.events = append(l.events, ev)
			l.mu.Unlock()
			l.cond.Broadcast()
		}
	}
}

// watch replays the changes of namespace ("" for all) from the last list on,
// then the new ones as they come.
func (l *changeLog) watch(ctx context.Context, namespace string) watch.Interface {
	out := make(chan watch.Event)
	stop := make(chan struct{})
	l.mu.Lock()
	next := l.listed
	l.mu.Unlock()
	go func() {
		defer close(out)
		for {
			l.mu.Lock()
			for next >= len(l.events) && ctx.Err() == nil && !closed(stop) {
				l.cond.Wait()
			}
			if ctx.Err() != nil || closed(stop) {
				l.mu.Unlock()
				return
			}
			// Each watch decodes objects of its own, as from an API server:
			// an informer's transform changes what it is given.
			ev := watch.Event{Type: l.events[next].Type, Object: l.events[next].Object.DeepCopyObject()}
			next++
			l.mu.Unlock()
			if m, ok := ev.Object.(metav1.Object); ok && namespace != "" && m.GetNamespace() != namespace {
				continue
			}
			select {
			case out <- ev:
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return &chanWatcher{out: out, stop: func() {
		l.mu.Lock()
		if !closed(stop) {
			close(stop)
		}
		l.mu.Unlock()
		l.cond.Broadcast()
	}}
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

type chanWatcher struct {
	out  chan watch.Event
	stop func()
}

func (w *chanWatcher) Stop()                          { w.stop() }
func (w *chanWatcher) ResultChan() <-chan watch.Event { return w.out }

type envOption func(*envConfig)

type envConfig struct {
	kruiseAbsent  bool
	progressEvery time.Duration
	prePulls      []*v1alpha1.ImagePrePull
	kruiseObjs    []*kruisev1alpha1.NodeImage
}

func withoutKruise() envOption { return func(c *envConfig) { c.kruiseAbsent = true } }

func withProgressEvery(d time.Duration) envOption {
	return func(c *envConfig) { c.progressEvery = d }
}

func withPrePull(p *v1alpha1.ImagePrePull) envOption {
	return func(c *envConfig) { c.prePulls = append(c.prePulls, p) }
}

func withNodeImage(ni *kruisev1alpha1.NodeImage) envOption {
	return func(c *envConfig) { c.kruiseObjs = append(c.kruiseObjs, ni) }
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel, _ := rtesting.SetupFakeContextWithCancel(t)
	t.Cleanup(cancel)
	e := &env{
		t:        t,
		ctx:      ctx,
		tekton:   tektonclient.Get(ctx),
		kruise:   kruiseclient.Get(ctx),
		clock:    testclock.NewFakeClock(t0),
		recorder: controller.GetEventRecorder(ctx).(*record.FakeRecorder),
		runs:     customruninformer.Get(ctx).Informer().GetIndexer(),
	}
	if !cfg.kruiseAbsent {
		e.kruise.Resources = []*metav1.APIResourceList{{
			GroupVersion: kruisev1alpha1.SchemeGroupVersion.String(),
			APIResources: []metav1.APIResource{{Name: "imagepulljobs", Namespaced: true, Kind: "ImagePullJob"}},
		}}
	}
	e.fixFakeKruise()
	prePulls := imageprepullinformer.Get(ctx).Informer().GetIndexer()
	for _, p := range cfg.prePulls {
		if _, err := customclient.Get(ctx).CustomV1alpha1().ImagePrePulls(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := prePulls.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, ni := range cfg.kruiseObjs {
		if _, err := e.kruise.AppsV1alpha1().NodeImages().Create(ctx, ni, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	e.kube = kubeclient.Get(ctx)
	e.kube.PrependReactor("create", "subjectaccessreviews", func(action clientgotesting.Action) (bool, runtime.Object, error) {
		review := action.(clientgotesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		e.reviews = append(e.reviews, review.Spec)
		review.Status.Allowed = e.deny == nil || !e.deny(review.Spec)
		return true, review, nil
	})
	// The controller as cmd/controller builds it, through NewController's
	// constructor, with a fake clock and config-imageprepull set by hand.
	e.policy = &configmap.ManualWatcher{Namespace: policyNamespace}
	impl, r := newController(ctx, e.policy, Options{
		// Zero unless a test is about it: the other tests follow every
		// report's message.
		ProgressInterval: cfg.progressEvery,
	}, e.clock)
	e.setPolicy(nil)
	e.r, e.jobs, e.rec = r, r.jobs, impl.Reconciler
	// Be the leader of every key, as the only replica is.
	if err := e.rec.(kreconciler.LeaderAware).Promote(kreconciler.UniversalBucket(), func(kreconciler.Bucket, types.NamespacedName) {}); err != nil {
		t.Fatal(err)
	}
	if !cfg.kruiseAbsent {
		e.waitFor("the ImagePullJob informer to watch", func() bool {
			select {
			case <-e.watching:
				return true
			default:
				return false
			}
		})
		e.waitFor("the ImagePullJob informer to sync", func() bool {
			_, err := r.jobs.Lister(ctx)
			return err == nil
		})
	}
	return e
}

// prePullIndexer is the ImagePrePull informer's cache, for a test to edit
// a named policy as its watch would show the edit.
func (e *env) prePullIndexer() cache.Indexer {
	return imageprepullinformer.Get(e.ctx).Informer().GetIndexer()
}

// setPolicy loads config-imageprepull with data, as its watch would.
func (e *env) setPolicy(data map[string]string) {
	e.policy.OnChange(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: config.PolicyConfigName, Namespace: policyNamespace}, Data: data})
}

// restartJobInformer gives the reconciler a new ImagePullJob informer, not
// started, as a restarted controller has.
func (e *env) restartJobInformer() {
	e.r.jobs = kruise.NewJobInformer(e.ctx, e.kruise, ManagedBySelector, LabelCustomRun, cache.ResourceEventHandlerFuncs{})
	e.jobs = e.r.jobs
}

// create stores a CustomRun as the API server and the informer would hold it.
func (e *env) create(run *v1beta1.CustomRun) {
	e.t.Helper()
	if _, err := e.tekton.TektonV1beta1().CustomRuns(run.Namespace).Create(e.ctx, run, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// reconcile runs one reconcile of the run over the latest stored state, as
// the informer would deliver it, then the reconciles the informer's events
// for that reconcile's status write bring (runEvents enqueues the write
// that starts an attempt, and the one that ends the run), and returns the
// stored run afterwards with the last reconcile's error.
func (e *env) reconcile(name string) (*v1beta1.CustomRun, error) {
	e.t.Helper()
	before := e.get(name)
	run, err := e.reconcileOnce(name)
	for i := 0; i < 3 && (startsAttempt(before, run) || (!before.IsDone() && run.IsDone())); i++ {
		before = run
		run, err = e.reconcileOnce(name)
	}
	return run, err
}

// reconcileOnce runs one reconcile of the run over the latest stored state.
func (e *env) reconcileOnce(name string) (*v1beta1.CustomRun, error) {
	e.t.Helper()
	e.syncJobs()
	stored := e.get(name)
	if err := e.runs.Update(stored); err != nil {
		e.t.Fatal(err)
	}
	err := e.rec.Reconcile(e.ctx, ns+"/"+name)
	run := e.get(name)
	// docs/status.md's reasons table is made from the docs: no reason may miss them.
	for _, st := range append([]v1beta1.CustomRunStatus{run.Status}, run.Status.RetriesStatus...) {
		if c := st.GetCondition(apis.ConditionSucceeded); c != nil && !v1alpha1.IsDocumentedReason(c.Reason) {
			e.t.Errorf("run %s has reason %q, which v1alpha1.ReasonDocs does not document", name, c.Reason)
		}
	}
	return run, err
}

// mustReconcile reconciles and fails the test on an error that is not a requeue.
func (e *env) mustReconcile(name string) *v1beta1.CustomRun {
	e.t.Helper()
	run, err := e.reconcile(name)
	if ok, _ := controller.IsRequeueKey(err); err != nil && !ok {
		e.t.Fatalf("reconcile %s: %v", name, err)
	}
	return run
}

func (e *env) get(name string) *v1beta1.CustomRun {
	e.t.Helper()
	run, err := e.tekton.TektonV1beta1().CustomRuns(ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return run
}

// jobList returns the ImagePullJobs as the API server holds them.
func (e *env) jobList() []kruisev1alpha1.ImagePullJob {
	e.t.Helper()
	// From the tracker: a test may make the clientset refuse lists.
	l, err := e.kruise.Tracker().List(kruisev1alpha1.SchemeGroupVersion.WithResource("imagepulljobs"),
		kruisev1alpha1.SchemeGroupVersion.WithKind("ImagePullJob"), ns)
	if err != nil {
		e.t.Fatal(err)
	}
	return l.(*kruisev1alpha1.ImagePullJobList).Items
}

// setJobStatus plays Kruise's part: it writes a job's status.
func (e *env) setJobStatus(name string, status kruisev1alpha1.ImagePullJobStatus) {
	e.t.Helper()
	job, err := e.kruise.AppsV1alpha1().ImagePullJobs(ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	job.Status = status
	if _, err := e.kruise.AppsV1alpha1().ImagePullJobs(ns).UpdateStatus(e.ctx, job, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// syncJobs waits until the informer's cache holds what the API server holds.
func (e *env) syncJobs() {
	e.t.Helper()
	lister, err := e.jobs.Lister(e.ctx)
	if err != nil {
		return // Kruise absent: nothing to sync
	}
	e.waitFor("the ImagePullJob cache to catch up", func() bool {
		want := map[types.UID]string{}
		for _, j := range e.jobList() {
			want[j.UID] = j.ResourceVersion
		}
		cached, _ := lister.List(labels.Everything())
		if len(cached) != len(want) {
			return false
		}
		for _, j := range cached {
			if want[j.UID] != j.ResourceVersion {
				return false
			}
		}
		return true
	})
}

func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(e.ctx, 5*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		e.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// actions counts the client calls of one verb on one resource.
func countActions(actions []clientgotesting.Action, verb, resource string) int {
	n := 0
	for _, a := range actions {
		if a.GetVerb() == verb && a.GetResource().Resource == resource {
			n++
		}
	}
	return n
}

type runOption func(*v1beta1.CustomRun)

func newRun(name string, opts ...runOption) *v1beta1.CustomRun {
	run := &v1beta1.CustomRun{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns, UID: types.UID("uid-" + name),
			Labels: map[string]string{
				"tekton.dev/pipelineRun":  "build-1",
				"tekton.dev/pipelineTask": "prepull",
			},
		},
		Spec: v1beta1.CustomRunSpec{
			CustomRef: &v1beta1.TaskRef{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind},
			Timeout:   &metav1.Duration{Duration: time.Hour},
		},
	}
	for _, o := range opts {
		o(run)
	}
	return run
}

func str(name, value string) runOption {
	return func(r *v1beta1.CustomRun) {
		r.Spec.Params = append(r.Spec.Params, v1beta1.Param{Name: name, Value: *v1beta1.NewStructuredValues(value)})
	}
}

func arr(name string, values ...string) runOption {
	return func(r *v1beta1.CustomRun) {
		r.Spec.Params = append(r.Spec.Params, v1beta1.Param{Name: name,
			Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeArray, ArrayVal: values}})
	}
}

func ref(name string) runOption { return func(r *v1beta1.CustomRun) { r.Spec.CustomRef.Name = name } }

func embedded(spec string) runOption {
	return func(r *v1beta1.CustomRun) {
		r.Spec.CustomRef = nil
		r.Spec.CustomSpec = &v1beta1.EmbeddedCustomRunSpec{
			TypeMeta: runtime.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind},
		}
		r.Spec.CustomSpec.Spec.Raw = []byte(spec)
	}
}

func timeout(d time.Duration) runOption {
	return func(r *v1beta1.CustomRun) { r.Spec.Timeout = &metav1.Duration{Duration: d} }
}

func retries(n int) runOption { return func(r *v1beta1.CustomRun) { r.Spec.Retries = n } }

func prePull(name string, spec v1alpha1.ImagePrePullSpec) *v1alpha1.ImagePrePull {
	return &v1alpha1.ImagePrePull{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
}

func condition(run *v1beta1.CustomRun) *apis.Condition {
	return run.Status.GetCondition(apis.ConditionSucceeded)
}

func result(run *v1beta1.CustomRun, name string) string {
	for _, r := range run.Status.Results {
		if r.Name == name {
			return r.Value
		}
	}
	return "<unset>"
}

// list reads a list result, checking that Tekton would hand it to a later
// task as a string: a value that parses as a JSON array would arrive as an
// array for some values and a string for others.
func list(t *testing.T, s string) []string {
	t.Helper()
	var arr []string
	if json.Unmarshal([]byte(s), &arr) == nil {
		t.Fatalf("%q parses as a JSON array: Tekton would hand it to a later task as an array", s)
	}
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// completed is a Kruise status of a finished job.
func completed(desired, succeeded int32, failedNodes ...string) kruisev1alpha1.ImagePullJobStatus {
	now := metav1.NewTime(t0)
	return kruisev1alpha1.ImagePullJobStatus{
		StartTime: &now, CompletionTime: &now, Desired: desired, Succeeded: succeeded,
		Failed: int32(len(failedNodes)), FailedNodes: failedNodes, Message: "job has completed",
	}
}

// pulling is a Kruise status of a job in progress.
func pulling(desired, succeeded, failed int32) kruisev1alpha1.ImagePullJobStatus {
	now := metav1.NewTime(t0)
	return kruisev1alpha1.ImagePullJobStatus{
		StartTime: &now, Desired: desired, Succeeded: succeeded, Failed: failed,
		Active: desired - succeeded - failed, Message: "job is running",
	}
}

func contains(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s %q does not contain %q", what, s, p)
		}
	}
}

func isRequeue(err error) (bool, time.Duration) { return controller.IsRequeueKey(err) }

// failsAtOnce reconciles a run once and checks that it ended Failed with the
// reason and a message holding every part; it returns the stored run.
func (e *env) failsAtOnce(name string, reason v1alpha1.Reason, parts ...string) *v1beta1.CustomRun {
	e.t.Helper()
	run, err := e.reconcile(name)
	if err != nil {
		e.t.Fatalf("reconcile: %v", err)
	}
	c := condition(run)
	if !c.IsFalse() || c.Reason != reason.String() {
		e.t.Fatalf("condition = %+v, want False/%s", c, reason)
	}
	contains(e.t, "message", c.Message, parts...)
	return run
}

const app = "registry.example.com/team/app:main-d92ae17"

const (
	shopApp = "reg.local/shop/app:v1"
	miner   = "reg.local/evil/miner:v1"
)

// edit changes a stored run's spec as a user with the namespace's edit role
// may, through Tekton's webhook.
func (e *env) edit(name string, change func(*v1beta1.CustomRun)) {
	e.t.Helper()
	run := e.get(name)
	change(run)
	if _, err := e.tekton.TektonV1beta1().CustomRuns(ns).Update(e.ctx, run, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func setParam(name string, value v1beta1.ParamValue) func(*v1beta1.CustomRun) {
	return func(run *v1beta1.CustomRun) {
		for i := range run.Spec.Params {
			if run.Spec.Params[i].Name == name {
				run.Spec.Params[i].Value = value
				return
			}
		}
		run.Spec.Params = append(run.Spec.Params, v1beta1.Param{Name: name, Value: value})
	}
}

func jobImages(e *env) []string {
	var images []string
	for _, j := range e.jobList() {
		images = append(images, j.Spec.Image)
	}
	slices.Sort(images)
	return images
}

// --- helpers of several tests ---

func serviceAccount(name string) runOption {
	return func(r *v1beta1.CustomRun) { r.Spec.ServiceAccountName = name }
}

// expireJobs plays OpenKruise's TTL: it deletes every completed job whose
// ttlSecondsAfterFinished has passed by now.
func (e *env) expireJobs(now time.Time) {
	e.t.Helper()
	for _, j := range e.jobList() {
		ttl := j.Spec.CompletionPolicy.TTLSecondsAfterFinished
		if ttl == nil || j.Status.CompletionTime == nil || now.Before(j.Status.CompletionTime.Add(time.Duration(*ttl)*time.Second)) {
			continue
		}
		if err := e.kruise.AppsV1alpha1().ImagePullJobs(ns).Delete(e.ctx, j.Name, metav1.DeleteOptions{}); err != nil {
			e.t.Fatal(err)
		}
	}
}

func embeddedTTL(seconds int) runOption {
	return func(r *v1beta1.CustomRun) {
		params := r.Spec.Params
		embedded(`{"ttlSecondsAfterFinished":` + strconv.Itoa(seconds) + `}`)(r)
		r.Spec.Params = params
	}
}

// neverSyncs makes the ImagePullJob informer one that cannot sync, as after
// an RBAC edit that refuses the controller's list: a restarted controller's.
func (e *env) neverSyncs() {
	e.kruise.PrependReactor("list", "imagepulljobs", func(clientgotesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps.kruise.io", Resource: "imagepulljobs"}, "", nil)
	})
	e.restartJobInformer()
}
