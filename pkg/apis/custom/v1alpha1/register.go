package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/imageprepull/imageprepull/pkg/apis/custom"
)

// Kind is the kind a Tekton taskRef or taskSpec names to select this custom task.
const Kind = "ImagePrePull"

// SchemeGroupVersion is group version used to register these objects.
var SchemeGroupVersion = schema.GroupVersion{Group: custom.GroupName, Version: "v1alpha1"}

// APIVersion is the apiVersion a Tekton taskRef or taskSpec names to select this custom task.
var APIVersion = SchemeGroupVersion.String()

// Resource takes an unqualified resource and returns a Group qualified GroupResource.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

var (
	schemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the types of this group to a scheme; the generated clientset needs it.
	AddToScheme = schemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion, &ImagePrePull{}, &ImagePrePullList{})
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return nil
}
