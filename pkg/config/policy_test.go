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

// allowed-images fails closed: present, it must hold a pattern that can
// match; only the absent key allows any image.
func TestAllowedImagesFailsClosed(t *testing.T) {
	for value, want := range map[string]string{
		",":                             `holds no pattern; to allow any image, remove the key`,
		"":                              `holds no pattern`,
		"\n \n":                         `holds no pattern`,
		"*/**":                          `"*/**" can match nothing: before /** stands a repository prefix without wildcards`,
		"/**":                           `"/**" can match nothing`,
		"reg.local/*/**":                `"reg.local/*/**" can match nothing`,
		"ghcr.io/acme/**, ghcr.io/**/x": `"ghcr.io/**/x" is not a pattern`,
		"nginx":                         `"nginx" can match nothing: patterns match full repository names, which start with a registry host (docker.io/library/nginx)`,
		"library/*":                     `"library/*" can match nothing`,
		"docker.io/nginx":               `"docker.io/nginx" can match nothing: the repository's full name is docker.io/library/nginx`,
	} {
		_, err := NewPolicyFromConfigMap(cm(map[string]string{KeyAllowedImages: value}))
		if err == nil || !strings.Contains(err.Error(), "config-imageprepull allowed-images: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("allowed-images %q: error %v, want one holding %q", value, err, want)
		}
	}
	for _, value := range []string{"docker.io/**", "docker.io/nginx/**", "localhost:5000/*", "*/team/*", "127.0.0.1:5000/shop/**", "docker.io/library/nginx"} {
		if _, err := NewPolicyFromConfigMap(cm(map[string]string{KeyAllowedImages: value})); err != nil {
			t.Errorf("allowed-images %q: %v", value, err)
		}
	}
}

func TestLimits(t *testing.T) {
	p, err := NewPolicyFromConfigMap(cm(nil))
	if err != nil || p.MaxNodesPerRun != 5000 || p.MaxRetries != 10 || !p.AllowAllNodes {
		t.Errorf("default limits %+v, %v", p, err)
	}
	p, err = NewPolicyFromConfigMap(cm(map[string]string{KeyMaxNodesPerRun: "200", KeyMaxRetries: "0", KeyAllowAllNodes: "false"}))
	if err != nil || p.MaxNodesPerRun != 200 || p.MaxRetries != 0 || p.AllowAllNodes {
		t.Errorf("limits %+v, %v", p, err)
	}
	for data, want := range map[string]string{
		KeyMaxNodesPerRun: `max-nodes-per-run: "0" is not a whole number from 1 to 5000`,
		KeyMaxRetries:     `max-retries: "0" is not`,
		KeyAllowAllNodes:  `allow-all-nodes: "0" is not true or false`,
	} {
		value := "0"
		if data == KeyAllowAllNodes {
			value = "maybe"
			want = `allow-all-nodes: "maybe" is not true or false`
		}
		if data == KeyMaxRetries {
			value = "101"
			want = `max-retries: "101" is not a whole number from 0 to 100`
		}
		if _, err := NewPolicyFromConfigMap(cm(map[string]string{data: value})); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s %q: error %v, want %q", data, value, err, want)
		}
	}
}

// No value of allowed-images parses to "allow any image": only the absent
// key does. Seeds are the values that used to.
func FuzzAllowedImagesNeverAllowsAll(f *testing.F) {
	for _, seed := range []string{"", ",", "\n", " , \n", "*/**", "/**", "reg.local/shop/**", "a,b", "ghcr.io/acme/**\n,"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		p, err := NewPolicyFromConfigMap(cm(map[string]string{KeyAllowedImages: value}))
		if err != nil {
			return
		}
		if len(p.AllowedImages) == 0 {
			t.Fatalf("allowed-images %q parsed to no pattern: any image allowed", value)
		}
		for _, pat := range p.AllowedImages {
			if strings.TrimSpace(pat) == "" {
				t.Fatalf("allowed-images %q kept an empty pattern", value)
			}
		}
	})
}
