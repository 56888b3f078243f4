package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ServiceL2StatusSpec is empty: ServiceL2Status is written by the speakers only.
type ServiceL2StatusSpec struct{}

// MetalLBServiceL2Status says which node answers ARP/NDP for a Service, and on which interfaces.
type MetalLBServiceL2Status struct {
	// Node is the node announcing the Service.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="Value is immutable"
	// +optional
	Node string `json:"node,omitempty"`

	// ServiceName is the name of the Service.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="Value is immutable"
	// +optional
	ServiceName string `json:"serviceName,omitempty"`

	// ServiceNamespace is the namespace of the Service.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="Value is immutable"
	// +optional
	ServiceNamespace string `json:"serviceNamespace,omitempty"`

	// Interfaces are the node's interfaces that answer for the Service's addresses.
	// +optional
	Interfaces []InterfaceInfo `json:"interfaces,omitempty"`
}

// InterfaceInfo names one network interface of a node.
type InterfaceInfo struct {
	// Name is the interface name, for example "eth0".
	// +optional
	Name string `json:"name,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Allocated Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Service Name",type=string,JSONPath=`.status.serviceName`
// +kubebuilder:printcolumn:name="Service Namespace",type=string,JSONPath=`.status.serviceNamespace`

// ServiceL2Status reports, per Service announced by layer 2, the node that currently receives
// its traffic.
type ServiceL2Status struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ServiceL2StatusSpec    `json:"spec,omitempty"`
	Status MetalLBServiceL2Status `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ServiceL2StatusList is a list of ServiceL2Status.
type ServiceL2StatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceL2Status `json:"items"`
}

// ServiceBGPStatusSpec is empty: ServiceBGPStatus is written by the speakers only.
type ServiceBGPStatusSpec struct{}

// MetalLBServiceBGPStatus says to which peers one node is configured to announce a Service.
type MetalLBServiceBGPStatus struct {
	// Node is the announcing node.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="Value is immutable"
	// +optional
	Node string `json:"node,omitempty"`

	// ServiceName is the name of the Service.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="Value is immutable"
	// +optional
	ServiceName string `json:"serviceName,omitempty"`

	// ServiceNamespace is the namespace of the Service.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="Value is immutable"
	// +optional
	ServiceNamespace string `json:"serviceNamespace,omitempty"`

	// Peers are the BGPPeers the Service is configured to be announced to. Whether a route is
	// actually sent depends on the session state, which is not reported here.
	// +optional
	Peers []string `json:"peers,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Service Name",type=string,JSONPath=`.status.serviceName`
// +kubebuilder:printcolumn:name="Service Namespace",type=string,JSONPath=`.status.serviceNamespace`

// ServiceBGPStatus reports, per Service and node, the BGP peers the Service is announced to.
type ServiceBGPStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ServiceBGPStatusSpec    `json:"spec,omitempty"`
	Status MetalLBServiceBGPStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ServiceBGPStatusList is a list of ServiceBGPStatus.
type ServiceBGPStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceBGPStatus `json:"items"`
}
