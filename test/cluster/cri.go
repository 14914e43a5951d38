package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

// cri is the real node's containerd as the kubelet reaches it: the CRI over
// its socket, through the client the kubelet itself is built with (so that on
// a cold machine its packages compile once, for both, and no CLI is built).
type cri struct {
	runtime internalapi.RuntimeService
	images  internalapi.ImageManagerService
}

// criTimeout bounds the connection and each call, as crictl's --timeout did.
const criTimeout = 30 * time.Second

// withCRI connects to the node's containerd for the length of do.
func (rn *RealNode) withCRI(do func(*cri) error) error {
	endpoint := "unix://" + rn.socket
	runtime, err := remote.NewRemoteRuntimeService(endpoint, criTimeout, nil, nil)
	if err != nil {
		return fmt.Errorf("connecting to the real node's CRI runtime service: %w", err)
	}
	defer runtime.Close()
	images, err := remote.NewRemoteImageService(endpoint, criTimeout, nil, nil)
	if err != nil {
		return fmt.Errorf("connecting to the real node's CRI image service: %w", err)
	}
	defer images.Close()
	return do(&cri{runtime: runtime, images: images})
}

// pull pulls image into the node's containerd, where the kubelet finds it.
func (c *cri) pull(ctx context.Context, image string) error {
	if _, err := c.images.PullImage(ctx, &runtimeapi.ImageSpec{Image: image}, nil, nil); err != nil {
		return fmt.Errorf("pulling %s through the CRI: %w", image, err)
	}
	return nil
}

// removeSandboxes removes the pod sandboxes filter selects (nil: all),
// stopping each first, as the kubelet would: their containers, their network
// (the CNI DEL that frees their addresses) and their network namespaces.
func (c *cri) removeSandboxes(ctx context.Context, filter *runtimeapi.PodSandboxFilter) error {
	sandboxes, err := c.runtime.ListPodSandbox(ctx, filter)
	if err != nil {
		return fmt.Errorf("listing pod sandboxes through the CRI: %w", err)
	}
	var errs []error
	for _, s := range sandboxes {
		if err := c.runtime.StopPodSandbox(ctx, s.Id); err != nil {
			errs = append(errs, fmt.Errorf("stopping pod sandbox %s (%s/%s): %w", s.Id, s.GetMetadata().GetNamespace(), s.GetMetadata().GetName(), err))
			continue
		}
		if err := c.runtime.RemovePodSandbox(ctx, s.Id); err != nil {
			errs = append(errs, fmt.Errorf("removing pod sandbox %s (%s/%s): %w", s.Id, s.GetMetadata().GetNamespace(), s.GetMetadata().GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// removeImage removes image by the id it resolves to, which removes every
// name the image has in containerd (tag, digest, id).
func (c *cri) removeImage(ctx context.Context, image string) error {
	status, err := c.images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: image}, false)
	if err != nil {
		return fmt.Errorf("reading %s through the CRI: %w", image, err)
	}
	if status.GetImage() == nil {
		return fmt.Errorf("the real node has no image %s", image)
	}
	if err := c.images.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: status.GetImage().GetId()}); err != nil {
		return fmt.Errorf("removing %s (%s) through the CRI: %w", image, status.GetImage().GetId(), err)
	}
	return nil
}
