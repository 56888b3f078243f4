package v1beta1

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-lb/switchyard/api/v1beta2"
)

func TestConvertToV1beta2(t *testing.T) {
	src := &BGPPeer{
		ObjectMeta: metav1.ObjectMeta{Name: "peer", Namespace: "metallb-system", Labels: map[string]string{"a": "b"}},
		Spec: BGPPeerSpec{
			MyASN: 64500, ASN: 64501, Address: "10.0.0.1", SrcAddress: "10.0.0.2", Port: 1179,
			HoldTime: metav1.Duration{Duration: 9 * time.Second}, RouterID: "10.0.0.2", Password: "pw",
			BFDProfile: "fast", EBGPMultiHop: true,
			NodeSelectors: []NodeSelector{{
				MatchLabels:      map[string]string{"rack": "a"},
				MatchExpressions: []MatchExpression{{Key: "zone", Operator: "In", Values: []string{"x", "y"}}},
			}},
		},
	}
	var got v1beta2.BGPPeer
	if err := src.ConvertToV1beta2(&got); err != nil {
		t.Fatal(err)
	}
	want := v1beta2.BGPPeer{
		TypeMeta:   metav1.TypeMeta{APIVersion: "metallb.io/v1beta2", Kind: "BGPPeer"},
		ObjectMeta: metav1.ObjectMeta{Name: "peer", Namespace: "metallb-system", Labels: map[string]string{"a": "b"}},
		Spec: v1beta2.BGPPeerSpec{
			MyASN: 64500, ASN: 64501, Address: "10.0.0.1", SrcAddress: "10.0.0.2", Port: 1179,
			HoldTime: &metav1.Duration{Duration: 9 * time.Second}, RouterID: "10.0.0.2", Password: "pw",
			BFDProfile: "fast", EBGPMultiHop: true,
			NodeSelectors: []metav1.LabelSelector{{
				MatchLabels:      map[string]string{"rack": "a"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "zone", Operator: metav1.LabelSelectorOpIn, Values: []string{"x", "y"}}},
			}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ConvertToV1beta2 (-want +got):\n%s", diff)
	}
}

// TestV1beta2RoundTrip checks that a v1beta2 peer read and written back as v1beta1 keeps the
// fields v1beta1 cannot express.
func TestV1beta2RoundTrip(t *testing.T) {
	orig := &v1beta2.BGPPeer{
		TypeMeta:   metav1.TypeMeta{APIVersion: "metallb.io/v1beta2", Kind: "BGPPeer"},
		ObjectMeta: metav1.ObjectMeta{Name: "peer", Namespace: "metallb-system", Annotations: map[string]string{"keep": "me"}},
		Spec: v1beta2.BGPPeerSpec{
			MyASN: 4200000000, DynamicASN: v1beta2.ExternalASNMode, Interface: "eth1",
			KeepaliveTime:         &metav1.Duration{Duration: 3 * time.Second},
			HoldTime:              &metav1.Duration{Duration: 9 * time.Second},
			ConnectTime:           &metav1.Duration{Duration: 5 * time.Second},
			PasswordSecret:        corev1.SecretReference{Name: "md5", Namespace: "metallb-system"},
			EnableGracefulRestart: true, VRFName: "red", DisableMP: true, DualStackAddressFamily: true,
		},
	}
	var old BGPPeer
	if err := old.ConvertFromV1beta2(orig); err != nil {
		t.Fatal(err)
	}
	if old.APIVersion != "metallb.io/v1beta1" || old.Spec.MyASN != 4200000000 || old.Spec.HoldTime.Duration != 9*time.Second {
		t.Errorf("v1beta1 form = %+v", old)
	}
	wantAnnotation := `{"dynamicASN":"external","interface":"eth1","passwordSecretName":"md5","passwordSecretNamespace":"metallb-system","connectTime":"5s","enableGracefulRestart":true,"vrf":"red","disableMP":true,"dualStackAddressFamily":true}`
	if got := old.Annotations[V1beta2OnlyFieldsAnnotation]; got != wantAnnotation {
		t.Errorf("annotation = %s\nwant         %s", got, wantAnnotation)
	}
	var back v1beta2.BGPPeer
	if err := old.ConvertToV1beta2(&back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(orig, &back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if orig.Annotations[V1beta2OnlyFieldsAnnotation] != "" {
		t.Errorf("conversion modified its source's annotations")
	}
}

func TestConvertRejectsBadAnnotation(t *testing.T) {
	src := &BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: map[string]string{V1beta2OnlyFieldsAnnotation: "{"}}}
	var dst v1beta2.BGPPeer
	err := src.ConvertToV1beta2(&dst)
	want := "BGPPeer ns/p: annotation switchyard.metallb.io/v1beta2-only-fields: unexpected end of JSON input"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}
