// Package fake injects OpenKruise's fake clientset for reconciler tests.
package fake

import (
	"context"

	"github.com/openkruise/kruise-api/client/clientset/versioned/fake"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/logging"

	"github.com/imageprepull/imageprepull/pkg/kruise/client"
)

func init() {
	injection.Fake.RegisterClient(withClient)
	injection.Fake.RegisterClientFetcher(func(ctx context.Context) interface{} { return Get(ctx) })
}

func withClient(ctx context.Context, _ *rest.Config) context.Context {
	ctx, _ = With(ctx)
	return ctx
}

// With puts a fake clientset holding objects into the context.
func With(ctx context.Context, objects ...runtime.Object) (context.Context, *fake.Clientset) {
	cs := fake.NewSimpleClientset(objects...)
	return context.WithValue(ctx, client.Key{}, cs), cs
}

// Get returns the injected fake clientset.
func Get(ctx context.Context) *fake.Clientset {
	untyped := ctx.Value(client.Key{})
	if untyped == nil {
		logging.FromContext(ctx).Panic("Unable to fetch the fake OpenKruise clientset from context.")
	}
	return untyped.(*fake.Clientset)
}
