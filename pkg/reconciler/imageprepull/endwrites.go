package imageprepull

import (
	"context"
	"sync"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	tektonclient "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// endWrites are the runs this process has ended whose end its informer has
// not shown yet.
//
// The generated reconciler reads the run from the informer and, on a
// conflict, writes the status it computed over the API server's latest copy.
// A reconcile that ends a run often triggers another at once (deleting the
// jobs is an event): if the informer has not seen the first write yet, the
// second reconcile sees a run still going, ends it again with what is left
// (a timeout with its jobs gone), and overwrites the first end. While a run
// is here, a reconcile reads it from the API server instead (liveEnded).
type endWrites struct {
	tekton tektonclient.Interface
	unseen sync.Map // types.NamespacedName -> ending
	// isLeader tells whether this process still owns a run's key: one that
	// lost it while its ending write failed does not count the new
	// leader's end as its own.
	isLeader func(types.NamespacedName) bool
	// seen records an end once its write shows; nil records nothing.
	seen func(ending)
}

func (w *endWrites) wrote(key types.NamespacedName, e ending) { w.unseen.Store(key, e) }

// liveEnded returns the run as the API server has it when this process
// ended it and the informer's copy, run, does not show that yet; nil
// otherwise. An end the API server does not have either (its write failed)
// is forgotten: the reconcile goes on from run.
func (w *endWrites) liveEnded(ctx context.Context, run *v1beta1.CustomRun) (*v1beta1.CustomRun, error) {
	key := types.NamespacedName{Namespace: run.Namespace, Name: run.Name}
	if _, ok := w.unseen.Load(key); !ok {
		return nil, nil
	}
	live, err := w.tekton.TektonV1beta1().CustomRuns(run.Namespace).Get(ctx, run.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if live.IsDone() {
		return live, nil
	}
	w.unseen.Delete(key)
	return nil, nil
}

// eventHandler sees the informer show an end this process wrote.
func (w *endWrites) eventHandler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) {
			run, ok := obj.(*v1beta1.CustomRun)
			if !ok || !run.IsDone() {
				return
			}
			key := types.NamespacedName{Namespace: run.Namespace, Name: run.Name}
			v, ok := w.unseen.LoadAndDelete(key)
			if ok && w.seen != nil && w.isLeader(key) {
				w.seen(v.(ending))
			}
		},
		DeleteFunc: func(obj any) {
			if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tombstone.Obj
			}
			if run, ok := obj.(*v1beta1.CustomRun); ok {
				w.unseen.Delete(types.NamespacedName{Namespace: run.Namespace, Name: run.Name})
			}
		},
	}
}
