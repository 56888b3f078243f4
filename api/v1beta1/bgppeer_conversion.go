package v1beta1

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-lb/switchyard/api/v1beta2"
)

// V1beta2OnlyFieldsAnnotation holds, on a v1beta1 BGPPeer converted from v1beta2, the v1beta2
// fields that v1beta1 cannot express (dynamicASN, interface, passwordSecret, connectTime, ...),
// as JSON. ConvertToV1beta2 restores them, so a client that reads and writes back the v1beta1
// form does not wipe them from storage.
const V1beta2OnlyFieldsAnnotation = "switchyard.metallb.io/v1beta2-only-fields"

// ConvertToV1beta2 writes src, converted to the storage version, into dst.
//
// A zero HoldTime or KeepaliveTime means "unset" in v1beta1 and becomes nil. Fields kept in
// V1beta2OnlyFieldsAnnotation are restored and the annotation is dropped. The only error is a
// malformed annotation.
func (src *BGPPeer) ConvertToV1beta2(dst *v1beta2.BGPPeer) error {
	dst.TypeMeta = metav1.TypeMeta{APIVersion: v1beta2.GroupVersion.String(), Kind: "BGPPeer"}
	src.ObjectMeta.DeepCopyInto(&dst.ObjectMeta)
	s := &src.Spec
	dst.Spec = v1beta2.BGPPeerSpec{
		MyASN:        s.MyASN,
		ASN:          s.ASN,
		Address:      s.Address,
		SrcAddress:   s.SrcAddress,
		Port:         s.Port,
		RouterID:     s.RouterID,
		Password:     s.Password,
		BFDProfile:   s.BFDProfile,
		EBGPMultiHop: s.EBGPMultiHop,
	}
	if s.HoldTime.Duration != 0 {
		dst.Spec.HoldTime = &metav1.Duration{Duration: s.HoldTime.Duration}
	}
	if s.KeepaliveTime.Duration != 0 {
		dst.Spec.KeepaliveTime = &metav1.Duration{Duration: s.KeepaliveTime.Duration}
	}
	for _, ns := range s.NodeSelectors {
		dst.Spec.NodeSelectors = append(dst.Spec.NodeSelectors, ns.toLabelSelector())
	}

	saved, ok := dst.Annotations[V1beta2OnlyFieldsAnnotation]
	if !ok {
		return nil
	}
	var extra v1beta2OnlyFields
	if err := json.Unmarshal([]byte(saved), &extra); err != nil {
		return fmt.Errorf("BGPPeer %s/%s: annotation %s: %w", src.Namespace, src.Name, V1beta2OnlyFieldsAnnotation, err)
	}
	extra.restore(&dst.Spec)
	delete(dst.Annotations, V1beta2OnlyFieldsAnnotation)
	if len(dst.Annotations) == 0 {
		dst.Annotations = nil
	}
	return nil
}

// ConvertFromV1beta2 writes src, converted to v1beta1, into dst. v1beta2 node selectors map
// one to one onto v1beta1's; the fields v1beta1 lacks go into V1beta2OnlyFieldsAnnotation.
func (dst *BGPPeer) ConvertFromV1beta2(src *v1beta2.BGPPeer) error {
	dst.TypeMeta = metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: "BGPPeer"}
	src.ObjectMeta.DeepCopyInto(&dst.ObjectMeta)
	s := &src.Spec
	dst.Spec = BGPPeerSpec{
		MyASN:        s.MyASN,
		ASN:          s.ASN,
		Address:      s.Address,
		SrcAddress:   s.SrcAddress,
		Port:         s.Port,
		RouterID:     s.RouterID,
		Password:     s.Password,
		BFDProfile:   s.BFDProfile,
		EBGPMultiHop: s.EBGPMultiHop,
	}
	if s.HoldTime != nil {
		dst.Spec.HoldTime = *s.HoldTime
	}
	if s.KeepaliveTime != nil {
		dst.Spec.KeepaliveTime = *s.KeepaliveTime
	}
	for _, ls := range s.NodeSelectors {
		dst.Spec.NodeSelectors = append(dst.Spec.NodeSelectors, nodeSelectorFrom(ls))
	}

	extra := saveV1beta2OnlyFields(s)
	if extra == (v1beta2OnlyFields{}) {
		return nil
	}
	raw, err := json.Marshal(extra)
	if err != nil {
		return fmt.Errorf("BGPPeer %s/%s: saving v1beta2 fields: %w", src.Namespace, src.Name, err)
	}
	if dst.Annotations == nil {
		dst.Annotations = map[string]string{}
	}
	dst.Annotations[V1beta2OnlyFieldsAnnotation] = string(raw)
	return nil
}

// v1beta2OnlyFields are the BGPPeerSpec fields that v1beta1 has no place for.
type v1beta2OnlyFields struct {
	DynamicASN             v1beta2.DynamicASNMode `json:"dynamicASN,omitempty"`
	Interface              string                 `json:"interface,omitempty"`
	PasswordSecretName     string                 `json:"passwordSecretName,omitempty"`
	PasswordSecretNS       string                 `json:"passwordSecretNamespace,omitempty"`
	ConnectTime            *metav1.Duration       `json:"connectTime,omitempty"`
	EnableGracefulRestart  bool                   `json:"enableGracefulRestart,omitempty"`
	VRFName                string                 `json:"vrf,omitempty"`
	DisableMP              bool                   `json:"disableMP,omitempty"`
	DualStackAddressFamily bool                   `json:"dualStackAddressFamily,omitempty"`
}

func saveV1beta2OnlyFields(s *v1beta2.BGPPeerSpec) v1beta2OnlyFields {
	return v1beta2OnlyFields{
		DynamicASN:             s.DynamicASN,
		Interface:              s.Interface,
		PasswordSecretName:     s.PasswordSecret.Name,
		PasswordSecretNS:       s.PasswordSecret.Namespace,
		ConnectTime:            s.ConnectTime,
		EnableGracefulRestart:  s.EnableGracefulRestart,
		VRFName:                s.VRFName,
		DisableMP:              s.DisableMP,
		DualStackAddressFamily: s.DualStackAddressFamily,
	}
}

func (f v1beta2OnlyFields) restore(s *v1beta2.BGPPeerSpec) {
	s.DynamicASN = f.DynamicASN
	s.Interface = f.Interface
	s.PasswordSecret.Name = f.PasswordSecretName
	s.PasswordSecret.Namespace = f.PasswordSecretNS
	s.ConnectTime = f.ConnectTime
	s.EnableGracefulRestart = f.EnableGracefulRestart
	s.VRFName = f.VRFName
	s.DisableMP = f.DisableMP
	s.DualStackAddressFamily = f.DualStackAddressFamily
}

func (ns NodeSelector) toLabelSelector() metav1.LabelSelector {
	ls := metav1.LabelSelector{}
	if len(ns.MatchLabels) > 0 {
		ls.MatchLabels = make(map[string]string, len(ns.MatchLabels))
		for k, v := range ns.MatchLabels {
			ls.MatchLabels[k] = v
		}
	}
	for _, me := range ns.MatchExpressions {
		ls.MatchExpressions = append(ls.MatchExpressions, metav1.LabelSelectorRequirement{
			Key:      me.Key,
			Operator: metav1.LabelSelectorOperator(me.Operator),
			Values:   append([]string(nil), me.Values...),
		})
	}
	return ls
}

func nodeSelectorFrom(ls metav1.LabelSelector) NodeSelector {
	ns := NodeSelector{}
	if len(ls.MatchLabels) > 0 {
		ns.MatchLabels = make(map[string]string, len(ls.MatchLabels))
		for k, v := range ls.MatchLabels {
			ns.MatchLabels[k] = v
		}
	}
	for _, r := range ls.MatchExpressions {
		ns.MatchExpressions = append(ns.MatchExpressions, MatchExpression{
			Key:      r.Key,
			Operator: string(r.Operator),
			Values:   append([]string(nil), r.Values...),
		})
	}
	return ns
}
