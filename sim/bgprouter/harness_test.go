package bgprouter

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/core/config"
	"github.com/switchyard-lb/switchyard/core/speaker"
	"github.com/switchyard-lb/switchyard/netio/attach"
	"github.com/switchyard-lb/switchyard/sim"
)

// TestMain gives the simulations one P (see package sim's documentation).
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f == nil || f.Value.String() != "true" {
		runtime.GOMAXPROCS(1)
	}
	os.Exit(m.Run())
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// The rack: three nodes and a router on segment "rack", a client behind the router on
// "outside". Services get addresses from 203.0.113.0/24 and 2001:db8:100::/64.
var (
	routerRack  = netip.MustParseAddr("10.10.0.1")
	routerRack6 = netip.MustParseAddr("fd00:10::1")
	vip4        = netip.MustParseAddr("203.0.113.10")
	vip6        = netip.MustParseAddr("2001:db8:100::10")
	nodeNames   = []string{"node-1", "node-2", "node-3"}
)

func nodeAddr(i int) netip.Addr  { return netip.AddrFrom4([4]byte{10, 10, 0, byte(11 + i)}) }
func nodeAddr6(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("fd00:10::%d", 11+i)) }

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func rackTopology() sim.Topology {
	t := sim.Topology{
		Segments: []sim.Segment{{Name: "rack"}, {Name: "outside"}},
		Routers: []sim.Host{{Name: "tor", Interfaces: []sim.Interface{
			{Name: "eth0", Segment: "rack", Addrs: []netip.Prefix{mustPrefix("10.10.0.1/24"), mustPrefix("fd00:10::1/64")},
				Link: sim.Link{Delay: sim.Duration{Duration: 20 * time.Microsecond}}},
			{Name: "eth1", Segment: "outside", Addrs: []netip.Prefix{mustPrefix("192.168.0.1/24"), mustPrefix("fd00:c::1/64")},
				Link: sim.Link{Delay: sim.Duration{Duration: 20 * time.Microsecond}}},
		}}},
		Clients: []sim.Host{{Name: "client", Interfaces: []sim.Interface{
			{Name: "eth0", Segment: "outside", Addrs: []netip.Prefix{mustPrefix("192.168.0.100/24"), mustPrefix("fd00:c::100/64")},
				Link: sim.Link{Delay: sim.Duration{Duration: 20 * time.Microsecond}}},
		}, Routes: []sim.Route{
			{Dst: mustPrefix("203.0.113.0/24"), Via: netip.MustParseAddr("192.168.0.1")},
			{Dst: mustPrefix("2001:db8:100::/64"), Via: netip.MustParseAddr("fd00:c::1")},
		}}},
	}
	for i, name := range nodeNames {
		t.Nodes = append(t.Nodes, sim.Host{Name: name, Interfaces: []sim.Interface{
			{Name: "eth0", Segment: "rack", Addrs: []netip.Prefix{netip.PrefixFrom(nodeAddr(i), 24), netip.PrefixFrom(nodeAddr6(i), 64)},
				Link: sim.Link{Delay: sim.Duration{Duration: 20 * time.Microsecond}}},
		}, Routes: []sim.Route{
			{Dst: mustPrefix("192.168.0.0/24"), Via: routerRack},
			{Dst: mustPrefix("fd00:c::/64"), Via: routerRack6},
		}})
	}
	return t
}

// fastBFD is the profile of the node-failure scenario: 100 ms × 3.
var fastBFD = &config.BFDProfile{Name: "fast", ReceiveInterval: 100 * time.Millisecond,
	TransmitInterval: 100 * time.Millisecond, DetectMultiplier: 3, MinimumTTL: 254}

// lab is a running BGP scenario: the network, the router and a speaker per node.
type lab struct {
	t *testing.T
	// routerConfig, when not nil, adjusts the router's configuration before it starts.
	routerConfig func(*Config)
	net          *sim.Network
	router       *Router
	speakers     map[string]*attach.BGP
	bfd          *config.BFDProfile
	seed         uint64
	// trace receives the simulation's trace (call net.Flush first).
	trace *bytes.Buffer
}

func newLab(t *testing.T, seed uint64, bfdProfile *config.BFDProfile) *lab {
	t.Helper()
	return newLabWith(t, seed, bfdProfile, nil)
}

func newLabWith(t *testing.T, seed uint64, bfdProfile *config.BFDProfile, routerConfig func(*Config)) *lab {
	t.Helper()
	var trace bytes.Buffer
	n, err := sim.New(rackTopology(), sim.Options{Seed: seed, Trace: &trace})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{trace: &trace, t: t, net: n, speakers: make(map[string]*attach.BGP), bfd: bfdProfile, seed: seed, routerConfig: routerConfig}
	l.startRouter()
	for i, name := range nodeNames {
		l.startSpeaker(i, name)
	}
	t.Cleanup(func() {
		if st := n.Stalls(); st != 0 {
			t.Errorf("the simulation driver stalled %d times: a goroutine never parked", st)
		}
		for _, s := range l.speakers {
			s.Stop()
		}
		if l.router != nil {
			l.router.Stop()
		}
		n.RunFor(time.Second)
	})
	return l
}

func (l *lab) startRouter() {
	l.t.Helper()
	nio, err := l.net.NetIO("tor")
	if err != nil {
		l.t.Fatal(err)
	}
	cfg := Config{ASN: 64512, Neighbors: []netip.Prefix{mustPrefix("10.10.0.0/24")},
		PeerASN: 64500, BFD: l.bfd, Seed: l.seed, Logger: quiet}
	if l.routerConfig != nil {
		l.routerConfig(&cfg)
	}
	r, err := Start(nio, cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	l.router = r
}

// labConfig is the speakers' configuration: one BGPPeer (the router) and one BGPAdvertisement
// of the pool "public", with the BFD profile when the lab has one.
func (l *lab) labConfig() *config.Config {
	peer := &config.Peer{Name: "tor", MyASN: 64500, ASN: 64512, Addr: routerRack,
		HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second, ConnectTime: 10 * time.Second}
	cfg := &config.Config{
		BGPAdvertisements: []*config.BGPAdvertisement{{Name: "public", Pools: []string{"public"},
			AggregationLength: 32, AggregationLengthV6: 128}},
		Peers: []*config.Peer{peer},
	}
	if l.bfd != nil {
		peer.BFDProfile = l.bfd.Name
		cfg.BFDProfiles = []*config.BFDProfile{l.bfd}
	}
	return cfg
}

// startSpeaker starts a node's BGP runtime (netio/attach), as the real speaker does.
func (l *lab) startSpeaker(i int, name string) {
	l.t.Helper()
	nio, err := l.net.NetIO(name)
	if err != nil {
		l.t.Fatal(err)
	}
	b, err := attach.StartBGP(nio, l.labConfig(), attach.BGPOptions{NodeName: name, Seed: l.seed + uint64(i), Logger: quiet})
	if err != nil {
		l.t.Fatal(err)
	}
	l.speakers[name] = b
}

var webKey = speaker.ServiceKey{Namespace: "default", Name: "web"}

// setService tells every running speaker about a Service with ready endpoints on the named
// nodes.
func (l *lab) setService(ips []netip.Addr, local bool, endpoints ...string) {
	policy := speaker.TrafficCluster
	if local {
		policy = speaker.TrafficLocal
	}
	var eps []speaker.Endpoint
	for _, n := range endpoints {
		eps = append(eps, speaker.Endpoint{Node: n, Ready: true})
	}
	for _, name := range nodeNames {
		s := l.speakers[name]
		if s == nil {
			continue
		}
		s.SetServices([]speaker.Service{{Namespace: webKey.Namespace, Name: webKey.Name, VIPs: ips, Pool: "public",
			ExternalTrafficPolicy: policy}})
		s.SetEndpoints(webKey, eps)
	}
}

// crash powers a node off: its speaker dies with it, without a word to the router.
func (l *lab) crash(name string) {
	l.t.Helper()
	if err := l.net.PowerOff(name); err != nil {
		l.t.Fatal(err)
	}
	l.speakers[name].Stop()
	delete(l.speakers, name)
}

func (l *lab) client() *sim.Client {
	l.t.Helper()
	c, err := l.net.Client("client")
	if err != nil {
		l.t.Fatal(err)
	}
	return c
}

// probe starts TCP connections from the client to target every interval.
func (l *lab) probe(target netip.Addr, interval time.Duration) {
	l.t.Helper()
	if err := l.client().StartProbe(sim.Probe{Kind: sim.ProbeTCP, Target: netip.AddrPortFrom(target, 80),
		Interval: interval, Timeout: 500 * time.Millisecond}); err != nil {
		l.t.Fatal(err)
	}
}

// servedBy counts the connections each node accepted on target within [from, to).
func (l *lab) servedBy(target netip.Addr, from, to time.Duration) map[string]int {
	out := make(map[string]int)
	for _, s := range l.net.Served() {
		if s.Local.Addr() == target && s.At >= from && s.At < to {
			out[s.Node]++
		}
	}
	return out
}

// failedAttempts counts client attempts to target that started in [from, to) and did not
// succeed.
func (l *lab) failedAttempts(target netip.Addr, from, to time.Duration) int {
	n := 0
	for _, a := range l.client().Attempts() {
		if a.Target.Addr() == target && a.Start >= from && a.Start < to && a.Outcome != sim.OutcomeOK {
			n++
		}
	}
	return n
}

// hops is the multipath set of a host route.
func (l *lab) hops(vip netip.Addr) []netip.Addr {
	return l.router.NextHops(netip.PrefixFrom(vip, vip.BitLen()))
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// changeAfter returns the first change of prefix's multipath set at or after t that leaves
// exactly want, and when it happened relative to the start of the simulation.
func (l *lab) changeAfter(prefix netip.Prefix, t time.Duration, want []netip.Addr) (time.Duration, bool) {
	start := l.net.Clock().Now().Add(-l.net.Elapsed())
	for _, c := range l.router.History() {
		at := c.At.Sub(start)
		if c.Prefix == prefix && at >= t && slices.Equal(c.NextHops, want) {
			return at, true
		}
	}
	return 0, false
}
