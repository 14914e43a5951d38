// Command controller runs the ImagePrePull custom task controller.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"

	"k8s.io/utils/clock"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/injection/sharedmain"
	"knative.dev/pkg/signals"

	"github.com/imageprepull/imageprepull/pkg/reconciler/imageprepull"
)

// Defaults sized for a thousand runs in flight: Knative's (2 workers,
// client-go's 5 requests per second) would take minutes to catch up after a
// restart or a failover with a few hundred CustomRuns to look at. The
// workers bound how many requests are in flight, and the API server's
// Priority and Fairness shares it out; the client's own limit is a safety
// net that must not be the bottleneck: a thousand runs of three images
// each make three thousand ImagePullJobs at once, and with a low limit every
// worker waits on the limiter while runs whose jobs completed wait behind
// them (docs/benchmarks.md measured it).
const (
	defaultThreads = 16
	defaultQPS     = 200
	defaultBurst   = 400
)

func main() {
	threads := defaultThreads
	if v, ok := os.LookupEnv("K_THREADS_PER_CONTROLLER"); ok { // Knative's knob, still honoured
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			log.Fatalf("K_THREADS_PER_CONTROLLER=%q is not a positive number", v)
		}
		threads = n
	}
	flag.IntVar(&controller.DefaultThreadsPerController, "threads-per-controller", threads,
		"Workers reconciling CustomRuns at once (default K_THREADS_PER_CONTROLLER, else 16).")
	opts := imageprepull.Options{}
	flag.DurationVar(&opts.ProgressInterval, "progress-interval", imageprepull.DefaultProgressInterval,
		"Least time between two progress writes of a running CustomRun's status; 0 writes every change.")
	// Parses the flags above and Knative's own (-kube-api-qps, -kube-api-burst, ...).
	cfg := injection.ParseAndGetRESTConfigOrDie()
	if cfg.QPS == 0 {
		cfg.QPS = defaultQPS
	}
	if cfg.Burst == 0 {
		cfg.Burst = defaultBurst
	}

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
	sharedmain.MainWithConfig(ctx, imageprepull.ControllerName, cfg, imageprepull.NewController(opts, clock.RealClock{}))
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
