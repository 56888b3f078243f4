// Package v1beta1 contains the metallb.io/v1beta1 API: IPAddressPool, L2Advertisement,
// BGPAdvertisement, BGPPeer (served, not stored; see v1beta2), BFDProfile, Community, the status
// kinds ServiceL2Status, ServiceBGPStatus and ConfigurationState, and the operator's MetalLB kind.
//
// +kubebuilder:object:generate=true
// +groupName=metallb.io
package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the group and version of every kind in this package.
var GroupVersion = schema.GroupVersion{Group: "metallb.io", Version: "v1beta1"}

var (
	// SchemeBuilder collects the functions that add this package's kinds to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds this package's kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&IPAddressPool{}, &IPAddressPoolList{},
		&L2Advertisement{}, &L2AdvertisementList{},
		&BGPAdvertisement{}, &BGPAdvertisementList{},
		&BGPPeer{}, &BGPPeerList{},
		&BFDProfile{}, &BFDProfileList{},
		&Community{}, &CommunityList{},
		&ServiceL2Status{}, &ServiceL2StatusList{},
		&ServiceBGPStatus{}, &ServiceBGPStatusList{},
		&ConfigurationState{}, &ConfigurationStateList{},
		&MetalLB{}, &MetalLBList{},
	)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
