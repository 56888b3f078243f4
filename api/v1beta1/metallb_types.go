package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MetalLBLogLevel is the log verbosity of the controller and the speakers.
// +kubebuilder:validation:Enum=all;debug;info;warn;error;none
type MetalLBLogLevel string

// Log levels, from most to least verbose.
const (
	LogLevelAll   MetalLBLogLevel = "all"
	LogLevelDebug MetalLBLogLevel = "debug"
	LogLevelInfo  MetalLBLogLevel = "info"
	LogLevelWarn  MetalLBLogLevel = "warn"
	LogLevelError MetalLBLogLevel = "error"
	LogLevelNone  MetalLBLogLevel = "none"
)

// BGPType is the BGP implementation the operator deploys. Switchyard speaks BGP itself and
// treats every value as "native"; the field is accepted so existing MetalLB resources load.
// +kubebuilder:validation:Enum=frr;native;frr-k8s;frr-k8s-external
type BGPType string

// BGP implementations known to MetalLB's operator.
const (
	FRRMode            BGPType = "frr"
	NativeMode         BGPType = "native"
	FRRK8sMode         BGPType = "frr-k8s"
	FRRK8sExternalMode BGPType = "frr-k8s-external"
)

// MetalLBSpec is how the operator deploys the controller and the speakers.
type MetalLBSpec struct {
	// Image is ignored; it is kept so that old resources still load.
	// Deprecated: has no effect.
	// +optional
	MetalLBImage string `json:"image,omitempty"`

	// SpeakerNodeSelector limits the nodes the speaker DaemonSet runs on.
	// +optional
	SpeakerNodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// SpeakerTolerations are added to the speaker DaemonSet.
	// +optional
	SpeakerTolerations []corev1.Toleration `json:"speakerTolerations,omitempty"`

	// LogLevel is the verbosity of the controller and the speakers (default info).
	// +optional
	LogLevel MetalLBLogLevel `json:"logLevel,omitempty"`

	// LoadBalancerClass is the spec.loadBalancerClass of the Services the controller handles;
	// empty means Services without a class.
	// +optional
	// +kubebuilder:validation:Pattern=`^([a-z0-9A-Z]([\w.\-]*[a-z0-9A-Z])?/)?[a-z0-9A-Z]([\w.\-]*[a-z0-9A-Z])?$`
	LoadBalancerClass string `json:"loadBalancerClass,omitempty"`

	// ControllerNodeSelector limits the nodes the controller Deployment runs on.
	// +optional
	ControllerNodeSelector map[string]string `json:"controllerNodeSelector,omitempty"`

	// ControllerTolerations are added to the controller Deployment.
	// +optional
	ControllerTolerations []corev1.Toleration `json:"controllerTolerations,omitempty"`

	// ControllerConfig adds scheduling and resource settings to the controller Deployment.
	// +optional
	ControllerConfig *Config `json:"controllerConfig,omitempty"`

	// SpeakerConfig adds scheduling and resource settings to the speaker DaemonSet.
	// +optional
	SpeakerConfig *Config `json:"speakerConfig,omitempty"`

	// BGPBackend is the BGP implementation to deploy.
	// +optional
	BGPBackend BGPType `json:"bgpBackend,omitempty"`

	// FRRK8SConfig configures the frr-k8s backend.
	// +optional
	FRRK8SConfig *FRRK8SConfig `json:"frrk8sConfig,omitempty"`

	// SpeakerGratuitousARPInterval is the period of unsolicited ARP/NDP announcements for
	// layer 2 Services; 0 or unset sends them only when an announcement starts.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) == duration('0s') || duration(self) >= duration('1s')",message="speakerGratuitousARPInterval must be 0 or at least 1s"
	SpeakerGratuitousARPInterval *metav1.Duration `json:"speakerGratuitousARPInterval,omitempty"`
}

// FRRK8SConfig configures the frr-k8s BGP backend.
type FRRK8SConfig struct {
	// AlwaysBlock lists CIDRs whose routes are always refused.
	// +optional
	AlwaysBlock []string `json:"alwaysBlock,omitempty"`

	// Namespace is where an external frr-k8s runs.
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// SecretPassthrough passes BGP password Secret references to an external frr-k8s
	// unresolved.
	// +optional
	SecretPassthrough bool `json:"secretPassthrough,omitempty"`
}

// Config holds the pod settings the operator applies to a component.
type Config struct {
	// PriorityClassName is the pods' priority class.
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// RuntimeClassName is the pods' runtime class.
	// +optional
	RuntimeClassName string `json:"runtimeClassName,omitempty"`

	// Affinity is the pods' scheduling constraints.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// Annotations are added to the pods.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`

	// Resources are the containers' resource requirements.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// MetalLBStatus is the operator's view of the deployment.
type MetalLBStatus struct {
	// Conditions are Available, Progressing and Degraded.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Available",type=string,JSONPath=".status.conditions[?(@.type=='Available')].status",description="Available condition status"
// +kubebuilder:printcolumn:name="Degraded",type=string,JSONPath=".status.conditions[?(@.type=='Degraded')].status",description="Degraded condition status"
// +kubebuilder:printcolumn:name="Progressing",type=string,JSONPath=".status.conditions[?(@.type=='Progressing')].status",description="Progressing condition status"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"

// MetalLB asks the operator to deploy the controller and the speakers.
type MetalLB struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MetalLBSpec   `json:"spec,omitempty"`
	Status MetalLBStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// MetalLBList is a list of MetalLB.
type MetalLBList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MetalLB `json:"items"`
}
