package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Replicas are the controller's processes, as the Deployment's pods would
// be: started from the binary config/ installed, with the Deployment's env,
// each with its own ports; they elect leaders (Knative's buckets,
// config-leader-election).
type Replicas struct {
	h   *host
	api *api
	// binary is the controller binary config/ installed; kubeconfig
	// authenticates as the Deployment's ServiceAccount.
	binary, kubeconfig string
	// prometheus, once started, scrapes every replica.
	prometheus *Prometheus

	all []*replica
}

// replica is one controller process and the ports it serves on the host.
type replica struct {
	*process
	profilingPort, metricsPort int
}

// Start starts one more controller process: a replica, or the first one.
func (r *Replicas) Start(ctx context.Context) error {
	name := fmt.Sprintf("imageprepull-controller-%d", len(r.all))
	if len(r.all) == 0 {
		name = "imageprepull-controller"
	}
	p, ports, err := r.runAsController(ctx, name, r.binary, true)
	if p == nil {
		return err
	}
	r.all = append(r.all, &replica{process: p, profilingPort: ports.profiling, metricsPort: ports.metrics})
	if r.prometheus.URL != "" && err == nil {
		err = r.prometheus.writeScrapeTargets()
	}
	return err
}

// Stop stops every controller process with SIGTERM, as a Deployment's pods
// are stopped.
func (r *Replicas) Stop() {
	for _, p := range r.live() {
		p.stop(30 * time.Second)
	}
}

// controllerPorts are the ports a controller process serves on the host.
type controllerPorts struct{ probes, profiling, metrics int }

// runAsController runs bin as the controller's Deployment runs its container:
// its env (and args, with deploymentArgs), authenticated as its
// ServiceAccount, with ports of its own (processes share the host's ports,
// where each pod would have its own). The process is returned even when it
// did not start, for the caller to keep.
func (r *Replicas) runAsController(ctx context.Context, name, bin string, deploymentArgs bool) (*process, controllerPorts, error) {
	free, err := freePorts(3)
	if err != nil {
		return nil, controllerPorts{}, err
	}
	ports := controllerPorts{probes: free[0], profiling: free[1], metrics: free[2]}
	env, args, err := r.deploymentEnv(ctx)
	if err != nil {
		return nil, ports, err
	}
	if !deploymentArgs {
		args = nil
	}
	env = append(env, "PROBES_PORT="+strconv.Itoa(ports.probes), "PROFILING_PORT="+strconv.Itoa(ports.profiling),
		"METRICS_PROMETHEUS_PORT="+strconv.Itoa(ports.metrics))
	p, err := r.h.run(ctx, program{
		name: name, bin: bin, env: env, args: append(args, "--kubeconfig="+r.kubeconfig),
		readyLog: "Starting controllers", readyWithin: 2 * time.Minute, waitingFor: name + " to start",
	})
	return p, ports, err
}

// Restart kills every controller process and starts one afresh, as a new
// Pod would start: the dead leader's leases are deleted, or the new process
// would wait out their duration before it leads.
func (r *Replicas) Restart(ctx context.Context) error {
	r.KillAll()
	if err := r.api.kube.CoordinationV1().Leases(Namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return err
	}
	return r.Start(ctx)
}

// KillAll kills every controller process at once, as a crash would (kill -9).
func (r *Replicas) KillAll() {
	for _, p := range r.all {
		p.kill()
	}
}

// live are the replicas whose process runs.
func (r *Replicas) live() []*replica {
	var out []*replica
	for _, p := range r.all {
		if !p.exited() {
			out = append(out, p)
		}
	}
	return out
}

// logging is the first live replica whose log holds the text.
func (r *Replicas) logging(text string) *replica {
	for _, p := range r.live() {
		if logContains(p.process, text)(context.Background()) == nil {
			return p
		}
	}
	return nil
}

// Kill kills the controller process whose log holds the given text (its
// identity in a lease: the leader, say) with kill -9, and reports whether
// one did.
func (r *Replicas) Kill(logText string) bool {
	p := r.logging(logText)
	if p != nil {
		p.kill()
	}
	return p != nil
}

// Alive reports whether a live controller process's log holds the text.
func (r *Replicas) Alive(logText string) bool { return r.logging(logText) != nil }

// Running reports whether a controller process is alive.
func (r *Replicas) Running() bool { return len(r.live()) > 0 }

// PID is the process ID of the first live controller process, or 0.
func (r *Replicas) PID() int {
	if live := r.live(); len(live) > 0 {
		return live[0].cmd.Process.Pid
	}
	return 0
}

// Tail is the last lines of every controller process's log.
func (r *Replicas) Tail(lines int) string {
	var b strings.Builder
	for _, p := range r.all {
		fmt.Fprintf(&b, "----- %s\n%s\n", p.name, p.tail(lines))
	}
	return b.String()
}

// Logs returns the whole logs of every controller process, for a check over
// a run (no panic, say).
func (r *Replicas) Logs() (string, error) {
	var b strings.Builder
	for _, p := range r.all {
		data, err := os.ReadFile(p.log)
		if err != nil {
			return "", err
		}
		b.Write(data)
	}
	return b.String(), nil
}

// CPUProfile turns Knative's runtime profiling on in config-observability
// and returns a pprof CPU profile of the first live controller process over
// the given time.
func (r *Replicas) CPUProfile(ctx context.Context, d time.Duration) ([]byte, error) {
	if _, err := r.api.kubectl(ctx, "-n", Namespace, "patch", "configmap", "config-observability",
		"--type=merge", "-p", `{"data":{"runtime-profiling":"enabled"}}`); err != nil {
		return nil, err
	}
	live := r.live()
	if len(live) == 0 {
		return nil, errors.New("no controller process is running")
	}
	base := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", live[0].profilingPort)
	// The controller sees the ConfigMap change through its watch: until then it answers 404.
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, status, err := httpGet(ctx, base)
		return status == http.StatusOK, err
	})
	if err != nil {
		return nil, fmt.Errorf("turning profiling on: %w", err)
	}
	profile, status, err := httpGet(ctx, fmt.Sprintf("%sprofile?seconds=%d", base, int(d.Seconds())))
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("the CPU profile: HTTP %d", status)
	}
	return profile, err
}

// Scrape is one live controller process's /metrics.
type Scrape struct {
	Started time.Time
	Text    string
}

// Scrape reads every live controller process's /metrics, as Prometheus would.
func (r *Replicas) Scrape(ctx context.Context) ([]Scrape, error) {
	var out []Scrape
	for _, p := range r.live() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(p.metricsPort)+"/metrics", nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET /metrics of %s: %s %v", p.name, resp.Status, err)
		}
		out = append(out, Scrape{Started: p.started, Text: string(b)})
	}
	return out, nil
}

// Metrics is the first live controller process's /metrics.
func (r *Replicas) Metrics(ctx context.Context) (string, error) {
	all, err := r.Scrape(ctx)
	if err != nil {
		return "", err
	}
	if len(all) == 0 {
		return "", errors.New("no controller process is running")
	}
	return all[0].Text, nil
}

// metricsPorts are every controller process's metrics ports, dead ones'
// included (Prometheus marks them down).
func (r *Replicas) metricsPorts() []int {
	var out []int
	for _, p := range r.all {
		out = append(out, p.metricsPort)
	}
	return out
}

// deploymentEnv is the environment and arguments of the controller
// container of the Deployment config/ installed, as its pod would get them:
// a value, or the pod's namespace. The port variables are left out; the
// caller picks free ones.
func (r *Replicas) deploymentEnv(ctx context.Context) (env, args []string, err error) {
	d, err := r.api.kube.AppsV1().Deployments(Namespace).Get(ctx, "imageprepull-controller", metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("the controller's Deployment: %w", err)
	}
	ctr := d.Spec.Template.Spec.Containers[0]
	for _, e := range ctr.Env {
		switch {
		case strings.HasSuffix(e.Name, "_PORT"):
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env = append(env, e.Name+"="+d.Namespace)
		default:
			return nil, nil, fmt.Errorf("the controller's Deployment sets %s from %+v, which the local cluster cannot give a process", e.Name, e.ValueFrom)
		}
	}
	return env, ctr.Args, nil
}
