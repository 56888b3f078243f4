package l2

import "encoding/binary"

// EtherTypes the responder handles.
const (
	EtherTypeARP  uint16 = 0x0806
	EtherTypeIPv6 uint16 = 0x86dd
)

// Layout of an Ethernet frame carrying ARP for IPv4 over Ethernet (RFC 826): a 14-byte Ethernet
// header, then a fixed 28-byte ARP payload. ARP frames are read and written in place at these
// offsets; the tests hold every frame against mdlayher's arp and ethernet packages.
const (
	ethHeaderLen = 14
	arpLen       = 28
	arpFrameLen  = ethHeaderLen + arpLen

	// Offsets in the frame.
	offEthDst    = 0
	offEthSrc    = 6
	offEtherType = 12
	offARPHType  = 14 // hardware type, 1 = Ethernet
	offARPPType  = 16 // protocol type, 0x0800 = IPv4
	offARPHLen   = 18 // 6
	offARPPLen   = 19 // 4
	offARPOp     = 20 // 1 request, 2 reply
	offARPSHA    = 22 // sender hardware address
	offARPSPA    = 28 // sender protocol address
	offARPTHA    = 32 // target hardware address
	offARPTPA    = 38 // target protocol address
)

const (
	arpHardwareEthernet = 1
	etherTypeIPv4       = 0x0800
	arpOpRequest        = 1
	arpOpReply          = 2
)

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// arpRequest is a view of an ARP request for an IPv4 address on Ethernet, read in place from a
// received frame without copying or allocating.
type arpRequest struct {
	ethDst    [6]byte
	senderMAC [6]byte
	senderIP  [4]byte
	targetIP  [4]byte
}

// arpVerdict says what parseARPRequest found.
type arpVerdict uint8

const (
	arpOK         arpVerdict = iota
	arpMalformed             // too short, or not Ethernet/IPv4 address sizes
	arpNotRequest            // a reply or another operation
)

// parseARPRequest reads an ARP request from a whole Ethernet frame whose EtherType is ARP.
// Trailing bytes (Ethernet padding) are ignored.
func parseARPRequest(frame []byte, req *arpRequest) arpVerdict {
	if len(frame) < arpFrameLen {
		return arpMalformed
	}
	p := frame[offARPHType:arpFrameLen:arpFrameLen]
	if binary.BigEndian.Uint16(p[0:2]) != arpHardwareEthernet ||
		binary.BigEndian.Uint16(p[2:4]) != etherTypeIPv4 ||
		p[4] != 6 || p[5] != 4 {
		return arpMalformed
	}
	if binary.BigEndian.Uint16(p[6:8]) != arpOpRequest {
		return arpNotRequest
	}
	copy(req.ethDst[:], frame[offEthDst:offEthDst+6])
	copy(req.senderMAC[:], frame[offARPSHA:offARPSHA+6])
	copy(req.senderIP[:], frame[offARPSPA:offARPSPA+4])
	copy(req.targetIP[:], frame[offARPTPA:offARPTPA+4])
	return arpOK
}

// putARP writes a whole ARP frame for IPv4 over Ethernet into b (at least arpFrameLen bytes).
func putARP(b []byte, ethDst *[6]byte, op uint16, sha *[6]byte, spa *[4]byte, tha *[6]byte, tpa *[4]byte) {
	_ = b[arpFrameLen-1]
	copy(b[offEthDst:], ethDst[:])
	copy(b[offEthSrc:], sha[:])
	binary.BigEndian.PutUint16(b[offEtherType:], EtherTypeARP)
	binary.BigEndian.PutUint16(b[offARPHType:], arpHardwareEthernet)
	binary.BigEndian.PutUint16(b[offARPPType:], etherTypeIPv4)
	b[offARPHLen] = 6
	b[offARPPLen] = 4
	binary.BigEndian.PutUint16(b[offARPOp:], op)
	copy(b[offARPSHA:], sha[:])
	copy(b[offARPSPA:], spa[:])
	copy(b[offARPTHA:], tha[:])
	copy(b[offARPTPA:], tpa[:])
}

// putARPReply writes into b (at least arpFrameLen bytes) the reply to req from hardware address
// mac: sent to the requester's hardware address, saying that req's target IP is at mac.
func putARPReply(b []byte, req *arpRequest, mac *[6]byte) {
	putARP(b, &req.senderMAC, arpOpReply, mac, &req.targetIP, &req.senderMAC, &req.senderIP)
}

// gratuitousARP returns the two broadcast frames that announce that vip is at mac, as recommended
// by RFC 5944 §4.6 (originally RFC 3344): a reply and a request, both with sender and target
// protocol address set to vip. Hosts differ in which form they honour (Linux updates an existing
// cache entry on either; some stacks and switches only on one), so both are sent.
//
// In the reply form the target hardware address is mac as well; in the request form it is
// unused and zero, as in an RFC 5227 ARP Announcement. The frames are not padded: the backend
// pads short frames.
func gratuitousARP(vip [4]byte, mac *[6]byte) (reply, request []byte) {
	b := make([]byte, 2*arpFrameLen)
	reply, request = b[:arpFrameLen:arpFrameLen], b[arpFrameLen:]
	putARP(reply, &broadcastMAC, arpOpReply, mac, &vip, mac, &vip)
	putARP(request, &broadcastMAC, arpOpRequest, mac, &vip, &[6]byte{}, &vip)
	return reply, request
}
