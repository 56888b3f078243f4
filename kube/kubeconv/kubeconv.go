// Package kubeconv reads the metallb.io configuration objects from the API server (or a
// controller-runtime cache) into core/config.Objects, the input of config.Build. The
// controller and the validating webhook both read the cluster's configuration through it, so
// they see the same set of objects that `switchyard validate` reads from files.
package kubeconv

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchyard-lb/switchyard/api/v1beta1"
	"github.com/switchyard-lb/switchyard/api/v1beta2"
	"github.com/switchyard-lb/switchyard/core/config"
)

// Scheme returns a scheme with the Kubernetes built-in kinds and every metallb.io kind.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1beta1.AddToScheme, v1beta2.AddToScheme} {
		if err := add(s); err != nil {
			panic(err) // registering compiled-in types cannot fail
		}
	}
	return s
}

// ConfigLists returns an empty list object of every metallb.io kind the configuration is
// built from, in the order ReadObjects lists them. BGPPeers are read in their storage version,
// v1beta2.
func ConfigLists() []client.ObjectList {
	return []client.ObjectList{
		&v1beta1.IPAddressPoolList{},
		&v1beta1.L2AdvertisementList{},
		&v1beta1.BGPAdvertisementList{},
		&v1beta2.BGPPeerList{},
		&v1beta1.BFDProfileList{},
		&v1beta1.CommunityList{},
	}
}

// ConfigObjects returns an empty object of every kind in ConfigLists, for watches.
func ConfigObjects() []client.Object {
	return []client.Object{
		&v1beta1.IPAddressPool{},
		&v1beta1.L2Advertisement{},
		&v1beta1.BGPAdvertisement{},
		&v1beta2.BGPPeer{},
		&v1beta1.BFDProfile{},
		&v1beta1.Community{},
	}
}

// ReadObjects lists every metallb.io configuration object in namespace. Objects being deleted
// (with a deletion timestamp) are left out: they are on their way out of the configuration.
func ReadObjects(ctx context.Context, r client.Reader, namespace string) (*config.Objects, error) {
	var objs config.Objects
	for _, list := range ConfigLists() {
		if err := r.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return nil, fmt.Errorf("listing %T in namespace %q: %w", list, namespace, err)
		}
		switch l := list.(type) {
		case *v1beta1.IPAddressPoolList:
			objs.Pools = live(l.Items)
		case *v1beta1.L2AdvertisementList:
			objs.L2Advertisements = live(l.Items)
		case *v1beta1.BGPAdvertisementList:
			objs.BGPAdvertisements = live(l.Items)
		case *v1beta2.BGPPeerList:
			objs.Peers = live(l.Items)
		case *v1beta1.BFDProfileList:
			objs.BFDProfiles = live(l.Items)
		case *v1beta1.CommunityList:
			objs.Communities = live(l.Items)
		}
	}
	return &objs, nil
}

// live returns the items without a deletion timestamp, keeping their order.
func live[T any, PT interface {
	*T
	client.Object
}](items []T) []T {
	out := items[:0:0]
	for i := range items {
		if PT(&items[i]).GetDeletionTimestamp() == nil {
			out = append(out, items[i])
		}
	}
	return out
}

// Upsert puts obj into objs, replacing the object of the same kind and name or appending it.
// v1beta1 BGPPeers are converted to v1beta2 first. It returns an error for a kind that is not
// part of the configuration.
func Upsert(objs *config.Objects, obj client.Object) error {
	switch o := obj.(type) {
	case *v1beta1.IPAddressPool:
		objs.Pools = upsert(objs.Pools, *o)
	case *v1beta1.L2Advertisement:
		objs.L2Advertisements = upsert(objs.L2Advertisements, *o)
	case *v1beta1.BGPAdvertisement:
		objs.BGPAdvertisements = upsert(objs.BGPAdvertisements, *o)
	case *v1beta2.BGPPeer:
		objs.Peers = upsert(objs.Peers, *o)
	case *v1beta1.BGPPeer:
		var p v1beta2.BGPPeer
		if err := o.ConvertToV1beta2(&p); err != nil {
			return fmt.Errorf("BGPPeer %s/%s: converting to v1beta2: %w", o.Namespace, o.Name, err)
		}
		objs.Peers = upsert(objs.Peers, p)
	case *v1beta1.BFDProfile:
		objs.BFDProfiles = upsert(objs.BFDProfiles, *o)
	case *v1beta1.Community:
		objs.Communities = upsert(objs.Communities, *o)
	default:
		return fmt.Errorf("%T is not a metallb.io configuration kind", obj)
	}
	return nil
}

// Remove takes the object of obj's kind, namespace and name out of objs, if present.
func Remove(objs *config.Objects, obj client.Object) error {
	switch o := obj.(type) {
	case *v1beta1.IPAddressPool:
		objs.Pools = remove(objs.Pools, o)
	case *v1beta1.L2Advertisement:
		objs.L2Advertisements = remove(objs.L2Advertisements, o)
	case *v1beta1.BGPAdvertisement:
		objs.BGPAdvertisements = remove(objs.BGPAdvertisements, o)
	case *v1beta2.BGPPeer:
		objs.Peers = remove(objs.Peers, o)
	case *v1beta1.BGPPeer:
		objs.Peers = remove(objs.Peers, o)
	case *v1beta1.BFDProfile:
		objs.BFDProfiles = remove(objs.BFDProfiles, o)
	case *v1beta1.Community:
		objs.Communities = remove(objs.Communities, o)
	default:
		return fmt.Errorf("%T is not a metallb.io configuration kind", obj)
	}
	return nil
}

func upsert[T any, PT interface {
	*T
	client.Object
}](items []T, obj T) []T {
	out := make([]T, 0, len(items)+1)
	replaced := false
	for i := range items {
		if sameObject(PT(&items[i]), PT(&obj)) {
			out = append(out, obj)
			replaced = true
			continue
		}
		out = append(out, items[i])
	}
	if !replaced {
		out = append(out, obj)
	}
	return out
}

func remove[T any, PT interface {
	*T
	client.Object
}](items []T, gone client.Object) []T {
	out := make([]T, 0, len(items))
	for i := range items {
		if !sameObject(PT(&items[i]), gone) {
			out = append(out, items[i])
		}
	}
	return out
}

func sameObject(a, b client.Object) bool {
	return a.GetNamespace() == b.GetNamespace() && a.GetName() == b.GetName()
}
