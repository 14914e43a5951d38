package cluster

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// StartController starts (or restarts) the controller process.
func (c *Cluster) StartController(ctx context.Context) error {
	if c.controller != nil {
		c.controller.stop(10 * time.Second)
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	p, err := c.start("imageprepull-controller", []string{
		"SYSTEM_NAMESPACE=" + Namespace, "CONFIG_LOGGING_NAME=config-logging",
		"CONFIG_OBSERVABILITY_NAME=config-observability", "CONFIG_LEADERELECTION_NAME=config-leader-election",
		"METRICS_DOMAIN=custom.kruise.dev/imageprepull",
		"PROBES_PORT=" + strconv.Itoa(ports[0]), "PROFILING_PORT=" + strconv.Itoa(ports[1]),
		"METRICS_PROMETHEUS_PORT=" + strconv.Itoa(ports[2]),
	}, c.controllerBinary, "--kubeconfig="+c.controllerKubeconfig)
	if err != nil {
		return err
	}
	c.controller = p
	return until(ctx, 2*time.Minute, "the imageprepull controller to start", p, logContains(p, "Starting controllers"))
}

// ControllerLog is the last lines of the controller's log.
func (c *Cluster) ControllerLog(lines int) string { return c.controller.tail(lines) }

// ControllerRunning reports whether the controller process is alive.
func (c *Cluster) ControllerRunning() bool { return c.controller != nil && !c.controller.exited() }
