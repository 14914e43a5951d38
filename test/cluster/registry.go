package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/time/rate"
)

// startRegistry serves an OCI registry on the loopback address, in this
// process, and pushes the base image ko builds the controller on: the local
// cluster has no internet, so ko's default base cannot be fetched.
//
// A second registry wants a user and password, for pull secrets; both keep
// an access log, so that tests can tell whether a node pulled again.
func (c *Cluster) startRegistry(ctx context.Context) error {
	c.registryLog = &accessLog{}
	c.registryLink = &link{}
	open, err := serveRegistry(c.registryLog, c.registryLink, "", "")
	if err != nil {
		return err
	}
	c.AuthRegistryUser, c.AuthRegistryPassword = "puller", "s3cret-"+strconv.FormatInt(time.Now().UnixNano(), 36)
	auth, err := serveRegistry(c.registryLog, c.registryLink, c.AuthRegistryUser, c.AuthRegistryPassword)
	if err != nil {
		open.close()
		return err
	}
	c.stopRegistry = func() { open.close(); auth.close() }
	c.Registry, c.AuthRegistry = open.addr, auth.addr
	c.BaseImage = c.Registry + "/base/static:nonroot"
	return pushBaseImage(ctx, c.BaseImage)
}

type servedRegistry struct {
	addr  string
	close func()
}

// serveRegistry serves go-containerregistry's registry on a loopback port;
// with a user, every request must carry it (HTTP basic auth, as an
// htpasswd-protected distribution registry asks). The layers it serves go
// through link.
func serveRegistry(accesses *accessLog, link *link, user, password string) (servedRegistry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return servedRegistry{}, err
	}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="imageprepull-local"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		accesses.add(r.Method, l.Addr().String()+r.URL.Path)
		if lim := link.limiter(); lim != nil && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			w = &throttled{ResponseWriter: w, ctx: r.Context(), lim: lim}
		}
		reg.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.Serve(l) }()
	return servedRegistry{addr: l.Addr().String(), close: func() { _ = srv.Close() }}, nil
}

// link is the registries' way to the nodes: as fast as loopback, or, for the
// bench, a bandwidth shared by every layer download, as a cluster's link to
// a remote registry is.
type link struct {
	mu  sync.Mutex
	lim *rate.Limiter
}

func (l *link) limiter() *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lim
}

// LimitRegistryBandwidth makes the local registries serve blobs (layers and
// configs) at most bitsPerSecond in all (0: as fast as loopback). Manifests
// are not limited: a few KiB, their cost is the round trip.
func (c *Cluster) LimitRegistryBandwidth(bitsPerSecond float64) {
	c.registryLink.mu.Lock()
	defer c.registryLink.mu.Unlock()
	if bitsPerSecond <= 0 {
		c.registryLink.lim = nil
		return
	}
	c.registryLink.lim = rate.NewLimiter(rate.Limit(bitsPerSecond/8), throttleChunk)
}

// throttleChunk is how many bytes a layer download writes at a time.
const throttleChunk = 32 << 10

// throttled writes a response through the link's limiter.
type throttled struct {
	http.ResponseWriter
	ctx context.Context
	lim *rate.Limiter
}

func (t *throttled) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), throttleChunk)
		if err := t.lim.WaitN(t.ctx, n); err != nil {
			return written, err
		}
		m, err := t.ResponseWriter.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// accessLog counts the requests the registries answered, by method and
// host/path.
type accessLog struct {
	mu     sync.Mutex
	counts map[string]int
}

func (a *accessLog) add(method, path string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counts == nil {
		a.counts = map[string]int{}
	}
	a.counts[method+" "+path]++
}

// ManifestRequests counts the manifest requests (GET and HEAD) the local
// registries answered for image (host/repository:tag): each pull asks at
// least once.
func (c *Cluster) ManifestRequests(image string) int {
	ref, err := name.NewTag(image, name.Insecure)
	if err != nil {
		return 0
	}
	path := ref.RegistryStr() + "/v2/" + ref.RepositoryStr() + "/manifests/" + ref.TagStr()
	c.registryLog.mu.Lock()
	defer c.registryLog.mu.Unlock()
	return c.registryLog.counts["GET "+path] + c.registryLog.counts["HEAD "+path]
}

// registryHosts are the local registries' host:port, as image references name them.
func (c *Cluster) registryHosts() []string { return []string{c.Registry, c.AuthRegistry} }

// basePlatforms are the platforms of the base image, those `make release`
// builds for: ko builds only the platforms its base has.
var basePlatforms = []string{"amd64", "arm64"}

// pushBaseImage makes a distroless-like base from scratch: only /etc/passwd
// and /etc/group with a nonroot user (65532, as distroless has), as an index
// of one image per basePlatforms (the same files: nothing in it is
// architecture-specific).
func pushBaseImage(ctx context.Context, ref string) error {
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
		"etc/group":  "root:x:0:\nnonroot:x:65532:\n",
	}
	index := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range basePlatforms {
		img, err := filesImage(files, arch)
		if err != nil {
			return err
		}
		index = mutate.AppendManifests(index, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err == nil {
		err = remote.WriteIndex(r, index, remote.WithContext(ctx))
	}
	if err != nil {
		return fmt.Errorf("pushing the base image %s: %w", ref, err)
	}
	return nil
}

// PushImage pushes a one-layer image holding files (path -> content) to ref
// in one of the local registries, with the credentials the registry wants.
func (c *Cluster) PushImage(ctx context.Context, ref string, files map[string]string) error {
	return pushImage(ctx, ref, files, remote.WithAuth(&authn.Basic{Username: c.AuthRegistryUser, Password: c.AuthRegistryPassword}))
}

// pushImage pushes a linux image for this machine's architecture, running
// as the nonroot user, with one layer of files.
func pushImage(ctx context.Context, ref string, files map[string]string, opts ...remote.Option) error {
	img, err := filesImage(files, runtime.GOARCH)
	if err != nil {
		return err
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(r, img, append(opts, remote.WithContext(ctx))...)
}

// filesImage is a linux image for arch, running as the nonroot user, with
// one layer of files.
func filesImage(files map[string]string, arch string) (v1.Image, error) {
	layer, err := filesLayer(files)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Config.User = "65532"
	return mutate.ConfigFile(img, cfg)
}

// filesLayer is one image layer holding files (path -> content).
func filesLayer(files map[string]string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: int64(len(files[p])), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(files[p])); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
}

// remoteImage reads ref from a local registry, for this machine's platform.
func remoteImage(ctx context.Context, ref string) (v1.Image, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	return img, nil
}

// extractBinary writes the file at path inside the image ref to dest: the
// controller binary ko put at /ko-app/controller.
func extractBinary(ctx context.Context, ref, path, dest string) error {
	img, err := remoteImage(ctx, ref)
	if err != nil {
		return err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%s has no %s", ref, path)
		}
		if err != nil {
			return err
		}
		if strings.TrimPrefix(h.Name, "/") != path {
			continue
		}
		return writeExecutable(dest, tr)
	}
}

// PushVariant pushes to ref the image from with one more layer of files: an
// image that shares from's program and layers but is not from (another
// digest), for a rollout that must pull.
func (c *Cluster) PushVariant(ctx context.Context, from, ref string, files map[string]string) error {
	layer, err := filesLayer(files)
	if err != nil {
		return err
	}
	return pushAppended(ctx, from, ref, layer)
}

// PushLarge pushes to ref the image from with n more layers of each bytes of
// random data, which no compression shrinks: an image of a real
// application's size, new to every node.
func (c *Cluster) PushLarge(ctx context.Context, from, ref string, n int, each int64) error {
	var layers []v1.Layer
	for range n {
		l, err := random.Layer(each, types.DockerLayer)
		if err != nil {
			return err
		}
		layers = append(layers, l)
	}
	return pushAppended(ctx, from, ref, layers...)
}

func pushAppended(ctx context.Context, from, ref string, layers ...v1.Layer) error {
	img, err := remoteImage(ctx, from)
	if err != nil {
		return err
	}
	if img, err = mutate.AppendLayers(img, layers...); err != nil {
		return err
	}
	dst, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(dst, img, remote.WithContext(ctx))
}
