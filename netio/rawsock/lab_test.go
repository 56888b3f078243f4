package rawsock

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"

	"github.com/switchyard-lb/switchyard/internal/netnslab"
	"github.com/switchyard-lb/switchyard/netio"
)

// Addresses of the two-host lab: hosts a and b joined by a veth pair, both ends called eth0.
var (
	ipA    = netip.MustParseAddr("10.77.0.1")
	ipA2   = netip.MustParseAddr("10.77.0.3") // a second address of a, never given an MD5 key
	ipB    = netip.MustParseAddr("10.77.0.2")
	ip6A   = netip.MustParseAddr("fd00:77::1")
	ip6A2  = netip.MustParseAddr("fd00:77::3")
	ip6B   = netip.MustParseAddr("fd00:77::2")
	vip4   = netip.MustParseAddr("10.77.0.100") // owned by the Go code in a only, not a's kernel
	vip6   = netip.MustParseAddr("fd00:77::100")
	bcast  = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	noAddr = net.HardwareAddr{0, 0, 0, 0, 0, 0}
)

// twoHosts is the lab most tests use, with a rawsock Node in each host.
type twoHosts struct {
	lab          *netnslab.Lab
	a, b         *netnslab.Namespace
	nodeA, nodeB *Node
	macA, macB   net.HardwareAddr
}

func newTwoHosts(t *testing.T) *twoHosts {
	t.Helper()
	lab := netnslab.New(t)
	h := &twoHosts{lab: lab, a: lab.Namespace("a"), b: lab.Namespace("b")}
	lab.Veth(h.a, "eth0", h.b, "eth0")
	for _, p := range []string{"10.77.0.1/24", "10.77.0.3/24", "fd00:77::1/64", "fd00:77::3/64"} {
		h.a.AddAddr("eth0", p)
	}
	for _, p := range []string{"10.77.0.2/24", "fd00:77::2/64"} {
		h.b.AddAddr("eth0", p)
	}
	h.nodeA, h.macA = openNode(t, h.a)
	h.nodeB, h.macB = openNode(t, h.b)
	return h
}

// openNode opens a Node working in ns and returns it with the MAC of ns's eth0.
func openNode(t *testing.T, ns *netnslab.Namespace) (*Node, net.HardwareAddr) {
	t.Helper()
	n, err := New(Options{NetNS: ns.Path()})
	if err != nil {
		t.Fatalf("New in %s: %v", ns, err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close node in %s: %v", ns, err)
		}
	})
	ifs, err := n.Interfaces()
	if err != nil {
		t.Fatalf("Interfaces in %s: %v", ns, err)
	}
	for _, ifi := range ifs {
		if ifi.Name == "eth0" {
			return n, ifi.MAC
		}
	}
	t.Fatalf("no eth0 in %s: %+v", ns, ifs)
	return nil, nil
}

// collector is a FrameHandler that copies every frame into a channel the test reads.
type collector struct {
	frames chan []byte
}

func newCollector() *collector { return &collector{frames: make(chan []byte, 1024)} }

func (c *collector) handle(f netio.Frame) {
	select {
	case c.frames <- append([]byte(nil), f.Data...):
	default: // a test that reads nothing must not block the reader
	}
}

// next returns the first frame for which match returns true, or fails after timeout.
func (c *collector) next(t *testing.T, what string, timeout time.Duration, match func([]byte) bool) []byte {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f := <-c.frames:
			if match(f) {
				return f
			}
		case <-deadline:
			t.Fatalf("no %s within %v", what, timeout)
			return nil
		}
	}
}

// none fails the test if a frame for which match returns true arrives within wait.
func (c *collector) none(t *testing.T, what string, wait time.Duration, match func([]byte) bool) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case f := <-c.frames:
			if match(f) {
				t.Fatalf("received %s, want none: % x", what, f)
			}
		case <-deadline:
			return
		}
	}
}

func openPort(t *testing.T, n *Node, ifname string, handler netio.FrameHandler, etherTypes ...uint16) *Port {
	t.Helper()
	p, err := n.OpenPort(ifname, netio.PortConfig{EtherTypes: etherTypes, Handler: handler})
	if err != nil {
		t.Fatalf("OpenPort(%s): %v", ifname, err)
	}
	t.Cleanup(func() { p.Close() })
	return p.(*Port)
}

func arpFrame(t *testing.T, op arp.Operation, srcMAC net.HardwareAddr, srcIP netip.Addr, dstMAC net.HardwareAddr, dstIP netip.Addr, ethDst net.HardwareAddr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, srcMAC, srcIP, dstMAC, dstIP)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f := ethernet.Frame{Destination: ethDst, Source: srcMAC, EtherType: ethernet.EtherTypeARP, Payload: payload}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseARP returns the ARP packet in frame, or nil.
func parseARP(frame []byte) *arp.Packet {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return nil
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return nil
	}
	return &p
}

// ndpFrame builds an Ethernet frame holding an IPv6 packet (hop limit 255, as NDP requires)
// with the ICMPv6 message m.
func ndpFrame(t *testing.T, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, m ndp.Message) []byte {
	t.Helper()
	b, err := marshalNDP(srcMAC, dstMAC, src, dst, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func marshalNDP(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, m ndp.Message) ([]byte, error) {
	icmp, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		return nil, err
	}
	ip := make([]byte, 40, 40+len(icmp))
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(icmp)))
	ip[6] = 58 // ICMPv6
	ip[7] = 255
	s, d := src.As16(), dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	f := ethernet.Frame{Destination: dstMAC, Source: srcMAC, EtherType: ethernet.EtherTypeIPv6, Payload: append(ip, icmp...)}
	return f.MarshalBinary()
}

// ndpPacket is a parsed NDP frame.
type ndpPacket struct {
	ethSrc, ethDst net.HardwareAddr
	src, dst       netip.Addr
	msg            ndp.Message
}

// parseNDP returns the NDP message in frame, or nil.
func parseNDP(frame []byte) *ndpPacket {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil || f.EtherType != ethernet.EtherTypeIPv6 || len(f.Payload) < 40 {
		return nil
	}
	ip := f.Payload
	if ip[0]>>4 != 6 || ip[6] != 58 {
		return nil
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if 40+plen > len(ip) {
		return nil
	}
	m, err := ndp.ParseMessage(ip[40 : 40+plen])
	if err != nil {
		return nil
	}
	return &ndpPacket{
		ethSrc: f.Source, ethDst: f.Destination,
		src: netip.AddrFrom16([16]byte(ip[8:24])), dst: netip.AddrFrom16([16]byte(ip[24:40])),
		msg: m,
	}
}

func targetLLA(mac net.HardwareAddr) ndp.Option {
	return &ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}
}

func sourceLLA(mac net.HardwareAddr) ndp.Option {
	return &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}
}

// eventually polls cond every 50 ms until it returns "" or timeout passes, then fails with
// cond's last complaint.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// neighbourMAC returns the link-layer address ns's kernel has for ip on eth0, "" if none.
func neighbourMAC(t *testing.T, ns *netnslab.Namespace, ip netip.Addr) string {
	t.Helper()
	out := ns.MustIP("neigh", "show", ip.String(), "dev", "eth0")
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// answerer answers ARP requests and neighbour solicitations for the addresses it owns with its
// MAC, like a speaker that owns a VIP. It counts what it answered.
type answerer struct {
	t    *testing.T
	mac  net.HardwareAddr
	owns map[netip.Addr]bool

	mu       sync.Mutex
	port     *Port          // set after OpenPort returns
	answered map[string]int // "arp" / "ns" → count
}

// newAnswerer opens a port on n's ifname that answers for owns with mac.
func newAnswerer(t *testing.T, n *Node, ifname string, mac net.HardwareAddr, owns ...netip.Addr) *answerer {
	a := &answerer{t: t, mac: mac, owns: make(map[netip.Addr]bool), answered: make(map[string]int)}
	for _, ip := range owns {
		a.owns[ip] = true
	}
	p := openPort(t, n, ifname, a.handle, netio.EtherTypeARP, netio.EtherTypeIPv6)
	a.mu.Lock()
	a.port = p
	a.mu.Unlock()
	return a
}

func (a *answerer) handle(f netio.Frame) {
	if p := parseARP(f.Data); p != nil && p.Operation == arp.OperationRequest && a.owns[p.TargetIP] {
		reply, err := arp.NewPacket(arp.OperationReply, a.mac, p.TargetIP, p.SenderHardwareAddr, p.SenderIP)
		if err != nil {
			a.t.Error(err)
			return
		}
		payload, _ := reply.MarshalBinary()
		frame, _ := (&ethernet.Frame{Destination: p.SenderHardwareAddr, Source: a.mac, EtherType: ethernet.EtherTypeARP, Payload: payload}).MarshalBinary()
		a.send(frame, "arp")
		return
	}
	if p := parseNDP(f.Data); p != nil {
		ns, ok := p.msg.(*ndp.NeighborSolicitation)
		if !ok || !a.owns[ns.TargetAddress] || p.src.IsUnspecified() {
			return
		}
		na := &ndp.NeighborAdvertisement{Solicited: true, Override: true, TargetAddress: ns.TargetAddress, Options: []ndp.Option{targetLLA(a.mac)}}
		frame, err := marshalNDP(a.mac, p.ethSrc, ns.TargetAddress, p.src, na)
		if err != nil {
			a.t.Error(err)
			return
		}
		a.send(frame, "ns")
	}
}

func (a *answerer) send(frame []byte, kind string) {
	a.mu.Lock()
	port := a.port
	a.mu.Unlock()
	if port == nil {
		return
	}
	if err := port.Send(frame); err != nil {
		a.t.Errorf("answer %s: %v", kind, err)
		return
	}
	a.mu.Lock()
	a.answered[kind]++
	a.mu.Unlock()
}

func (a *answerer) count(kind string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.answered[kind]
}
