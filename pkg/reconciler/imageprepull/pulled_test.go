package imageprepull

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	kruisev1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/imageprepull/imageprepull/pkg/apis/custom/v1alpha1"
)

// testRegistry is a registry served on the loopback address, in the test's
// process; with a password, every request must carry it.
type testRegistry struct {
	host           string
	user, password string
}

func newTestRegistry(t *testing.T, user, password string) *testRegistry {
	t.Helper()
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); user != "" && (!ok || u != user || p != password) {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &testRegistry{host: strings.TrimPrefix(srv.URL, "http://"), user: user, password: password}
}

func (r *testRegistry) auth() remote.Option {
	if r.user == "" {
		return remote.WithAuth(authn.Anonymous)
	}
	return remote.WithAuth(&authn.Basic{Username: r.user, Password: r.password})
}

// push writes a random image for platform to repo:tag and returns its
// manifest digest and config digest (its image ID on a node).
func (r *testRegistry) push(t *testing.T, repo, tag string, platform v1.Platform) (manifest, config string) {
	t.Helper()
	img := platformImage(t, platform)
	ref, err := name.NewTag(r.host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, r.auth()); err != nil {
		t.Fatal(err)
	}
	return digestOf(t, img), configOf(t, img)
}

// pushIndex writes an index of one random image per platform to repo:tag and
// returns its digest and each platform's config digest.
func (r *testRegistry) pushIndex(t *testing.T, repo, tag string, platforms ...v1.Platform) (string, map[string]string) {
	t.Helper()
	var index v1.ImageIndex = empty.Index
	configs := map[string]string{}
	for _, p := range platforms {
		img := platformImage(t, p)
		index = mutate.AppendManifests(index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		configs[p.OS+"/"+p.Architecture] = configOf(t, img)
	}
	ref, err := name.NewTag(r.host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, index, r.auth()); err != nil {
		t.Fatal(err)
	}
	d, err := index.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String(), configs
}

func platformImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = p.OS, p.Architecture
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(t *testing.T, img v1.Image) string {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func configOf(t *testing.T, img v1.Image) string {
	d, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

var amd64, arm64 = v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"}

// pulledOn plays kruise-daemon on node: it reports the job's tag pulled, with
// imageID, in the node's NodeImage (labelled with the node's platform).
func (e *env) pulledOn(node string, job kruisev1alpha1.ImagePullJob, platform v1.Platform, imageID string) {
	e.t.Helper()
	name, tag := nodeImageKey(job.Spec.Image)
	ni := &kruisev1alpha1.NodeImage{
		ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{corev1.LabelOSStable: platform.OS, corev1.LabelArchStable: platform.Architecture}},
		Spec: kruisev1alpha1.NodeImageSpec{Images: map[string]kruisev1alpha1.ImageSpec{name: {Tags: []kruisev1alpha1.ImageTagSpec{{
			Tag: tag, Version: 1, OwnerReferences: []corev1.ObjectReference{{UID: job.UID}},
		}}}}},
		Status: kruisev1alpha1.NodeImageStatus{ImageStatuses: map[string]kruisev1alpha1.ImageStatus{name: {Tags: []kruisev1alpha1.ImageTagStatus{{
			Tag: tag, Version: 1, Phase: kruisev1alpha1.ImagePhaseSucceeded, ImageID: name + "@" + imageID,
		}}}}},
	}
	if _, err := e.kruise.AppsV1alpha1().NodeImages().Create(e.ctx, ni, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// An image given with a digest is pulled by its tag, with imagePullPolicy
// Always (a node that has another image under the tag pulls again), and
// each node is checked against what the digest is for its platform: the
// image ID kruise-daemon reports is the image's config digest.
func TestEachNodeIsCheckedAgainstTheDigest(t *testing.T) {
	reg := newTestRegistry(t, "", "")
	pushed, config := reg.push(t, "shop/app", "v1", amd64)
	_, stale := reg.push(t, "shop/app", "v0", amd64) // what a node may still hold under the tag
	image := reg.host + "/shop/app:v1"

	e := newEnv(t)
	e.create(newRun("run", str("image", image), str("digest", pushed), arr("nodeNames", "node-1", "node-2")))
	e.mustReconcile("run")
	job := e.jobList()[0]
	if job.Spec.Image != image || job.Spec.ImagePullPolicy != kruisev1alpha1.PullAlways {
		t.Fatalf("job pulls %s with %s, want the tag %s with Always", job.Spec.Image, job.Spec.ImagePullPolicy, image)
	}
	e.pulledOn("node-1", job, amd64, config)
	e.pulledOn("node-2", job, amd64, stale)
	e.setJobStatus(job.Name, completed(2, 2))
	c := condition(e.mustReconcile("run"))
	if !c.IsFalse() || c.Reason != v1alpha1.ReasonThresholdNotMet.String() {
		t.Fatalf("condition = %+v, want ThresholdNotMet: node-2 has the stale image", c)
	}
	contains(t, "message", c.Message, "1/2 nodes have "+image+" (1 failed)",
		"node-2: has image "+stale+", not "+config+" (what "+reg.host+"/shop/app@"+pushed+" is): the tag named another image when the node pulled it (pushed again since the digest was taken?)")
	run := e.get("run")
	if got := result(run, v1alpha1.ResultFailedNodes); got != "node-2" {
		t.Errorf("failedNodes = %q, want node-2", got)
	}
	if got := result(run, v1alpha1.ResultDigests); got != reg.host+"/shop/app@"+pushed {
		t.Errorf("digests = %q", got)
	}

	// With every node holding the pushed image, the run succeeds and says so.
	e.create(newRun("good", str("image", image), str("digest", pushed), arr("nodeNames", "node-3")))
	e.mustReconcile("good")
	var good kruisev1alpha1.ImagePullJob
	for _, j := range e.jobList() {
		if j.Labels[LabelCustomRun] == "good" {
			good = j
		}
	}
	e.pulledOn("node-3", good, amd64, config)
	e.setJobStatus(good.Name, completed(1, 1))
	done := e.mustReconcile("good")
	if c := condition(done); !c.IsTrue() {
		t.Fatalf("condition = %+v", c)
	}
	if got := result(done, v1alpha1.ResultImageIDs); got != config {
		t.Errorf("imageIDs = %q, want %s", got, config)
	}
}

// For an index, each node is checked against its own platform's image.
func TestANodeIsCheckedAgainstItsPlatform(t *testing.T) {
	reg := newTestRegistry(t, "", "")
	index, configs := reg.pushIndex(t, "shop/app", "v2", amd64, arm64)
	image := reg.host + "/shop/app:v2@" + index

	e := newEnv(t)
	e.create(newRun("run", str("image", image), arr("nodeNames", "x86", "arm", "confused")))
	e.mustReconcile("run")
	job := e.jobList()[0]
	e.pulledOn("x86", job, amd64, configs["linux/amd64"])
	e.pulledOn("arm", job, arm64, configs["linux/arm64"])
	e.pulledOn("confused", job, amd64, configs["linux/arm64"])
	e.setJobStatus(job.Name, completed(3, 3))
	c := condition(e.mustReconcile("run"))
	if c.Reason != v1alpha1.ReasonThresholdNotMet.String() {
		t.Fatalf("condition = %+v", c)
	}
	contains(t, "message", c.Message, "2/3 nodes have", "confused: has image "+configs["linux/arm64"]+", not "+configs["linux/amd64"])
	if got := result(e.get("run"), v1alpha1.ResultFailedNodes); got != "confused" {
		t.Errorf("failedNodes = %q", got)
	}
}

// The registry is read with the run's pull Secrets; one the controller
// cannot read ends the run with a reason that says what to grant, never a
// silent success.
func TestTheRegistryIsReadWithTheRunsPullSecrets(t *testing.T) {
	reg := newTestRegistry(t, "puller", "s3cret")
	pushed, config := reg.push(t, "private/app", "v1", amd64)
	image := reg.host + "/private/app:v1"
	auth := base64.StdEncoding.EncodeToString([]byte("puller:s3cret"))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred", Namespace: ns}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.host, auth))}}

	e := newEnv(t)
	if _, err := e.kube.CoreV1().Secrets(ns).Create(context.Background(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		run     string
		secrets []string
		want    v1alpha1.Reason
	}{
		// Without first: what a digest is, once read, is kept for every
		// run (it names the same content forever; the nodes still pull
		// with each run's own Secrets).
		{"without", nil, v1alpha1.ReasonRegistryUnreadable},
		{"with-secret", []string{"regcred"}, ""},
	} {
		opts := []runOption{str("image", image), str("digest", pushed), arr("nodeNames", "node-"+tc.run)}
		if tc.secrets != nil {
			opts = append(opts, arr("pullSecrets", tc.secrets...))
		}
		e.create(newRun(tc.run, opts...))
		e.mustReconcile(tc.run)
		var job kruisev1alpha1.ImagePullJob
		for _, j := range e.jobList() {
			if j.Labels[LabelCustomRun] == tc.run {
				job = j
			}
		}
		e.pulledOn("node-"+tc.run, job, amd64, config)
		e.setJobStatus(job.Name, completed(1, 1))
		c := condition(e.mustReconcile(tc.run))
		switch {
		case tc.want == "" && !c.IsTrue():
			t.Errorf("%s: condition = %+v, want Succeeded", tc.run, c)
		case tc.want != "" && c.Reason != tc.want.String():
			t.Errorf("%s: condition = %+v, want %s", tc.run, c, tc.want)
		case tc.want != "":
			contains(t, "message", c.Message, "reading "+reg.host+"/private/app@"+pushed+" from registry "+reg.host,
				"UNAUTHORIZED", "name a kubernetes.io/dockerconfigjson Secret that can read "+reg.host+"/private/app in pullSecrets")
		}
	}

	// A registry nothing answers at.
	e.create(newRun("gone", str("image", "127.0.0.1:1/app:v1"), str("digest", pushed), arr("nodeNames", "node-9")))
	e.mustReconcile("gone")
	var job kruisev1alpha1.ImagePullJob
	for _, j := range e.jobList() {
		if j.Labels[LabelCustomRun] == "gone" {
			job = j
		}
	}
	e.setJobStatus(job.Name, completed(1, 1))
	c := condition(e.mustReconcile("gone"))
	if c.Reason != v1alpha1.ReasonRegistryUnreadable.String() || !strings.Contains(c.Message, "from registry 127.0.0.1:1") {
		t.Errorf("condition = %+v, want RegistryUnreadable naming the registry", c)
	}
}

// Without a digest a run goes as it did: it succeeds on what OpenKruise
// counts, and says which image the nodes hold when they all agree.
func TestWithoutADigestTheNodesImageIsReported(t *testing.T) {
	e := newEnv(t)
	e.create(newRun("run", str("image", app), arr("nodeNames", "node-1", "node-2")))
	e.mustReconcile("run")
	job := e.jobList()[0]
	if job.Spec.ImagePullPolicy != kruisev1alpha1.PullIfNotPresent {
		t.Errorf("imagePullPolicy %s, want the default IfNotPresent", job.Spec.ImagePullPolicy)
	}
	e.pulledOn("node-1", job, amd64, "sha256:"+strings.Repeat("a", 64))
	e.pulledOn("node-2", job, amd64, "sha256:"+strings.Repeat("b", 64))
	e.setJobStatus(job.Name, completed(2, 2))
	run := e.mustReconcile("run")
	c := condition(run)
	if !c.IsTrue() {
		t.Fatalf("condition = %+v", c)
	}
	contains(t, "message", c.Message, "2/2 nodes have "+app+" (the nodes hold 2 different images under the tag: give its digest to have each checked)")
	if got := result(run, v1alpha1.ResultImageIDs); got != "" {
		t.Errorf("imageIDs = %q of nodes that disagree, want empty", got)
	}
	if got := result(run, v1alpha1.ResultDigests); got != "" {
		t.Errorf("digests = %q without a digest", got)
	}

	// Nodes that agree: the image they hold is the result.
	e.create(newRun("agree", str("image", app), arr("nodeNames", "node-3", "node-4")))
	e.mustReconcile("agree")
	var job2 kruisev1alpha1.ImagePullJob
	for _, j := range e.jobList() {
		if j.Labels[LabelCustomRun] == "agree" {
			job2 = j
		}
	}
	id := "sha256:" + strings.Repeat("c", 64)
	e.pulledOn("node-3", job2, amd64, id)
	e.pulledOn("node-4", job2, amd64, id)
	e.setJobStatus(job2.Name, completed(2, 2))
	run = e.mustReconcile("agree")
	if c := condition(run); !c.IsTrue() || strings.Contains(c.Message, "different images") {
		t.Fatalf("condition = %+v", c)
	}
	if got := result(run, v1alpha1.ResultImageIDs); got != id {
		t.Errorf("imageIDs = %q, want %s", got, id)
	}
}

// A node OpenKruise counts as pulled whose NodeImage no longer records the
// pull (the controller was away past OpenKruise's TTL for the record) is
// not counted as having the image a digest names: nothing says it has.
func TestANodeThatCannotBeCheckedIsNotCounted(t *testing.T) {
	reg := newTestRegistry(t, "", "")
	pushed, config := reg.push(t, "shop/app", "v1", amd64)
	image := reg.host + "/shop/app:v1"

	e := newEnv(t)
	e.create(newRun("run", str("image", image), str("digest", pushed), arr("nodeNames", "node-1", "node-2"), str("successThreshold", "100%")))
	e.mustReconcile("run")
	job := e.jobList()[0]
	e.pulledOn("node-1", job, amd64, config)
	e.setJobStatus(job.Name, completed(2, 2))
	c := condition(e.mustReconcile("run"))
	if c.Reason != v1alpha1.ReasonThresholdNotMet.String() {
		t.Fatalf("condition = %+v, want ThresholdNotMet", c)
	}
	contains(t, "message", c.Message, "1/2 nodes have "+image+" (1 not checked)",
		"1 node(s) pulled "+image+", but their NodeImages no longer record which image they have")
}
