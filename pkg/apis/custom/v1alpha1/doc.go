// Package v1alpha1 is the v1alpha1 version of the custom.kruise.dev API.
// +k8s:deepcopy-gen=package
// +groupName=custom.kruise.dev
package v1alpha1
