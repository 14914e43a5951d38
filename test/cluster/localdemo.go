package cluster

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// LocalDemo is examples/local-demo, the seed's pipeline whole, run on this
// cluster: what `make demo` shows and e2e checks.
type LocalDemo struct {
	// Namespace is where it runs, as the namespace's default ServiceAccount.
	Namespace string
	// Branch and ShortSHA tag the image, as the seed tags it.
	Branch, ShortSHA string
	// Policy edits the helloworld ImagePrePull (examples/seed-pipeline) before
	// it is applied; nil applies it as it is.
	Policy func(doc string) string
}

// demoSource are the files of examples/demo-app the pipeline builds from.
var demoSource = []string{"main.go", "main_test.go", "deployment.yaml"}

// PrepareLocalDemo makes what examples/local-demo's PipelineRun needs in
// d.Namespace (the step images, the source ConfigMap, the Tasks, the
// Pipeline, the deployer's Role and the helloworld policy) and returns that
// PipelineRun, filled in for this cluster, to create. The namespace's
// default ServiceAccount must be allowed to pre-pull (AllowPrePulls).
func (c *Cluster) PrepareLocalDemo(ctx context.Context, d LocalDemo) (*pipelinev1.PipelineRun, error) {
	images, err := c.PushStepImages(ctx)
	if err != nil {
		return nil, err
	}
	// Where the seed clones its repository: the app's files, and a go.mod of
	// its own (here the app builds as a package of this repository's module).
	source := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "helloworld-source", Namespace: d.Namespace},
		Data:       map[string]string{"go.mod": "module helloworld\n\ngo 1.26\n"},
	}
	for _, f := range demoSource {
		b, err := os.ReadFile(filepath.Join(c.opts.Root, "examples", "demo-app", f))
		if err != nil {
			return nil, err
		}
		source.Data[f] = string(b)
	}
	if _, err := c.Kube.CoreV1().ConfigMaps(d.Namespace).Create(ctx, source, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	policy := filepath.Join(c.opts.Root, "examples", "seed-pipeline", "20-imageprepull.yaml")
	if d.Policy != nil {
		b, err := os.ReadFile(policy)
		if err != nil {
			return nil, err
		}
		policy = filepath.Join(c.Dir, "imageprepull-"+d.Namespace+".yaml")
		if err := os.WriteFile(policy, []byte(d.Policy(string(b))), 0o644); err != nil {
			return nil, err
		}
	}
	files := []string{policy}
	for _, f := range []string{"10-build-push-task.yaml", "20-deploy-task.yaml", "30-deployer-rbac.yaml", "40-pipeline.yaml"} {
		files = append(files, filepath.Join(c.opts.Root, "examples", "local-demo", f))
	}
	for _, f := range files {
		if _, err := c.Kubectl(ctx, "apply", "-n", d.Namespace, "-f", f); err != nil {
			return nil, err
		}
	}

	b, err := os.ReadFile(filepath.Join(c.opts.Root, "examples", "local-demo", "50-pipelinerun.yaml"))
	if err != nil {
		return nil, err
	}
	pr := &pipelinev1.PipelineRun{}
	if err := yaml.UnmarshalStrict(b, pr); err != nil {
		return nil, fmt.Errorf("examples/local-demo/50-pipelinerun.yaml: %w", err)
	}
	pr.Namespace = d.Namespace
	local := map[string]string{
		"branch": d.Branch, "short_sha": d.ShortSHA,
		"docker_repo": c.Registry + "/demo/hello-world", "base_image": c.BaseImage,
		"builder_image": images.Builder, "kubectl_image": images.Kubectl,
	}
	for i, p := range pr.Spec.Params {
		if v, ok := local[p.Name]; ok {
			pr.Spec.Params[i].Value = *pipelinev1.NewStructuredValues(v)
		}
	}
	server, err := url.Parse(c.Server)
	if err != nil {
		return nil, err
	}
	if pr.Spec.TaskRunTemplate.PodTemplate == nil {
		return nil, fmt.Errorf("examples/local-demo/50-pipelinerun.yaml has no podTemplate")
	}
	for i, e := range pr.Spec.TaskRunTemplate.PodTemplate.Env {
		if e.Name == "KUBERNETES_SERVICE_PORT" {
			pr.Spec.TaskRunTemplate.PodTemplate.Env[i].Value = server.Port()
		}
	}
	return pr, nil
}
