package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MatchExpression is one requirement of a v1beta1 NodeSelector: Key Operator Values, with the
// operators of a metav1.LabelSelectorRequirement (In, NotIn, Exists, DoesNotExist).
type MatchExpression struct {
	Key      string `json:"key"`
	Operator string `json:"operator"`
	// +kubebuilder:validation:MinItems:=1
	Values []string `json:"values"`
}

// NodeSelector is v1beta1's own spelling of a label selector on nodes; v1beta2 uses
// metav1.LabelSelector instead.
type NodeSelector struct {
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
	// +optional
	MatchExpressions []MatchExpression `json:"matchExpressions,omitempty"`
}

// BGPPeerSpec is the v1beta1 form of a BGP session: fixed 16-bit ASNs, an address, and a
// password given inline. See v1beta2.BGPPeerSpec for the full set of fields.
type BGPPeerSpec struct {
	// MyASN is the local AS number.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	MyASN uint32 `json:"myASN"`

	// ASN is the peer's AS number.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	ASN uint32 `json:"peerASN"`

	// Address is the peer's address.
	Address string `json:"peerAddress"`

	// SrcAddress is the local address used for the session.
	// +optional
	SrcAddress string `json:"sourceAddress,omitempty"`

	// Port is the peer's TCP port (default 179).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=16384
	Port uint16 `json:"peerPort,omitempty"`

	// HoldTime is the requested BGP hold time (RFC 4271).
	// +optional
	HoldTime metav1.Duration `json:"holdTime,omitempty"`

	// KeepaliveTime is the requested BGP keepalive time (RFC 4271).
	// +optional
	KeepaliveTime metav1.Duration `json:"keepaliveTime,omitempty"`

	// RouterID is the BGP router ID sent to the peer.
	// +optional
	RouterID string `json:"routerID,omitempty"`

	// NodeSelectors limit the nodes that open this session; empty means every node.
	// +optional
	NodeSelectors []NodeSelector `json:"nodeSelectors,omitempty"`

	// Password is the TCP MD5 key of the session.
	// +optional
	Password string `json:"password,omitempty"`

	// BFDProfile names the BFDProfile of the session's BFD; empty means no BFD.
	// +optional
	BFDProfile string `json:"bfdProfile,omitempty"`

	// EBGPMultiHop says the peer is more than one hop away.
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`
}

// BGPPeerStatus is empty: session state is not reported in the API.
type BGPPeerStatus struct{}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="ASN",type=string,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="BFD Profile",type=string,JSONPath=`.spec.bfdProfile`
// +kubebuilder:printcolumn:name="Multi Hops",type=string,JSONPath=`.spec.ebgpMultiHop`

// BGPPeer is a BGP session the speakers open, in its v1beta1 form. The API server stores
// BGPPeers as v1beta2; see ConvertToV1beta2.
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPPeerSpec   `json:"spec,omitempty"`
	Status BGPPeerStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// BGPPeerList is a list of BGPPeer.
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}
