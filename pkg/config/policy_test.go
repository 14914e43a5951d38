package config

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func cm(data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: PolicyConfigName}, Data: data}
}

func TestEmptyConfigMapIsTheDefaultPolicy(t *testing.T) {
	p, err := NewPolicyFromConfigMap(cm(nil))
	if err != nil || !p.Authorize || len(p.AllowedImages) != 0 || p.Parallelism != 10 || p.PullTimeoutSeconds != 600 || p.BackoffLimit != 3 {
		t.Errorf("policy %+v, %v", p, err)
	}
}

func TestMalformedPolicyNamesTheKey(t *testing.T) {
	for _, tc := range []struct {
		data map[string]string
		want string
	}{
		{map[string]string{KeyAuthorize: "yes please"}, `config-imageprepull authorize-service-accounts: "yes please" is not true or false`},
		{map[string]string{KeyAllowedImages: "registry.example.com/[team"}, `allowed-images: "registry.example.com/[team" is not a pattern`},
		{map[string]string{KeyAllowedImages: "ghcr.io/**/app"}, `allowed-images: "ghcr.io/**/app" is not a pattern`},
		{map[string]string{KeyParallelism: "0"}, `default-parallelism: "0" is not a whole number from 1 to 10000`},
		{map[string]string{KeyPullTimeoutSeconds: "ten"}, `default-pull-timeout-seconds: "ten" is not a whole number`},
		{map[string]string{KeyBackoffLimit: "-1"}, `default-backoff-limit: "-1" is not a whole number from 0 to 100`},
		{map[string]string{"allowed-image": "ghcr.io/acme/**"}, `config-imageprepull: unknown key "allowed-image"`},
	} {
		if _, err := NewPolicyFromConfigMap(cm(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.data, err, tc.want)
		}
	}
}

func TestAllows(t *testing.T) {
	p, err := NewPolicyFromConfigMap(cm(map[string]string{KeyAllowedImages: "registry.example.com/team/*, docker.io/library/nginx\n  ghcr.io/acme/**"}))
	if err != nil {
		t.Fatal(err)
	}
	for image, want := range map[string]bool{
		"registry.example.com/team/app:v1":     true,
		"registry.example.com/team/sub/app:v1": false, // * stays within a segment
		"registry.example.com/other/app:v1":    false,
		"nginx:1.27":                           true, // docker.io/library/nginx
		"docker.io/library/nginx:1.27":         true,
		"redis:7":                              false,
		"ghcr.io/acme/tools/cli:v1":            true,
		"ghcr.io/acme:v1":                      false,
		"ghcr.io/acmeevil/x:v1":                false,
		"Not An Image":                         false,
	} {
		if got := p.Allows(image); got != want {
			t.Errorf("Allows(%q) = %v, want %v", image, got, want)
		}
	}
	if !DefaultPolicy().Allows("anything.example/x:y") {
		t.Error("the default policy refuses an image")
	}
}
