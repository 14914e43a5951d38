// Command readme rewrites README.md's generated parts (internal/readme).
// Run it from the repository root: go run ./hack/readme
package main

import (
	"log"
	"os"

	"github.com/openkruise/imageprepull/internal/readme"
)

func main() {
	b, err := os.ReadFile("README.md")
	if err != nil {
		log.Fatal(err)
	}
	out, err := readme.Render(".", string(b))
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("README.md", []byte(out), 0o644); err != nil {
		log.Fatal(err)
	}
}
