package webhook_test

import (
	"context"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/switchyard-lb/switchyard/api/v1beta1"
	"github.com/switchyard-lb/switchyard/api/v1beta2"
	"github.com/switchyard-lb/switchyard/kube/kubeconv"
	"github.com/switchyard-lb/switchyard/kube/webhook"
)

func meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}

// TestCheck exercises Validator.Check without an API server, for the decisions that do not
// depend on admission plumbing: BGPPeers in both versions, deletes, objects outside the
// namespace, and problems that were there before the change.
func TestCheck(t *testing.T) {
	existingPeer := &v1beta2.BGPPeer{ObjectMeta: meta("p"), Spec: v1beta2.BGPPeerSpec{MyASN: 64500, ASN: 64501, Address: "10.0.0.1"}}
	brokenPool := &v1beta1.IPAddressPool{ObjectMeta: meta("broken"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"10.9.0.9-10.9.0.1"}}}
	tests := []struct {
		name         string
		existing     []client.Object
		obj          client.Object
		deleting     bool
		wantErr      string
		wantWarnings []string
	}{
		{
			name:    "v1beta2 peer: keepalive not below hold",
			obj:     &v1beta2.BGPPeer{ObjectMeta: meta("q"), Spec: v1beta2.BGPPeerSpec{MyASN: 64500, ASN: 64501, Address: "10.0.0.2", HoldTime: &metav1.Duration{Duration: 30e9}, KeepaliveTime: &metav1.Duration{Duration: 30e9}}},
			wantErr: "BGPPeer metallb-system/q: spec.keepaliveTime: 30s: must be lower than holdTime 30s",
		},
		{
			name:     "v1beta2 peer: same session as an existing one",
			existing: []client.Object{existingPeer},
			obj:      &v1beta2.BGPPeer{ObjectMeta: meta("q"), Spec: v1beta2.BGPPeerSpec{MyASN: 64500, ASN: 64501, Address: "10.0.0.1"}},
			wantErr:  `BGPPeer metallb-system/q: spec.peerAddress: same session as BGPPeer "p" (same address or interface, port, VRF and node selectors)`,
		},
		{
			name:     "v1beta2 peer: updating itself is not a duplicate",
			existing: []client.Object{existingPeer},
			obj:      &v1beta2.BGPPeer{ObjectMeta: meta("p"), Spec: v1beta2.BGPPeerSpec{MyASN: 64500, ASN: 64502, Address: "10.0.0.1"}},
		},
		{
			name:    "v1beta1 peer converted before checking",
			obj:     &v1beta1.BGPPeer{ObjectMeta: meta("old"), Spec: v1beta1.BGPPeerSpec{MyASN: 64500, ASN: 64500, Address: "10.0.0.1", EBGPMultiHop: true}},
			wantErr: "BGPPeer metallb-system/old: spec.ebgpMultiHop: set on an iBGP session (the peer's ASN is myASN); eBGP multihop applies to eBGP only",
		},
		{
			name:     "a problem already there is not held against a new object",
			existing: []client.Object{brokenPool},
			obj:      &v1beta1.IPAddressPool{ObjectMeta: meta("fine"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"10.1.0.0/24"}}},
		},
		{
			name:     "deleting a referenced pool leaves a warning, not an error",
			existing: []client.Object{&v1beta1.IPAddressPool{ObjectMeta: meta("a"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"10.1.0.0/24"}}}, &v1beta1.L2Advertisement{ObjectMeta: meta("l2"), Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"a"}}}},
			obj:      &v1beta1.IPAddressPool{ObjectMeta: meta("a")},
			deleting: true,
			wantWarnings: []string{
				`L2Advertisement metallb-system/l2: spec.ipAddressPools[0]: "a": no IPAddressPool has this name; nothing is advertised for it`,
			},
		},
		{
			name:         "objects in another namespace are ignored",
			obj:          &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: "elsewhere", Name: "x"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"bad"}}},
			wantWarnings: []string{`Switchyard reads metallb.io objects from namespace "metallb-system" only; this one is ignored`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reader := fake.NewClientBuilder().WithScheme(kubeconv.Scheme()).WithObjects(tc.existing...).Build()
			v := &webhook.Validator{Reader: reader, Namespace: namespace, Log: logr.Discard()}
			warnings, err := v.Check(context.Background(), tc.obj, tc.deleting)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tc.wantErr {
				t.Errorf("error:\n got %q\nwant %q", gotErr, tc.wantErr)
			}
			if strings.Join(warnings, "\n") != strings.Join(tc.wantWarnings, "\n") {
				t.Errorf("warnings:\n got %q\nwant %q", warnings, tc.wantWarnings)
			}
		})
	}
}
