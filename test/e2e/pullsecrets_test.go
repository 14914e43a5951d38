//go:build e2e

package e2e

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// OpenKruise's annotations on its copies of pull Secrets in
// kruise-daemon-config (the same keys in v1.8 and v1.9).
const (
	kruiseSourceKey  = "imagepulljobs.kruise.io/source-key"
	kruiseReferences = "imagepulljobs.kruise.io/references"
)

// kruise-daemon may read Secrets only in kruise-daemon-config, so Kruise's
// manager copies each Secret a job names there and lists, on the copy, the
// jobs that use it. Two runs naming the same Secret get a copy each from
// v1.8, and share one from v1.9 when the copy exists as the second starts;
// on both, a job deleted before it completes
// (a run cancelled, timed out or retried: the controller deletes its jobs)
// gives its copy back, so no copy of a user's credentials outlives the runs.
func TestKruiseCopiesOfPullSecrets(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	createPullSecret(t, ns, "registry-creds", "registry.local", "user", "pass")
	if err := c.AllowServiceAccount(ctx, ns, "default", "pull-secrets", rbacv1.PolicyRule{
		Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"registry-creds"},
	}); err != nil {
		t.Fatal(err)
	}
	copies := func() (names []string, refs []string) {
		list, err := c.Kube.CoreV1().Secrets("kruise-daemon-config").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list.Items {
			if s.Annotations[kruiseSourceKey] != ns+"/registry-creds" {
				continue
			}
			names = append(names, s.Name)
			refs = append(refs, strings.Split(s.Annotations[kruiseReferences], ",")...)
		}
		slices.Sort(names)
		slices.Sort(refs)
		return names, refs
	}
	// Two runs, each pulling an image that never finishes on web-a1; the
	// second starts once Kruise has copied the Secret for the first (jobs
	// that start at the same moment may each get a copy from v1.9 too).
	var names, refs, want []string
	for _, pr := range []string{"a", "b"} {
		create(t, ns, pipelineRun(pr, `
      - name: prepull
        taskRef: {apiVersion: custom.kruise.dev/v1alpha1, kind: ImagePrePull}
        params: [{name: image, value: "registry.local/slow-private:`+pr+`"}, {name: nodeNames, value: [web-a1]}, {name: pullSecrets, value: [registry-creds]}]
`))
		waitJobs(t, ns, len(want)+1)
		want = want[:0]
		for _, job := range jobs(t, ns) {
			want = append(want, ns+"/"+job.Name)
		}
		slices.Sort(want)
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			names, refs = copies()
			return slices.Equal(refs, want), nil
		})
		if err != nil {
			t.Fatalf("Kruise's copies of %s/registry-creds %v refer to %v, want the jobs %v", ns, names, refs, want)
		}
	}
	t.Logf("OpenKruise %s: copies %v for jobs %v", c.KruiseVersion, names, refs)
	switch {
	case strings.HasPrefix(c.KruiseVersion, "v1.8."):
		// One copy per job, each named by generateName from the Secret's.
		if len(names) != 2 {
			t.Fatalf("OpenKruise v1.8: copies %v, want one per job", names)
		}
	default:
		// v1.9 shares one copy, named <Secret>-<6 hex>, among the jobs.
		if len(names) != 1 || !regexp.MustCompile(`^registry-creds-[0-9a-f]{6}$`).MatchString(names[0]) {
			t.Fatalf("OpenKruise %s: copies %v, want one named registry-creds-<6 hex>", c.KruiseVersion, names)
		}
	}

	// Cancelled, the runs' jobs are deleted before they complete.
	for _, pr := range []string{"a", "b"} {
		cancel(t, ns, pr)
	}
	for _, pr := range []string{"a", "b"} {
		waitPipelineRun(t, ns, pr, prTimeout)
	}
	waitJobs(t, ns, 0)
	// Both releases put a finalizer on every running job and give its copy
	// back before the job goes, so none is left once the jobs are gone.
	if names, refs = copies(); len(names) != 0 {
		t.Fatalf("OpenKruise %s: copies %v for jobs %v left after the jobs were deleted", c.KruiseVersion, names, refs)
	}
}
