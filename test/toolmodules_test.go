package test

import (
	"os"
	"testing"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// Tekton's controller and webhook, Kubernetes' programs and etcd, and tkn
// build with the controller's settings, so that the packages they share with
// it compile once (docs/development.md): only if their tool modules require
// every module they share with the main module at the main module's version.
// A version that drifts (the main module's go.mod moved, and the tool's did
// not) builds and runs all the same, only compiles twice on a cold machine;
// this says which to `go get`. tkn's own go.mod requires some modules newer
// than the main module does (client-go among them): those stay newer.
func TestToolModulesShareTheMainModulesVersions(t *testing.T) {
	main := requires(t, "../go.mod")
	for _, tool := range []struct {
		dir string
		// least is fewer shared modules than the tool's own go.mod has: fewer
		// says its requirements were not read.
		least int
		// newerAllowed: the tool's upstream requires some shared modules
		// newer than the main module does, and Go cannot go below that.
		newerAllowed bool
	}{
		{"tekton", 50, false},
		{"kubernetes", 50, false},
		{"tkn", 40, true},
	} {
		shared := 0
		for path, v := range requires(t, "../hack/tools/"+tool.dir+"/go.mod") {
			want, ok := main[path]
			if !ok {
				continue
			}
			shared++
			if v != want && !(tool.newerAllowed && semver.Compare(v, want) > 0) {
				t.Errorf("hack/tools/%s requires %s %s, the main module %s: cd hack/tools/%s && go get %s@%s", tool.dir, path, v, want, tool.dir, path, want)
			}
		}
		if shared < tool.least {
			t.Errorf("hack/tools/%s shares %d required modules with the main module; its upstream go.mod shares more: was it read?", tool.dir, shared)
		}
	}
}

func requires(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.ParseLax(path, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range f.Require {
		out[r.Mod.Path] = r.Mod.Version
	}
	return out
}
