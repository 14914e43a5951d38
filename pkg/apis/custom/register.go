// Package custom holds the API group of the ImagePrePull custom task.
package custom

const (
	// GroupName is the API group Tekton's taskRef.apiVersion names.
	GroupName = "custom.kruise.dev"
)
