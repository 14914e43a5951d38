package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The real node's /hostvarrun link: made when absent, a stale one from a
// cluster that is gone replaced, anything else refused and left alone, and
// only our own link removed on teardown.
func TestRealNodeLink(t *testing.T) {
	tmp := t.TempDir()
	nodeDir := func(cluster string) string { return filepath.Join(tmp, cluster, "real-node") }
	logf := func(string, ...any) {}

	t.Run("absent: made, and removed on stop", func(t *testing.T) {
		rn := &RealNode{dir: nodeDir("imageprepull-cluster-1"), hostVarRun: filepath.Join(tmp, "hvr1")}
		run := filepath.Join(rn.dir, "hostvarrun")
		if err := os.MkdirAll(run, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := rn.link(run, logf); err != nil {
			t.Fatal(err)
		}
		if target, err := os.Readlink(rn.hostVarRun); err != nil || target != run {
			t.Fatalf("link -> %q (%v), want %q", target, err, run)
		}
		if err := rn.stop(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(rn.hostVarRun); !os.IsNotExist(err) {
			t.Fatalf("the link is still there after stop (%v)", err)
		}
	})

	t.Run("a stale link of a cluster that is gone: replaced", func(t *testing.T) {
		path := filepath.Join(tmp, "hvr2")
		if err := os.Symlink(filepath.Join(nodeDir("imageprepull-cluster-gone"), "hostvarrun"), path); err != nil {
			t.Fatal(err)
		}
		rn := &RealNode{dir: nodeDir("imageprepull-cluster-2"), hostVarRun: path}
		run := filepath.Join(rn.dir, "hostvarrun")
		if err := rn.link(run, logf); err != nil {
			t.Fatal(err)
		}
		if target, _ := os.Readlink(path); target != run {
			t.Fatalf("link -> %q, want %q", target, run)
		}
	})

	for name, setup := range map[string]func(path string) error{
		"a directory": func(path string) error { return os.Mkdir(path, 0o755) },
		"a link that is in use": func(path string) error {
			live := filepath.Join(tmp, "imageprepull-cluster-live", "real-node", "hostvarrun")
			if err := os.MkdirAll(live, 0o755); err != nil {
				return err
			}
			return os.Symlink(live, path)
		},
		"someone else's link": func(path string) error { return os.Symlink("/var/run", path) },
	} {
		t.Run(name+": refused and left alone", func(t *testing.T) {
			path := filepath.Join(tmp, strings.ReplaceAll(name, " ", "-"))
			if err := setup(path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Lstat(path)
			rn := &RealNode{dir: nodeDir("imageprepull-cluster-3"), hostVarRun: path}
			err := rn.link(filepath.Join(rn.dir, "hostvarrun"), logf)
			if err == nil || !strings.Contains(err.Error(), "REAL_NODE=off") || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want one naming %s and REAL_NODE=off", err, path)
			}
			if err := rn.stop(); err != nil {
				t.Fatal(err)
			}
			after, err := os.Lstat(path)
			if err != nil || after.Mode() != before.Mode() {
				t.Fatalf("%s was touched: %v", path, err)
			}
		})
	}
}
