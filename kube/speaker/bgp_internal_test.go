package speaker

import (
	"net/netip"
	"testing"
)

// advertisedIn must find a VIP under a host route and under an aggregate
// (BGPAdvertisement aggregationLength), of its own family only.
func TestAdvertisedIn(t *testing.T) {
	table := map[netip.Prefix]bool{
		netip.MustParsePrefix("10.0.0.5/32"):     true,
		netip.MustParsePrefix("10.1.0.0/24"):     true,
		netip.MustParsePrefix("2001:db8::1/128"): true,
	}
	lengths := []int{32, 24, 1128}
	tests := []struct {
		vip  string
		want bool
	}{
		{"10.0.0.5", true},
		{"10.0.0.6", false},
		{"10.1.0.77", true},  // under the /24 aggregate
		{"10.2.0.77", false}, // no aggregate covers it
		{"2001:db8::1", true},
		{"2001:db8::2", false},
		{"::ffff:10.0.0.5", false}, // an IPv6 address is not looked up in IPv4 lengths
	}
	for _, tt := range tests {
		if got := advertisedIn([]netip.Addr{netip.MustParseAddr(tt.vip)}, table, lengths); got != tt.want {
			t.Errorf("advertisedIn(%s) = %v, want %v", tt.vip, got, tt.want)
		}
	}
	if advertisedIn(nil, table, lengths) {
		t.Errorf("advertisedIn(no VIPs) = true, want false")
	}
}
