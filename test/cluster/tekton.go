package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// startTekton installs Tekton Pipelines' CRDs and config maps from its
// module, at the version go.mod uses, and starts its controller. Its
// admission webhook does not run, so no defaults (timeouts) are applied.
func (c *Cluster) startTekton(ctx context.Context) error {
	dir, err := c.moduleDir(ctx, "tekton", "github.com/tektoncd/pipeline")
	if err != nil {
		return err
	}
	if err := c.createNamespace(ctx, "tekton-pipelines"); err != nil {
		return err
	}
	if _, err := c.Kubectl(ctx, "apply", "--server-side", "-f", filepath.Join(dir, "config", "300-crds")); err != nil {
		return err
	}
	configs, err := filepath.Glob(filepath.Join(dir, "config", "config-*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range configs {
		if _, err := c.Kubectl(ctx, "apply", "-f", f); err != nil {
			return err
		}
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	p, err := c.start("tekton-controller", []string{
		"SYSTEM_NAMESPACE=tekton-pipelines", "METRICS_DOMAIN=tekton.dev/pipeline",
		"CONFIG_LOGGING_NAME=config-logging", "CONFIG_OBSERVABILITY_NAME=config-observability",
		"CONFIG_LEADERELECTION_NAME=config-leader-election-controller",
		"PROBES_PORT=" + strconv.Itoa(ports[0]), "PROFILING_PORT=" + strconv.Itoa(ports[1]),
		"METRICS_PROMETHEUS_PORT=" + strconv.Itoa(ports[2]),
	}, c.tool("tekton-controller"), append([]string{
		"-kubeconfig", c.Kubeconfig, "-disable-ha",
		// No pod ever runs here: the images of Tekton's helper containers are never pulled.
		"-entrypoint-image", "x", "-nop-image", "x", "-sidecarlogresults-image", "x",
		"-workingdirinit-image", "x", "-shell-image", "x", "-shell-image-win", "x"}, c.opts.TektonArgs...)...)
	if err != nil {
		return err
	}
	return until(ctx, 2*time.Minute, "the Tekton controller to start its controllers", p, logContains(p, "Starting controllers"))
}

func logContains(p *process, s string) func(context.Context) error {
	return func(context.Context) error {
		b, err := os.ReadFile(p.log)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), s) {
			return errNotYet(s)
		}
		return nil
	}
}

type errNotYet string

func (e errNotYet) Error() string { return "no " + strconv.Quote(string(e)) + " in the log yet" }
