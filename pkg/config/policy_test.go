package config

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/imageprepull/imageprepull/pkg/image"
)

// allows parses image and asks p; an unparsable image is never allowed.
func allows(p *Policy, s string) bool {
	ref, err := image.Parse(s)
	return err == nil && p.Allows(ref)
}

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
	// Hosts are DNS names: compared in lower case.
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
		"GHCR.IO/acme/tools/cli:v1":            true,
		"index.docker.io/library/nginx:1.27":   true, // the parser's docker.io
		"Not An Image":                         false,
	} {
		if got := allows(p, image); got != want {
			t.Errorf("Allows(%q) = %v, want %v", image, got, want)
		}
	}
	if !allows(DefaultPolicy(), "anything.example/x:y") {
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
		// /** stands after a prefix of full names as the parser gives them.
		"GHCR.IO/acme/**":             `"GHCR.IO/acme/**" can match nothing: registry hosts are matched in lower case (ghcr.io/acme/**)`,
		"index.docker.io/library/**":  `"index.docker.io/library/**" can match nothing: the repositories under it are named docker.io/library/...; write docker.io/library/**`,
		"Registry.Example.com/team/*": `registry hosts are matched in lower case (registry.example.com/team/*)`,
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
	if err != nil || p.MaxNodesPerRun != 5000 || p.MaxRetries != 10 || !p.AllowAllNodes || p.MaxParallelism != 10000 {
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

// max-parallelism caps what a run may ask; the platform's own default must
// be within it, or every run that leaves parallelism unset would be refused.
func TestMaxParallelism(t *testing.T) {
	p, err := NewPolicyFromConfigMap(cm(map[string]string{KeyMaxParallelism: "20"}))
	if err != nil || p.MaxParallelism != 20 {
		t.Fatalf("policy %+v, %v", p, err)
	}
	for data, want := range map[[2]string]string{
		{KeyMaxParallelism, "0"}:     `max-parallelism: "0" is not a whole number from 1 to 10000`,
		{KeyMaxParallelism, "5"}:     `default-parallelism: 10 is more than max-parallelism (5)`,
		{KeyParallelism, "50"}:       "",
		{KeyMaxParallelism, "10001"}: `max-parallelism: "10001" is not a whole number from 1 to 10000`,
	} {
		_, err := NewPolicyFromConfigMap(cm(map[string]string{data[0]: data[1]}))
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s %q: error %v, want %q", data[0], data[1], err, want)
		}
	}
}

// A reconcile without a policy fails closed: the defaults would allow any
// image on every node.
func TestNoPolicyInTheContextFailsClosed(t *testing.T) {
	if p, err := FromContext(context.Background()); p != nil || !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("FromContext without a policy = %+v, %v; want ErrNotLoaded", p, err)
	}
	s := NewStore(nil)
	if p, err := FromContext(s.ToContext(context.Background())); p != nil || !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("FromContext of a store that never loaded = %+v, %v; want ErrNotLoaded", p, err)
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
