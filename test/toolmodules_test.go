package test

import (
	"os"
	"testing"

	"golang.org/x/mod/modfile"
)

// Tekton's controller and webhook, and Kubernetes' programs and etcd, build
// with the controller's settings, so that the packages they share with it
// compile once (docs/development.md): only if their tool modules require every
// module they share with the main module at the main module's version. A
// version that drifts (the main module's go.mod moved, and the tool's did
// not) builds and runs all the same, only compiles twice on a cold machine;
// this says which to `go get`.
func TestToolModulesShareTheMainModulesVersions(t *testing.T) {
	main := requires(t, "../go.mod")
	for _, tool := range []struct {
		dir string
		// least is fewer shared modules than the tool's own go.mod has: fewer
		// says its requirements were not read.
		least int
	}{
		{"tekton", 50},
		{"kubernetes", 50},
	} {
		shared := 0
		for path, v := range requires(t, "../hack/tools/"+tool.dir+"/go.mod") {
			want, ok := main[path]
			if !ok {
				continue
			}
			shared++
			if v != want {
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
