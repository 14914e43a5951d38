package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imageprepull/imageprepull/internal/readme"
)

// The examples README.md and docs/ show are the files in examples/, and
// their tables are the code's: `go run ./hack/readme` makes them so.
func TestDocsAreGenerated(t *testing.T) {
	docs, err := readme.RenderAll("..")
	if err != nil {
		t.Fatal(err)
	}
	examples := 0
	for path, want := range docs {
		b, err := os.ReadFile(filepath.Join("..", path))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want {
			t.Errorf("%s's generated parts are stale: run go run ./hack/readme", path)
		}
		examples += strings.Count(want, "<!-- example: ")
	}
	if examples < 6 {
		t.Errorf("the docs show %d examples", examples)
	}
}

// Every case make e2e-kruise-previous names is an e2e test: a misspelt one
// would run nothing on OpenKruise's previous line and pass.
func TestKruisePreviousCasesExist(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)KRUISE_PREVIOUS_CASES := (.*?)\n[a-z]`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("no KRUISE_PREVIOUS_CASES in the Makefile")
	}
	var e2e strings.Builder
	files, _ := filepath.Glob(filepath.Join("e2e", "*_test.go"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		e2e.Write(b)
	}
	names := strings.FieldsFunc(string(m[1]), func(r rune) bool { return r == '|' || r == '\\' || r == ' ' || r == '\n' })
	if len(names) < 10 {
		t.Fatalf("KRUISE_PREVIOUS_CASES names %d cases: %v", len(names), names)
	}
	for _, name := range names {
		if !strings.Contains(e2e.String(), "func "+name+"(t *testing.T)") {
			t.Errorf("make e2e-kruise-previous names %s, which no e2e test is", name)
		}
	}
}
