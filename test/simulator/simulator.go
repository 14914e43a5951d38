// Package simulator stands in for kruise-daemon on nodes that have no
// kubelet: it watches NodeImages and, for each tag Kruise asks a node to
// pull, writes the status kruise-daemon would write: Pulling, then Succeeded
// or Failed, with the tag's version, progress, times, imageID or message,
// and the desired/succeeded/failed/pulling counters.
package simulator

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"sync"
	"time"

	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	kruiseclient "github.com/openkruise/kruise-api/client/clientset/versioned"
	kruiseinformers "github.com/openkruise/kruise-api/client/informers/externalversions"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// Labels and annotations on Node objects.
const (
	// LabelSimulated marks the nodes the simulator answers for; others (a
	// real node with a real kruise-daemon) are left alone.
	LabelSimulated = "simulator.custom.kruise.dev/simulated"
	// AnnotationPullMillis sets this node's pull time, overriding Config.PullTime.
	AnnotationPullMillis = "simulator.custom.kruise.dev/pull-millis"
	// AnnotationFail is a regular expression: images it matches fail on this node.
	AnnotationFail = "simulator.custom.kruise.dev/fail"
)

// Config says how pulls go when node annotations do not say otherwise.
type Config struct {
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
}

// NotFoundMessage is what kruise-daemon reports, from containerd, for a tag
// the registry does not have.
func NotFoundMessage(image string) string {
	return fmt.Sprintf(`Failed to pull image reference %q: rpc error: code = NotFound desc = failed to pull and unpack image %q: failed to resolve reference %q: not found`, image, image, image)
}

// Simulator answers for simulated nodes' NodeImages.
type Simulator struct {
	kruise kruiseclient.Interface
	kube   kubernetes.Interface
	cfg    Config
	nodes  corelisters.NodeLister

	mu  sync.Mutex
	rnd *rand.Rand
	// started holds every node/image/tag/version pulled or being pulled:
	// an event that lags behind the pull's own writes must not pull again.
	started map[string]bool
	pulls   int
}

// New makes a simulator; Start runs it.
func New(kube kubernetes.Interface, kruise kruiseclient.Interface, cfg Config) *Simulator {
	return &Simulator{kube: kube, kruise: kruise, cfg: cfg, started: map[string]bool{},
		rnd: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed+1))}
}

// Pulls counts the pulls simulated so far.
func (s *Simulator) Pulls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pulls
}

// Start watches until ctx ends; it returns once its caches are synced.
// Nodes sync first: a NodeImage event handled before its Node is in the
// cache would be dropped.
func (s *Simulator) Start(ctx context.Context) error {
	kf := informers.NewSharedInformerFactory(s.kube, 0)
	s.nodes = kf.Core().V1().Nodes().Lister()
	kf.Start(ctx.Done())
	for typ, ok := range kf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("syncing %v", typ)
		}
	}
	nf := kruiseinformers.NewSharedInformerFactory(s.kruise, 0)
	ni := nf.Apps().V1alpha1().NodeImages().Informer()
	if _, err := ni.AddEventHandler(cache.ResourceEventHandlerFuncs{
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

// sync starts a pull for every tag version the spec asks for and the status
// does not have yet.
func (s *Simulator) sync(ctx context.Context, ni *kruisev1alpha1.NodeImage) {
	node, err := s.nodes.Get(ni.Name)
	if err != nil || node.Labels[LabelSimulated] != "true" {
		return
	}
	for name, img := range ni.Spec.Images {
		for _, tag := range img.Tags {
			if done(ni, name, tag.Tag, tag.Version) {
				continue
			}
			key := fmt.Sprintf("%s/%s/%s/%d", ni.Name, name, tag.Tag, tag.Version)
			s.mu.Lock()
			if s.started[key] {
				s.mu.Unlock()
				continue
			}
			s.started[key] = true
			s.pulls++
			s.mu.Unlock()
			go s.pull(ctx, node, name, tag.Tag, tag.Version)
		}
	}
}

func done(ni *kruisev1alpha1.NodeImage, name, tag string, version int64) bool {
	for _, st := range ni.Status.ImageStatuses[name].Tags {
		if st.Tag == tag && st.Version == version && (st.Phase == kruisev1alpha1.ImagePhaseSucceeded || st.Phase == kruisev1alpha1.ImagePhaseFailed) {
			return true
		}
	}
	return false
}

func (s *Simulator) pull(ctx context.Context, node *corev1.Node, name, tag string, version int64) {
	image := name + ":" + tag
	start := metav1.Now()
	d, failMsg := s.plan(node, image)
	if d > 0 {
		s.write(ctx, node.Name, name, kruisev1alpha1.ImageTagStatus{Tag: tag, Version: version, Phase: kruisev1alpha1.ImagePhasePulling, StartTime: &start})
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
	end := metav1.Now()
	st := kruisev1alpha1.ImageTagStatus{Tag: tag, Version: version, StartTime: &start, CompletionTime: &end, Progress: 100,
		Phase: kruisev1alpha1.ImagePhaseSucceeded, ImageID: "sha256:" + fmt.Sprintf("%064x", len(image)+int(version))}
	if failMsg != "" {
		st.Phase, st.Progress, st.ImageID, st.Message = kruisev1alpha1.ImagePhaseFailed, 0, "", failMsg
	}
	s.write(ctx, node.Name, name, st)
}

// plan decides this pull's time and outcome from the node's annotations and the config.
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
	if re := node.Annotations[AnnotationFail]; re != "" {
		if r, err := regexp.Compile(re); err == nil && r.MatchString(image) {
			return d, NotFoundMessage(image)
		}
	}
	if s.cfg.FailImages != nil && s.cfg.FailImages.MatchString(image) {
		return d, NotFoundMessage(image)
	}
	if s.cfg.FailProbability > 0 && s.rnd.Float64() < s.cfg.FailProbability {
		return d, fmt.Sprintf("Failed to pull image reference %q: rpc error: code = Unavailable desc = connection reset by peer", image)
	}
	return d, ""
}

// write sets one tag's status and recounts, as kruise-daemon's status sync
// does. Like the daemon, it keeps trying until the write lands (the API
// server may be restarting) or the simulator stops.
func (s *Simulator) write(ctx context.Context, node, name string, st kruisev1alpha1.ImageTagStatus) {
	backoff := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Cap: 5 * time.Second, Steps: math.MaxInt32}
	_ = retry.OnError(backoff, func(error) bool { return ctx.Err() == nil }, func() error {
		ni, err := s.kruise.AppsV1alpha1().NodeImages().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if ni.Status.ImageStatuses == nil {
			ni.Status.ImageStatuses = map[string]kruisev1alpha1.ImageStatus{}
		}
		img := ni.Status.ImageStatuses[name]
		replaced := false
		for i := range img.Tags {
			if img.Tags[i].Tag == st.Tag {
				img.Tags[i], replaced = st, true
			}
		}
		if !replaced {
			img.Tags = append(img.Tags, st)
		}
		ni.Status.ImageStatuses[name] = img
		recount(ni)
		_, err = s.kruise.AppsV1alpha1().NodeImages().UpdateStatus(ctx, ni, metav1.UpdateOptions{})
		return err
	})
}

// recount sets the counters over the tags the spec asks for.
func recount(ni *kruisev1alpha1.NodeImage) {
	var desired, succeeded, failed, pulling int32
	for name, img := range ni.Spec.Images {
		for _, tag := range img.Tags {
			desired++
			for _, st := range ni.Status.ImageStatuses[name].Tags {
				if st.Tag != tag.Tag || st.Version != tag.Version {
					continue
				}
				switch st.Phase {
				case kruisev1alpha1.ImagePhaseSucceeded:
					succeeded++
				case kruisev1alpha1.ImagePhaseFailed:
					failed++
				default:
					pulling++
				}
			}
		}
	}
	ni.Status.Desired, ni.Status.Succeeded, ni.Status.Failed, ni.Status.Pulling = desired, succeeded, failed, pulling
}
