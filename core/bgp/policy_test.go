package bgp

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/switchyard-lb/switchyard/core/config"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func selector(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

var cmpOpts = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func checkDiffs(t *testing.T, step string, got, want map[string]Diff) {
	t.Helper()
	if want == nil {
		want = map[string]Diff{}
	}
	if got == nil {
		got = map[string]Diff{}
	}
	if diff := cmp.Diff(want, got, cmpOpts, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("%s: diffs (-want +got):\n%s", step, diff)
	}
}

func twoPeers() []*config.Peer {
	return []*config.Peer{
		{Name: "r1", MyASN: 64512, ASN: 64513, Addr: ip("192.0.2.1")},
		{Name: "r2", MyASN: 64512, ASN: 64512, Addr: ip("192.0.2.2")},
	}
}

func readyService(key, pool string, ips ...string) Service {
	s := Service{Key: key, Pool: pool, AnyEndpointReady: true, LocalEndpointReady: true}
	for _, a := range ips {
		s.IPs = append(s.IPs, ip(a))
	}
	return s
}

func TestPolicyAnnouncesPerPeerWithAttributes(t *testing.T) {
	comms := []config.Community{{Large: true, GlobalAdmin: 1, Local1: 2, Local2: 3}, stdCommunity(64512, 7)}
	p := NewPolicy("node-a", map[string]string{"zone": "a"})
	checkDiffs(t, "config", p.SetConfig([]*config.BGPAdvertisement{
		{Name: "adv", Pools: []string{"public"}, LocalPref: 100, Communities: comms},
	}, twoPeers()), nil)

	sorted := Attributes{LocalPref: 100, Communities: []config.Community{stdCommunity(64512, 7), {Large: true, GlobalAdmin: 1, Local1: 2, Local2: 3}}}
	got := p.SetService(readyService("ns/web", "public", "198.51.100.5", "2001:db8::5"))
	want := map[string]Diff{
		"r1": {Announce: []Route{{pfx("198.51.100.5/32"), sorted}, {pfx("2001:db8::5/128"), sorted}}},
		"r2": {Announce: []Route{{pfx("198.51.100.5/32"), sorted}, {pfx("2001:db8::5/128"), sorted}}},
	}
	checkDiffs(t, "add service", got, want)

	// A Service in a pool nobody advertises changes nothing.
	checkDiffs(t, "other pool", p.SetService(readyService("ns/private", "private", "10.0.0.1")), nil)
	// Setting the same Service again changes nothing.
	checkDiffs(t, "same again", p.SetService(readyService("ns/web", "public", "198.51.100.5", "2001:db8::5")), nil)

	// The IPv6 address goes away.
	want = map[string]Diff{
		"r1": {Withdraw: []netip.Prefix{pfx("2001:db8::5/128")}},
		"r2": {Withdraw: []netip.Prefix{pfx("2001:db8::5/128")}},
	}
	checkDiffs(t, "drop v6", p.SetService(readyService("ns/web", "public", "198.51.100.5")), want)

	want = map[string]Diff{
		"r1": {Withdraw: []netip.Prefix{pfx("198.51.100.5/32")}},
		"r2": {Withdraw: []netip.Prefix{pfx("198.51.100.5/32")}},
	}
	checkDiffs(t, "delete", p.DeleteService("ns/web"), want)
	checkDiffs(t, "delete twice", p.DeleteService("ns/web"), nil)
}

func TestPolicyEndpointsAndTrafficPolicy(t *testing.T) {
	adverts := []*config.BGPAdvertisement{{Name: "adv", Pools: []string{"p"}}}
	peers := twoPeers()[:1]
	host := []Route{{Prefix: pfx("198.51.100.9/32")}}
	tests := []struct {
		name string
		svc  Service
		want map[string]Diff
	}{
		{"cluster, endpoints somewhere", Service{Key: "s", Pool: "p", IPs: []netip.Addr{ip("198.51.100.9")}, AnyEndpointReady: true}, map[string]Diff{"r1": {Announce: host}}},
		{"cluster, no endpoints", Service{Key: "s", Pool: "p", IPs: []netip.Addr{ip("198.51.100.9")}}, nil},
		{"local, endpoint elsewhere only", Service{Key: "s", Pool: "p", IPs: []netip.Addr{ip("198.51.100.9")}, TrafficPolicyLocal: true, AnyEndpointReady: true}, nil},
		{"local, endpoint here", Service{Key: "s", Pool: "p", IPs: []netip.Addr{ip("198.51.100.9")}, TrafficPolicyLocal: true, AnyEndpointReady: true, LocalEndpointReady: true}, map[string]Diff{"r1": {Announce: host}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPolicy("n", nil)
			p.SetConfig(adverts, peers)
			checkDiffs(t, "set", p.SetService(tt.svc), tt.want)
		})
	}

	// A local endpoint going away withdraws; coming back announces.
	p := NewPolicy("n", nil)
	p.SetConfig(adverts, peers)
	svc := Service{Key: "s", Pool: "p", IPs: []netip.Addr{ip("198.51.100.9")}, TrafficPolicyLocal: true, AnyEndpointReady: true, LocalEndpointReady: true}
	p.SetService(svc)
	svc.LocalEndpointReady = false
	checkDiffs(t, "endpoint gone", p.SetService(svc), map[string]Diff{"r1": {Withdraw: []netip.Prefix{pfx("198.51.100.9/32")}}})
	svc.LocalEndpointReady = true
	checkDiffs(t, "endpoint back", p.SetService(svc), map[string]Diff{"r1": {Announce: host}})
}

func TestPolicyAggregationIsReferenceCounted(t *testing.T) {
	p := NewPolicy("n", nil)
	p.SetConfig([]*config.BGPAdvertisement{{Name: "agg", Pools: []string{"p"}, AggregationLength: 24, AggregationLengthV6: 64}}, twoPeers()[:1])
	agg := map[string]Diff{"r1": {Announce: []Route{{Prefix: pfx("198.51.100.0/24")}}}}
	checkDiffs(t, "first", p.SetService(readyService("a", "p", "198.51.100.1")), agg)
	checkDiffs(t, "second in same /24", p.SetService(readyService("b", "p", "198.51.100.2")), nil)
	checkDiffs(t, "v6 /64", p.SetService(readyService("c", "p", "2001:db8:0:1::9")),
		map[string]Diff{"r1": {Announce: []Route{{Prefix: pfx("2001:db8:0:1::/64")}}}})
	checkDiffs(t, "first goes", p.DeleteService("a"), nil)
	checkDiffs(t, "last goes", p.DeleteService("b"), map[string]Diff{"r1": {Withdraw: []netip.Prefix{pfx("198.51.100.0/24")}}})
	if diff := cmp.Diff([]Route{{Prefix: pfx("2001:db8:0:1::/64")}}, p.Table("r1"), cmpOpts); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

func TestPolicySelectorsAndPeers(t *testing.T) {
	peers := []*config.Peer{
		{Name: "r1", MyASN: 1, ASN: 2},
		{Name: "r2", MyASN: 1, ASN: 2, NodeSelectors: []labels.Selector{selector(t, "rack=r2")}},
		{Name: "r3", MyASN: 1, ASN: 2},
	}
	adverts := []*config.BGPAdvertisement{
		// To r1 only, from every node.
		{Name: "only-r1", Pools: []string{"p"}, Peers: []string{"r1"}, Communities: []config.Community{stdCommunity(1, 1)}},
		// To every peer, from zone a only.
		{Name: "zone-a", Pools: []string{"p"}, NodeSelectors: []labels.Selector{selector(t, "zone=a")}, LocalPref: 50,
			Communities: []config.Community{stdCommunity(2, 2)}},
	}
	p := NewPolicy("n", map[string]string{"zone": "b"})
	p.SetConfig(adverts, peers)
	one := Attributes{Communities: []config.Community{stdCommunity(1, 1)}}
	checkDiffs(t, "zone b", p.SetService(readyService("s", "p", "198.51.100.1")),
		map[string]Diff{"r1": {Announce: []Route{{pfx("198.51.100.1/32"), one}}}})

	// The node moves to zone a in rack r2: r2 becomes a peer, zone-a applies, and r1 gets the
	// merged attributes of both advertisements.
	both := Attributes{LocalPref: 50, Communities: []config.Community{stdCommunity(1, 1), stdCommunity(2, 2)}}
	two := Attributes{LocalPref: 50, Communities: []config.Community{stdCommunity(2, 2)}}
	checkDiffs(t, "zone a rack r2", p.SetNode(map[string]string{"zone": "a", "rack": "r2"}), map[string]Diff{
		"r1": {Announce: []Route{{pfx("198.51.100.1/32"), both}}},
		"r2": {Announce: []Route{{pfx("198.51.100.1/32"), two}}},
		"r3": {Announce: []Route{{pfx("198.51.100.1/32"), two}}},
	})

	// Leaving rack r2 withdraws everything from r2.
	checkDiffs(t, "leave rack", p.SetNode(map[string]string{"zone": "a"}), map[string]Diff{
		"r2": {Withdraw: []netip.Prefix{pfx("198.51.100.1/32")}},
	})

	// Dropping the zone-a advertisement reverts r1 and withdraws from r3.
	checkDiffs(t, "drop advert", p.SetConfig(adverts[:1], peers), map[string]Diff{
		"r1": {Announce: []Route{{pfx("198.51.100.1/32"), one}}},
		"r3": {Withdraw: []netip.Prefix{pfx("198.51.100.1/32")}},
	})
	// Removing peer r1 from the configuration withdraws its routes.
	checkDiffs(t, "drop peer", p.SetConfig(adverts[:1], peers[1:]), map[string]Diff{
		"r1": {Withdraw: []netip.Prefix{pfx("198.51.100.1/32")}},
	})
}

// BenchmarkPolicyOneServiceChange measures recomputation after one Service changes, with
// 10,000 Services announced to 4 peers (two advertisements, one aggregating to /24).
func BenchmarkPolicyOneServiceChange(b *testing.B) {
	var peers []*config.Peer
	for i := range 4 {
		peers = append(peers, &config.Peer{Name: fmt.Sprintf("r%d", i), MyASN: 64512, ASN: 64513})
	}
	p := NewPolicy("n", nil)
	p.SetConfig([]*config.BGPAdvertisement{
		{Name: "hosts", Pools: []string{"p"}, Communities: []config.Community{stdCommunity(64512, 1)}},
		{Name: "agg", Pools: []string{"p"}, AggregationLength: 24, Peers: []string{"r0", "r1"}},
	}, peers)
	const n = 10000
	services := make([]Service, n)
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		services[i] = Service{Key: fmt.Sprintf("ns/svc-%d", i), Pool: "p", IPs: []netip.Addr{a}, AnyEndpointReady: true, TrafficPolicyLocal: true, LocalEndpointReady: true}
		p.SetService(services[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Toggle one Service's local endpoint: its host route is withdrawn or announced again.
		svc := &services[(i*7919)%n]
		svc.LocalEndpointReady = !svc.LocalEndpointReady
		if d := p.SetService(*svc); len(d) == 0 {
			b.Fatal("a change produced no diff")
		}
	}
}

func TestPeerAppliesToNode(t *testing.T) {
	peer := &config.Peer{Name: "r", NodeSelectors: []labels.Selector{selector(t, "rack=r1"), selector(t, "role in (edge,border)")}}
	tests := []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"rack": "r1"}, true},
		{map[string]string{"role": "border"}, true},
		{map[string]string{"rack": "r2", "role": "worker"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := PeerAppliesToNode(peer, tt.labels); got != tt.want {
			t.Errorf("labels %v: got %v, want %v", tt.labels, got, tt.want)
		}
	}
	if !PeerAppliesToNode(&config.Peer{Name: "all"}, nil) {
		t.Error("a peer without nodeSelectors must apply to every node")
	}
}
