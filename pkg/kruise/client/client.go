// Package client injects OpenKruise's clientset the way injection-gen's
// packages inject ours: kruise-api ships a clientset but no Knative injection.
package client

import (
	"context"

	kruiseclient "github.com/openkruise/kruise-api/client/clientset/versioned"
	"k8s.io/client-go/rest"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/logging"
)

func init() {
	injection.Default.RegisterClient(withClientFromConfig)
	injection.Default.RegisterClientFetcher(func(ctx context.Context) interface{} { return Get(ctx) })
}

// Key is the context key of the injected clientset.
type Key struct{}

func withClientFromConfig(ctx context.Context, cfg *rest.Config) context.Context {
	return context.WithValue(ctx, Key{}, kruiseclient.NewForConfigOrDie(cfg))
}

// Get returns the injected OpenKruise clientset.
func Get(ctx context.Context) kruiseclient.Interface {
	untyped := ctx.Value(Key{})
	if untyped == nil {
		logging.FromContext(ctx).Panic("Unable to fetch github.com/openkruise/kruise-api/client/clientset/versioned.Interface from context.")
	}
	return untyped.(kruiseclient.Interface)
}
