package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConfigurationStateResult is the outcome of validating the configuration in one component.
// +kubebuilder:validation:Enum=Valid;Invalid;Unknown
type ConfigurationStateResult string

// Configuration validation results.
const (
	// ConfigurationStateResultValid: the component loaded the configuration.
	ConfigurationStateResultValid ConfigurationStateResult = "Valid"
	// ConfigurationStateResultInvalid: the component rejected the configuration; LastError
	// says why.
	ConfigurationStateResultInvalid ConfigurationStateResult = "Invalid"
	// ConfigurationStateResultUnknown: the component has not reported yet.
	ConfigurationStateResultUnknown ConfigurationStateResult = "Unknown"
)

// ConfigurationStateStatus is what one component (the controller, or the speaker of one node)
// made of the configuration.
type ConfigurationStateStatus struct {
	// Result is the validation result.
	// +optional
	Result ConfigurationStateResult `json:"result,omitempty"`

	// LastError is the error of the last failed load; empty when Result is Valid.
	// +optional
	LastError string `json:"lastError,omitempty"`

	// Conditions are the conditions reported by the component's reconcilers.
	// +optional
	// +patchMergeKey=type
	// +patchStrategy=merge
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// +kubebuilder:object:root=true
// +kubebuilder:storageversion
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced
// +kubebuilder:printcolumn:name="Result",type=string,JSONPath=`.status.result`
// +kubebuilder:printcolumn:name="LastError",type=string,JSONPath=`.status.lastError`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ConfigurationState is a status-only object through which each component reports whether it
// accepted the configuration. It carries the labels metallb.io/component-type ("controller"
// or "speaker") and, for speakers, metallb.io/node-name.
type ConfigurationState struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status ConfigurationStateStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ConfigurationStateList is a list of ConfigurationState.
type ConfigurationStateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ConfigurationState `json:"items"`
}
