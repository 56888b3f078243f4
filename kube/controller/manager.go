package controller

import (
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchyard-lb/switchyard/api/v1beta1"
	"github.com/switchyard-lb/switchyard/kube/kubeconv"
)

// CacheOptions are the manager cache options the controller needs: Services and Namespaces
// cluster-wide, the metallb.io objects of namespace only, and no managedFields (they are
// about half of a cached Service and nobody here reads them).
func CacheOptions(namespace string) cache.Options {
	byObject := map[client.Object]cache.ByObject{}
	for _, obj := range append(kubeconv.ConfigObjects(), &v1beta1.ConfigurationState{}) {
		byObject[obj] = cache.ByObject{Namespaces: map[string]cache.Config{namespace: {}}}
	}
	return cache.Options{
		ByObject:         byObject,
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}
