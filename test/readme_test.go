package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openkruise/imageprepull/internal/readme"
)

// README's examples are the files in examples/, and its params table is the
// code's: `go run ./hack/readme` makes them so.
func TestReadmeIsGenerated(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := readme.Render("..", string(b))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Error("README.md's generated parts are stale: run go run ./hack/readme")
	}
	if n := strings.Count(string(b), "<!-- example: "); n < 5 {
		t.Errorf("README shows %d examples", n)
	}
}
