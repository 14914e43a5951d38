// Command demo-app is the hello-world service the seed's pipeline builds and
// pushes; `make demo` builds it with ko into the local registry, tagged
// <branch>-<short sha> as the seed tags it, and pre-pulls that tag.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "hello, world")
	})
	srv := &http.Server{Addr: ":" + port, ReadHeaderTimeout: 0}
	log.Fatal(srv.ListenAndServe())
}
