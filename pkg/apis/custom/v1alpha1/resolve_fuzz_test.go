package v1alpha1

import (
	"context"
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
)

// An embedded taskSpec's spec is user input: decoding it never panics,
// what it accepts survives a round trip unchanged (empty and absent lists
// alike), and defaulting and validating what it accepts never panic either.
func FuzzDecodeSpec(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"images":["registry.local/app:v1"]}`,
		`{"images":["a:b"],"nodeSelector":{"names":["n1","n2"]},"parallelism":3,"successThreshold":"50%"}`,
		`{"nodeSelector":{"matchLabels":{"a":"b"},"matchExpressions":[{"key":"k","operator":"In","values":["v"]}]}}`,
		`{"podSelector":{"matchLabels":{"app":"web"}},"wait":false,"ttlSecondsAfterFinished":0}`,
		`{"images":["x"]} {"images":["y"]}`, `{"imagez":[]}`, `{"imAges":["x"]}`, `{"wait":true,"wait":false}`,
		`{"successThreshold":7}`, `[]`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		spec, err := DecodeSpec(raw)
		if err != nil {
			return
		}
		again, err := json.Marshal(spec)
		if err != nil {
			t.Fatalf("re-encoding %q: %v", raw, err)
		}
		back, err := DecodeSpec(again)
		if err != nil || !equality.Semantic.DeepEqual(spec, back) {
			t.Fatalf("round trip of %q: %+v -> %s -> %+v (%v)", raw, spec, again, back, err)
		}
		spec.SetDefaults(context.Background())
		_ = spec.Validate(context.Background())
	})
}
