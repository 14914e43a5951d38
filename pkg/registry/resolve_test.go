package registry

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imageprepull/imageprepull/pkg/image"
)

// An index's digest is read once: each platform's image ID (its config's
// digest) comes from the registry the first time, from the cache after.
// Entries without a platform (attestations) are no platform's image.
func TestAnIndexIsReadOnceAndByPlatform(t *testing.T) {
	var manifests atomic.Int32
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			manifests.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	var index v1.ImageIndex = empty.Index
	want := ImageIDs{}
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm", Variant: "v7"}, {OS: "linux", Architecture: "arm", Variant: "v6"}} {
		img, err := random.Image(32, 1)
		if err != nil {
			t.Fatal(err)
		}
		index = mutate.AppendManifests(index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		id, _ := img.ConfigName()
		key := Platform{p.OS, p.Architecture}
		want[key] = append(want[key], id.String())
	}
	attestation, _ := random.Image(32, 1)
	index = mutate.AppendManifests(index, mutate.IndexAddendum{Add: attestation})
	tag, _ := name.NewTag(host + "/app:v1")
	if err := remote.WriteIndex(tag, index); err != nil {
		t.Fatal(err)
	}
	manifests.Store(0) // the push's own requests
	d, _ := index.Digest()
	ref, err := image.Parse(host + "/app:v1@" + d.String())
	if err != nil {
		t.Fatal(err)
	}

	r := NewResolver(8)
	for range 2 {
		got, err := r.ImageIDs(context.Background(), ref, authn.DefaultKeychain)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("image IDs %v, want %v", got, want)
		}
		for p, ids := range want {
			if strings.Join(got[p], ",") != strings.Join(ids, ",") {
				t.Errorf("%s: %v, want %v (both arm variants: a node's labels do not tell its variant)", p, got[p], ids)
			}
		}
	}
	if n := manifests.Load(); n != 1+3 { // the index, then each platform's manifest, once
		t.Errorf("%d manifest requests for two reads, want 4: the second read comes from the cache", n)
	}
}

// A single image is the same image on every platform, read from its
// manifest alone.
func TestASingleImageIsReadFromItsManifest(t *testing.T) {
	var requests atomic.Int32
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	img, err := random.Image(32, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(strings.TrimPrefix(srv.URL, "http://") + "/app:v1")
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	requests.Store(0)
	d, _ := img.Digest()
	ref, err := image.Parse(tag.String() + "@" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewResolver(8).ImageIDs(context.Background(), ref, authn.DefaultKeychain)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := img.ConfigName()
	for _, p := range []Platform{{"linux", "amd64"}, {"linux", "arm64"}, AnyPlatform} {
		if ids := got.For(p); len(ids) != 1 || ids[0] != id.String() {
			t.Errorf("%s: %v, want %s", p, ids, id)
		}
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2: the registry's ping and the manifest", n)
	}
}
