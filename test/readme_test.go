package test

import (
	"os"
	"path/filepath"
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
