package bgprouter

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/switchyard-lb/switchyard/sim/host"
)

// The forwarder does ECMP for routes learned by BGP; gVisor forwards everything else. gVisor
// has no multipath, so the two are split like this: every frame that reaches one of the
// router's NICs passes the forwarder's tap first; a packet whose destination matches a BGP route
// is rewritten (MACs, TTL) and sent to the chosen next hop's MAC by the forwarder, and gVisor,
// which sees the same frame next, routes that destination to a discard interface (a route per
// BGP prefix), so it neither forwards the packet a second time nor answers with an ICMP
// unreachable.

// discardNIC is the gVisor NIC ID of the discard interface, above any real NIC's.
const discardNIC tcpip.NICID = 1000

// discardAddrs give the discard interface a source address per family, which gVisor wants on a
// route's interface: 192.0.0.8 is the IPv4 dummy address (RFC 7600) and 100::/64 the IPv6
// discard-only prefix (RFC 6666).
var discardAddrs = []netip.Prefix{netip.MustParsePrefix("192.0.0.8/32"), netip.MustParsePrefix("100::1/128")}

// ForwardStats count the forwarder's decisions.
type ForwardStats struct {
	// Forwarded counts packets sent to a BGP next hop.
	Forwarded uint64
	// Unresolved counts packets dropped because the next hop's MAC was not known yet (its
	// resolution was started).
	Unresolved uint64
	// TTLExpired counts packets left to gVisor (which answers Time Exceeded) because their TTL
	// would reach 0.
	TTLExpired uint64
}

type flowKey struct {
	src, dst         netip.Addr
	proto            uint8
	srcPort, dstPort uint16
}

// flowState is what the forwarder remembers of a 5-tuple's last packet.
type flowState struct {
	hop netip.Addr
	// syn is true when the packet was a TCP SYN without ACK (a connection attempt).
	syn bool
}

type forwarder struct {
	h *host.Host
	r *Router

	removeTaps []func()

	mu sync.Mutex
	// flowHop is the next hop each 5-tuple was last sent to; flows counts flows per next hop.
	flowHop map[flowKey]flowState
	flows   map[netip.Addr]int
	counts  ForwardStats
}

func newForwarder(h *host.Host, r *Router) (*forwarder, error) {
	f := &forwarder{h: h, r: r, flowHop: make(map[flowKey]flowState), flows: make(map[netip.Addr]int)}
	s := h.Stack()
	if terr := s.CreateNIC(discardNIC, &discardEndpoint{}); terr != nil {
		return nil, fmt.Errorf("bgprouter: discard interface: %s", terr)
	}
	for _, p := range discardAddrs {
		proto := ipv4.ProtocolNumber
		if p.Addr().Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddressWithPrefix{
			Address: tcpip.AddrFromSlice(p.Addr().AsSlice()), PrefixLen: p.Bits()}}
		if terr := s.AddProtocolAddress(discardNIC, pa, stack.AddressProperties{}); terr != nil {
			return nil, fmt.Errorf("bgprouter: discard interface address %s: %s", p, terr)
		}
	}
	for _, nic := range h.NICs() {
		nic := nic
		f.removeTaps = append(f.removeTaps, nic.AddTap(func(frame []byte) { f.receive(nic, frame) }))
	}
	return f, nil
}

func (f *forwarder) close() {
	for _, remove := range f.removeTaps {
		remove()
	}
	f.h.Stack().RemoveRoutes(func(r tcpip.Route) bool { return r.NIC == discardNIC })
}

// routeChanged keeps gVisor's discard route for prefix in step with the RIB, and starts
// resolving the MACs of the prefix's next hops so the first packets find them. The router's
// lock is held.
func (f *forwarder) routeChanged(prefix netip.Prefix, present bool) {
	s := f.h.Stack()
	dst := subnetOf(prefix)
	s.RemoveRoutes(func(r tcpip.Route) bool { return r.NIC == discardNIC && r.Destination == dst })
	if !present {
		return
	}
	s.AddRoute(tcpip.Route{Destination: dst, NIC: discardNIC})
	for _, nh := range f.r.rib.best[prefix] {
		if nic, local := f.egress(nh); nic != nil {
			// Resolution runs in the background; the result lands in the neighbour cache.
			_ = s.GetLinkAddress(nic.ID(), tcpAddr(nh), tcpAddr(local), protocolOf(nh), nil)
		}
	}
}

func subnetOf(p netip.Prefix) tcpip.Subnet {
	p = p.Masked()
	a := p.Addr().AsSlice()
	mask := make([]byte, len(a))
	for i := range p.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	s, err := tcpip.NewSubnet(tcpip.AddrFromSlice(a), tcpip.MaskFromBytes(mask))
	if err != nil {
		panic(fmt.Sprintf("bgprouter: subnet %s: %v", p, err)) // p is masked: unreachable
	}
	return s
}

func tcpAddr(a netip.Addr) tcpip.Address { return tcpip.AddrFromSlice(a.AsSlice()) }

func protocolOf(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}

// egress returns the NIC on whose subnet nh lies and that NIC's address of nh's family there.
func (f *forwarder) egress(nh netip.Addr) (*host.NIC, netip.Addr) {
	for _, nic := range f.h.NICs() {
		for _, p := range nic.Addrs() {
			if p.Addr().Is4() == nh.Is4() && p.Masked().Contains(nh) {
				return nic, p.Addr()
			}
		}
	}
	return nil, netip.Addr{}
}

// receive looks at a frame that reached nic and forwards it when it is for a BGP route.
func (f *forwarder) receive(nic *host.NIC, frame []byte) {
	if len(frame) < header.EthernetMinimumSize || !bytes.Equal(frame[0:6], nic.MAC()) {
		return
	}
	pkt, ok := parseFlow(frame)
	if !ok {
		return
	}
	f.r.mu.Lock()
	_, hops, found := f.r.rib.lookup(pkt.key.dst)
	f.r.mu.Unlock()
	if !found {
		return
	}
	if pkt.ttl <= 1 {
		f.mu.Lock()
		f.counts.TTLExpired++
		f.mu.Unlock()
		return
	}
	nh := hops[flowHash(pkt.key)%uint64(len(hops))]
	out, mac, ok := f.resolve(nh)
	if !ok {
		f.mu.Lock()
		f.counts.Unresolved++
		f.mu.Unlock()
		return
	}
	b := make([]byte, len(frame))
	copy(b, frame)
	copy(b[0:6], mac)
	copy(b[6:12], out.MAC())
	if pkt.key.dst.Is4() {
		ip := header.IPv4(b[header.EthernetMinimumSize:])
		ip.SetTTL(ip.TTL() - 1)
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
	} else {
		ip := header.IPv6(b[header.EthernetMinimumSize:])
		ip.SetHopLimit(ip.HopLimit() - 1)
	}
	if err := out.SendRaw(b); err != nil {
		return
	}
	f.mu.Lock()
	f.counts.Forwarded++
	prev, seen := f.flowHop[pkt.key]
	// A flow starts with its first packet, or with a SYN after other packets of the same
	// 5-tuple (a client reusing a source port); a retransmitted SYN starts nothing new.
	newFlow := !seen || prev.hop != nh || (pkt.syn && !prev.syn)
	f.flowHop[pkt.key] = flowState{hop: nh, syn: pkt.syn}
	if newFlow {
		f.flows[nh]++
	}
	f.mu.Unlock()
}

// resolve finds the egress NIC and MAC of next hop nh in the router's neighbour cache; when the
// MAC is unknown it starts resolution and reports false.
func (f *forwarder) resolve(nh netip.Addr) (*host.NIC, []byte, bool) {
	nic, local := f.egress(nh)
	if nic == nil {
		return nil, nil, false
	}
	s := f.h.Stack()
	entries, terr := s.Neighbors(nic.ID(), protocolOf(nh))
	if terr == nil {
		want := tcpAddr(nh)
		for _, e := range entries {
			if e.Addr == want && len(e.LinkAddr) == 6 && e.State != stack.Unreachable {
				return nic, []byte(e.LinkAddr), true
			}
		}
	}
	_ = s.GetLinkAddress(nic.ID(), tcpAddr(nh), tcpAddr(local), protocolOf(nh), nil)
	return nil, nil, false
}

// packetInfo is what the forwarder reads from an IP packet.
type packetInfo struct {
	key flowKey
	ttl uint8
	// syn is true for a TCP SYN without ACK.
	syn bool
}

// parseFlow reads an IPv4 or IPv6 packet's 5-tuple (ports are 0 for protocols without them
// and for non-first fragments) and TTL.
func parseFlow(frame []byte) (packetInfo, bool) {
	var pi packetInfo
	payload := frame[header.EthernetMinimumSize:]
	var transport []byte
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case uint16(header.IPv4ProtocolNumber):
		ip := header.IPv4(payload)
		if !ip.IsValid(len(payload)) {
			return pi, false
		}
		pi.key.src, _ = netip.AddrFromSlice(ip.SourceAddressSlice())
		pi.key.dst, _ = netip.AddrFromSlice(ip.DestinationAddressSlice())
		pi.key.proto = ip.Protocol()
		pi.ttl = ip.TTL()
		if ip.FragmentOffset() == 0 {
			transport = payload[ip.HeaderLength():ip.TotalLength()]
		}
	case uint16(header.IPv6ProtocolNumber):
		ip := header.IPv6(payload)
		if !ip.IsValid(len(payload)) {
			return pi, false
		}
		pi.key.src, _ = netip.AddrFromSlice(ip.SourceAddressSlice())
		pi.key.dst, _ = netip.AddrFromSlice(ip.DestinationAddressSlice())
		pi.key.proto = ip.NextHeader()
		pi.ttl = ip.HopLimit()
		transport = payload[header.IPv6MinimumSize : header.IPv6MinimumSize+int(ip.PayloadLength())]
	default:
		return pi, false
	}
	switch tcpip.TransportProtocolNumber(pi.key.proto) {
	case header.TCPProtocolNumber, header.UDPProtocolNumber:
		if len(transport) >= 4 {
			pi.key.srcPort = binary.BigEndian.Uint16(transport[0:2])
			pi.key.dstPort = binary.BigEndian.Uint16(transport[2:4])
		}
	}
	if pi.key.proto == uint8(header.TCPProtocolNumber) && len(transport) >= header.TCPMinimumSize {
		flags := header.TCP(transport).Flags()
		pi.syn = flags&header.TCPFlagSyn != 0 && flags&header.TCPFlagAck == 0
	}
	return pi, true
}

// flowHash hashes a 5-tuple (FNV-1a), the same for every packet of a flow.
func flowHash(k flowKey) uint64 {
	h := fnv.New64a()
	h.Write(k.src.AsSlice())
	h.Write(k.dst.AsSlice())
	var b [5]byte
	b[0] = k.proto
	binary.BigEndian.PutUint16(b[1:3], k.srcPort)
	binary.BigEndian.PutUint16(b[3:5], k.dstPort)
	h.Write(b[:])
	return h.Sum64()
}

func (f *forwarder) flowCounts() map[netip.Addr]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[netip.Addr]int, len(f.flows))
	for k, v := range f.flows {
		out[k] = v
	}
	return out
}

func (f *forwarder) stats() ForwardStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts
}

// discardEndpoint is a link endpoint that drops everything written to it: the bottom of the
// discard interface.
type discardEndpoint struct {
	mu         sync.Mutex
	dispatcher stack.NetworkDispatcher
}

var _ stack.LinkEndpoint = (*discardEndpoint)(nil)

func (*discardEndpoint) MTU() uint32                                  { return 65535 }
func (*discardEndpoint) SetMTU(uint32)                                {}
func (*discardEndpoint) MaxHeaderLength() uint16                      { return 0 }
func (*discardEndpoint) LinkAddress() tcpip.LinkAddress               { return "" }
func (*discardEndpoint) SetLinkAddress(tcpip.LinkAddress)             {}
func (*discardEndpoint) Capabilities() stack.LinkEndpointCapabilities { return 0 }
func (e *discardEndpoint) IsAttached() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dispatcher != nil
}
func (e *discardEndpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dispatcher = d
}
func (*discardEndpoint) Wait()                                   {}
func (*discardEndpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }
func (*discardEndpoint) AddHeader(*stack.PacketBuffer)           {}
func (*discardEndpoint) ParseHeader(*stack.PacketBuffer) bool    { return true }
func (*discardEndpoint) Close()                                  {}
func (*discardEndpoint) SetOnCloseAction(func())                 {}

// WritePackets drops the packets, reporting them written.
func (*discardEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	return pkts.Len(), nil
}
