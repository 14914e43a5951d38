// Package test checks what users apply: config/ (ko apply -f config/) and
// examples/. The end-to-end suite, against real Tekton and OpenKruise, lives
// in test/e2e.
package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/docker/distribution/reference"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	tektonscheme "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/scheme"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
	"github.com/imageprepull/imageprepull/pkg/config"
	"github.com/imageprepull/imageprepull/pkg/reconciler/imageprepull"
)

var decoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		scheme.AddToScheme, tektonscheme.AddToScheme, v1alpha1.AddToScheme, apiextensionsv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}()

// objects decodes every document of every YAML file under dir, strictly:
// an unknown or misspelt field fails.
func objects(t *testing.T, dir string) map[string][]runtime.Object {
	t.Helper()
	out := map[string][]runtime.Object{}
	files, err := filepath.Glob(filepath.Join("..", dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML in %s: %v", dir, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, _, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out[filepath.Base(f)] = append(out[filepath.Base(f)], obj)
		}
	}
	return out
}

func all[T runtime.Object](objs map[string][]runtime.Object) []T {
	var out []T
	for _, list := range objs {
		for _, o := range list {
			if v, ok := o.(T); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

func TestCRDMatchesTheGoAPI(t *testing.T) {
	crds := all[*apiextensionsv1.CustomResourceDefinition](objects(t, "config"))
	if len(crds) != 1 {
		t.Fatalf("%d CRDs, want 1", len(crds))
	}
	crd := crds[0]
	if crd.Spec.Group != "custom.kruise.dev" || crd.Spec.Names.Kind != v1alpha1.Kind || crd.Spec.Versions[0].Name != "v1alpha1" {
		t.Fatalf("CRD names %s %s %s", crd.Spec.Group, crd.Spec.Names.Kind, crd.Spec.Versions[0].Name)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	images := spec.Properties["images"]
	// A tag, then a digest only after a tag (sha256, as v1alpha1.ValidateDigest takes it).
	wantPattern := "^" + reference.NameRegexp.String() + "(?::" + reference.TagRegexp.String() + "(?:@sha256:[a-f0-9]{64})?)?$"
	if images.Items.Schema.Pattern != wantPattern {
		t.Errorf("images pattern drifted from Kruise's reference grammar:\n got %s\nwant %s", images.Items.Schema.Pattern, wantPattern)
	}
	for field, want := range map[string][2]float64{
		"parallelism":             {1, v1alpha1.MaxParallelism},
		"pullTimeoutSeconds":      {1, v1alpha1.MaxPullTimeoutSeconds},
		"backoffLimit":            {0, v1alpha1.MaxBackoffLimit},
		"ttlSecondsAfterFinished": {0, v1alpha1.MaxTTLSeconds},
	} {
		p := spec.Properties[field]
		if p.Minimum == nil || p.Maximum == nil {
			t.Errorf("%s has no bounds", field)
		} else if *p.Minimum != want[0] || *p.Maximum != want[1] {
			t.Errorf("%s bounds = %v..%v, want %v..%v", field, *p.Minimum, *p.Maximum, want[0], want[1])
		}
	}
	for field, want := range map[string]int64{"images": v1alpha1.MaxImages, "pullSecrets": v1alpha1.MaxPullSecrets} {
		if p := spec.Properties[field]; p.MaxItems == nil || *p.MaxItems != want {
			t.Errorf("%s maxItems = %v, want %d", field, p.MaxItems, want)
		}
	}
	if p := spec.Properties["nodeSelector"].Properties["names"]; p.MaxItems == nil || *p.MaxItems != v1alpha1.MaxNodeNames {
		t.Errorf("nodeSelector.names maxItems = %v", p.MaxItems)
	}
	// Every Go field is in the schema and nothing else is.
	var got []string
	for k := range spec.Properties {
		got = append(got, k)
	}
	sort.Strings(got)
	var fields []string
	typ := reflect.TypeOf(v1alpha1.ImagePrePullSpec{})
	for i := range typ.NumField() {
		fields = append(fields, strings.Split(typ.Field(i).Tag.Get("json"), ",")[0])
	}
	sort.Strings(fields)
	if strings.Join(got, " ") != strings.Join(fields, " ") {
		t.Errorf("schema fields %v, Go fields %v", got, fields)
	}
}

// The ClusterRole grants what the controller uses and nothing more: a new
// API call needs a new rule here, and a rule nothing uses fails this test.
func TestClusterRoleIsLeastPrivilege(t *testing.T) {
	used := map[string]string{
		"tekton.dev/customruns":                     "get list watch",
		"tekton.dev/customruns/status":              "update",
		"tekton.dev/customruns/finalizers":          "update",
		"custom.kruise.dev/imageprepulls":           "list watch",
		"apps.kruise.io/imagepulljobs":              "create delete get list patch watch",
		"apps.kruise.io/nodeimages":                 "get list",
		"authorization.k8s.io/subjectaccessreviews": "create",
		"apps/deployments":                          "get",
		"apps/statefulsets":                         "get",
		"apps/daemonsets":                           "get",
		"apps.kruise.io/clonesets":                  "get",
		"apps.kruise.io/statefulsets":               "get",
		"apps.kruise.io/daemonsets":                 "get",
		"/pods":                                     "list",
		"/nodes":                                    "list",
		"/events":                                   "create patch",
		"/secrets":                                  "get",
	}
	got := map[string]string{}
	for _, role := range all[*rbacv1.ClusterRole](objects(t, "config")) {
		if role.Name != "imageprepull-controller" {
			continue
		}
		for _, rule := range role.Rules {
			for _, g := range rule.APIGroups {
				for _, r := range rule.Resources {
					verbs := append([]string(nil), rule.Verbs...)
					sort.Strings(verbs)
					got[g+"/"+r] = strings.Join(verbs, " ")
				}
			}
		}
	}
	if len(got) != len(used) {
		t.Errorf("ClusterRole grants %v, the controller uses %v", got, used)
	}
	for k, v := range used {
		if got[k] != v {
			t.Errorf("ClusterRole grants %s %q, the controller uses %q", k, got[k], v)
		}
	}
}

// imageprepull-runner, bound to the ServiceAccounts whose runs pre-pull,
// grants the one permission the controller asks about and nothing else:
// every pod running as such a ServiceAccount holds it. No role shipped here
// lets a run's ServiceAccount, or a namespace's editors, create or change
// ImagePullJobs, which would go around the platform's policy.
func TestTheRunnerRoleGrantsNothingElse(t *testing.T) {
	roles := map[string]*rbacv1.ClusterRole{}
	for _, role := range all[*rbacv1.ClusterRole](objects(t, "config")) {
		roles[role.Name] = role
	}
	runner := roles[imageprepull.RunnerRole]
	want := []rbacv1.PolicyRule{{APIGroups: []string{imageprepull.RunnerGroup}, Resources: []string{imageprepull.RunnerResource}, Verbs: []string{imageprepull.RunnerVerb}}}
	if runner == nil || !reflect.DeepEqual(runner.Rules, want) {
		t.Fatalf("ClusterRole %s = %+v, want only %+v", imageprepull.RunnerRole, runner, want)
	}
	for name, role := range roles {
		if name == "imageprepull-controller" {
			continue
		}
		for _, rule := range role.Rules {
			for _, r := range rule.Resources {
				if r == "imagepulljobs" || r == "*" {
					t.Errorf("ClusterRole %s grants %v on %s", name, rule.Verbs, r)
				}
			}
		}
	}
}

func TestDeploymentIsRestricted(t *testing.T) {
	deps := all[*appsv1.Deployment](objects(t, "config"))
	if len(deps) != 1 {
		t.Fatalf("%d Deployments", len(deps))
	}
	pod := deps[0].Spec.Template.Spec
	c := pod.Containers[0]
	if c.Image != "ko://github.com/imageprepull/imageprepull/cmd/controller" {
		t.Errorf("image %s", c.Image)
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil ||
		!*sc.ReadOnlyRootFilesystem || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.Capabilities == nil ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || sc.SeccompProfile == nil || sc.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("container securityContext is not restricted: %+v", sc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() || c.ReadinessProbe == nil || c.LivenessProbe == nil {
		t.Errorf("container lacks requests, limits or probes: %+v", c)
	}
}

// Every example is valid for Tekton and for the controller: the policies
// validate, and every ImagePrePull step's params and embedded spec resolve.
func TestExamples(t *testing.T) {
	ctx := context.Background()
	for _, dir := range []string{"examples/seed-pipeline", "examples/ways", "examples/local-demo", "examples/local-demo/kubectl-task"} {
		for file, objs := range objects(t, dir) {
			for _, obj := range objs {
				var tasks []pipelinev1.PipelineTask
				switch o := obj.(type) {
				case *v1alpha1.ImagePrePull:
					if fe := o.Validate(ctx); fe != nil {
						t.Errorf("%s: %v", file, fe)
					}
				case *v1beta1.Task:
					o.SetDefaults(ctx)
					if fe := o.Validate(ctx); fe != nil {
						t.Errorf("%s: %v", file, fe)
					}
				case *pipelinev1.Task:
					o.SetDefaults(ctx)
					if fe := o.Validate(ctx); fe != nil {
						t.Errorf("%s: %v", file, fe)
					}
				case *pipelinev1.Pipeline:
					o.SetDefaults(ctx)
					if fe := o.Validate(ctx); fe != nil {
						t.Errorf("%s: %v", file, fe)
					}
					tasks = o.Spec.Tasks
				case *pipelinev1.PipelineRun:
					o.SetDefaults(ctx)
					if o.Name == "" {
						o.Name = o.GenerateName + "x"
					}
					if fe := o.Validate(ctx); fe != nil {
						t.Errorf("%s: %v", file, fe)
					}
					if o.Spec.PipelineSpec != nil {
						tasks = o.Spec.PipelineSpec.Tasks
					}
				case *appsv1.Deployment, *rbacv1.Role, *rbacv1.RoleBinding, *corev1.ServiceAccount, *corev1.ConfigMap:
					// What an example's pipeline acts on, and who may.
				default:
					t.Errorf("%s: unexpected %T: examples use tekton.dev/v1, which the API server stores without a conversion webhook", file, obj)
				}
				for _, pt := range tasks {
					checkPrePullTask(t, file, pt)
				}
			}
		}
	}
}

func checkPrePullTask(t *testing.T, file string, pt pipelinev1.PipelineTask) {
	t.Helper()
	spec := &v1alpha1.ImagePrePullSpec{}
	switch {
	case pt.TaskRef != nil && pt.TaskRef.Kind == v1alpha1.Kind:
		if pt.TaskRef.APIVersion != v1alpha1.APIVersion {
			t.Errorf("%s: task %s apiVersion %s", file, pt.Name, pt.TaskRef.APIVersion)
		}
	case pt.TaskSpec != nil && pt.TaskSpec.Kind == v1alpha1.Kind:
		var err error
		if spec, err = v1alpha1.DecodeSpec(pt.TaskSpec.Spec.Raw); err != nil {
			t.Errorf("%s: task %s taskSpec.spec: %v", file, pt.Name, err)
			return
		}
	default:
		return
	}
	// The CustomRun carries v1beta1 params; variables are substituted by
	// Tekton at run time, so a valid value stands in for them.
	var params v1beta1.Params
	all := pt.Params
	if pt.Matrix != nil {
		// Each CustomRun of a matrix gets one value of each matrix param.
		for _, p := range pt.Matrix.Params {
			if len(p.Value.ArrayVal) > 0 {
				all = append(all, pipelinev1.Param{Name: p.Name, Value: *pipelinev1.NewStructuredValues(p.Value.ArrayVal[0])})
			}
		}
	}
	raw, _ := json.Marshal(all)
	if err := json.Unmarshal(raw, &params); err != nil {
		t.Fatal(err)
	}
	for i, p := range params {
		if strings.Contains(p.Value.StringVal, "$(") {
			params[i].Value.StringVal = "registry.example.com/app:v1"
		}
	}
	if pt.TaskRef != nil && pt.TaskRef.Name != "" {
		// The named ImagePrePull is checked on its own; it may hold the images.
		spec.Images = []string{"registry.example.com/app:v1"}
	}
	// As the controller resolves it, with the platform's default policy.
	if _, fe := v1alpha1.ResolveSpec(context.Background(), spec, params, config.DefaultPolicy().Defaults); fe != nil {
		t.Errorf("%s: task %s: %v", file, pt.Name, fe)
	}
}

// The metrics Service selects the controller's pods and their metrics port.
func TestMetricsServiceSelectsTheController(t *testing.T) {
	svcs := all[*corev1.Service](objects(t, "config"))
	deps := all[*appsv1.Deployment](objects(t, "config"))
	if len(svcs) != 1 || len(deps) != 1 {
		t.Fatalf("%d Services, %d Deployments", len(svcs), len(deps))
	}
	svc, pod := svcs[0], deps[0].Spec.Template
	for k, v := range svc.Spec.Selector {
		if pod.Labels[k] != v {
			t.Errorf("the Service selects %s=%s, which the controller's pods do not carry", k, v)
		}
	}
	named := false
	for _, p := range pod.Spec.Containers[0].Ports {
		named = named || (p.Name == svc.Spec.Ports[0].TargetPort.StrVal && p.ContainerPort == 9090)
	}
	if !named || svc.Namespace != deps[0].Namespace {
		t.Errorf("the Service's target port %v is not the controller's metrics port 9090 in its namespace", svc.Spec.Ports[0].TargetPort)
	}
}
