package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CommunitySpec defines names for BGP community values.
type CommunitySpec struct {
	// Communities are the aliases this object defines.
	// +optional
	Communities []CommunityAlias `json:"communities,omitempty"`
}

// CommunityAlias names one BGP community value.
type CommunityAlias struct {
	// Name is the alias that BGPAdvertisement.spec.communities may use instead of the value.
	Name string `json:"name,omitempty"`

	// Value is the community: standard "65535:65282" or large "large:123:456:789".
	Value string `json:"value,omitempty"`
}

// CommunityStatus is empty.
type CommunityStatus struct{}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status

// Community holds aliases for BGP community values, so that advertisements can say
// "vpn-only" instead of "65535:65282".
type Community struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CommunitySpec   `json:"spec,omitempty"`
	Status CommunityStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// CommunityList is a list of Community.
type CommunityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Community `json:"items"`
}
