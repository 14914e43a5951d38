package v1alpha1

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"knative.dev/pkg/apis"
)

// Which nodes of a workload pull (spec.nodes).
const (
	// NodesRunning are the nodes the workload's pods are scheduled on now.
	NodesRunning = "running"
	// NodesEligible are the nodes the workload's pod template could be
	// scheduled on: where a rollout's new pods may land.
	NodesEligible = "eligible"
)

// WorkloadKind is a kind of workload a run may target.
// +k8s:deepcopy-gen=false
type WorkloadKind struct {
	schema.GroupVersionResource
	Kind string
	// names are what kubectl takes for it: singular, plural, short names.
	names []string
	// DaemonSet kinds schedule their pods by their own rules: they tolerate
	// unschedulable and not-ready nodes.
	DaemonSet bool
}

// WorkloadKinds are the kinds spec.workload may name: apps/v1's, and
// OpenKruise's CloneSet, Advanced StatefulSet and Advanced DaemonSet.
var WorkloadKinds = []WorkloadKind{
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "Deployment", []string{"deployment", "deployments", "deploy"}, false},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}, "StatefulSet", []string{"statefulset", "statefulsets", "sts"}, false},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}, "DaemonSet", []string{"daemonset", "daemonsets", "ds"}, true},
	{schema.GroupVersionResource{Group: "apps.kruise.io", Version: "v1alpha1", Resource: "clonesets"}, "CloneSet", []string{"cloneset", "clonesets", "clone"}, false},
	{schema.GroupVersionResource{Group: "apps.kruise.io", Version: "v1beta1", Resource: "statefulsets"}, "StatefulSet", []string{"statefulset", "statefulsets", "asts"}, false},
	{schema.GroupVersionResource{Group: "apps.kruise.io", Version: "v1alpha1", Resource: "daemonsets"}, "DaemonSet", []string{"daemonset", "daemonsets", "daemon", "ads"}, true},
}

// WorkloadRef is a workload of the run's namespace.
// +k8s:deepcopy-gen=false
type WorkloadRef struct {
	WorkloadKind
	Name string
}

// String is the reference as kubectl prints it: deployment.apps/web.
func (w WorkloadRef) String() string {
	return strings.ToLower(w.Kind) + "." + w.Group + "/" + w.Name
}

// ParseWorkload reads KIND[.GROUP]/NAME as kubectl takes it
// (deployment/web, deploy/web, statefulset.apps.kruise.io/db). A bare kind
// means apps, as in kubectl; OpenKruise's CloneSet is found without its
// group too, since no other group has it here.
func ParseWorkload(s string) (WorkloadRef, *apis.FieldError) {
	kindGroup, name, ok := strings.Cut(s, "/")
	if !ok || kindGroup == "" || name == "" {
		return WorkloadRef{}, apis.ErrInvalidValue(shown(s), apis.CurrentField, "a workload is KIND[.GROUP]/NAME, such as deployment/web")
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return WorkloadRef{}, apis.ErrInvalidValue(shown(s), apis.CurrentField, "name: "+strings.Join(errs, "; "))
	}
	kind, group, _ := strings.Cut(strings.ToLower(kindGroup), ".")
	for _, k := range WorkloadKinds {
		if !slices.Contains(k.names, kind) || (group != "" && group != k.Group) || (group == "" && k.Group != "apps" && hasAppsKind(kind)) {
			continue
		}
		return WorkloadRef{WorkloadKind: k, Name: name}, nil
	}
	return WorkloadRef{}, apis.ErrInvalidValue(shown(s), apis.CurrentField, fmt.Sprintf("kind %s is not one of %s", shown(kindGroup), knownWorkloadKinds()))
}

func hasAppsKind(name string) bool {
	for _, k := range WorkloadKinds {
		if k.Group == "apps" && slices.Contains(k.names, name) {
			return true
		}
	}
	return false
}

func knownWorkloadKinds() string {
	var names []string
	for _, k := range WorkloadKinds {
		names = append(names, strings.ToLower(k.Kind)+"."+k.Group)
	}
	return strings.Join(names, ", ")
}

// ValidateNodes checks spec.nodes.
func ValidateNodes(nodes string) *apis.FieldError {
	if nodes != "" && nodes != NodesRunning && nodes != NodesEligible {
		return apis.ErrInvalidValue(shown(nodes), apis.CurrentField, fmt.Sprintf("must be %s or %s", NodesRunning, NodesEligible))
	}
	return nil
}
