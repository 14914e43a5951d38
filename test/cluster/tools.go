package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Tools are the local cluster's programs, built by hack/build-tools.sh from
// pinned sources into its cache, and found there: the one way the harness,
// e2e, the bench and the demo find and run them.
type Tools struct {
	root string
	// kruise is the OpenKruise release whose manager and daemon Path finds.
	kruise string
}

// NewTools finds the tools of the repository at root, OpenKruise's of
// kruiseVersion ("" for hack/build-tools.sh's default, or KRUISE_VERSION).
func NewTools(root, kruiseVersion string) (*Tools, error) {
	t := &Tools{root: root, kruise: kruiseVersion}
	if t.kruise == "" {
		out, err := t.script("--kruise-version").Output()
		if err != nil {
			return nil, fmt.Errorf("hack/build-tools.sh --kruise-version: %w", err)
		}
		t.kruise = strings.TrimSpace(string(out))
	}
	return t, nil
}

// KruiseVersion is the OpenKruise release of the manager and daemon.
func (t *Tools) KruiseVersion() string { return t.kruise }

func (t *Tools) script(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(t.root, "hack", "build-tools.sh"), args...)
	cmd.Env = append(os.Environ(), "KRUISE_VERSION="+t.kruise)
	return cmd
}

// Build builds what is missing of the named tools (hack/build-tools.sh's
// names), printing its progress to standard error.
func (t *Tools) Build(ctx context.Context, names ...string) error {
	cmd := t.script(names...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
}

// Path is where a built tool is; its bare name when it is not built, for
// exec to report it.
func (t *Tools) Path(name string) string {
	out, err := t.script("--path", name).Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		return name
	}
	return string(bytes.TrimSpace(out))
}

// ModuleDir is where the module cache holds a module's source, at the
// version the tools module hack/tools/<toolsModule> requires.
func (t *Tools) ModuleDir(ctx context.Context, toolsModule, module string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = filepath.Join(t.root, "hack", "tools", toolsModule)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// GoBuild builds a package of the repository (./test/cmd/isolate, say) into
// dest.
func (t *Tools) GoBuild(ctx context.Context, pkg, dest string) error {
	build := exec.CommandContext(ctx, "go", "build", "-o", dest, pkg)
	build.Dir = t.root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %w: %s", pkg, err, out)
	}
	return nil
}
