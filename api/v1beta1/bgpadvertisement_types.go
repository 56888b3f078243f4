package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPAdvertisementSpec says how the addresses of some pools are announced to BGP peers.
type BGPAdvertisementSpec struct {
	// AggregationLength is the prefix length announced for IPv4 addresses: 32 announces each
	// address, shorter lengths roll addresses up into one prefix. It may not be shorter than
	// the prefix of any CIDR in an advertised pool.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default:=32
	// +optional
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// AggregationLengthV6 is AggregationLength for IPv6 addresses.
	// +kubebuilder:default:=128
	// +optional
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`

	// LocalPref is the BGP LOCAL_PREF attribute sent to iBGP peers; a path with a higher value
	// is preferred.
	// +optional
	LocalPref uint32 `json:"localPref,omitempty"`

	// Communities attached to the announcements: standard "65535:65282", large
	// "large:123:456:789", or the name of an alias defined in a Community object.
	// +optional
	Communities []string `json:"communities,omitempty"`

	// IPAddressPools names the pools announced. With IPAddressPoolSelectors also empty, every
	// pool is announced.
	// +optional
	IPAddressPools []string `json:"ipAddressPools,omitempty"`

	// IPAddressPoolSelectors select the announced pools by their labels.
	// +optional
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`

	// NodeSelectors limit the nodes that announce; empty means every node.
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Peers limits the announcement to the BGPPeers with these names; empty means every peer.
	// +optional
	Peers []string `json:"peers,omitempty"`
}

// BGPAdvertisementStatus is empty: announcement state is in ServiceBGPStatus.
type BGPAdvertisementStatus struct{}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="IPAddressPools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="IPAddressPool Selectors",type=string,JSONPath=`.spec.ipAddressPoolSelectors`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Node Selectors",type=string,JSONPath=`.spec.nodeSelectors`,priority=10

// BGPAdvertisement announces the addresses of some pools to BGP peers.
type BGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPAdvertisementSpec   `json:"spec,omitempty"`
	Status BGPAdvertisementStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// BGPAdvertisementList is a list of BGPAdvertisement.
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAdvertisement `json:"items"`
}
