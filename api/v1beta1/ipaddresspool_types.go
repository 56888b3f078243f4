package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPAddressPoolSpec is the set of addresses a pool hands out and the Services it serves.
type IPAddressPoolSpec struct {
	// Addresses are the pool's address ranges. Each entry is a CIDR ("192.168.10.0/24",
	// "fc00:f853:ccd:e799::/124") or an inclusive range "first-last"
	// ("192.168.9.1-192.168.9.5"). IPv4 and IPv6 entries may be mixed in one pool.
	// +kubebuilder:validation:MinItems=1
	Addresses []string `json:"addresses"`

	// AutoAssign lets the controller pick addresses from this pool for Services that did not
	// ask for a specific pool. When false, the pool is used only on request (annotation
	// metallb.io/address-pool or a requested loadBalancerIP).
	// +optional
	// +kubebuilder:default:=true
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// AvoidBuggyIPs skips IPv4 addresses ending in .0 or .255, which some old equipment drops.
	// +optional
	// +kubebuilder:default:=false
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// ServiceAllocation restricts the pool to some namespaces or Services and orders it
	// against other pools. When unset the pool serves every Service.
	// +optional
	ServiceAllocation *ServiceAllocation `json:"serviceAllocation,omitempty"`
}

// ServiceAllocation says which Services an IPAddressPool serves and with what priority.
type ServiceAllocation struct {
	// Priority orders pools that match a Service: the lowest number is tried first; pools
	// without a priority come last.
	// +optional
	Priority int `json:"priority,omitempty"`

	// Namespaces lists the namespaces whose Services the pool serves.
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelectors select, by their labels, the namespaces whose Services the pool serves.
	// +optional
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`

	// ServiceSelectors select, by their labels, the Services the pool serves.
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// IPAddressPoolStatus reports how much of the pool is in use.
type IPAddressPoolStatus struct {
	// AssignedIPv4 is the number of IPv4 addresses assigned to Services.
	// +optional
	AssignedIPv4 int64 `json:"assignedIPv4,omitempty"`
	// AssignedIPv6 is the number of IPv6 addresses assigned to Services.
	// +optional
	AssignedIPv6 int64 `json:"assignedIPv6,omitempty"`
	// AvailableIPv4 is the number of IPv4 addresses still free.
	// +optional
	AvailableIPv4 int64 `json:"availableIPv4,omitempty"`
	// AvailableIPv6 is the number of IPv6 addresses still free.
	// +optional
	AvailableIPv6 int64 `json:"availableIPv6,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Auto Assign",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="Avoid Buggy IPs",type=boolean,JSONPath=`.spec.avoidBuggyIPs`
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`

// IPAddressPool is a set of addresses that LoadBalancer Services are given their external
// addresses from.
type IPAddressPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPAddressPoolSpec   `json:"spec"`
	Status IPAddressPoolStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// IPAddressPoolList is a list of IPAddressPool.
type IPAddressPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAddressPool `json:"items"`
}
