package sim

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/switchyard-lb/switchyard/netio"
)

// neighbour returns the client's IPv4 neighbour entry for ip.
func neighbour(t *testing.T, n *Network, ip netip.Addr) (stack.NeighborEntry, bool) {
	t.Helper()
	h, err := n.Host("client")
	if err != nil {
		t.Fatal(err)
	}
	entries, terr := h.Stack().Neighbors(1, ipv4.ProtocolNumber)
	if terr != nil {
		t.Fatal(terr)
	}
	for _, e := range entries {
		if e.Addr == tcpip.AddrFrom4(ip.As4()) {
			return e, true
		}
	}
	return stack.NeighborEntry{}, false
}

func macOf(t *testing.T, n *Network, node string) net.HardwareAddr {
	t.Helper()
	nio, err := n.NetIO(node)
	if err != nil {
		t.Fatal(err)
	}
	ifs, err := nio.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	return ifs[0].MAC
}

// TestLinuxNeighbourCache checks the client's IPv4 neighbour cache against Linux's rules after
// the client learned the VIP at node-a's MAC: what node-b's ARP packets for the VIP do to it.
func TestLinuxNeighbourCache(t *testing.T) {
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	client := netip.MustParseAddr("10.0.0.100")
	tests := []struct {
		name string
		wait time.Duration // after the client learned node-a's MAC
		// frame builds node-b's packet from its MAC and the client's MAC.
		frame   func(b, c net.HardwareAddr) []byte
		wantMAC string // "a" or "b"
	}{{
		name:    "gratuitous request replaces at once",
		frame:   func(b, _ net.HardwareAddr) []byte { return arpFrame(header.ARPRequest, b, vip, bcast, vip) },
		wantMAC: "b",
	}, {
		name:    "gratuitous reply replaces at once",
		frame:   func(b, _ net.HardwareAddr) []byte { return arpFrame(header.ARPReply, b, vip, bcast, vip) },
		wantMAC: "b",
	}, {
		name:    "ordinary reply within locktime is ignored",
		wait:    500 * time.Millisecond,
		frame:   func(b, c net.HardwareAddr) []byte { return arpFrame(header.ARPReply, b, vip, c, client) },
		wantMAC: "a",
	}, {
		name:    "ordinary request after locktime replaces",
		wait:    1500 * time.Millisecond,
		frame:   func(b, _ net.HardwareAddr) []byte { return arpFrame(header.ARPRequest, b, vip, bcast, client) },
		wantMAC: "b",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(lanTopology(), Options{Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			a := newAnnouncer(t, n, "node-a", vip)
			a.active = true
			b := newAnnouncer(t, n, "node-b", vip)
			c, _ := n.Client("client")
			if err := c.ConnectTCP(netip.AddrPortFrom(vip, 80), time.Second, nil); err != nil {
				t.Fatal(err)
			}
			n.RunFor(tt.wait + time.Millisecond)
			if e, ok := neighbour(t, n, vip); !ok || e.LinkAddr != tcpip.LinkAddress(a.mac) {
				t.Fatalf("before: entry %+v (found %v), want node-a's MAC", e, ok)
			}
			if err := b.port.Send(tt.frame(b.mac, macOf(t, n, "client"))); err != nil {
				t.Fatal(err)
			}
			n.RunFor(time.Millisecond)
			want := map[string]net.HardwareAddr{"a": a.mac, "b": b.mac}[tt.wantMAC]
			if e, _ := neighbour(t, n, vip); e.LinkAddr != tcpip.LinkAddress(want) {
				t.Errorf("after: entry MAC %s, want node-%s's %s", e.LinkAddr, tt.wantMAC, want)
			}
		})
	}

	t.Run("gratuitous ARP creates no entry", func(t *testing.T) {
		n, err := New(lanTopology(), Options{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		b := newAnnouncer(t, n, "node-b", vip)
		b.garp()
		n.RunFor(time.Millisecond)
		if e, ok := neighbour(t, n, vip); ok {
			t.Errorf("entry %+v created by a gratuitous ARP (Linux arp_accept=0 creates none)", e)
		}
	})
}

// TestNodesDoNotAnswerForVIPs: a node's stack serves VIP traffic but stays silent on ARP for
// the VIP; it answers for its own address.
func TestNodesDoNotAnswerForVIPs(t *testing.T) {
	n, err := New(lanTopology(), Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := n.Client("client")
	for _, ip := range []string{"10.0.0.200", "10.0.0.11", "fd00::200", "fd00::12"} {
		if err := c.Resolve(netip.MustParseAddr(ip), 100*time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
	}
	n.RunFor(time.Second)
	got := c.Attempts()
	want := []struct {
		target  string
		outcome Outcome
		mac     string
	}{
		{"10.0.0.11", OutcomeOK, macOf(t, n, "node-a").String()},
		{"fd00::12", OutcomeOK, macOf(t, n, "node-b").String()},
		{"10.0.0.200", OutcomeTimeout, ""},
		{"fd00::200", OutcomeTimeout, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d attempts: %+v", len(got), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Target.Addr().String() != w.target || g.Outcome != w.outcome || g.MAC != w.mac {
			t.Errorf("attempt %d = %s %s %q, want %s %s %q", i, g.Target.Addr(), g.Outcome, g.MAC, w.target, w.outcome, w.mac)
		}
	}
}

// TestProbesAcrossGateway: a client on one segment reaches a node on another through a
// gateway; the answers come from the gateway's MAC.
func TestProbesAcrossGateway(t *testing.T) {
	topo := Topology{
		Segments: []Segment{{Name: "front"}, {Name: "back"}},
		Nodes: []Host{{Name: "node", Interfaces: []Interface{{Name: "eth0", Segment: "back",
			Addrs: []netip.Prefix{netip.MustParsePrefix("10.1.0.10/24"), netip.MustParsePrefix("fd01::10/64")}}},
			Routes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.1.0.1")},
				{Dst: netip.MustParsePrefix("::/0"), Via: netip.MustParseAddr("fd01::1")}}}},
		Clients: []Host{{Name: "client", Interfaces: []Interface{{Name: "eth0", Segment: "front",
			Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.100/24"), netip.MustParsePrefix("fd00::100/64")}}},
			Routes: []Route{{Dst: netip.MustParsePrefix("10.1.0.0/24"), Via: netip.MustParseAddr("10.0.0.1")},
				{Dst: netip.MustParsePrefix("fd01::/64"), Via: netip.MustParseAddr("fd00::1")}}}},
		Gateways: []Host{{Name: "gw", Interfaces: []Interface{
			{Name: "front", Segment: "front", MAC: "02:00:00:00:00:01",
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fd00::1/64")}},
			{Name: "back", Segment: "back", MAC: "02:00:00:00:01:01",
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24"), netip.MustParsePrefix("fd01::1/64")}}}}},
	}
	n, err := New(topo, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	capture, err := n.CaptureNetwork(&all)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := n.Client("client")
	steps := []func() error{
		func() error { return c.Ping(netip.MustParseAddr("10.1.0.10"), time.Second, nil) },
		func() error { return c.ConnectTCP(netip.MustParseAddrPort("10.1.0.10:80"), time.Second, nil) },
		func() error { return c.Ping(netip.MustParseAddr("fd01::10"), time.Second, nil) },
		func() error { return c.ConnectTCP(netip.MustParseAddrPort("[fd01::10]:80"), time.Second, nil) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
		n.RunFor(100 * time.Millisecond)
	}
	got := c.Attempts()
	if len(got) != 4 {
		t.Fatalf("got %d attempts: %+v", len(got), got)
	}
	for i, kind := range []ProbeKind{ProbePing, ProbeTCP, ProbePing, ProbeTCP} {
		g := got[i]
		wantNode := ""
		if kind == ProbeTCP {
			wantNode = "node"
		}
		if g.Kind != kind || g.Outcome != OutcomeOK || g.MAC != "02:00:00:00:00:01" || g.Node != wantNode {
			t.Errorf("attempt %d = %+v, want %s ok from the gateway's MAC, node %q", i, g, kind, wantNode)
		}
	}
	if err := n.Flush(); err != nil {
		t.Fatal(err)
	}
	// Each routed exchange crosses both segments, so the network capture holds every frame of
	// the client's interface capture and more.
	if frames := len(summarize(t, all.Bytes())); uint64(frames) != capture.Frames() || frames < 16 {
		t.Errorf("network capture holds %d frames (counted %d), want at least 16", frames, capture.Frames())
	}
	served := n.Served()
	if len(served) != 2 || served[0].Remote.Addr().String() != "10.0.0.100" || served[1].Local.String() != "[fd01::10]:80" {
		t.Errorf("served = %+v", served)
	}
}

// TestPowerCycle: a powered-off node's netio goes dead, its port is silent, and it comes back
// with a new netio.Node.
func TestPowerCycle(t *testing.T) {
	n, err := New(lanTopology(), Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	old, _ := n.NetIO("node-a")
	port, err := old.OpenPort("eth0", netio.PortConfig{EtherTypes: []uint16{netio.EtherTypeARP}, Handler: func(netio.Frame) {}})
	if err != nil {
		t.Fatal(err)
	}
	fired := false
	old.Clock().AfterFunc(time.Second, func() { fired = true })
	if err := n.PowerOff("node-a"); err != nil {
		t.Fatal(err)
	}
	if err := port.Send(make([]byte, 60)); err == nil {
		t.Error("Send on a powered-off node succeeded")
	}
	if _, err := n.NetIO("node-a"); err == nil {
		t.Error("NetIO of a powered-off node succeeded")
	}
	c, _ := n.Client("client")
	if err := c.Ping(netip.MustParseAddr("10.0.0.11"), 500*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	n.RunFor(2 * time.Second)
	if fired {
		t.Error("a timer of the powered-off node fired")
	}
	if err := n.PowerOn("node-a"); err != nil {
		t.Fatal(err)
	}
	if cur, err := n.NetIO("node-a"); err != nil || cur == old {
		t.Errorf("after power-on NetIO = %p, %v; want a new node", cur, err)
	}
	// The client's neighbour entry failed while the node was off; gVisor keeps an Unreachable
	// entry for its UnreachableTime (5 s) before it resolves the address again.
	n.RunFor(10 * time.Second)
	if err := c.Ping(netip.MustParseAddr("10.0.0.11"), 500*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	n.RunFor(time.Second)
	got := c.Attempts()
	if len(got) != 2 || got[0].Outcome != OutcomeTimeout || got[1].Outcome != OutcomeOK {
		t.Errorf("attempts = %+v, want a timeout while off and ok after power-on", got)
	}
}

// announcer6 answers neighbour solicitations for an IPv6 VIP through netio and can send an
// unsolicited neighbour advertisement with the Override flag, as speakers do on takeover.
type announcer6 struct {
	port   netio.Port
	mac    net.HardwareAddr
	ip     netip.Addr
	active bool
}

func newAnnouncer6(t *testing.T, n *Network, node string, ip netip.Addr) *announcer6 {
	t.Helper()
	a := &announcer6{mac: macOf(t, n, node), ip: ip}
	nio, _ := n.NetIO(node)
	var err error
	a.port, err = nio.OpenPort("eth0", netio.PortConfig{EtherTypes: []uint16{netio.EtherTypeIPv6}, Handler: a.handle})
	if err != nil {
		t.Fatal(err)
	}
	snm := header.SolicitedNodeAddr(tcpip.AddrFrom16(ip.As16()))
	if err := a.port.JoinGroup(netip.AddrFrom16(snm.As16())); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *announcer6) handle(f netio.Frame) {
	ip := header.IPv6(f.Data[header.EthernetMinimumSize:])
	if !a.active || !ip.IsValid(len(ip)) || ip.TransportProtocol() != header.ICMPv6ProtocolNumber {
		return
	}
	ic := header.ICMPv6(ip.Payload())
	if len(ic) < header.ICMPv6NeighborSolicitMinimumSize || ic.Type() != header.ICMPv6NeighborSolicit {
		return
	}
	if netip.AddrFrom16(header.NDPNeighborSolicit(ic.MessageBody()).TargetAddress().As16()) != a.ip {
		return
	}
	_ = a.port.Send(a.advert(net.HardwareAddr(f.Data[6:12]), netip.AddrFrom16(ip.SourceAddress().As16()), true))
}

// advert builds a neighbour advertisement for a.ip with the Override flag.
func (a *announcer6) advert(dstMAC net.HardwareAddr, dst netip.Addr, solicited bool) []byte {
	opts := header.NDPOptionsSerializer{header.NDPTargetLinkLayerAddressOption(tcpip.LinkAddress(a.mac))}
	icmpLen := header.ICMPv6NeighborAdvertMinimumSize + opts.Length()
	f := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+icmpLen)
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(a.mac), DstAddr: tcpip.LinkAddress(dstMAC), Type: header.IPv6ProtocolNumber})
	ip := header.IPv6(f[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv6Fields{PayloadLength: uint16(icmpLen), TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit: header.NDPHopLimit, SrcAddr: tcpip.AddrFrom16(a.ip.As16()), DstAddr: tcpip.AddrFrom16(dst.As16())})
	ic := header.ICMPv6(ip.Payload())
	ic.SetType(header.ICMPv6NeighborAdvert)
	na := header.NDPNeighborAdvert(ic.MessageBody())
	na.SetTargetAddress(tcpip.AddrFrom16(a.ip.As16()))
	na.SetOverrideFlag(true)
	na.SetSolicitedFlag(solicited)
	na.Options().Serialize(opts)
	ic.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: ic, Src: ip.SourceAddress(), Dst: ip.DestinationAddress()}))
	return f
}

// TestUnsolicitedAdvertisementMovesIPv6VIP: while node-a still serves the IPv6 VIP, node-b's
// unsolicited advertisement with Override moves the client to node-b at once.
func TestUnsolicitedAdvertisementMovesIPv6VIP(t *testing.T) {
	n, err := New(lanTopology(), Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := newAnnouncer6(t, n, "node-a", vip6)
	b := newAnnouncer6(t, n, "node-b", vip6)
	a.active = true
	c, _ := n.Client("client")
	target := netip.AddrPortFrom(vip6, 80)
	if err := c.ConnectTCP(target, time.Second, nil); err != nil {
		t.Fatal(err)
	}
	n.RunFor(100 * time.Millisecond)
	a.active, b.active = false, true
	allNodes := netip.MustParseAddr("ff02::1")
	if err := b.port.Send(b.advert(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, allNodes, false)); err != nil {
		t.Fatal(err)
	}
	n.RunFor(100 * time.Millisecond)
	if err := c.ConnectTCP(target, time.Second, nil); err != nil {
		t.Fatal(err)
	}
	n.RunFor(100 * time.Millisecond)
	got := c.Attempts()
	if len(got) != 2 || got[0].Node != "node-a" || got[1].Node != "node-b" || got[1].MAC != b.mac.String() || got[1].End != got[1].Start {
		t.Errorf("attempts = %+v, want node-a then node-b at once", got)
	}
}

// TestNodeRequestsUseOwnAddress: a node answering VIP traffic resolves the client with its own
// address as ARP sender (arp_announce=2), never the VIP, so clients never learn a VIP from it.
func TestNodeRequestsUseOwnAddress(t *testing.T) {
	n, err := New(lanTopology(), Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var wire bytes.Buffer
	if _, err := n.CaptureInterface("client", "eth0", &wire); err != nil {
		t.Fatal(err)
	}
	a := newAnnouncer(t, n, "node-a", vip)
	a.active = true
	c, _ := n.Client("client")
	if err := c.ConnectTCP(netip.AddrPortFrom(vip, 80), time.Second, nil); err != nil {
		t.Fatal(err)
	}
	n.RunFor(100 * time.Millisecond)
	if err := n.Flush(); err != nil {
		t.Fatal(err)
	}
	var requests []string
	for _, f := range summarize(t, wire.Bytes()) {
		if strings.HasPrefix(f, "ARP request") {
			requests = append(requests, f)
		}
	}
	want := []string{"ARP request 10.0.0.100>10.0.0.200", "ARP request 10.0.0.11>10.0.0.100"}
	if !slices.Equal(requests, want) {
		t.Errorf("ARP requests on the client's wire = %q, want %q", requests, want)
	}
	if got := c.Attempts(); len(got) != 1 || got[0].Node != "node-a" {
		t.Errorf("attempts = %+v", got)
	}
}

// TestForwarderNeighbourCacheFollowsLinux: gateways and routers stand for Linux machines too,
// so the new owner's gratuitous ARP moves their entry for a VIP at once. Without that, a
// client behind them would wait for the forwarder's own reachability probe to fail (seconds).
func TestForwarderNeighbourCacheFollowsLinux(t *testing.T) {
	front := netip.MustParsePrefix("10.9.0.0/24")
	gw := Host{Name: "fwd", Interfaces: []Interface{
		{Name: "lan", Segment: "lan", Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}},
		{Name: "front", Segment: "front", Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")}},
	}}
	for _, kind := range []string{"gateway", "router"} {
		t.Run(kind, func(t *testing.T) {
			topo := lanTopology()
			topo.Segments = append(topo.Segments, Segment{Name: "front"})
			topo.Clients = []Host{{Name: "client", Interfaces: []Interface{{Name: "eth0", Segment: "front",
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.100/24")}}},
				Routes: []Route{{Dst: netip.MustParsePrefix("10.0.0.0/24"), Via: netip.MustParseAddr("10.9.0.1")}}}}
			for i := range topo.Nodes {
				topo.Nodes[i].Routes = []Route{{Dst: front, Via: netip.MustParseAddr("10.0.0.1")}}
			}
			if kind == "gateway" {
				topo.Gateways = []Host{gw}
			} else {
				topo.Routers = []Host{gw}
			}
			n, err := New(topo, Options{Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			fwd, err := n.Host("fwd")
			if err != nil {
				t.Fatal(err)
			}
			vipEntry := func() tcpip.LinkAddress {
				entries, terr := fwd.Stack().Neighbors(fwd.NIC("lan").ID(), ipv4.ProtocolNumber)
				if terr != nil {
					t.Fatal(terr)
				}
				for _, e := range entries {
					if e.Addr == tcpip.AddrFrom4(vip.As4()) {
						return e.LinkAddr
					}
				}
				return ""
			}
			a := newAnnouncer(t, n, "node-a", vip)
			a.active = true
			b := newAnnouncer(t, n, "node-b", vip)
			c, _ := n.Client("client")
			if err := c.ConnectTCP(netip.AddrPortFrom(vip, 80), time.Second, nil); err != nil {
				t.Fatal(err)
			}
			n.RunFor(100 * time.Millisecond)
			if got := vipEntry(); got != tcpip.LinkAddress(a.mac) {
				t.Fatalf("before: %s's entry for %s is %q, want node-a's %s", kind, vip, got, a.mac)
			}
			a.active, b.active = false, true
			b.garp()
			n.RunFor(time.Millisecond)
			if got := vipEntry(); got != tcpip.LinkAddress(b.mac) {
				t.Errorf("after node-b's gratuitous ARP: %s's entry for %s is %q, want node-b's %s", kind, vip, got, b.mac)
			}
			if err := c.ConnectTCP(netip.AddrPortFrom(vip, 80), time.Second, nil); err != nil {
				t.Fatal(err)
			}
			n.RunFor(100 * time.Millisecond)
			got := c.Attempts()
			if len(got) != 2 || got[0].Outcome != OutcomeOK || got[0].Node != "node-a" ||
				got[1].Outcome != OutcomeOK || got[1].Node != "node-b" {
				t.Errorf("attempts = %+v, want node-a then node-b serving", got)
			}
		})
	}
}
