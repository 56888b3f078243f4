package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BFDProfileSpec holds the parameters of the BFD sessions that run alongside BGP sessions of
// peers naming this profile. Intervals are in milliseconds.
type BFDProfileSpec struct {
	// ReceiveInterval is the lowest interval at which this system can receive control
	// packets. Default 300.
	// +kubebuilder:validation:Maximum=60000
	// +kubebuilder:validation:Minimum=10
	// +optional
	ReceiveInterval *uint32 `json:"receiveInterval,omitempty"`

	// TransmitInterval is the lowest interval at which this system wants to send control
	// packets. Default 300.
	// +kubebuilder:validation:Maximum=60000
	// +kubebuilder:validation:Minimum=10
	// +optional
	TransmitInterval *uint32 `json:"transmitInterval,omitempty"`

	// DetectMultiplier is the number of control packets that may be lost before the session
	// is declared down. Default 3.
	// +kubebuilder:validation:Maximum=255
	// +kubebuilder:validation:Minimum=2
	// +optional
	DetectMultiplier *uint32 `json:"detectMultiplier,omitempty"`

	// EchoInterval is the lowest interval at which this system can send and receive echo
	// packets. Default 50.
	// +kubebuilder:validation:Maximum=60000
	// +kubebuilder:validation:Minimum=10
	// +optional
	EchoInterval *uint32 `json:"echoInterval,omitempty"`

	// EchoMode enables echo packets, which test the forwarding path without the peer's
	// control plane.
	// +optional
	EchoMode *bool `json:"echoMode,omitempty"`

	// PassiveMode makes this system wait for the peer's first control packet instead of
	// starting the session.
	// +optional
	PassiveMode *bool `json:"passiveMode,omitempty"`

	// MinimumTTL is the lowest TTL accepted on incoming control packets of multi-hop sessions.
	// Default 254.
	// +kubebuilder:validation:Maximum=254
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinimumTTL *uint32 `json:"minimumTtl,omitempty"`
}

// BFDProfileStatus is empty.
type BFDProfileStatus struct{}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Passive Mode",type=boolean,JSONPath=`.spec.passiveMode`
// +kubebuilder:printcolumn:name="Transmit Interval",type=integer,JSONPath=`.spec.transmitInterval`
// +kubebuilder:printcolumn:name="Receive Interval",type=integer,JSONPath=`.spec.receiveInterval`
// +kubebuilder:printcolumn:name="Multiplier",type=integer,JSONPath=`.spec.detectMultiplier`

// BFDProfile is a named set of BFD session parameters that BGPPeers refer to.
type BFDProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BFDProfileSpec   `json:"spec,omitempty"`
	Status BFDProfileStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// BFDProfileList is a list of BFDProfile.
type BFDProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BFDProfile `json:"items"`
}
