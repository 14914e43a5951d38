// Command readme rewrites the generated parts of README.md and docs/*.md
// (internal/readme). Run it from the repository root: go run ./hack/readme
package main

import (
	"log"
	"os"

	"github.com/imageprepull/imageprepull/internal/readme"
)

func main() {
	docs, err := readme.RenderAll(".")
	if err != nil {
		log.Fatal(err)
	}
	for path, text := range docs {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
