package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Tekton's helper images: what a TaskRun's pod runs besides its steps, which
// Tekton's controller takes by flag. Tekton's release builds four of them
// with ko from its cmd/ and takes a shell image from elsewhere. Here the four
// are the static programs hack/build-tools.sh built from the Tekton version
// the cluster runs (once per version), laid out as ko lays them out
// (/ko-app/NAME, the path Tekton's pod spec runs) on the local base; the
// shell image is Debian's busybox-static. Nothing comes from outside the
// machine, and a cluster's start pushes them without building anything.

// busyboxPath is where Debian's busybox-static puts its program.
const busyboxPath = "/bin/busybox"

// tektonImages are the helper images, by digest in the local registry.
type tektonImages struct {
	entrypoint, nop, workingDirInit, sidecarLogResults, shell string
}

// flags are the controller's flags that name them. There is no Windows
// node: a Windows step's pod would not start here, as on any cluster without
// one.
func (i tektonImages) flags() []string {
	return []string{"-entrypoint-image", i.entrypoint, "-nop-image", i.nop,
		"-workingdirinit-image", i.workingDirInit, "-sidecarlogresults-image", i.sidecarLogResults,
		"-shell-image", i.shell, "-shell-image-win", "no-windows-shell-here.invalid/pwsh"}
}

// pushTektonImages pushes the helper images to the open registry. Without
// busybox-static (make tools installs it as root), the shell image names what
// is missing: a pod that needs it then says so in its events.
func pushTektonImages(ctx context.Context, tools *Tools, registry string) (tektonImages, error) {
	var imgs tektonImages
	for _, p := range []struct {
		name string
		ref  *string
	}{
		{"entrypoint", &imgs.entrypoint}, {"nop", &imgs.nop},
		{"workingdirinit", &imgs.workingDirInit}, {"sidecarlogresults", &imgs.sidecarLogResults},
	} {
		bin := tools.Path("tekton-" + p.name)
		data, err := os.ReadFile(bin)
		if err != nil {
			return imgs, fmt.Errorf("Tekton's %s, which its pods run: %w (make tools builds it)", p.name, err)
		}
		ref, err := pushProgram(ctx, registry+"/tekton/"+p.name,
			map[string]entry{"ko-app/" + p.name: {data: data, mode: 0o755}}, []string{"/ko-app/" + p.name})
		if err != nil {
			return imgs, err
		}
		*p.ref = ref
	}
	shell, err := busyboxFiles()
	if errors.Is(err, fs.ErrNotExist) {
		imgs.shell = "busybox-static-not-installed.invalid/shell"
		return imgs, nil
	}
	if err != nil {
		return imgs, err
	}
	imgs.shell, err = pushProgram(ctx, registry+"/tekton/shell", shell, []string{"/bin/sh"})
	return imgs, err
}

// busyboxFiles are busybox and a link to it under each applet's name in
// /bin, as busybox --install -s lays them out: sh, and the cat, touch, chmod
// and base64 that Tekton's script placement runs.
func busyboxFiles() (map[string]entry, error) {
	data, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, err
	}
	list, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busyboxPath, err)
	}
	files := map[string]entry{"bin/busybox": {data: data, mode: 0o755}}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			files["bin/"+applet] = entry{link: "busybox"}
		}
	}
	return files, nil
}

// pushProgram pushes an image of files on the local base's, running
// entrypoint, as repo:local, and returns its reference by digest.
func pushProgram(ctx context.Context, repo string, files map[string]entry, entrypoint []string) (string, error) {
	img, err := programImage(files, entrypoint)
	if err != nil {
		return "", err
	}
	return pushImageByDigest(ctx, repo, img)
}

// pushImageByDigest pushes img as repo:local and returns its reference by
// digest.
func pushImageByDigest(ctx context.Context, repo string, img v1.Image) (string, error) {
	dst, err := name.ParseReference(repo+":local", name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(dst, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("pushing %s: %w", dst, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	return repo + "@" + digest.String(), nil
}
