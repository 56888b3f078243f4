package controller

import (
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchyard-lb/switchyard/api/v1beta1"
	"github.com/switchyard-lb/switchyard/kube/kubeconv"
)

// CacheOptions are the manager cache options the controller needs: Services and Namespaces
// cluster-wide, the metallb.io objects of namespace only, and no managedFields (they are
// about half of a cached Service and nobody here reads them). Services are trimmed further
// by TrimService.
func CacheOptions(namespace string) cache.Options {
	byObject := map[client.Object]cache.ByObject{
		&corev1.Service{}: {Transform: TrimService},
	}
	for _, obj := range append(kubeconv.ConfigObjects(), &v1beta1.ConfigurationState{}) {
		byObject[obj] = cache.ByObject{Namespaces: map[string]cache.Config{namespace: {}}}
	}
	return cache.Options{
		ByObject:         byObject,
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// lastApplied is kubectl's copy of the whole object, often the largest annotation.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// TrimService drops from a cached Service what the controller never reads: managedFields,
// kubectl's last-applied copy, the parts of the spec and status the allocator ignores.
// With tens of thousands of Services this is most of the controller's memory. The controller
// only ever patches Services, so a trimmed copy is never written back.
func TrimService(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	svc.ManagedFields = nil
	if _, ok := svc.Annotations[lastApplied]; ok {
		delete(svc.Annotations, lastApplied)
	}
	s := &svc.Spec
	for i := range s.Ports {
		// Only the protocol and port matter (address sharing).
		s.Ports[i] = corev1.ServicePort{Protocol: s.Ports[i].Protocol, Port: s.Ports[i].Port}
	}
	s.ExternalIPs = nil
	s.SessionAffinityConfig = nil
	s.HealthCheckNodePort = 0
	s.TrafficDistribution = nil
	svc.Status.Conditions = nil
	return svc, nil
}
