package imageprepull

import (
	corev1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// daemonSetTolerations are the tolerations the DaemonSet controller adds to
// every pod it makes (k8s.io/kubernetes pkg/controller/daemon/util,
// AddOrUpdateDaemonPodTolerations), and OpenKruise's Advanced DaemonSet
// after it: a DaemonSet's pods go to unschedulable, not-ready and
// pressured nodes that other pods avoid.
var daemonSetTolerations = []corev1.Toleration{
	{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
}

// Why a node is not eligible, counted in the run's message.
const (
	notReady         = "not Ready"
	cordoned         = "cordoned"
	notMatched       = "not matched by the node selector or required node affinity"
	taintUntolerated = "with a taint not tolerated"
)

// eligible says whether the scheduler could place a pod of template on
// node, by the rules that do not depend on other pods: Ready and not
// cordoned (a DaemonSet's pods need neither), the template's nodeSelector
// and required node affinity, and its tolerations against the node's
// NoSchedule and NoExecute taints. Resources and pod (anti-)affinity are
// left out: they change with every pod placed, and a rollout moves pods.
func eligible(node *corev1.Node, spec *corev1.PodSpec, daemonSet bool) (bool, string) {
	if !daemonSet && node.Spec.Unschedulable {
		return false, cordoned
	}
	if !daemonSet && !isReady(node) {
		return false, notReady
	}
	if ok, err := nodeaffinity.GetRequiredNodeAffinity(&corev1.Pod{Spec: *spec}).Match(node); err != nil || !ok {
		return false, notMatched
	}
	tolerations := spec.Tolerations
	if daemonSet {
		tolerations = append(append([]corev1.Toleration(nil), tolerations...), daemonSetTolerations...)
		if spec.HostNetwork {
			tolerations = append(tolerations, corev1.Toleration{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	}, false)
	if untolerated {
		return false, taintUntolerated
	}
	return true, ""
}

func isReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
