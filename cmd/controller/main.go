// Command controller runs the ImagePrePull custom task controller.
package main

import (
	"fmt"
	"log"
	"os"
	"strconv"

	"knative.dev/pkg/injection"
	"knative.dev/pkg/injection/sharedmain"
	"knative.dev/pkg/signals"

	"github.com/openkruise/imageprepull/pkg/reconciler/imageprepull"
)

func main() {
	port, err := probesPort()
	if err != nil {
		log.Fatal(err)
	}
	ctx := signals.NewContext()
	// sharedmain always serves probes on :8080, which Tekton's controller also
	// takes; serve them on PROBES_PORT instead, as Tekton's controller does.
	ctx = sharedmain.WithHealthProbesDisabled(ctx)
	go func() {
		if err := injection.ServeHealthProbes(ctx, port); err != nil {
			log.Fatalf("probes server on port %d: %v", port, err)
		}
	}()
	sharedmain.MainWithContext(ctx, imageprepull.ControllerName, imageprepull.NewController)
}

// probesPort reads PROBES_PORT; the Deployment's probes use the default.
func probesPort() (int, error) {
	v := os.Getenv("PROBES_PORT")
	if v == "" {
		return injection.HealthCheckDefaultPort, nil
	}
	port, err := strconv.Atoi(v)
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("PROBES_PORT=%q is not a port number", v)
	}
	return port, nil
}
