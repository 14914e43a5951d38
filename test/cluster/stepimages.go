package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The images the seed pipeline's own steps run, made here: the seed builds
// with golang and kaniko images and deploys with a kubectl image, none of
// which this closed network can fetch. The builder is the Go toolchain this
// machine builds with, ko (the Go image builder, which needs no Docker
// daemon) and busybox's shell; the kubectl image is the kubectl make tools
// built, and busybox. They are pushed on first use (only the pipelines that
// build or deploy need them). The toolchain's layer is stored uncompressed:
// it is most of the image, and gzip would spend CPU for a registry on
// loopback.

// StepImages are the step images, by digest in the open registry.
type StepImages struct {
	// Builder runs go and ko, with GOROOT /usr/local/go and both on PATH.
	Builder string
	// Kubectl runs kubectl, in /bin.
	Kubectl string
}

// goroot is where the builder holds the Go toolchain.
const goroot = "usr/local/go"

// PushStepImages pushes the builder and kubectl images to the open registry.
func (c *Cluster) PushStepImages(ctx context.Context) (StepImages, error) {
	var imgs StepImages
	shell, err := busyboxFiles()
	if err != nil {
		return imgs, fmt.Errorf("the step images' shell (make tools installs busybox-static): %w", err)
	}
	kubectl, err := os.ReadFile(c.Tools.Path("kubectl"))
	if err != nil {
		return imgs, fmt.Errorf("kubectl for the kubectl step image: %w", err)
	}
	files := map[string]entry{"bin/kubectl": {data: kubectl, mode: 0o755}}
	for p, e := range shell {
		files[p] = e
	}
	if imgs.Kubectl, err = pushProgram(ctx, c.Registry+"/steps/kubectl", files, []string{"/bin/kubectl"}); err != nil {
		return imgs, err
	}

	ko := c.Tools.Path("ko")
	files, err = programWithLibraries(ko, "bin/ko")
	if err != nil {
		return imgs, err
	}
	for p, e := range shell {
		files[p] = e
	}
	base, err := programImage(files, []string{"/bin/sh"})
	if err != nil {
		return imgs, err
	}
	toolchain, err := goToolchainLayer(ctx)
	if err != nil {
		return imgs, err
	}
	builder, err := mutate.AppendLayers(base, toolchain)
	if err != nil {
		return imgs, err
	}
	cfg, err := builder.ConfigFile()
	if err != nil {
		return imgs, err
	}
	cfg = cfg.DeepCopy()
	// GOTOOLCHAIN=local: the image's toolchain builds, whatever a go.mod asks
	// (there is no proxy to fetch another from); CGO_ENABLED=0: there is no C
	// compiler, and ko builds static programs anyway.
	cfg.Config.Env = []string{"PATH=/" + goroot + "/bin:/bin", "GOROOT=/" + goroot, "GOTOOLCHAIN=local", "CGO_ENABLED=0"}
	if builder, err = mutate.ConfigFile(builder, cfg); err != nil {
		return imgs, err
	}
	imgs.Builder, err = pushImageByDigest(ctx, c.Registry+"/steps/go-builder", builder)
	return imgs, err
}

// programWithLibraries is the program at path, placed at dest, with the
// shared libraries and the dynamic loader it was linked against, from this
// machine (Debian's libc6): ko is built with Go's defaults, cgo on.
func programWithLibraries(path, dest string) (map[string]entry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (make tools builds it)", path, err)
	}
	files := map[string]entry{dest: {data: data, mode: 0o755}}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		return nil, fmt.Errorf("%s's libraries: %w", path, err)
	}
	var need []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp := make([]byte, p.Filesz)
			if _, err := p.ReadAt(interp, 0); err != nil {
				return nil, err
			}
			need = append(need, strings.TrimRight(string(interp), "\x00"))
		}
	}
	for _, lib := range libs {
		found, _ := filepath.Glob("/lib/*-linux-gnu/" + lib)
		if len(found) == 0 {
			found, _ = filepath.Glob("/usr/lib/*-linux-gnu/" + lib)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s needs %s, which is not under /lib or /usr/lib", path, lib)
		}
		need = append(need, found[0])
	}
	for _, p := range need {
		// Read through links: the image holds the file at the path the
		// program names.
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s needs %s: %w", path, p, err)
		}
		files[strings.TrimPrefix(p, "/")] = entry{data: b, mode: 0o755}
	}
	return files, nil
}

// goToolchainLayer is the Go toolchain the go command on PATH runs (go.mod's
// toolchain, which the Makefile lets it fetch), under /usr/local/go, less
// what building does not read (its tests, docs and API lists), uncompressed;
// and /tmp.
func goToolchainLayer(ctx context.Context) (v1.Layer, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOROOT: %w", err)
	}
	root := strings.TrimSpace(string(out))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// And /tmp, where go and ko build (the base image has none).
	if err := tw.WriteHeader(&tar.Header{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir}); err != nil {
		return nil, err
	}
	skip := map[string]bool{"test": true, "doc": true, "api": true, "misc": true}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() && skip[rel] {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		name := goroot
		if rel != "." {
			name += "/" + filepath.ToSlash(rel)
		}
		// Readable (and where executable, runnable) by the nonroot user the
		// steps run as; the module cache holds the toolchain read-only.
		mode := int64(0o644)
		if info.Mode()&0o111 != 0 || d.IsDir() {
			mode = 0o755
		}
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Name: name + "/", Mode: mode, Typeflag: tar.TypeDir})
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return tw.WriteHeader(&tar.Header{Name: name, Mode: 0o777, Linkname: link, Typeflag: tar.TypeSymlink})
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("the Go toolchain at %s: %w", root, err)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return static.NewLayer(buf.Bytes(), types.DockerUncompressedLayer), nil
}
