// Command demo-app is the hello-world service the seed's pipeline builds,
// tests and pushes, tagged <branch>-<short sha> as the seed tags it.
// examples/local-demo's pipeline builds it inside a pod, with go and ko, from
// this directory (go.mod aside: in this repository it builds as a package of
// the main module); deployment.yaml is how it rolls out there.
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
	http.HandleFunc("/", hello)
	srv := &http.Server{Addr: ":" + port, ReadHeaderTimeout: 0}
	log.Fatal(srv.ListenAndServe())
}

// hello greets every request.
func hello(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintln(w, "hello, world")
}
