package l2

import (
	"encoding/binary"
	"net/netip"

	"github.com/mdlayher/ndp"
)

// Layout of an Ethernet frame carrying an ICMPv6 Neighbor Solicitation with no IPv6 extension
// headers (RFC 8200 §3, RFC 4861 §4.3).
const (
	ipv6HeaderLen = 40
	offIPv6       = ethHeaderLen
	offIPv6Len    = offIPv6 + 4 // payload length
	offIPv6Next   = offIPv6 + 6 // next header
	offIPv6Hops   = offIPv6 + 7 // hop limit
	offIPv6Src    = offIPv6 + 8
	offIPv6Dst    = offIPv6 + 24
	offICMPv6     = offIPv6 + ipv6HeaderLen
	offICMPv6Code = offICMPv6 + 1

	protocolICMPv6 = 58
	icmpv6TypeNS   = 135
	icmpv6TypeNA   = 136
	// ndpHopLimit is the only hop limit a Neighbor Discovery message may carry: a router would
	// have decremented it, so 255 proves the sender is on the link (RFC 4861 §7.1.1).
	ndpHopLimit = 255
	// nsMinLen is the shortest valid Neighbor Solicitation: ICMPv6 header, reserved, target.
	nsMinLen = 24

	ndpOptTargetLLA = 2
)

var (
	allNodes    = netip.MustParseAddr("ff02::1")
	allNodesMAC = [6]byte{0x33, 0x33, 0, 0, 0, 1} // multicastMAC(allNodes)
)

// neighborSolicitation is a validated Neighbor Solicitation, with what a reply needs.
type neighborSolicitation struct {
	ethSrc [6]byte
	ethDst [6]byte
	src    netip.Addr // may be :: during duplicate address detection
	dst    netip.Addr
	target netip.Addr
	// sourceLLA is the Source Link-Layer Address option, if hasSourceLLA.
	sourceLLA    [6]byte
	hasSourceLLA bool
}

// nsVerdict says what parseNeighborSolicitation found.
type nsVerdict uint8

const (
	nsOK          nsVerdict = iota
	nsNotNS                 // other IPv6 traffic, or another ICMPv6 message
	nsMalformed             // fails a check of RFC 4861 §7.1.1 other than those below
	nsBadHopLimit           // hop limit is not 255
	nsBadChecksum           // ICMPv6 checksum does not verify
)

// parseNeighborSolicitation reads and validates a Neighbor Solicitation from a whole Ethernet
// frame whose EtherType is IPv6, applying the receiver checks of RFC 4861 §7.1.1. Other IPv6
// traffic is recognised from its first bytes and rejected cheaply as nsNotNS.
func parseNeighborSolicitation(frame []byte, ns *neighborSolicitation) nsVerdict {
	if len(frame) < offICMPv6+1 {
		return nsMalformed
	}
	if frame[offIPv6Next] != protocolICMPv6 || frame[offICMPv6] != icmpv6TypeNS {
		// Solicitations are never sent with extension headers, so looking only at a directly
		// following ICMPv6 header is enough.
		return nsNotNS
	}
	if frame[offIPv6]>>4 != 6 {
		return nsMalformed
	}
	if frame[offIPv6Hops] != ndpHopLimit {
		return nsBadHopLimit
	}
	payloadLen := int(binary.BigEndian.Uint16(frame[offIPv6Len:]))
	if payloadLen < nsMinLen || len(frame) < offICMPv6+payloadLen || frame[offICMPv6Code] != 0 {
		return nsMalformed
	}
	src := netip.AddrFrom16([16]byte(frame[offIPv6Src : offIPv6Src+16]))
	dst := netip.AddrFrom16([16]byte(frame[offIPv6Dst : offIPv6Dst+16]))
	icmp := frame[offICMPv6 : offICMPv6+payloadLen]
	if icmpv6Checksum(src, dst, icmp) != 0 {
		return nsBadChecksum
	}
	// Every option must have a non-zero length (RFC 4861 §7.1.1); ndp.ParseMessage checks the
	// rest of the option structure.
	for opts := icmp[nsMinLen:]; len(opts) > 0; {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return nsMalformed
		}
		opts = opts[int(opts[1])*8:]
	}
	msg, err := ndp.ParseMessage(icmp)
	if err != nil {
		return nsMalformed
	}
	sol, ok := msg.(*ndp.NeighborSolicitation)
	if !ok || sol.TargetAddress.IsMulticast() {
		return nsMalformed
	}
	*ns = neighborSolicitation{src: src, dst: dst, target: sol.TargetAddress}
	copy(ns.ethSrc[:], frame[offEthSrc:offEthSrc+6])
	copy(ns.ethDst[:], frame[offEthDst:offEthDst+6])
	for _, o := range sol.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Source && len(lla.Addr) == 6 {
			ns.sourceLLA, ns.hasSourceLLA = [6]byte(lla.Addr), true
		}
	}
	if src.IsMulticast() || (ns.hasSourceLLA && ns.sourceLLA[0]&1 != 0) {
		return nsMalformed // an answer would go to a group
	}
	if src.IsUnspecified() && (ns.hasSourceLLA || dst != solicitedNode(sol.TargetAddress)) {
		// Duplicate address detection: must go to the solicited-node group, without a source
		// link-layer address (there is no source address to bind it to).
		return nsMalformed
	}
	return nsOK
}

// solicitedNode returns the solicited-node multicast address of a (RFC 4291 §2.7.1):
// ff02::1:ff00:0/104 with a's low 24 bits.
func solicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// multicastMAC returns the Ethernet address IPv6 multicast group g maps to (RFC 2464 §7).
func multicastMAC(g netip.Addr) [6]byte {
	b := g.As16()
	return [6]byte{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// icmpv6Checksum returns the Internet checksum (RFC 1071) of an ICMPv6 message msg sent from
// src to dst, over the IPv6 pseudo-header (RFC 8200 §8.1) and msg. For a message whose checksum
// field holds the correct checksum the result is 0; with the field zeroed, the result is the
// value to put there.
func icmpv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(b[0])<<8 | uint32(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	sum += uint32(len(msg)>>16) + uint32(len(msg)&0xffff)
	sum += protocolICMPv6
	add(msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// naLen is the length of the neighbour advertisements we send: ICMPv6 header (4), flags and
// reserved (4), target (16), Target Link-Layer Address option (8).
const naLen = 32

// Neighbor Advertisement flags (RFC 4861 §4.4).
const (
	naFlagSolicited = 0x40
	naFlagOverride  = 0x20
)

// neighborAdvertisement returns an Ethernet frame carrying a Neighbor Advertisement for target
// at mac, from target to dst (dstMAC at the Ethernet layer), with the Override flag set (we own
// target and want caches to take our MAC even over an older entry) and a Target Link-Layer
// Address option. The tests check it byte for byte against mdlayher's ndp encoder.
func neighborAdvertisement(mac *[6]byte, target, dst netip.Addr, dstMAC *[6]byte, solicited bool) []byte {
	b := make([]byte, offICMPv6+naLen)
	copy(b[offEthDst:], dstMAC[:])
	copy(b[offEthSrc:], mac[:])
	binary.BigEndian.PutUint16(b[offEtherType:], EtherTypeIPv6)
	b[offIPv6] = 6 << 4
	binary.BigEndian.PutUint16(b[offIPv6Len:], naLen)
	b[offIPv6Next] = protocolICMPv6
	b[offIPv6Hops] = ndpHopLimit
	s, d := target.As16(), dst.As16()
	copy(b[offIPv6Src:], s[:])
	copy(b[offIPv6Dst:], d[:])
	icmp := b[offICMPv6:]
	icmp[0] = icmpv6TypeNA
	icmp[4] = naFlagOverride
	if solicited {
		icmp[4] |= naFlagSolicited
	}
	copy(icmp[8:24], s[:])
	icmp[24] = ndpOptTargetLLA
	icmp[25] = 1 // length in units of 8 bytes
	copy(icmp[26:32], mac[:])
	binary.BigEndian.PutUint16(icmp[2:4], icmpv6Checksum(target, dst, icmp))
	return b
}

// unsolicitedNA returns the Neighbor Advertisement that announces target at mac to all nodes
// (RFC 4861 §7.2.6): to ff02::1, Solicited clear, Override set.
func unsolicitedNA(mac *[6]byte, target netip.Addr) []byte {
	return neighborAdvertisement(mac, target, allNodes, &allNodesMAC, false)
}

// solicitedNA returns the answer to ns for an address we own at mac (RFC 4861 §7.2.4). A
// solicitation from the unspecified address (duplicate address detection) is answered to all
// nodes with Solicited clear, as the RFC requires; any other to the solicitor, with Solicited
// set, at the source link-layer address it gave or else the Ethernet address it came from.
func solicitedNA(mac *[6]byte, ns *neighborSolicitation) []byte {
	if ns.src.IsUnspecified() {
		return unsolicitedNA(mac, ns.target)
	}
	dstMAC := ns.ethSrc
	if ns.hasSourceLLA {
		dstMAC = ns.sourceLLA
	}
	return neighborAdvertisement(mac, ns.target, ns.src, &dstMAC, true)
}
