package test

import (
	"os"
	"testing"

	"golang.org/x/mod/modfile"
)

// Tekton's controller and webhook build with the controller's settings, so
// that the packages they share compile once (docs/development.md): only if
// hack/tools/tekton requires every module it shares with the main module at
// the main module's version. A version that drifts (the main module's
// go.mod moved, and the tool's did not) builds and runs all the same, only
// compiles twice on a cold machine; this says which to `go get`.
func TestTektonToolSharesTheMainModulesVersions(t *testing.T) {
	main := requires(t, "../go.mod")
	tool := requires(t, "../hack/tools/tekton/go.mod")
	shared := 0
	for path, v := range tool {
		want, ok := main[path]
		if !ok {
			continue
		}
		shared++
		if v != want {
			t.Errorf("hack/tools/tekton requires %s %s, the main module %s: cd hack/tools/tekton && go get %s@%s", path, v, want, path, want)
		}
	}
	if shared < 50 {
		t.Errorf("hack/tools/tekton shares %d required modules with the main module; Tekton's own go.mod shares more: was it read?", shared)
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
