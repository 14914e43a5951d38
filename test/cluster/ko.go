package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// koEnv is what ko needs to build onto the local registry: the base image
// pushed there, the repository to push to, and kubectl on PATH for ko apply.
// From a multi-platform base, ko builds linux/amd64 unless GOARCH names
// another: the binaries run here, on this machine's.
func (c *Cluster) koEnv() []string {
	return append(os.Environ(), "GOARCH="+runtime.GOARCH,
		"KO_DOCKER_REPO="+c.Registry+"/imageprepull",
		"KO_DEFAULTBASEIMAGE="+c.BaseImage,
		"KUBECONFIG="+c.Kubeconfig,
		"PATH="+filepath.Dir(c.Tools.Path("kubectl"))+string(os.PathListSeparator)+os.Getenv("PATH"),
	)
}

// Ko runs the built ko in the repository root, against the local registry
// and cluster, and returns its standard output and error separately.
func (c *Cluster) Ko(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	return c.runKo(ctx, nil, args...)
}

// KoBuild builds the Go program at importPath with ko, as the image repo:tag
// in a local registry (repo whole, as --bare has it), and returns the
// reference by digest ko printed.
func (c *Cluster) KoBuild(ctx context.Context, repo, tag, importPath string) (string, error) {
	out, _, err := c.runKo(ctx, []string{"KO_DOCKER_REPO=" + repo}, "build", "--bare", "--insecure-registry", "--tags", tag, importPath)
	return strings.TrimSpace(out), err
}

// runKo runs ko with the local cluster's environment, plus env (later
// entries win).
func (c *Cluster) runKo(ctx context.Context, env []string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, c.Tools.Path("ko"), args...)
	cmd.Dir = c.opts.Root
	cmd.Env = append(c.koEnv(), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), errb.String(), fmt.Errorf("ko %s: %w\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), errb.String(), nil
}

// koInstall installs config/ as users do, with `ko apply -f config/`, and
// returns the controller binary from the image ko pushed, so that the tests
// run the artifact users install.
func (c *Cluster) koInstall(ctx context.Context) (binary string, err error) {
	_, stderr, err := c.Ko(ctx, "apply", "--insecure-registry", "-f", "config/")
	if err != nil {
		return "", err
	}
	c.KoApplyOutput = stderr
	dep, err := c.Kube.AppsV1().Deployments(Namespace).Get(ctx, "imageprepull-controller", metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	image := dep.Spec.Template.Spec.Containers[0].Image
	if !strings.HasPrefix(image, c.Registry+"/") || !strings.Contains(image, "@sha256:") {
		return "", fmt.Errorf("the Deployment's image %q is not a digest in the local registry", image)
	}
	c.ControllerImage = image
	binary = filepath.Join(c.Dir, "controller-from-image")
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return binary, extractBinary(ctx, image, "ko-app/controller", binary)
}
