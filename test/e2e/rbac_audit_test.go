//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/imageprepull/imageprepull/test/cluster"
)

// notProvoked are the rules config/ grants that the suite cannot make the
// controller use, each with why it is granted anyway.
var notProvoked = map[string]string{
	// Checked by the OwnerReferencesPermissionEnforcement admission plugin
	// (enabled on the local API server) when a job's ownerReference sets
	// blockOwnerDeletion: an authorization check inside admission, which
	// the audit log does not record as the controller's request. A job
	// created at all shows it holds.
	"update tekton.dev/customruns/finalizers": "blockOwnerDeletion on the jobs' ownerReference",
	// The generated reconciler reads a run again after its status write met
	// a conflict (409): the bench sees it; the suite only now and then.
	"get tekton.dev/customruns": "a status write that met a conflict",
	// Read after AlreadyExists, or when the informer's cache lags the
	// controller's own create: the chaos suite and the bench see it.
	"get apps.kruise.io/imagepulljobs": "a job that exists but is not in the cache yet",
	// client-go's event recorder patches an Event it sent before when the
	// same one repeats (aggregation): the bench sees it under load.
	"patch /events": "a repeated Event",
	// Informers start with a streaming watch (client-go's WatchListClient)
	// on this API server; against one without it they list first.
	"list tekton.dev/customruns":           "informers without WatchList",
	"list apps.kruise.io/imagepulljobs":    "informers without WatchList",
	"list custom.kruise.dev/imageprepulls": "informers without WatchList",
	"list /configmaps":                     "informers without WatchList",
}

// rbacAgainstAudit compares what config/ grants the controller (its
// ClusterRole and the Role of its namespace) with what the controller did
// over the whole suite, from kube-apiserver's audit log of its
// ServiceAccount: a rule it never used is a grant to take away (or to list
// in notProvoked with the reason), and a request the API server refused is
// a grant missing.
func rbacAgainstAudit(auditLog string) []string {
	granted, err := controllerGrants()
	if err != nil {
		return []string{err.Error()}
	}
	used, forbidden, err := auditedUse(auditLog)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for rule := range granted {
		if !used[rule] && notProvoked[rule] == "" {
			problems = append(problems, "config/ grants "+rule+", which the controller never used in the suite")
		}
	}
	for rule := range notProvoked {
		if !granted[rule] {
			problems = append(problems, "notProvoked lists "+rule+", which config/ does not grant")
		}
	}
	for _, f := range forbidden {
		problems = append(problems, "the API server refused the controller: "+f)
	}
	sort.Strings(problems)
	return problems
}

// controllerGrants are "verb group/resource[/subresource]" of the rules
// config/ gives the controller's ServiceAccount.
func controllerGrants() (map[string]bool, error) {
	out := map[string]bool{}
	for _, file := range []string{"200-clusterrole.yaml", "200-role.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "config", file))
		if err != nil {
			return nil, err
		}
		for _, doc := range strings.Split(string(b), "\n---") {
			var role struct {
				Kind     string                `json:"kind"`
				Metadata struct{ Name string } `json:"metadata"`
				Rules    []rbacv1.PolicyRule   `json:"rules"`
			}
			if err := yaml.Unmarshal([]byte(doc), &role); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			if role.Metadata.Name != "imageprepull-controller" {
				continue
			}
			for _, r := range role.Rules {
				for _, g := range r.APIGroups {
					for _, res := range r.Resources {
						for _, v := range r.Verbs {
							out[v+" "+g+"/"+res] = true
						}
					}
				}
			}
		}
	}
	return out, nil
}

// auditedUse reads the audit log (the controller's requests only, see
// test/cluster's audit policy).
func auditedUse(path string) (used map[string]bool, forbidden []string, err error) {
	used = map[string]bool{}
	err = cluster.ReadAudit(path, 0, func(ev cluster.AuditEvent) {
		if ev.ObjectRef == nil {
			return // non-resource requests (discovery, /version) need no rule
		}
		rule := ev.Verb + " " + ev.ObjectRef.APIGroup + "/" + ev.Resource()
		if ev.Annotations["authorization.k8s.io/decision"] == "forbid" {
			forbidden = append(forbidden, rule+" ("+ev.RequestURI+")")
			return
		}
		used[rule] = true
	})
	return used, forbidden, err
}
