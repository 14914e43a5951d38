package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// /hostvarrun, where every kruise-daemon mounts its own node's run
// directory in a namespace of its own: made when absent (a stale link from a
// cluster that is gone replaced), a directory or a link to one used as it
// is, anything else refused and left alone; and only what the cluster made
// removed, when its last node stops.
func TestRealHostMountPoint(t *testing.T) {
	tmp := t.TempDir()
	logf := func(string, ...any) {}

	made := map[string]func(path string) error{
		"absent": func(string) error { return nil },
		"a stale link of a cluster that is gone": func(path string) error {
			return os.Symlink(filepath.Join(tmp, "imageprepull-cluster-gone", "real-node", "hostvarrun"), path)
		},
	}
	for name, setup := range made {
		t.Run(name+": a directory, removed when the last node stops", func(t *testing.T) {
			path := filepath.Join(tmp, strings.ReplaceAll(name, " ", "-"))
			if err := setup(path); err != nil {
				t.Fatal(err)
			}
			h := &realHost{hostVarRun: path}
			if err := h.mountPoint(logf); err != nil {
				t.Fatal(err)
			}
			if info, err := os.Lstat(path); err != nil || !info.IsDir() {
				t.Fatalf("%s: %v, want a directory", path, err)
			}
			h.running = 2 // two nodes hold it
			if left := h.release(); len(left) > 0 {
				t.Fatal(left)
			}
			if _, err := os.Lstat(path); err != nil {
				t.Fatalf("gone while a node still runs: %v", err)
			}
			if left := h.release(); len(left) > 0 {
				t.Fatal(left)
			}
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Fatalf("still there after the last node stopped (%v)", err)
			}
		})
	}

	used := map[string]func(path string) error{
		"a directory": func(path string) error { return os.Mkdir(path, 0o755) },
		"a link to a directory": func(path string) error {
			dir := filepath.Join(tmp, "elsewhere")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			return os.Symlink(dir, path)
		},
	}
	for name, setup := range used {
		t.Run(name+": used, left as it was", func(t *testing.T) {
			path := filepath.Join(tmp, strings.ReplaceAll(name, " ", "-"))
			if err := setup(path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Lstat(path)
			h := &realHost{hostVarRun: path}
			if err := h.mountPoint(logf); err != nil {
				t.Fatal(err)
			}
			h.running = 1
			if left := h.release(); len(left) > 0 {
				t.Fatal(left)
			}
			if after, err := os.Lstat(path); err != nil || after.Mode() != before.Mode() {
				t.Fatalf("%s was touched: %v", path, err)
			}
		})
	}

	refused := map[string]func(path string) error{
		"a file": func(path string) error { return os.WriteFile(path, nil, 0o644) },
		"someone else's link to nowhere": func(path string) error {
			return os.Symlink(filepath.Join(tmp, "nowhere"), path)
		},
	}
	for name, setup := range refused {
		t.Run(name+": refused and left alone", func(t *testing.T) {
			path := filepath.Join(tmp, strings.ReplaceAll(name, " ", "-"))
			if err := setup(path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Lstat(path)
			h := &realHost{hostVarRun: path}
			err := h.mountPoint(logf)
			if err == nil || !strings.Contains(err.Error(), "REAL_NODE=off") || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want one naming %s and REAL_NODE=off", err, path)
			}
			if after, err := os.Lstat(path); err != nil || after.Mode() != before.Mode() {
				t.Fatalf("%s was touched: %v", path, err)
			}
		})
	}
}

// Each real node has its own name and addresses, apart from the others'.
func TestRealNodeAddresses(t *testing.T) {
	seen := map[string]int{}
	for k := 1; k <= MaxRealNodes; k++ {
		a := addrsOf(k)
		for _, v := range []string{realNodeName(k), a.ip, a.podSubnet, a.bridge} {
			if other, ok := seen[v]; ok {
				t.Fatalf("node %d and node %d share %s", other, k, v)
			}
			seen[v] = k
		}
		if !strings.HasPrefix(a.bridge, strings.TrimSuffix(a.podSubnet, "0/24")) {
			t.Fatalf("node %d: bridge %s outside its pods' range %s", k, a.bridge, a.podSubnet)
		}
	}
	if realNodeName(1) != RealNodeName || addrsOf(1).ip != "10.231.0.2" || addrsOf(1).podSubnet != "10.232.0.0/24" {
		t.Fatalf("the first node is %s %+v, want real-node at the addresses docs/local-cluster.md names", realNodeName(1), addrsOf(1))
	}
}
