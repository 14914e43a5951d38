package cluster

import (
	"context"
	"path/filepath"
)

// WatchOnly is the process name of test/cmd/watchonly, a custom-task
// controller that watches what ours watches and does nothing (for PID).
const WatchOnly = "watch-only"

// StartWatchOnly builds test/cmd/watchonly and runs it beside the
// controller, as the controller runs (its Deployment's env, its
// ServiceAccount; not its args, which are the controller's flags): the bench
// measures its CPU as the floor of ours.
func (r *Replicas) StartWatchOnly(ctx context.Context) error {
	bin := filepath.Join(r.h.dir, WatchOnly)
	if err := r.h.tools.GoBuild(ctx, "./test/cmd/watchonly", bin); err != nil {
		return err
	}
	_, _, err := r.runAsController(ctx, WatchOnly, bin, false)
	return err
}
