package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Images pushed to and read from the local registries.

// basePlatforms are the platforms of the base image, those `make release`
// builds for: ko builds only the platforms its base has.
var basePlatforms = []string{"amd64", "arm64"}

// pushBaseImage makes a distroless-like base from scratch: only /etc/passwd
// and /etc/group with a nonroot user (65532, as distroless has), as an index
// of one image per basePlatforms (the same files: nothing in it is
// architecture-specific).
func pushBaseImage(ctx context.Context, ref string) error {
	index, err := filesIndex(baseFiles, false)
	if err != nil {
		return err
	}
	dst, err := name.ParseReference(ref, name.Insecure)
	if err == nil {
		err = remote.WriteIndex(dst, index, remote.WithContext(ctx))
	}
	if err != nil {
		return fmt.Errorf("pushing the base image %s: %w", ref, err)
	}
	return nil
}

// baseFiles are the base image's files.
var baseFiles = map[string]string{
	"etc/passwd": "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
	"etc/group":  "root:x:0:\nnonroot:x:65532:\n",
}

// Push pushes a one-layer image holding files (path -> content) to ref in
// one of the local registries, with the credentials the registry wants.
func (r *Registries) Push(ctx context.Context, ref string, files map[string]string) error {
	return pushImage(ctx, ref, files, remote.WithAuth(&authn.Basic{Username: r.AuthUser, Password: r.AuthPassword}))
}

// pushImage pushes a linux image for this machine's architecture, running
// as the nonroot user, with one layer of files.
func pushImage(ctx context.Context, ref string, files map[string]string, opts ...remote.Option) error {
	img, err := filesImage(files, runtime.GOARCH)
	if err != nil {
		return err
	}
	dst, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(dst, img, append(opts, remote.WithContext(ctx))...)
}

// filesIndex is an image index of one filesImage per basePlatforms; marked
// adds platform.txt naming the platform to each, so that each has its own
// config, as a real multi-platform build's images do.
func filesIndex(files map[string]string, marked bool) (v1.ImageIndex, error) {
	index := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range basePlatforms {
		own := files
		if marked {
			own = map[string]string{"platform.txt": "linux/" + arch}
			for k, v := range files {
				own[k] = v
			}
		}
		img, err := filesImage(own, arch)
		if err != nil {
			return nil, err
		}
		index = mutate.AppendManifests(index, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return index, nil
}

// filesImage is a linux image for arch, running as the nonroot user, with
// one layer of files.
func filesImage(files map[string]string, arch string) (v1.Image, error) {
	layer, err := filesLayer(files)
	if err != nil {
		return nil, err
	}
	return layerImage(layer, arch, func(*v1.Config) {})
}

// programImage is a linux image for this machine's architecture, of the
// base's files and files in one layer, that runs entrypoint as the nonroot
// user with /bin on its PATH: a program's image as ko makes it.
func programImage(files map[string]entry, entrypoint []string) (v1.Image, error) {
	all := make(map[string]entry, len(files)+len(baseFiles))
	for p, content := range baseFiles {
		all[p] = entry{data: []byte(content), mode: 0o644}
	}
	for p, e := range files {
		all[p] = e
	}
	layer, err := layerOf(all)
	if err != nil {
		return nil, err
	}
	return layerImage(layer, runtime.GOARCH, func(cfg *v1.Config) {
		cfg.Entrypoint, cfg.Env = entrypoint, []string{"PATH=/bin"}
	})
}

// layerImage is a linux image for arch of one layer, running as the nonroot
// user, its config then edited by set.
func layerImage(layer v1.Layer, arch string, set func(*v1.Config)) (v1.Image, error) {
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
	set(&cfg.Config)
	return mutate.ConfigFile(img, cfg)
}

// entry is a file of a layer: its content and mode, or, with link set, a
// symbolic link to link.
type entry struct {
	data []byte
	mode int64
	link string
}

// filesLayer is one image layer holding files (path -> content).
func filesLayer(files map[string]string) (v1.Layer, error) {
	entries := make(map[string]entry, len(files))
	for p, content := range files {
		entries[p] = entry{data: []byte(content), mode: 0o644}
	}
	return layerOf(entries)
}

// layerOf is one image layer holding entries, in path order.
func layerOf(entries map[string]entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		e := entries[p]
		h := &tar.Header{Name: p, Mode: e.mode, Size: int64(len(e.data)), Typeflag: tar.TypeReg}
		if e.link != "" {
			h = &tar.Header{Name: p, Mode: 0o777, Linkname: e.link, Typeflag: tar.TypeSymlink}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if e.link == "" {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
}

// remoteImage reads ref from a local registry, for this machine's platform.
func remoteImage(ctx context.Context, ref string) (v1.Image, error) {
	src, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(src, remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
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
func (r *Registries) PushVariant(ctx context.Context, from, ref string, files map[string]string) error {
	layer, err := filesLayer(files)
	if err != nil {
		return err
	}
	return pushAppended(ctx, from, ref, layer)
}

// PushLarge pushes to ref the image from with n more layers of each bytes of
// random data, which no compression shrinks: an image of a real
// application's size, new to every node.
func (r *Registries) PushLarge(ctx context.Context, from, ref string, n int, each int64) error {
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

// ImageID is what a node of platform os/arch holds as the image ID of image
// (host/repository:tag) once it pulled it from a local registry: the digest
// of the config of the tag's image for that platform, containerd's CRI image
// ID. The pull simulator reports it for simulated nodes. ok is false for an
// image in no local registry, or one the registry does not have: it reads
// no other host.
func (r *Registries) ImageID(ctx context.Context, image, os, arch string) (string, bool) {
	ref, err := name.ParseReference(image, name.Insecure)
	if err != nil || !slices.Contains(r.hosts(), ref.Context().RegistryStr()) {
		return "", false
	}
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: os, Architecture: arch}),
		remote.WithAuth(&authn.Basic{Username: r.AuthUser, Password: r.AuthPassword}))
	if err != nil {
		return "", false
	}
	id, err := img.ConfigName()
	if err != nil {
		return "", false
	}
	return id.String(), true
}

// Digest is the manifest digest ref names now in a local registry: what a
// push prints, and what a pipeline hands over as IMAGE_DIGEST.
func (r *Registries) Digest(ctx context.Context, ref string) (string, error) {
	src, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(src, remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: r.AuthUser, Password: r.AuthPassword}))
	if err != nil {
		return "", fmt.Errorf("reading the digest of %s: %w", ref, err)
	}
	return desc.Digest.String(), nil
}

// PushIndex pushes to ref an image index of one image per platform of the
// base image (linux/amd64 and linux/arm64), each holding files and its
// platform's name, and returns the index's digest.
func (r *Registries) PushIndex(ctx context.Context, ref string, files map[string]string) (string, error) {
	index, err := filesIndex(files, true)
	if err != nil {
		return "", err
	}
	dst, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.WriteIndex(dst, index, remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: r.AuthUser, Password: r.AuthPassword})); err != nil {
		return "", fmt.Errorf("pushing the index %s: %w", ref, err)
	}
	d, err := index.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}
