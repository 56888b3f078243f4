// Package v1beta2 contains the metallb.io/v1beta2 API: BGPPeer, the storage version of that kind.
// It adds to v1beta1's BGPPeer the dynamic ASN, unnumbered peering over an interface, a password
// held in a Secret, the connect timer, graceful restart, VRFs and dual-stack address families.
//
// +kubebuilder:object:generate=true
// +groupName=metallb.io
package v1beta2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the group and version of every kind in this package.
var GroupVersion = schema.GroupVersion{Group: "metallb.io", Version: "v1beta2"}

var (
	// SchemeBuilder collects the functions that add this package's kinds to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds this package's kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &BGPPeer{}, &BGPPeerList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
