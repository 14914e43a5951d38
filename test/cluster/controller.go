package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// Namespace is where config/ installs the controller.
const Namespace = "imageprepull"

// installAndStartController installs config/ as users do, with ko, and runs
// the controller binary from the image ko pushed as a process (the
// Deployment's pod never runs here: there is no kubelet), authenticated as the
// Deployment's ServiceAccount, so that every test exercises the shipped
// artifact and RBAC.
func (c *Cluster) installAndStartController(ctx context.Context) (err error) {
	if c.opts.PlainBuild {
		if _, err := c.Kubectl(ctx, "apply", "-f", filepath.Join(c.opts.Root, "config")); err != nil {
			return err
		}
		c.controllerBinary = filepath.Join(c.Dir, "controller")
		build := exec.CommandContext(ctx, "go", "build", "-o", c.controllerBinary, "./cmd/controller")
		build.Dir = c.opts.Root
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("building the controller: %w: %s", err, out)
		}
	} else if c.controllerBinary, err = c.koInstall(ctx); err != nil {
		return err
	}
	if _, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "crd/imageprepulls.custom.kruise.dev"); err != nil {
		return err
	}
	tok, err := c.Kube.CoreV1().ServiceAccounts(Namespace).CreateToken(ctx, "imageprepull-controller",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](48 * 3600)}},
		metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("a token for the controller's ServiceAccount: %w", err)
	}
	c.controllerKubeconfig = filepath.Join(c.Dir, "kubeconfig-controller")
	if err := c.writeKubeconfig(c.controllerKubeconfig, "system:serviceaccount:"+Namespace+":imageprepull-controller", tok.Status.Token); err != nil {
		return err
	}
	return c.StartController(ctx)
}

// StartController starts one more controller process: a replica, or the
// first one. Replicas elect leaders (Knative's buckets, config-leader-election).
func (c *Cluster) StartController(ctx context.Context) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("imageprepull-controller-%d", len(c.controllers))
	if len(c.controllers) == 0 {
		name = "imageprepull-controller"
	}
	env, args, err := c.deploymentEnv(ctx)
	if err != nil {
		return err
	}
	// Processes share the host's ports, where each pod would have its own.
	env = append(env, "PROBES_PORT="+strconv.Itoa(ports[0]), "PROFILING_PORT="+strconv.Itoa(ports[1]),
		"METRICS_PROMETHEUS_PORT="+strconv.Itoa(ports[2]))
	p, err := c.start(name, env, c.controllerBinary, append(args, "--kubeconfig="+c.controllerKubeconfig)...)
	if err != nil {
		return err
	}
	c.controllers = append(c.controllers, p)
	c.profilingPorts = append(c.profilingPorts, ports[1])
	c.metricsPorts = append(c.metricsPorts, ports[2])
	if c.prometheusURL != "" {
		if err := c.writeScrapeTargets(); err != nil {
			return err
		}
	}
	return until(ctx, 2*time.Minute, "the imageprepull controller to start", p, logContains(p, "Starting controllers"))
}

// deploymentEnv is the environment and arguments of the controller
// container of the Deployment config/ installed, as its pod would get them:
// a value, or the pod's namespace. The port variables are left out; the
// caller picks free ones.
func (c *Cluster) deploymentEnv(ctx context.Context) (env, args []string, err error) {
	d, err := c.Kube.AppsV1().Deployments(Namespace).Get(ctx, "imageprepull-controller", metav1.GetOptions{})
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

// RestartController kills every controller process and starts one afresh,
// as a new Pod would start: the dead leader's leases are deleted, or the new
// process would wait out their duration before it leads.
func (c *Cluster) RestartController(ctx context.Context) error {
	c.KillControllers()
	if err := c.Kube.CoordinationV1().Leases(Namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return err
	}
	return c.StartController(ctx)
}

// KillControllers kills every controller process at once, as a crash would (kill -9).
func (c *Cluster) KillControllers() {
	for _, p := range c.controllers {
		p.kill()
	}
}

// KillController kills the controller process whose log holds the given
// text (its identity in a lease, say) with kill -9, and reports whether one did.
func (c *Cluster) KillController(logText string) bool {
	for _, p := range c.controllers {
		if !p.exited() && logContains(p, logText)(context.Background()) == nil {
			p.kill()
			return true
		}
	}
	return false
}

// ControllerAlive reports whether a live controller process's log holds the text.
func (c *Cluster) ControllerAlive(logText string) bool {
	for _, p := range c.controllers {
		if !p.exited() && logContains(p, logText)(context.Background()) == nil {
			return true
		}
	}
	return false
}

// ControllerLog is the last lines of every controller process's log.
func (c *Cluster) ControllerLog(lines int) string {
	var b strings.Builder
	for _, p := range c.controllers {
		fmt.Fprintf(&b, "----- %s\n%s\n", p.name, p.tail(lines))
	}
	return b.String()
}

// PID is the process id of the cluster's live program of that name
// ("tekton-controller", "kruise-manager", ...), the program itself where
// isolate runs it (isolate's own forwarding is the harness's cost, not the
// program's); 0 if none.
func (c *Cluster) PID(name string) int {
	for _, p := range c.procs {
		if p.name != name || p.exited() {
			continue
		}
		pid := p.cmd.Process.Pid
		if !p.wrapped {
			return pid
		}
		all, err := procfs.AllProcs()
		if err != nil {
			return 0
		}
		for _, proc := range all {
			if st, err := proc.Stat(); err == nil && st.PPID == pid {
				return proc.PID
			}
		}
		return 0
	}
	return 0
}

// ControllerPID is the process ID of the first live controller process, or 0.
func (c *Cluster) ControllerPID() int {
	for _, p := range c.controllers {
		if !p.exited() {
			return p.cmd.Process.Pid
		}
	}
	return 0
}

// ControllerRunning reports whether a controller process is alive.
func (c *Cluster) ControllerRunning() bool {
	for _, p := range c.controllers {
		if !p.exited() {
			return true
		}
	}
	return false
}

// ControllerLogs returns the whole logs of every controller process, for a
// check over a run (no panic, say).
func (c *Cluster) ControllerLogs() (string, error) {
	var b strings.Builder
	for _, p := range c.controllers {
		data, err := os.ReadFile(p.log)
		if err != nil {
			return "", err
		}
		b.Write(data)
	}
	return b.String(), nil
}

// ControllerCPUProfile turns Knative's runtime profiling on in
// config-observability and returns a pprof CPU profile of the first live
// controller process over the given time.
func (c *Cluster) ControllerCPUProfile(ctx context.Context, d time.Duration) ([]byte, error) {
	if _, err := c.Kubectl(ctx, "-n", Namespace, "patch", "configmap", "config-observability",
		"--type=merge", "-p", `{"data":{"runtime-profiling":"enabled"}}`); err != nil {
		return nil, err
	}
	port := 0
	for i, p := range c.controllers {
		if !p.exited() {
			port = c.profilingPorts[i]
			break
		}
	}
	if port == 0 {
		return nil, errors.New("no controller process is running")
	}
	base := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", port)
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

func httpGet(ctx context.Context, url string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return body, resp.StatusCode, err
}

// AllowPrePulls binds the ClusterRole imageprepull-runner (config/) to a
// ServiceAccount of a namespace, as a namespace's admin does so that its
// pipelines' runs may pre-pull (Tekton gives runs that name none "default").
// The RoleBinding is named imageprepull-runner-SA.
func (c *Cluster) AllowPrePulls(ctx context.Context, namespace, serviceAccount string) error {
	_, err := c.Kube.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "imageprepull-runner-" + serviceAccount, Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "imageprepull-runner"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: namespace}},
	}, metav1.CreateOptions{})
	return err
}

// AllowServiceAccount binds a Role named name, holding rules, to a
// ServiceAccount of namespace: what a namespace's admin grants a run's
// ServiceAccount (its workload to read, say).
func (c *Cluster) AllowServiceAccount(ctx context.Context, namespace, serviceAccount, name string, rules ...rbacv1.PolicyRule) error {
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Rules: rules}
	if _, err := c.Kube.RbacV1().Roles(namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := c.Kube.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: namespace}},
	}, metav1.CreateOptions{})
	return err
}

// ControllerMetrics is what Prometheus would scrape from the first live
// controller process: its /metrics, in the text format.
func (c *Cluster) ControllerMetrics(ctx context.Context) (string, error) {
	all, err := c.ReplicaMetrics(ctx)
	if err != nil {
		return "", err
	}
	if len(all) == 0 {
		return "", errors.New("no controller process is running")
	}
	return all[0].Text, nil
}

// Replica is one live controller process's scrape.
type Replica struct {
	Started time.Time
	Text    string
}

// ReplicaMetrics scrapes every live controller process's /metrics.
func (c *Cluster) ReplicaMetrics(ctx context.Context) ([]Replica, error) {
	var out []Replica
	for i, p := range c.controllers {
		if p.exited() {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(c.metricsPorts[i])+"/metrics", nil)
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
		out = append(out, Replica{Started: p.started, Text: string(b)})
	}
	return out, nil
}
