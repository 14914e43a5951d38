package kruise

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	kruiseappsv1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
)

// Shrink keeps of an ImagePullJob what the controller reads, in place, and
// returns it. A run may name thousands of nodes and every one of its jobs
// lists them all: kept whole, a few such runs would hold hundreds of MiB in
// the informer. So the node names become one digest of them (compared, never
// read), and managedFields and annotations go. What stays grows with the
// nodes that fail (status.failedNodes), not with the nodes a run names.
//
// It is the informer's transform, and it is applied to every job read from
// the API server, so that the controller compares jobs in one form. It is
// idempotent, as client-go's streaming list passes an object through the
// transform twice: a job whose node names are one digest already is left as
// it is. Such a job can also be made through the API; it then names a node
// called "sha256:...", which no Node can be (':' is not allowed in a node's
// name), so taken for a run's job it pulls onto no node, and no run can read
// from it that a node has an image.
func Shrink(job *kruiseappsv1alpha1.ImagePullJob) *kruiseappsv1alpha1.ImagePullJob {
	job.ManagedFields = nil
	job.Annotations = nil
	if s := job.Spec.Selector; s != nil && len(s.Names) > 0 && !isDigest(s.Names) {
		s.Names = []string{namesDigest(s.Names)}
	}
	return job
}

const digestPrefix = "sha256:"

func isDigest(names []string) bool {
	return len(names) == 1 && strings.HasPrefix(names[0], digestPrefix)
}

// namesDigest stands for a list of node names, order included (Kruise keeps
// the order it was given).
func namesDigest(names []string) string {
	sum := sha256.Sum256([]byte(strings.Join(names, "\n")))
	return digestPrefix + hex.EncodeToString(sum[:])
}

// shrinkTransform is Shrink as an informer's transform.
func shrinkTransform(obj any) (any, error) {
	if job, ok := obj.(*kruiseappsv1alpha1.ImagePullJob); ok {
		return Shrink(job), nil
	}
	return obj, nil
}
