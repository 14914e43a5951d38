// Command pause is the real node's pod sandbox image (containerd's
// sandbox_image): it holds the pod's namespaces until it is stopped. The
// local cluster builds it with ko into its own registry, as the node can
// reach no other (registry.k8s.io/pause is what clusters use).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
