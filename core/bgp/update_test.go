package bgp

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/switchyard-lb/switchyard/core/config"
)

func decodeAll(t *testing.T, msgs [][]byte) []string {
	t.Helper()
	var out []string
	for _, b := range msgs {
		if len(b) > maxMessageLen {
			t.Errorf("message of %d octets exceeds %d", len(b), maxMessageLen)
		}
		m, err := bgp.ParseBGPMessage(b)
		if err != nil {
			t.Fatalf("decoding own UPDATE: %v", err)
		}
		out = append(out, describe(m))
	}
	return out
}

func TestUpdateBuilderEncodings(t *testing.T) {
	v4 := []netip.Prefix{netip.MustParsePrefix("198.51.100.1/32")}
	tests := []struct {
		name     string
		b        updateBuilder
		prefixes []netip.Prefix
		withdraw bool
		want     []string
	}{
		{
			name:     "IPv4 over an IPv6 session uses MP_REACH with an IPv4 next hop",
			b:        updateBuilder{myASN: 64512, as4: true, nextHopV4: netip.MustParseAddr("192.0.2.10")},
			prefixes: v4,
			want:     []string{"UPDATE origin=0 aspath=[64512] mp_reach nh=192.0.2.10 198.51.100.1/32"},
		},
		{
			name:     "IPv4 withdrawal over an IPv6 session uses MP_UNREACH",
			b:        updateBuilder{myASN: 64512, as4: true},
			prefixes: v4,
			withdraw: true,
			want:     []string{"UPDATE mp_unreach 198.51.100.1/32"},
		},
		{
			name:     "2-octet peer, 4-octet AS: AS_TRANS plus AS4_PATH",
			b:        updateBuilder{myASN: 4200000001, ipv4Transport: true, nextHopV4: netip.MustParseAddr("192.0.2.10")},
			prefixes: v4,
			want:     []string{"UPDATE announce 198.51.100.1/32 origin=0 aspath=[23456] as4path=[4200000001] nh=192.0.2.10"},
		},
		{
			name:     "2-octet peer, 2-octet AS",
			b:        updateBuilder{myASN: 65000, ipv4Transport: true, nextHopV4: netip.MustParseAddr("192.0.2.10")},
			prefixes: v4,
			want:     []string{"UPDATE announce 198.51.100.1/32 origin=0 aspath=[65000] nh=192.0.2.10"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var msgs [][]byte
			var err error
			if tt.withdraw {
				msgs, err = tt.b.withdraw(tt.prefixes)
			} else {
				msgs, err = tt.b.announce(tt.prefixes, Attributes{})
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, decodeAll(t, msgs)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestUpdateBuilderSplitsAt4096Octets(t *testing.T) {
	b := updateBuilder{myASN: 64512, as4: true, ipv4Transport: true,
		nextHopV4: netip.MustParseAddr("192.0.2.10"), nextHopV6: netip.MustParseAddr("2001:db8::10")}
	var v4, v6 []netip.Prefix
	for i := range 2000 {
		v4 = append(v4, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32))
		v6 = append(v6, netip.MustParsePrefix(fmt.Sprintf("2001:db8::%x/128", i+1)))
	}
	attrs := Attributes{Communities: []config.Community{stdCommunity(1, 1)}}
	for _, tc := range []struct {
		name     string
		prefixes []netip.Prefix
		withdraw bool
	}{{"v4 announce", v4, false}, {"v4 withdraw", v4, true}, {"v6 announce", v6, false}, {"v6 withdraw", v6, true}} {
		var msgs [][]byte
		var err error
		if tc.withdraw {
			msgs, err = b.withdraw(tc.prefixes)
		} else {
			msgs, err = b.announce(tc.prefixes, attrs)
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(msgs) < 2 {
			t.Errorf("%s: 2000 prefixes fit in %d message(s)", tc.name, len(msgs))
		}
		// Every prefix is carried exactly once, in order.
		var got []string
		for _, raw := range msgs {
			if len(raw) > maxMessageLen {
				t.Fatalf("%s: message of %d octets", tc.name, len(raw))
			}
			m, err := bgp.ParseBGPMessage(raw)
			if err != nil {
				t.Fatal(err)
			}
			u := m.Body.(*bgp.BGPUpdate)
			for _, p := range append(u.NLRI, u.WithdrawnRoutes...) {
				got = append(got, p.String())
			}
			for _, a := range u.PathAttributes {
				switch a := a.(type) {
				case *bgp.PathAttributeMpReachNLRI:
					for _, p := range a.Value {
						got = append(got, p.String())
					}
				case *bgp.PathAttributeMpUnreachNLRI:
					for _, p := range a.Value {
						got = append(got, p.String())
					}
				}
			}
		}
		var want []string
		for _, p := range tc.prefixes {
			want = append(want, p.String())
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: prefixes carried (-want +got):\n%s", tc.name, diff)
		}
	}
}
