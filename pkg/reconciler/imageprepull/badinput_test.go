package imageprepull

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"k8s.io/utils/ptr"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// Every bad input fails the run at once, before anything is created, with a
// reason and a message that names the field.
func TestBadInputFailsAtOnce(t *testing.T) {
	obj := func(name string, value map[string]string) runOption {
		return func(r *v1beta1.CustomRun) {
			r.Spec.Params = append(r.Spec.Params, v1beta1.Param{Name: name,
				Value: v1beta1.ParamValue{Type: v1beta1.ParamTypeObject, ObjectVal: value}})
		}
	}
	badPolicy := policy("bad", v1alpha1.ImagePrePullSpec{Images: []string{"nginx:1.27"}, Parallelism: ptr.To[int32](0)})
	for _, tc := range []struct {
		name   string
		run    *v1beta1.CustomRun
		reason v1alpha1.Reason
		want   []string // parts of the message
	}{
		{"no image", newRun("r"), v1alpha1.ReasonInvalidParams, []string{"no image to pull", "param image or images"}},
		{"empty image is not an image", newRun("r", str("image", "")), v1alpha1.ReasonInvalidParams, []string{"no image to pull"}},
		{"unparsable image", newRun("r", str("image", "registry/app:v1:v2")), v1alpha1.ReasonInvalidParams,
			[]string{"params.image", "not an image reference"}},
		{"uppercase image", newRun("r", str("image", "Registry/App:v1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.image", "repository name must be lowercase"}},
		{"digest-only image", newRun("r", str("image", "nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000")),
			v1alpha1.ReasonInvalidParams, []string{"params.image", "digests are not supported"}},
		{"tag and digest", newRun("r", arr("images", "nginx:1.27@sha256:0000000000000000000000000000000000000000000000000000000000000000")),
			v1alpha1.ReasonInvalidParams, []string{"params.images[0]", "digests are not supported"}},
		{"duplicate images", newRun("r", str("image", "nginx:1.27"), arr("images", "nginx:1.27")), v1alpha1.ReasonInvalidParams,
			[]string{"params.images[1]", "duplicate"}},
		{"names and labels together", newRun("r", str("image", app), arr("nodeNames", "n1"), str("nodeSelector", "a=b")),
			v1alpha1.ReasonInvalidParams, []string{"expected exactly one, got both", "params.nodeNames", "params.nodeSelector"}},
		{"node and pod selectors together", newRun("r", str("image", app), str("nodeSelector", "a=b"), str("podSelector", "app=web")),
			v1alpha1.ReasonInvalidParams, []string{"params.nodeSelector", "params.podSelector"}},
		{"unknown param", newRun("r", str("image", app), str("imagePullSecret", "x")), v1alpha1.ReasonInvalidParams,
			[]string{`unknown param "imagePullSecret"`, "known params: image, images"}},
		{"param given twice", newRun("r", str("image", app), str("image", "nginx:1")), v1alpha1.ReasonInvalidParams,
			[]string{`param "image" is given twice`}},
		{"string for an array", newRun("r", str("images", app)), v1alpha1.ReasonInvalidParams,
			[]string{`param "images" must be of type array, not string`}},
		{"array for a string", newRun("r", arr("image", app)), v1alpha1.ReasonInvalidParams,
			[]string{`param "image" must be of type string, not array`}},
		{"object param", newRun("r", str("image", app), obj("parallelism", map[string]string{"a": "b"})), v1alpha1.ReasonInvalidParams,
			[]string{`param "parallelism" must be of type string, not object`}},
		{"malformed node selector", newRun("r", str("image", app), str("nodeSelector", "zone in (a")), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeSelector", "not a label selector"}},
		{"selector injection", newRun("r", str("image", app), str("nodeSelector", "a=b;kubectl delete ns x")), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeSelector"}},
		{"malformed pod selector", newRun("r", str("image", app), str("podSelector", "app notin x")), v1alpha1.ReasonInvalidParams,
			[]string{"params.podSelector"}},
		{"bad node name", newRun("r", str("image", app), arr("nodeNames", "Node_1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeNames[0]", "not a node name"}},
		{"threshold word", newRun("r", str("image", app), str("successThreshold", "most")), v1alpha1.ReasonInvalidParams,
			[]string{"params.successThreshold", "percentage"}},
		{"threshold over 100%", newRun("r", str("image", app), str("successThreshold", "101%")), v1alpha1.ReasonInvalidParams,
			[]string{"params.successThreshold"}},
		{"negative threshold", newRun("r", str("image", app), str("successThreshold", "-1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.successThreshold", "must not be negative"}},
		{"threshold past int32", newRun("r", str("image", app), str("successThreshold", "99999999999")), v1alpha1.ReasonInvalidParams,
			[]string{"params.successThreshold"}},
		{"parallelism not a number", newRun("r", str("image", app), str("parallelism", "ten")), v1alpha1.ReasonInvalidParams,
			[]string{"params.parallelism", "whole number"}},
		{"parallelism zero", newRun("r", str("image", app), str("parallelism", "0")), v1alpha1.ReasonInvalidParams,
			[]string{"params.parallelism", "expected 1 <= 0 <= 10000"}},
		{"negative backoff", newRun("r", str("image", app), str("backoffLimit", "-3")), v1alpha1.ReasonInvalidParams,
			[]string{"params.backoffLimit"}},
		{"huge pull timeout", newRun("r", str("image", app), str("pullTimeoutSeconds", "99999999999999")), v1alpha1.ReasonInvalidParams,
			[]string{"params.pullTimeoutSeconds"}},
		{"bad pull policy", newRun("r", str("image", app), str("imagePullPolicy", "Never")), v1alpha1.ReasonInvalidParams,
			[]string{"params.imagePullPolicy", "Always or IfNotPresent"}},
		{"bad wait", newRun("r", str("image", app), str("wait", "yes")), v1alpha1.ReasonInvalidParams,
			[]string{"params.wait"}},
		{"secret in another namespace", newRun("r", str("image", app), arr("pullSecrets", "kube-system/regcred")), v1alpha1.ReasonInvalidParams,
			[]string{"params.pullSecrets[0]", "own namespace"}},
		{"named policy missing", newRun("r", ref("nope"), str("image", app)), v1alpha1.ReasonNotFound,
			[]string{"taskRef.name", `ImagePrePull "nope" not found in namespace "ci"`}},
		{"named policy invalid", newRun("r", ref("bad")), v1alpha1.ReasonInvalidSpec,
			[]string{`ImagePrePull "bad"`, "spec.parallelism"}},
		{"embedded unknown field", newRun("r", embedded(`{"images":["nginx:1"],"parralelism":3}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", `unknown field "parralelism"`}},
		{"embedded field in the wrong case", newRun("r", embedded(`{"Images":["nginx:1"]}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", `unknown field "Images"`}},
		{"embedded field twice", newRun("r", embedded(`{"images":["nginx:1"],"wait":true,"wait":false}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", `duplicate field "wait"`}},
		{"embedded wrong type", newRun("r", embedded(`{"images":"nginx:1"}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", "cannot unmarshal string"}},
		{"embedded names and labels", newRun("r", embedded(`{"images":["nginx:1"],"nodeSelector":{"names":["a"],"matchLabels":{"x":"y"}}}`)),
			v1alpha1.ReasonInvalidSpec, []string{"taskSpec.spec.nodeSelector.names", "mutually exclusive"}},
		{"embedded empty pod selector", newRun("r", embedded(`{"images":["nginx:1"],"podSelector":{}}`)),
			v1alpha1.ReasonInvalidSpec, []string{"taskSpec.spec.podSelector", "empty pod selector"}},
		{"embedded bad image", newRun("r", embedded(`{"images":["nginx:1","NGINX"]}`)),
			v1alpha1.ReasonInvalidSpec, []string{"taskSpec.spec.images[1]"}},
		{"10,000-character image", newRun("r", str("image", strings.Repeat("a", 10000)+":v1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.image", "not an image reference"}},
		{"10,000-character node selector", newRun("r", str("image", app), str("nodeSelector", "k="+strings.Repeat("v", 10000))),
			v1alpha1.ReasonInvalidParams, []string{"params.nodeSelector"}},
		{"unicode image", newRun("r", str("image", "nginx:✓")), v1alpha1.ReasonInvalidParams, []string{"params.image"}},
		{"unicode node name", newRun("r", str("image", app), arr("nodeNames", "nöde-1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeNames[0]", "not a node name"}},
		{"JSON in the image", newRun("r", str("image", `{"image":"nginx:1"}`)), v1alpha1.ReasonInvalidParams, []string{"params.image"}},
		{"JSON in the node selector", newRun("r", str("image", app), str("nodeSelector", `{"a":"b"}`)), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeSelector"}},
		{"empty image in images", newRun("r", arr("images", "nginx:1", "")), v1alpha1.ReasonInvalidParams,
			[]string{"params.images[1]", "missing field"}},
		{"33 images", newRun("r", arr("images", manyImages(33)...)), v1alpha1.ReasonInvalidParams, []string{"params.images", "expected 0 <= 33 <= 32"}},
		{"duplicate node names", newRun("r", str("image", app), arr("nodeNames", "n1", "n1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeNames[1]", "duplicate"}},
		{"17 pull secrets", newRun("r", str("image", app), arr("pullSecrets", manyNames(17)...)), v1alpha1.ReasonInvalidParams,
			[]string{"params.pullSecrets", "expected 0 <= 17 <= 16"}},
		{"duplicate pull secrets", newRun("r", str("image", app), arr("pullSecrets", "a", "a")), v1alpha1.ReasonInvalidParams,
			[]string{"params.pullSecrets[1]", "duplicate"}},
		{"fractional percentage", newRun("r", str("image", app), str("successThreshold", "50.5%")), v1alpha1.ReasonInvalidParams,
			[]string{"params.successThreshold"}},
		{"threshold in exponent form", newRun("r", str("image", app), str("successThreshold", "1e3")), v1alpha1.ReasonInvalidParams,
			[]string{"params.successThreshold"}},
		{"fractional parallelism", newRun("r", str("image", app), str("parallelism", "1.5")), v1alpha1.ReasonInvalidParams,
			[]string{"params.parallelism", "whole number"}},
		{"hexadecimal parallelism", newRun("r", str("image", app), str("parallelism", "0x10")), v1alpha1.ReasonInvalidParams,
			[]string{"params.parallelism"}},
		{"padded number", newRun("r", str("image", app), str("parallelism", " 5")), v1alpha1.ReasonInvalidParams,
			[]string{"params.parallelism"}},
		{"zero pull timeout", newRun("r", str("image", app), str("pullTimeoutSeconds", "0")), v1alpha1.ReasonInvalidParams,
			[]string{"params.pullTimeoutSeconds"}},
		{"backoff over the bound", newRun("r", str("image", app), str("backoffLimit", "101")), v1alpha1.ReasonInvalidParams,
			[]string{"params.backoffLimit", "expected 0 <= 101 <= 100"}},
		{"wait in another case", newRun("r", str("image", app), str("wait", "True")), v1alpha1.ReasonInvalidParams, []string{"params.wait"}},
		{"pull policy in lower case", newRun("r", str("image", app), str("imagePullPolicy", "always")), v1alpha1.ReasonInvalidParams,
			[]string{"params.imagePullPolicy"}},
		{"image with a space", newRun("r", str("image", "nginx 1.27")), v1alpha1.ReasonInvalidParams, []string{"params.image"}},
		{"image with a scheme", newRun("r", str("image", "https://registry.example.com/app:v1")), v1alpha1.ReasonInvalidParams,
			[]string{"params.image"}},
		{"tag of 129 characters", newRun("r", str("image", "nginx:"+strings.Repeat("t", 129))), v1alpha1.ReasonInvalidParams,
			[]string{"params.image"}},
		{"param name in another case", newRun("r", str("Image", app)), v1alpha1.ReasonInvalidParams, []string{`unknown param "Image"`}},
		{"embedded number as string", newRun("r", embedded(`{"images":["nginx:1"],"parallelism":"3"}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", "cannot unmarshal string"}},
		{"embedded array as spec", newRun("r", embedded(`["nginx:1"]`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", "cannot unmarshal array"}},
		{"embedded threshold as bool", newRun("r", embedded(`{"images":["nginx:1"],"successThreshold":true}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec"}},
		{"embedded huge parallelism", newRun("r", embedded(`{"images":["nginx:1"],"parallelism":1000000000}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec.parallelism"}},
		{"embedded parallelism past int32", newRun("r", embedded(`{"images":["nginx:1"],"parallelism":99999999999}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec", "cannot unmarshal number"}},
		{"embedded negative ttl", newRun("r", embedded(`{"images":["nginx:1"],"ttlSecondsAfterFinished":-1}`)), v1alpha1.ReasonInvalidSpec,
			[]string{"taskSpec.spec.ttlSecondsAfterFinished"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withPolicy(badPolicy))
			e.create(tc.run)
			run := e.failsAtOnce("r", tc.reason, tc.want...)
			if n := countActions(e.kruise.Actions(), "create", "imagepulljobs"); n != 0 {
				t.Errorf("%d ImagePullJobs created for bad input", n)
			}
			if run.Status.CompletionTime == nil {
				t.Error("completionTime not set")
			}
		})
	}
}

func manyImages(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("registry.example.com/app-%d:v1", i)
	}
	return out
}

func manyNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("secret-%d", i)
	}
	return out
}

// A megabyte of bad input must not make a megabyte of status: the API server
// would refuse the write, and the run would never end.
func TestHugeBadInputGetsASmallMessage(t *testing.T) {
	mib := strings.Repeat("x", 1<<20)
	for _, tc := range []struct {
		name   string
		run    *v1beta1.CustomRun
		reason v1alpha1.Reason
		want   []string
	}{
		{"a megabyte-long image", newRun("r", str("image", "Registry/"+mib)), v1alpha1.ReasonInvalidParams,
			[]string{"params.image", "not an image reference", "bytes in all"}},
		{"a megabyte-long node selector", newRun("r", str("image", app), str("nodeSelector", "zone in ("+mib)), v1alpha1.ReasonInvalidParams,
			[]string{"params.nodeSelector", "not a label selector"}},
		{"an embedded spec with a megabyte-long unknown field", newRun("r", embedded(`{"images":["a:1"],"`+mib+`":1}`)),
			v1alpha1.ReasonInvalidSpec, []string{"taskSpec.spec", "unknown field", "bytes cut"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.create(tc.run)
			run := e.failsAtOnce("r", tc.reason, tc.want...)
			if n := len(condition(run).Message); n > maxMessage {
				t.Errorf("the message is %d bytes long", n)
			}
		})
	}
}
