package cluster

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
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
	// KubectlTask runs the seed's own kubectl Task in the pre-pull's place
	// (examples/local-demo/kubectl-task), with the kubeconfig Secret it
	// mounts; Policy is then not used.
	KubectlTask bool
}

// demoSource are the files of examples/demo-app the pipeline builds from.
var demoSource = []string{"main.go", "main_test.go", "deployment.yaml"}

// PrepareLocalDemo makes what examples/local-demo's PipelineRun needs in
// d.Namespace (the step images, the source ConfigMap, the Tasks, the
// Pipeline, the deployer's Role and the helloworld policy; or, with
// d.KubectlTask, the seed's kubectl Task, its ConfigMap, ServiceAccount and
// kubeconfig Secret) and returns that PipelineRun, filled in for this
// cluster, to create. For the pre-pull, the namespace's default
// ServiceAccount must be allowed to pre-pull (AllowPrePulls).
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
	demo := filepath.Join(c.opts.Root, "examples", "local-demo")
	var files []string
	for _, f := range []string{"10-build-push-task.yaml", "20-deploy-task.yaml", "30-deployer-rbac.yaml"} {
		files = append(files, filepath.Join(demo, f))
	}
	run := filepath.Join(demo, "50-pipelinerun.yaml")
	if d.KubectlTask {
		for _, f := range []string{"10-imagepulljob-configmap.yaml", "20-predownload-task.yaml", "30-applier-rbac.yaml", "40-pipeline.yaml"} {
			files = append(files, filepath.Join(demo, "kubectl-task", f))
		}
		run = filepath.Join(demo, "kubectl-task", "50-pipelinerun.yaml")
	} else {
		policy, err := c.demoPolicy(d)
		if err != nil {
			return nil, err
		}
		files = append(files, policy, filepath.Join(demo, "40-pipeline.yaml"))
	}
	for _, f := range files {
		if _, err := c.Kubectl(ctx, "apply", "-n", d.Namespace, "-f", f); err != nil {
			return nil, err
		}
	}
	if d.KubectlTask {
		if err := c.applierKubeconfig(ctx, d.Namespace); err != nil {
			return nil, err
		}
	}

	b, err := os.ReadFile(run)
	if err != nil {
		return nil, err
	}
	pr := &pipelinev1.PipelineRun{}
	if err := yaml.UnmarshalStrict(b, pr); err != nil {
		return nil, fmt.Errorf("%s: %w", run, err)
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
		return nil, fmt.Errorf("%s has no podTemplate", run)
	}
	for i, e := range pr.Spec.TaskRunTemplate.PodTemplate.Env {
		if e.Name == "KUBERNETES_SERVICE_PORT" {
			pr.Spec.TaskRunTemplate.PodTemplate.Env[i].Value = server.Port()
		}
	}
	return pr, nil
}

// demoPolicy is the helloworld ImagePrePull's file, edited by d.Policy.
func (c *Cluster) demoPolicy(d LocalDemo) (string, error) {
	policy := filepath.Join(c.opts.Root, "examples", "seed-pipeline", "20-imageprepull.yaml")
	if d.Policy == nil {
		return policy, nil
	}
	b, err := os.ReadFile(policy)
	if err != nil {
		return "", err
	}
	edited := filepath.Join(c.Dir, "imageprepull-"+d.Namespace+".yaml")
	return edited, os.WriteFile(edited, []byte(d.Policy(string(b))), 0o644)
}

// applierKubeconfig makes the Secret the seed's kubectl Task mounts: a
// kubeconfig of this cluster (its server and CA, as the admin's) with a token
// of imagepulljob-applier (examples/local-demo/kubectl-task/30-applier-rbac.yaml).
func (c *Cluster) applierKubeconfig(ctx context.Context, ns string) error {
	admin, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		return err
	}
	current, ok := admin.Contexts[admin.CurrentContext]
	if !ok || admin.Clusters[current.Cluster] == nil {
		return fmt.Errorf("%s: no cluster for its current context %q", c.Kubeconfig, admin.CurrentContext)
	}
	const sa = "imagepulljob-applier"
	// A day, as long as a bench or a demo may keep the namespace.
	tok, err := c.Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](24 * 3600)}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("a token of %s/%s for the kubeconfig Secret: %w", ns, sa, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = admin.Clusters[current.Cluster]
	cfg.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: sa, Namespace: ns}
	cfg.CurrentContext = "local"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	_, err = c.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "kubeconfig", Namespace: ns},
		Data:       map[string][]byte{"kubeconfig": data},
	}, metav1.CreateOptions{})
	return err
}
