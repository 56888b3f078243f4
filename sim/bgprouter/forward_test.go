package bgprouter

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// ipv4Frame builds an Ethernet frame with an IPv4 packet of protocol proto carrying transport.
func ipv4Frame(src, dst string, ttl uint8, proto uint8, transport []byte) []byte {
	b := make([]byte, header.EthernetMinimumSize+header.IPv4MinimumSize+len(transport))
	binary.BigEndian.PutUint16(b[12:14], uint16(header.IPv4ProtocolNumber))
	ip := header.IPv4(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(header.IPv4MinimumSize + len(transport)), TTL: ttl, Protocol: proto,
		SrcAddr: tcpip.AddrFromSlice(netip.MustParseAddr(src).AsSlice()),
		DstAddr: tcpip.AddrFromSlice(netip.MustParseAddr(dst).AsSlice()),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	copy(b[header.EthernetMinimumSize+header.IPv4MinimumSize:], transport)
	return b
}

func ipv6Frame(src, dst string, hops uint8, proto uint8, transport []byte) []byte {
	b := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+len(transport))
	binary.BigEndian.PutUint16(b[12:14], uint16(header.IPv6ProtocolNumber))
	header.IPv6(b[header.EthernetMinimumSize:]).Encode(&header.IPv6Fields{
		PayloadLength: uint16(len(transport)), TransportProtocol: tcpip.TransportProtocolNumber(proto), HopLimit: hops,
		SrcAddr: tcpip.AddrFromSlice(netip.MustParseAddr(src).AsSlice()),
		DstAddr: tcpip.AddrFromSlice(netip.MustParseAddr(dst).AsSlice()),
	})
	copy(b[header.EthernetMinimumSize+header.IPv6MinimumSize:], transport)
	return b
}

func tcpSegment(src, dst uint16, flags header.TCPFlags) []byte {
	b := make([]byte, header.TCPMinimumSize)
	header.TCP(b).Encode(&header.TCPFields{SrcPort: src, DstPort: dst, DataOffset: header.TCPMinimumSize, Flags: flags})
	return b
}

func udpDatagram(src, dst uint16) []byte {
	b := make([]byte, header.UDPMinimumSize)
	header.UDP(b).Encode(&header.UDPFields{SrcPort: src, DstPort: dst, Length: header.UDPMinimumSize})
	return b
}

func TestParseFlow(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name  string
		frame []byte
		ok    bool
		want  packetInfo
	}{
		{"IPv4 TCP SYN", ipv4Frame("192.168.0.100", "203.0.113.10", 64, 6, tcpSegment(40000, 80, header.TCPFlagSyn)), true,
			packetInfo{key: flowKey{a("192.168.0.100"), a("203.0.113.10"), 6, 40000, 80}, ttl: 64, syn: true}},
		{"IPv4 TCP SYN-ACK is no new flow", ipv4Frame("192.168.0.100", "203.0.113.10", 9, 6, tcpSegment(40000, 80, header.TCPFlagSyn|header.TCPFlagAck)), true,
			packetInfo{key: flowKey{a("192.168.0.100"), a("203.0.113.10"), 6, 40000, 80}, ttl: 9}},
		{"IPv6 UDP", ipv6Frame("fd00:c::100", "2001:db8:100::10", 255, 17, udpDatagram(5353, 53)), true,
			packetInfo{key: flowKey{a("fd00:c::100"), a("2001:db8:100::10"), 17, 5353, 53}, ttl: 255}},
		{"IPv4 ICMP has no ports", ipv4Frame("192.168.0.100", "203.0.113.10", 1, 1, make([]byte, 8)), true,
			packetInfo{key: flowKey{a("192.168.0.100"), a("203.0.113.10"), 1, 0, 0}, ttl: 1}},
		{"IPv4 TCP cut short", ipv4Frame("192.168.0.100", "203.0.113.10", 64, 6, []byte{0x9c}), true,
			packetInfo{key: flowKey{a("192.168.0.100"), a("203.0.113.10"), 6, 0, 0}, ttl: 64}},
		{"truncated IPv4 header", ipv4Frame("192.168.0.100", "203.0.113.10", 64, 6, nil)[:20], false, packetInfo{}},
		{"ARP", append(make([]byte, 12), 0x08, 0x06, 0, 1), false, packetInfo{}},
	}
	for _, tt := range tests {
		got, ok := parseFlow(tt.frame)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: parseFlow = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFlowHashStable(t *testing.T) {
	k := flowKey{netip.MustParseAddr("192.168.0.100"), netip.MustParseAddr("203.0.113.10"), 6, 40000, 80}
	// FNV-1a over 192.168.0.100, 203.0.113.10, 6, 40000, 80 (computed independently). The hash
	// must not change between runs or releases, or recorded scenario results would move.
	if got, want := flowHash(k), uint64(0x066e9d9f18bc5689); got != want {
		t.Errorf("flowHash = %#x, want %#x", got, want)
	}
	k2 := k
	k2.srcPort++
	if flowHash(k2) == flowHash(k) {
		t.Error("different source ports hash alike")
	}
}

// FuzzParseFlow: arbitrary frames never panic the forwarder's parser, and what it accepts is a
// packet of a family it knows with addresses of that family.
func FuzzParseFlow(f *testing.F) {
	f.Add(ipv4Frame("192.168.0.100", "203.0.113.10", 64, 6, tcpSegment(40000, 80, header.TCPFlagSyn)))
	f.Add(ipv6Frame("fd00:c::100", "2001:db8:100::10", 255, 17, udpDatagram(5353, 53)))
	f.Add(make([]byte, 14))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < header.EthernetMinimumSize {
			return
		}
		pi, ok := parseFlow(frame)
		if !ok {
			return
		}
		if !pi.key.src.IsValid() || pi.key.src.Is4() != pi.key.dst.Is4() {
			t.Fatalf("accepted a packet with addresses %v → %v", pi.key.src, pi.key.dst)
		}
	})
}
