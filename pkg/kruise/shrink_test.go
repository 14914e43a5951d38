package kruise

import (
	"testing"

	kruiseappsv1alpha1 "github.com/openkruise/kruise-api/apps/v1alpha1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func job(names ...string) *kruiseappsv1alpha1.ImagePullJob {
	return &kruiseappsv1alpha1.ImagePullJob{
		ObjectMeta: metav1.ObjectMeta{Name: "j", Annotations: map[string]string{"a": "b"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}},
		Spec: kruiseappsv1alpha1.ImagePullJobSpec{Image: "a:v1", ImagePullJobTemplate: kruiseappsv1alpha1.ImagePullJobTemplate{
			Selector: &kruiseappsv1alpha1.ImagePullJobNodeSelector{Names: names}}},
	}
}

// Shrink keeps one digest of the node names, and is idempotent: client-go's
// streaming list passes an object through an informer's transform twice.
func TestShrinkIsIdempotent(t *testing.T) {
	once := Shrink(job("n1", "n2"))
	if len(once.Spec.Selector.Names) != 1 || once.ManagedFields != nil || once.Annotations != nil {
		t.Fatalf("shrunk once: %+v", once)
	}
	twice := Shrink(once.DeepCopy())
	if !equality.Semantic.DeepEqual(once, twice) {
		t.Errorf("shrunk twice: %v, once: %v", twice.Spec.Selector.Names, once.Spec.Selector.Names)
	}
	for _, other := range [][]string{{"n1"}, {"n2", "n1"}, {"n1", "n2", "n3"}} {
		if Shrink(job(other...)).Spec.Selector.Names[0] == once.Spec.Selector.Names[0] {
			t.Errorf("%v shrinks as [n1 n2] does", other)
		}
	}
	if got := Shrink(job()).Spec.Selector.Names; len(got) != 0 {
		t.Errorf("no names shrink to %v", got)
	}
}
