package cluster

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Release runs `make release`'s script, hack/release.sh, against the local
// registry and its base image, writing into dir, and returns release.yaml's
// path.
func (c *Cluster) Release(ctx context.Context, version, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.opts.Root, "hack", "release.sh"), "--insecure-registry")
	cmd.Dir = c.opts.Root
	cmd.Env = append(c.koEnv(), "VERSION="+version, "RELEASE_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("hack/release.sh: %w\n%s", err, out)
	}
	return filepath.Join(dir, "release.yaml"), nil
}

// ImagePlatforms lists the platforms ("linux/amd64", ...) of the image
// index at ref in a local registry.
func ImagePlatforms(ctx context.Context, ref string) ([]string, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	index, err := remote.Index(r, remote.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("reading the index %s: %w", ref, err)
	}
	m, err := index.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range m.Manifests {
		if d.Platform != nil {
			out = append(out, d.Platform.OS+"/"+d.Platform.Architecture)
		}
	}
	return out, nil
}

// Upgrade rolls the controller out to image, as the Deployment's rolling
// update does once `kubectl apply` changed its image (one replica,
// maxUnavailable 0): a process of the new image starts, then the old ones
// stop with SIGTERM, which makes Knative release their leases, and the new
// one takes up the runs in flight. The Deployment is scaled to 0 again
// first: its processes are played here.
func (c *Cluster) Upgrade(ctx context.Context, image string) error {
	if err := c.scaleDeploymentToZero(ctx); err != nil {
		return err
	}
	if err := c.useImage(ctx, image); err != nil {
		return err
	}
	old := c.Controllers.live()
	if err := c.Controllers.Start(ctx); err != nil {
		return err
	}
	for _, p := range old {
		p.stop(30 * time.Second)
	}
	return nil
}

// useImage makes the controller binary of image, for this machine's
// platform, the one processes start from.
func (c *Cluster) useImage(ctx context.Context, image string) error {
	if !strings.HasPrefix(image, c.Registry+"/") || !strings.Contains(image, "@sha256:") {
		return fmt.Errorf("the image %q is not a digest in the local registry", image)
	}
	bin := filepath.Join(c.Dir, "controller-"+image[strings.LastIndex(image, ":")+1:][:12])
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := extractBinary(ctx, image, "ko-app/controller", bin); err != nil {
		return err
	}
	c.Controllers.binary, c.ControllerImage = bin, image
	return nil
}

// Uninstall does what `kubectl delete -f release.yaml` does, waiting for
// every object to be gone. The controller's processes are stopped first
// with SIGTERM, as its pods are once the Deployment goes: run here after the
// ClusterRoles were gone and before its token was, they would make requests
// the API server refuses, which the suite's audit takes for missing grants.
func (c *Cluster) Uninstall(ctx context.Context, release string) error {
	c.Controllers.Stop()
	_, err := c.Kubectl(ctx, "delete", "-f", release, "--wait=true", "--timeout=3m")
	return err
}

// Reinstall applies release.yaml after Uninstall and runs the controller of
// its image (a new ServiceAccount, so a new token).
func (c *Cluster) Reinstall(ctx context.Context, release, image string) error {
	if _, err := c.Kubectl(ctx, "apply", "-f", release); err != nil {
		return err
	}
	if err := c.useImage(ctx, image); err != nil {
		return err
	}
	return c.runInstalled(ctx)
}
