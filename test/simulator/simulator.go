// Package simulator stands in for kruise-daemon on nodes that have no
// kubelet: it watches NodeImages and, for each tag Kruise asks a node to
// pull, writes the status the kruise-daemon of the cluster's OpenKruise
// release would write: Pulling, then Succeeded or Failed, with the tag's
// version, progress, times, imageID or message, and the counters. Each node
// keeps the images it pulled: under imagePullPolicy IfNotPresent a tag it
// holds is not pulled again, and keeps the image it had. As
// kruise-daemon v1.9 does, it first reports a tag Waiting, runs at most
// --max-workers-for-pull-image pulls at a time on a node, and writes
// through apps.kruise.io/v1beta1 (with the status.waiting counter, which
// kruise-api v1.8.0's v1alpha1 types do not have).
package simulator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	kruiseclient "github.com/openkruise/kruise-api/client/clientset/versioned"
	kruiseinformers "github.com/openkruise/kruise-api/client/informers/externalversions"
	kruiselisters "github.com/openkruise/kruise-api/client/listers/apps/v1alpha1"
	"golang.org/x/mod/semver"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Labels and annotations on Node objects.
const (
	// LabelSimulated marks the nodes the simulator answers for; others (a
	// real node with a real kruise-daemon) are left alone.
	LabelSimulated = "simulator.custom.kruise.dev/simulated"
	// AnnotationPullMillis sets this node's pull time, overriding Config.PullTime.
	AnnotationPullMillis = "simulator.custom.kruise.dev/pull-millis"
	// AnnotationFail is a regular expression: images it matches fail on this
	// node, and the node does not hold them from an earlier pull.
	AnnotationFail = "simulator.custom.kruise.dev/fail"
	// AnnotationMaxWorkers is this node's kruise-daemon
	// --max-workers-for-pull-image (v1.9 and later), overriding
	// Config.MaxWorkers; it is read when the node's first pull starts.
	AnnotationMaxWorkers = "simulator.custom.kruise.dev/max-workers"
)

// Config says how pulls go when node annotations do not say otherwise.
type Config struct {
	// Kruise is the OpenKruise release whose kruise-daemon is simulated
	// (v1.8.0, v1.9.1); the cluster sets it to the release it runs.
	Kruise string
	// MaxWorkers is kruise-daemon's --max-workers-for-pull-image: the pulls
	// a node runs at once, the others Waiting; zero or less is no limit
	// (the daemon's default). Only v1.9 and later have it.
	MaxWorkers int
	// PullTime is uniform between Min and Max; zero means instant.
	PullTime struct{ Min, Max time.Duration }
	// FailImages fail on every node; nil fails none.
	FailImages *regexp.Regexp
	// SlowImages take SlowPull to pull, on every node.
	SlowImages *regexp.Regexp
	SlowPull   time.Duration
	// FailProbability fails that share of the other pulls, at random.
	FailProbability float64
	// Seed makes the random choices repeatable.
	Seed uint64
	// ImageID is what a container runtime on a node of platform os/arch
	// reports as the image ID of image (name:tag) once it pulled it: the
	// digest of the image's config (containerd's CRI image ID). ok is false
	// for an image it cannot tell (one in no registry the cluster serves);
	// the node then reports a made-up ID, one a tag. nil tells none.
	ImageID func(ctx context.Context, image, os, arch string) (id string, ok bool)
}

// NotFoundMessage is what kruise-daemon reports, from containerd, for a tag
// the registry does not have.
func NotFoundMessage(image string) string {
	return fmt.Sprintf(`Failed to pull image reference %q: rpc error: code = NotFound desc = failed to pull and unpack image %q: failed to resolve reference %q: not found`, image, image, image)
}

// Simulator answers for simulated nodes' NodeImages.
type Simulator struct {
	kruise     kruiseclient.Interface
	kube       kubernetes.Interface
	dynamic    dynamic.Interface
	cfg        Config
	daemonV19  bool
	nodes      corelisters.NodeLister
	nodeImages kruiselisters.NodeImageLister

	mu  sync.Mutex
	rnd *rand.Rand
	// started holds, per node, every image/tag/version/createdAt of its
	// spec pulled or being pulled: an event that lags behind the pull's own
	// writes must not pull again. A tag that leaves the spec is forgotten,
	// as kruise-daemon stops its worker; when Kruise adds it again (at
	// version 0 once the status no longer lists it) it is pulled again.
	started map[string]map[string]bool
	pulls   int
	// daemons holds each simulated node's pull results and status writer.
	daemons map[string]*daemon
	writes  int
}

// daemon is one node's kruise-daemon: what its pulls reached, and a
// writer that puts that into the NodeImage's status as the real daemon
// does, one whole status at a time, at most statusUpdateQPS per second after
// a burst of statusUpdateBurst (pkg/daemon/imagepuller/utils.go in Kruise).
type daemon struct {
	mu sync.Mutex
	// tags is image name -> tag -> the latest pull's status.
	tags map[string]map[string]kruisev1alpha1.ImageTagStatus
	kick chan struct{}
	// workers holds a token per running pull when the node's pulls are
	// limited (kruise-daemon v1.9's pool of --max-workers-for-pull-image
	// workers); nil runs every pull at once.
	workers chan struct{}
	// images is the node's image store: name:tag -> the image ID of the
	// image it holds under the tag, from its last pull.
	images map[string]string
}

// Kruise-daemon's status rate limit (pkg/daemon/imagepuller/utils.go, the
// same in v1.8.0 and v1.9.1).
const (
	statusUpdateQPS   = 0.5
	statusUpdateBurst = 5
)

// nodeImagesV1beta1 is where kruise-daemon v1.9 writes NodeImage status.
var nodeImagesV1beta1 = schema.GroupVersionResource{Group: "apps.kruise.io", Version: "v1beta1", Resource: "nodeimages"}

// New makes a simulator; Start runs it. dyn writes status through v1beta1
// for kruise-daemon v1.9 and later.
func New(kube kubernetes.Interface, kruise kruiseclient.Interface, dyn dynamic.Interface, cfg Config) *Simulator {
	return &Simulator{kube: kube, kruise: kruise, dynamic: dyn, cfg: cfg, started: map[string]map[string]bool{}, daemons: map[string]*daemon{},
		rnd: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed+1))}
}

// Pulls counts the pulls simulated so far.
func (s *Simulator) Pulls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pulls
}

// StatusWrites counts the NodeImage status writes that landed so far.
func (s *Simulator) StatusWrites() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// Start watches until ctx ends; it returns once its caches are synced.
// Nodes sync first: a NodeImage event handled before its Node is in the
// cache would be dropped.
func (s *Simulator) Start(ctx context.Context) error {
	if !semver.IsValid(s.cfg.Kruise) {
		return fmt.Errorf("simulator: Config.Kruise %q is not an OpenKruise release such as v1.9.1", s.cfg.Kruise)
	}
	s.daemonV19 = semver.Compare(s.cfg.Kruise, "v1.9.0") >= 0
	if s.cfg.MaxWorkers > 0 && !s.daemonV19 {
		return fmt.Errorf("simulator: MaxWorkers is kruise-daemon's --max-workers-for-pull-image, which %s does not have (v1.9 and later)", s.cfg.Kruise)
	}
	kf := informers.NewSharedInformerFactory(s.kube, 0)
	s.nodes = kf.Core().V1().Nodes().Lister()
	kf.Start(ctx.Done())
	for typ, ok := range kf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("syncing %v", typ)
		}
	}
	nf := kruiseinformers.NewSharedInformerFactory(s.kruise, 0)
	ni := nf.Apps().V1alpha1().NodeImages()
	s.nodeImages = ni.Lister()
	if _, err := ni.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.sync(ctx, obj.(*kruisev1alpha1.NodeImage)) },
		UpdateFunc: func(_, obj any) { s.sync(ctx, obj.(*kruisev1alpha1.NodeImage)) },
	}); err != nil {
		return err
	}
	nf.Start(ctx.Done())
	for typ, ok := range nf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("syncing %v", typ)
		}
	}
	return nil
}

// sync starts a pull for every tag version the spec asks for and no pull
// has started for yet, and has the node's status written again: a spec
// change (a tag added or dropped) changes the counters.
func (s *Simulator) sync(ctx context.Context, ni *kruisev1alpha1.NodeImage) {
	node, err := s.nodes.Get(ni.Name)
	if err != nil || node.Labels[LabelSimulated] != "true" {
		return
	}
	d := s.daemon(ctx, node)
	d.forget(&ni.Spec)
	inSpec := map[string]bool{}
	for name, img := range ni.Spec.Images {
		for _, tag := range img.Tags {
			created := ""
			if tag.CreatedAt != nil {
				created = tag.CreatedAt.UTC().Format(time.RFC3339)
			}
			key := fmt.Sprintf("%s/%s/%d/%s", name, tag.Tag, tag.Version, created)
			inSpec[key] = true
			s.mu.Lock()
			if s.started[ni.Name][key] || done(ni, name, tag.Tag, tag.Version) {
				s.mu.Unlock()
				continue
			}
			if s.started[ni.Name] == nil {
				s.started[ni.Name] = map[string]bool{}
			}
			s.started[ni.Name][key] = true
			s.pulls++
			s.mu.Unlock()
			go s.pull(ctx, d, node, name, tag)
		}
	}
	s.mu.Lock()
	for key := range s.started[ni.Name] {
		if !inSpec[key] {
			delete(s.started[ni.Name], key)
		}
	}
	s.mu.Unlock()
	if !upToDate(ni, d) {
		d.poke()
	}
}

// daemon returns the node's daemon, starting its status writer the first time.
func (s *Simulator) daemon(ctx context.Context, node *corev1.Node) *daemon {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.daemons[node.Name]
	if d == nil {
		d = &daemon{tags: map[string]map[string]kruisev1alpha1.ImageTagStatus{}, kick: make(chan struct{}, 1), images: map[string]string{}}
		workers := s.cfg.MaxWorkers
		if n, err := strconv.Atoi(node.Annotations[AnnotationMaxWorkers]); err == nil && s.daemonV19 {
			workers = n
		}
		if workers > 0 {
			d.workers = make(chan struct{}, workers)
		}
		s.daemons[node.Name] = d
		go s.writeLoop(ctx, node.Name, d)
	}
	return d
}

func done(ni *kruisev1alpha1.NodeImage, name, tag string, version int64) bool {
	for _, st := range ni.Status.ImageStatuses[name].Tags {
		if st.Tag == tag && st.Version == version && (st.Phase == kruisev1alpha1.ImagePhaseSucceeded || st.Phase == kruisev1alpha1.ImagePhaseFailed) {
			return true
		}
	}
	return false
}

func (d *daemon) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// forget drops what the daemon knows of tags the spec no longer asks for.
func (d *daemon) forget(spec *kruisev1alpha1.NodeImageSpec) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, tags := range d.tags {
		for tag := range tags {
			if !slices.ContainsFunc(spec.Images[name].Tags, func(t kruisev1alpha1.ImageTagSpec) bool { return t.Tag == tag }) {
				delete(tags, tag)
			}
		}
	}
}

func (d *daemon) set(name string, st kruisev1alpha1.ImageTagStatus) {
	d.mu.Lock()
	if d.tags[name] == nil {
		d.tags[name] = map[string]kruisev1alpha1.ImageTagStatus{}
	}
	d.tags[name][st.Tag] = st
	d.mu.Unlock()
	d.poke()
}

// pull plays one of kruise-daemon's pull workers (pkg/daemon/imagepuller):
// a tag the node holds already is not pulled again under imagePullPolicy
// IfNotPresent, and either way the status reports the image ID the node
// holds under the tag afterwards, as name@id.
func (s *Simulator) pull(ctx context.Context, d *daemon, node *corev1.Node, name string, spec kruisev1alpha1.ImageTagSpec) {
	tag, version := spec.Tag, spec.Version
	image := name + ":" + tag
	if s.daemonV19 {
		// v1.9's worker reports Waiting before it asks the pool for a
		// worker (newPullWorker in pkg/daemon/imagepuller); the pull's
		// startTime, and its own deadline, begin when a worker runs it.
		d.set(name, kruisev1alpha1.ImageTagStatus{Tag: tag, Version: version, Phase: kruisev1alpha1.ImagePhaseWaiting})
		if d.workers != nil {
			select {
			case <-ctx.Done():
				return
			case d.workers <- struct{}{}:
			}
			defer func() { <-d.workers }()
		}
	}
	// Times as the API server keeps them (whole seconds), so that a status
	// read back compares equal to the one written.
	start := metav1.Now().Rfc3339Copy()
	id, present := d.held(image)
	if present && s.unavailable(node, image) {
		// A node told it cannot pull an image does not hold it either, as
		// after the kubelet's image garbage collection: a test that makes
		// a node fail means a node without the image, whatever ran before.
		d.drop(image)
		present = false
	}
	if !present || spec.ImagePullPolicy != kruisev1alpha1.PullIfNotPresent {
		dur, failMsg := s.plan(node, image)
		if dur > 0 {
			d.set(name, kruisev1alpha1.ImageTagStatus{Tag: tag, Version: version, Phase: kruisev1alpha1.ImagePhasePulling, StartTime: &start})
			select {
			case <-ctx.Done():
				return
			case <-time.After(dur):
			}
		}
		if failMsg != "" {
			end := metav1.Now().Rfc3339Copy()
			d.set(name, kruisev1alpha1.ImageTagStatus{Tag: tag, Version: version, StartTime: &start, CompletionTime: &end,
				Phase: kruisev1alpha1.ImagePhaseFailed, Message: failMsg})
			return
		}
		id = s.imageID(ctx, node, image)
		d.hold(image, id)
	}
	end := metav1.Now().Rfc3339Copy()
	d.set(name, kruisev1alpha1.ImageTagStatus{Tag: tag, Version: version, StartTime: &start, CompletionTime: &end, Progress: 100,
		Phase: kruisev1alpha1.ImagePhaseSucceeded, ImageID: name + "@" + id})
}

// imageID is the ID of the image a node of node's platform pulls for image.
func (s *Simulator) imageID(ctx context.Context, node *corev1.Node, image string) string {
	if s.cfg.ImageID != nil {
		if id, ok := s.cfg.ImageID(ctx, image, node.Labels[corev1.LabelOSStable], node.Labels[corev1.LabelArchStable]); ok {
			return id
		}
	}
	sum := sha256.Sum256([]byte(image))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (d *daemon) held(image string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.images[image]
	return id, ok
}

func (d *daemon) drop(image string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.images, image)
}

func (d *daemon) hold(image, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.images[image] = id
}

// writeLoop writes the node's status whenever it changed, rate limited as
// kruise-daemon's status updater is, and keeps trying a write that did not
// land (a conflict with Kruise's own writes, an API server restarting)
// until it does or the simulator stops.
func (s *Simulator) writeLoop(ctx context.Context, node string, d *daemon) {
	limiter := rate.NewLimiter(statusUpdateQPS, statusUpdateBurst)
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		}
		for {
			if limiter.Wait(ctx) != nil {
				return
			}
			err := s.writeStatus(ctx, node, d)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// writeStatus puts the daemon's pulls of the tags the spec asks for into the
// status of the cached NodeImage, as kruise-daemon does from its lister.
func (s *Simulator) writeStatus(ctx context.Context, node string, d *daemon) error {
	ni, err := s.nodeImages.Get(node)
	if err != nil {
		return err
	}
	status := d.status(&ni.Spec)
	if equality.Semantic.DeepEqual(status, ni.Status) {
		return nil
	}
	ni = ni.DeepCopy()
	ni.Status = status
	if s.daemonV19 {
		err = s.writeStatusV1beta1(ctx, ni)
	} else {
		_, err = s.kruise.AppsV1alpha1().NodeImages().UpdateStatus(ctx, ni, metav1.UpdateOptions{})
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.writes++
	s.mu.Unlock()
	return nil
}

// writeStatusV1beta1 writes as kruise-daemon v1.9 does: through v1beta1,
// with status.waiting. The two versions' schemas are the same but for
// fields this status does not use, and Kruise's CRDs convert with None, so
// the object is the v1alpha1 one relabelled.
func (s *Simulator) writeStatusV1beta1(ctx context.Context, ni *kruisev1alpha1.NodeImage) error {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ni)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion(nodeImagesV1beta1.GroupVersion().String())
	u.SetKind("NodeImage")
	waiting := int64(0)
	for _, img := range ni.Status.ImageStatuses {
		for _, t := range img.Tags {
			if t.Phase == kruisev1alpha1.ImagePhaseWaiting {
				waiting++
			}
		}
	}
	if err := unstructured.SetNestedField(u.Object, waiting, "status", "waiting"); err != nil {
		return err
	}
	_, err = s.dynamic.Resource(nodeImagesV1beta1).UpdateStatus(ctx, u, metav1.UpdateOptions{})
	return err
}

// upToDate says whether the NodeImage's status already says what the daemon knows.
func upToDate(ni *kruisev1alpha1.NodeImage, d *daemon) bool {
	return equality.Semantic.DeepEqual(d.status(&ni.Spec), ni.Status)
}

// status is the NodeImage status the daemon reports for spec: the tags the
// spec asks for that a pull has started, and the counters over them
// (pkg/daemon/imagepuller/imagepuller_controller.go, sync).
func (d *daemon) status(spec *kruisev1alpha1.NodeImageSpec) kruisev1alpha1.NodeImageStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	var st kruisev1alpha1.NodeImageStatus
	for name, img := range spec.Images {
		st.Desired += int32(len(img.Tags))
		var tags []kruisev1alpha1.ImageTagStatus
		for _, tag := range img.Tags {
			ts, ok := d.tags[name][tag.Tag]
			if !ok {
				continue
			}
			tags = append(tags, ts)
			switch ts.Phase {
			case kruisev1alpha1.ImagePhaseSucceeded:
				st.Succeeded++
			case kruisev1alpha1.ImagePhaseFailed:
				st.Failed++
			case kruisev1alpha1.ImagePhasePulling:
				st.Pulling++
			}
			// Waiting is counted in status.waiting, which these types
			// lack: writeStatusV1beta1 adds it.
		}
		if len(tags) > 0 {
			if st.ImageStatuses == nil {
				st.ImageStatuses = map[string]kruisev1alpha1.ImageStatus{}
			}
			sort.Slice(tags, func(i, j int) bool { return tags[i].Tag < tags[j].Tag })
			st.ImageStatuses[name] = kruisev1alpha1.ImageStatus{Tags: tags}
		}
	}
	return st
}

// plan decides this pull's time and outcome from the node's annotations and the config.
// unavailable tells whether image cannot be had on node: AnnotationFail or
// Config.FailImages matches it.
func (s *Simulator) unavailable(node *corev1.Node, image string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unavailableLocked(node, image)
}

func (s *Simulator) unavailableLocked(node *corev1.Node, image string) bool {
	if re := node.Annotations[AnnotationFail]; re != "" {
		if r, err := regexp.Compile(re); err == nil && r.MatchString(image) {
			return true
		}
	}
	return s.cfg.FailImages != nil && s.cfg.FailImages.MatchString(image)
}

func (s *Simulator) plan(node *corev1.Node, image string) (time.Duration, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.cfg.PullTime.Min
	if span := s.cfg.PullTime.Max - s.cfg.PullTime.Min; span > 0 {
		d += time.Duration(s.rnd.Int64N(int64(span)))
	}
	if ms, err := strconv.Atoi(node.Annotations[AnnotationPullMillis]); err == nil {
		d = time.Duration(ms) * time.Millisecond
	}
	if s.cfg.SlowImages != nil && s.cfg.SlowImages.MatchString(image) {
		d = s.cfg.SlowPull
	}
	if s.unavailableLocked(node, image) {
		return d, NotFoundMessage(image)
	}
	if s.cfg.FailProbability > 0 && s.rnd.Float64() < s.cfg.FailProbability {
		return d, fmt.Sprintf("Failed to pull image reference %q: rpc error: code = Unavailable desc = connection reset by peer", image)
	}
	return d, ""
}
