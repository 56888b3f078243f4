package config

import (
	"errors"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-lb/switchyard/api/v1beta1"
	"github.com/switchyard-lb/switchyard/api/v1beta2"
)

// TestBuildObjects runs Build on decoded objects, as the webhook does, without files.
func TestBuildObjects(t *testing.T) {
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: "metallb-system"} }
	objs := &Objects{
		Pools: []v1beta1.IPAddressPool{
			{ObjectMeta: meta("v4"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"10.0.0.0/28", "10.0.1.1-10.0.1.3"}}},
			{ObjectMeta: meta("v6"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"2001:db8::/124"}}},
		},
		Peers: []v1beta2.BGPPeer{
			{ObjectMeta: meta("router"), Spec: v1beta2.BGPPeerSpec{MyASN: 64500, ASN: 64501, Address: "10.0.0.254",
				HoldTime: &metav1.Duration{Duration: 30_000_000_000}}},
		},
	}
	cfg, warnings, err := Build(objs)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("Build: %v, warnings %v", err, warnings)
	}

	if p := cfg.Peer("router"); p == nil || p.HoldTime.String() != "30s" || p.KeepaliveTime.String() != "10s" || p.Port != 179 {
		t.Errorf("peer router = %+v, want hold 30s, keepalive 10s (hold/3), port 179", p)
	}
	if cfg.Peer("nobody") != nil || cfg.Pool("nobody") != nil || cfg.BFDProfile("nobody") != nil {
		t.Errorf("lookups of a missing name returned non-nil")
	}
	for _, tc := range []struct {
		addr string
		pool string
	}{
		{"10.0.0.0", "v4"}, {"10.0.0.15", "v4"}, {"10.0.0.16", ""}, {"10.0.1.2", "v4"}, {"10.0.1.4", ""},
		{"2001:db8::f", "v6"}, {"2001:db8::10", ""}, {"::ffff:10.0.0.1", ""},
	} {
		got := ""
		if p := cfg.PoolFor(netip.MustParseAddr(tc.addr)); p != nil {
			got = p.Name
		}
		if got != tc.pool {
			t.Errorf("PoolFor(%s) = %q, want %q", tc.addr, got, tc.pool)
		}
	}

	// The same objects with a mistake give an Errors naming the object, and no Config.
	objs.Pools[1].Spec.Addresses = []string{"10.0.0.8/29"}
	cfg, _, err = Build(objs)
	var errs Errors
	if cfg != nil || !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("Build = %v, %v; want one error", cfg, err)
	}
	want := `IPAddressPool metallb-system/v6: spec.addresses[0]: "10.0.0.8/29": overlaps "10.0.0.0/28" (spec.addresses[0] of IPAddressPool "v4")`
	if got := errs[0].Error(); got != want {
		t.Errorf("error = %q\nwant    %q", got, want)
	}
	if e := errs[0]; e.Kind != "IPAddressPool" || e.Namespace != "metallb-system" || e.Name != "v6" || e.Field != "spec.addresses[0]" {
		t.Errorf("error fields = %+v", e)
	}
}
