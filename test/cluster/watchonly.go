package cluster

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
)

// WatchOnly is the process name of test/cmd/watchonly, a custom-task
// controller that watches what ours watches and does nothing (for PID).
const WatchOnly = "watch-only"

// StartWatchOnly builds test/cmd/watchonly and runs it beside the
// controller, as the controller runs (its Deployment's env, its
// ServiceAccount; not its args, which are the controller's flags): the bench
// measures its CPU as the floor of ours.
func (c *Cluster) StartWatchOnly(ctx context.Context) error {
	bin := filepath.Join(c.Dir, WatchOnly)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./test/cmd/watchonly")
	build.Dir = c.opts.Root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building test/cmd/watchonly: %w: %s", err, out)
	}
	_, _, err := c.runAsController(ctx, WatchOnly, bin, false)
	return err
}
