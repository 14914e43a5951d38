package v1alpha1

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/docker/distribution/reference"
	"github.com/google/go-cmp/cmp"
	pipelinev1beta1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func sp(name, value string) pipelinev1beta1.Param {
	return pipelinev1beta1.Param{Name: name, Value: *pipelinev1beta1.NewStructuredValues(value)}
}

func ap(name string, values ...string) pipelinev1beta1.Param {
	return pipelinev1beta1.Param{Name: name, Value: pipelinev1beta1.ParamValue{Type: pipelinev1beta1.ParamTypeArray, ArrayVal: values}}
}

func TestApplyParamsOverridesSpec(t *testing.T) {
	base := ImagePrePullSpec{
		Images:       []string{"base:v1"},
		PodSelector:  &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Parallelism:  ptr.To[int32](2),
		PullSecrets:  []string{"old"},
		BackoffLimit: ptr.To[int32](1),
	}
	got := base.DeepCopy()
	fe := ApplyParams(got, pipelinev1beta1.Params{
		ap("images", "b:v2", "c:v3"), sp("image", "a:v1"), ap("nodeNames", "n1", "n2"),
		sp("parallelism", "5"), sp("pullTimeoutSeconds", "30"), ap("pullSecrets", "regcred"),
		sp("imagePullPolicy", "Always"), sp("successThreshold", "75%"), sp("wait", "false"),
		sp("nodeSelector", ""), // empty: not given
	})
	if fe != nil {
		t.Fatal(fe)
	}
	want := &ImagePrePullSpec{
		Images:             []string{"a:v1", "b:v2", "c:v3"},
		NodeSelector:       &NodeSelector{Names: []string{"n1", "n2"}},
		Parallelism:        ptr.To[int32](5),
		PullTimeoutSeconds: ptr.To[int32](30),
		BackoffLimit:       ptr.To[int32](1),
		PullSecrets:        []string{"regcred"},
		ImagePullPolicy:    "Always",
		SuccessThreshold:   ptr.To(intstr.FromString("75%")),
		Wait:               ptr.To(false),
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("-want +got:\n%s", d)
	}
}

func TestApplyParamsThresholdCount(t *testing.T) {
	s := &ImagePrePullSpec{}
	if fe := ApplyParams(s, pipelinev1beta1.Params{sp("successThreshold", "3")}); fe != nil {
		t.Fatal(fe)
	}
	if *s.SuccessThreshold != intstr.FromInt32(3) {
		t.Errorf("threshold = %#v, want the count 3", *s.SuccessThreshold)
	}
}

func TestEveryParamIsApplicable(t *testing.T) {
	for _, p := range Params {
		if p.apply == nil || p.Description == "" || (p.Type != pipelinev1beta1.ParamTypeString && p.Type != pipelinev1beta1.ParamTypeArray) {
			t.Errorf("param %s is incomplete: %+v", p.Name, p)
		}
	}
}

func TestDefaults(t *testing.T) {
	s := &ImagePrePullSpec{NodeSelector: &NodeSelector{}}
	s.SetDefaults(context.Background())
	if *s.Parallelism != DefaultParallelism || *s.PullTimeoutSeconds != 600 || *s.BackoffLimit != 3 ||
		s.ImagePullPolicy != PullIfNotPresent || s.SuccessThreshold.String() != "100%" || !*s.Wait {
		t.Errorf("defaults = %+v", s)
	}
	if s.NodeSelector != nil {
		t.Error("an empty node selector must become nil: Kruise leaves jobs with selector {} Active forever")
	}
	if s.TTLSecondsAfterFinished != nil {
		t.Error("TTL has no default")
	}
}

func TestValidateObject(t *testing.T) {
	good := &ImagePrePull{Spec: ImagePrePullSpec{
		Images:           []string{"nginx:1.27", "ghcr.io/org/app:v1", "127.0.0.1:5000/demo/app:main-abc"},
		NodeSelector:     &NodeSelector{LabelSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "zone", Operator: metav1.LabelSelectorOpIn, Values: []string{"a"}}}}},
		SuccessThreshold: ptr.To(intstr.FromString("0%")),
	}}
	if fe := good.Validate(context.Background()); fe != nil {
		t.Errorf("valid object rejected: %v", fe)
	}
	bad := &ImagePrePull{Spec: ImagePrePullSpec{
		Images:                  []string{"nginx@sha256:" + strings.Repeat("a", 64)},
		NodeSelector:            &NodeSelector{Names: []string{"n1", "n1"}},
		PodSelector:             &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
		TTLSecondsAfterFinished: ptr.To[int32](-1),
		SuccessThreshold:        ptr.To(intstr.FromString("50")),
	}}
	fe := bad.Validate(context.Background())
	for _, want := range []string{"spec.images[0]", "spec.nodeSelector.names[1]", "spec.nodeSelector, spec.podSelector",
		"spec.ttlSecondsAfterFinished", "spec.successThreshold"} {
		if fe == nil || !strings.Contains(fe.Error(), want) {
			t.Errorf("error %v does not name %s", fe, want)
		}
	}
}

// FuzzApplyParams feeds arbitrary values to every param: no panic, and the
// result either fails naming the param (as much of a long name as errors
// show) or validates as a whole.
func FuzzApplyParams(f *testing.F) {
	for _, seed := range [][2]string{
		{"image", "nginx:1.27"}, {"image", "Registry/App"}, {"image", "a@sha256:" + strings.Repeat("0", 64)},
		{"nodeSelector", "zone in (a,b),!spot"}, {"nodeSelector", "a=b;rm -rf"}, {"podSelector", "app notin x"},
		{"parallelism", "-1"}, {"parallelism", "99999999999"}, {"successThreshold", "101%"}, {"successThreshold", "3"},
		{"wait", "TRUE"}, {"imagePullPolicy", "Never"}, {"images", "a:1\x00b:2"}, {"nodeNames", "n1\x00N_2"},
		{"pullSecrets", "ns/secret"}, {"unknown", "x"}, {"backoffLimit", "٣"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		p := sp(name, value)
		if spec := paramSpec(name); spec != nil && spec.Type == pipelinev1beta1.ParamTypeArray {
			p = ap(name, strings.Split(value, "\x00")...)
		}
		s := &ImagePrePullSpec{}
		if fe := ApplyParams(s, pipelinev1beta1.Params{p}); fe != nil {
			if !strings.Contains(fe.Error(), "params."+shown(name)) {
				t.Fatalf("error %q does not name params.%s", fe.Error(), shown(name))
			}
			return
		}
		s.SetDefaults(context.Background())
		if fe := s.Validate(context.Background()); fe != nil {
			t.Fatalf("params accepted %s=%q but the spec is invalid: %v", name, value, fe)
		}
	})
}

// FuzzValidateImage: an accepted image is one Kruise's parser reads with a tag.
func FuzzValidateImage(f *testing.F) {
	for _, s := range []string{"nginx", "nginx:1.27", "docker.io/library/nginx:latest", "127.0.0.1:5000/a/b:c",
		"a@sha256:" + strings.Repeat("0", 64), "a:v1@sha256:" + strings.Repeat("0", 64), "UPPER:case", "a:b:c", "", strings.Repeat("a", 10000), "ünïcode:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, image string) {
		if ValidateImage(image) != nil {
			return
		}
		// Kruise keys a NodeImage by the familiar name and the tag that
		// docker/distribution's reference parser reads
		// (daemonutil.NormalizeImageRefToNameTag), and kruise-daemon pulls
		// by tag: an accepted image must read so, with a tag wherever it
		// has a digest, and the tag alone must read so too (what a job pulls).
		named, err := reference.ParseNormalizedNamed(image)
		if err != nil {
			t.Fatalf("%q was accepted, but Kruise's parser refuses it: %v", image, err)
		}
		if _, digested := named.(reference.Digested); digested {
			if _, tagged := named.(reference.Tagged); !tagged {
				t.Fatalf("%q has a digest and no tag but was accepted", image)
			}
			pulled, _, _ := strings.Cut(image, "@")
			if named, err = reference.ParseNormalizedNamed(pulled); err != nil {
				t.Fatalf("%q was accepted, but its tag alone, %q, is refused: %v", image, pulled, err)
			}
		}
		tagged, ok := reference.TagNameOnly(named).(reference.Tagged)
		if !ok || tagged.Tag() == "" || reference.FamiliarName(named) == "" {
			t.Fatalf("%q was accepted, but Kruise's parser reads no name and tag from it", image)
		}
	})
}

// An error repeats a bad value only in part: the message must stay small
// enough for the run's status, and still name the field and the fault.
func TestLongBadValuesAreShownInPart(t *testing.T) {
	mib := strings.Repeat("x", 1<<20)
	for _, tc := range []struct {
		param pipelinev1beta1.Param
		want  []string
	}{
		{sp("image", "Registry/"+mib), []string{"params.image", "not an image reference", "bytes in all"}},
		{sp("image", "app@sha256:"+mib), []string{"params.image", "bytes in all"}},
		{ap("images", "a:1", "UPPER/"+mib), []string{"params.images[1]", "bytes in all"}},
		{ap("images", mib, mib), []string{"params.images[1]", "duplicate value", "bytes in all"}},
		{sp("nodeSelector", "zone in ("+mib), []string{"params.nodeSelector", "not a label selector", "bytes in all"}},
		{sp("wait", mib), []string{"params.wait", `must be "true" or "false"`}},
		{sp("parallelism", mib), []string{"params.parallelism", "whole number"}},
		{sp("imagePullPolicy", mib), []string{"params.imagePullPolicy", "Always or IfNotPresent"}},
		{sp("successThreshold", mib), []string{"params.successThreshold", "percentage"}},
		{sp(mib, "v"), []string{"params.xxxx", "unknown param", "known params"}},
	} {
		var s ImagePrePullSpec
		fe := ApplyParams(&s, pipelinev1beta1.Params{tc.param})
		if fe == nil {
			t.Errorf("%.20s: no error", tc.param.Name)
			continue
		}
		msg := fe.Error()
		if len(msg) > 2048 {
			t.Errorf("%.20s: the error is %d bytes long", tc.param.Name, len(msg))
		}
		for _, part := range tc.want {
			if !strings.Contains(msg, part) {
				t.Errorf("%.20s: %q is not in %.300q", tc.param.Name, part, msg)
			}
		}
	}
}

// A run's nodeNames, nodeSelector or podSelector over a policy that targets
// a workload replaces the workload with its nodes and images settings: no
// error names a spec field the run never wrote.
func TestTargetParamsReplaceAWorkloadPolicyWhole(t *testing.T) {
	policy := ImagePrePullSpec{Images: []string{"app:v1"}, Workload: "deployment/web", Nodes: NodesEligible, WorkloadImages: ptr.To(false)}
	for _, target := range []pipelinev1beta1.Param{ap("nodeNames", "n1"), sp("nodeSelector", "pool=web"), sp("podSelector", "app=web")} {
		spec, fe := ResolveSpec(context.Background(), policy.DeepCopy(), pipelinev1beta1.Params{target}, nil)
		if fe != nil {
			t.Errorf("%s over a workload policy: %v", target.Name, fe)
			continue
		}
		if spec.Workload != "" || spec.Nodes != "" || spec.WorkloadImages != nil {
			t.Errorf("%s kept the workload's settings: workload %q nodes %q workloadImages %v", target.Name, spec.Workload, spec.Nodes, spec.WorkloadImages)
		}
	}
	// Given with them, the workload's settings are the run's own mistake, named as params.
	_, fe := ResolveSpec(context.Background(), policy.DeepCopy(), pipelinev1beta1.Params{ap("nodeNames", "n1"), sp("nodes", "eligible")}, nil)
	if fe == nil || !strings.Contains(fe.Error(), "params.nodes") || strings.Contains(fe.Error(), "spec.") {
		t.Errorf("nodes with nodeNames: %v, want an error naming params.nodes", fe)
	}
	// The workload param keeps the policy's nodes and workloadImages: they are its settings.
	spec, fe := ResolveSpec(context.Background(), policy.DeepCopy(), pipelinev1beta1.Params{sp("workload", "deployment/api")}, nil)
	if fe != nil || spec.Workload != "deployment/api" || spec.Nodes != NodesEligible {
		t.Errorf("workload param over a workload policy: %+v, %v", spec, fe)
	}
}

// What a run names is bounded in bytes, not only in count: the run's
// status and its ImagePullJobs hold it all. Each limit is refused with the
// param that broke it and the limit.
func TestInputIsBoundedInBytes(t *testing.T) {
	names := func(n, size int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%0*d", size, i)
		}
		return out
	}
	images := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("reg.local/app%d:v1", i)
		}
		return out
	}
	selector := func(values int) string {
		return "zone in (" + strings.Join(names(values, 60), ",") + ")"
	}
	for _, tc := range []struct {
		name   string
		params pipelinev1beta1.Params
		want   string // "" accepts
	}{
		{"5000 names of 52 bytes", pipelinev1beta1.Params{sp("image", "a:v1"), ap("nodeNames", names(5000, 52)...)}, ""},
		{"5000 names of 53 bytes", pipelinev1beta1.Params{sp("image", "a:v1"), ap("nodeNames", names(5000, 53)...)},
			"265000 bytes of node names, more than the 262144 one run may name: params.nodeNames"},
		{"4 images of 256 KiB of names", pipelinev1beta1.Params{ap("images", images(4)...), ap("nodeNames", names(4096, 64)...)}, ""},
		{"5 images of 256 KiB of names", pipelinev1beta1.Params{ap("images", images(5)...), ap("nodeNames", names(4096, 64)...)},
			"5 images times 262144 bytes of node names is 1310720 bytes of ImagePullJobs, more than the 1048576 one run may make: params.nodeNames"},
		{"a selector of 8 KiB", pipelinev1beta1.Params{sp("image", "a:v1"), sp("nodeSelector", selector(136))}, ""},
		{"a selector over 8 KiB", pipelinev1beta1.Params{sp("image", "a:v1"), sp("podSelector", selector(137))},
			"a label selector of 8226 bytes, more than the 8192 a run may give: params.podSelector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fe := ApplyParams(&ImagePrePullSpec{}, tc.params)
			if tc.want == "" {
				if fe != nil {
					t.Fatalf("refused: %v", fe)
				}
				return
			}
			if fe == nil || !strings.Contains(fe.Error(), tc.want) {
				t.Fatalf("error %v, want %q", fe, tc.want)
			}
		})
	}
}
