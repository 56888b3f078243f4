package l2

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// FuzzARP checks the zero-allocation ARP path against mdlayher's parsers: for any frame, the
// responder replies exactly when the reference parse says it is a well-formed Ethernet/IPv4 ARP
// request, to broadcast or our MAC, from a unicast sender, for a VIP owned on the interface and
// not gratuitous; and the reply, parsed by the reference, says what RFC 826 says it must.
func FuzzARP(f *testing.F) {
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	f.Add(arpFrame(f, ethernet.Broadcast, arp.OperationRequest, macClient, client4, zero, vip4))
	f.Add(arpFrame(f, macEth0, arp.OperationRequest, macClient, client4, zero, vip4))
	f.Add(arpFrame(f, ethernet.Broadcast, arp.OperationRequest, macClient, netip.IPv4Unspecified(), zero, vip4))
	f.Add(arpFrame(f, ethernet.Broadcast, arp.OperationRequest, macClient, vip4, zero, vip4))
	f.Add(arpFrame(f, ethernet.Broadcast, arp.OperationReply, macClient, client4, macEth0, vip4))
	f.Add(arpFrame(f, ethernet.Broadcast, arp.OperationRequest, macClient, client4, zero, vip4Eth1))
	r := newTestResponder(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		got := r.HandleFrame("eth0", frame)
		want := referenceARPReply(frame)
		if (got == nil) != (want == nil) {
			t.Fatalf("reply %x, reference says %+v for frame %x", got, want, frame)
		}
		if got == nil {
			return
		}
		var eth ethernet.Frame
		if err := eth.UnmarshalBinary(got); err != nil {
			t.Fatal(err)
		}
		var p arp.Packet
		if err := p.UnmarshalBinary(eth.Payload); err != nil {
			t.Fatal(err)
		}
		if len(got) != arpFrameLen || !bytes.Equal(eth.Destination, want.SenderHardwareAddr) || !bytes.Equal(eth.Source, macEth0) ||
			eth.EtherType != ethernet.EtherTypeARP || p.HardwareType != 1 || p.ProtocolType != 0x0800 ||
			p.HardwareAddrLength != 6 || p.IPLength != 4 || p.Operation != arp.OperationReply ||
			!bytes.Equal(p.SenderHardwareAddr, macEth0) || p.SenderIP != want.TargetIP ||
			!bytes.Equal(p.TargetHardwareAddr, want.SenderHardwareAddr) || p.TargetIP != want.SenderIP {
			t.Fatalf("reply %x (%+v) to request %+v", got, p, want)
		}
	})
}

// referenceARPReply decides with mdlayher's parsers whether the responder built by
// newTestResponder must answer frame on eth0, and returns the parsed request if so.
func referenceARPReply(frame []byte) *arp.Packet {
	var eth ethernet.Frame
	// The responder sees untagged frames only; a VLAN tag puts another EtherType at offset 12.
	if len(frame) < 14 || binary.BigEndian.Uint16(frame[12:14]) != uint16(ethernet.EtherTypeARP) || eth.UnmarshalBinary(frame) != nil {
		return nil
	}
	var p arp.Packet
	if p.UnmarshalBinary(eth.Payload) != nil {
		return nil
	}
	if p.HardwareType != 1 || p.ProtocolType != 0x0800 || p.HardwareAddrLength != 6 || p.IPLength != 4 || p.Operation != arp.OperationRequest {
		return nil
	}
	if !bytes.Equal(eth.Destination, ethernet.Broadcast) && !bytes.Equal(eth.Destination, macEth0) {
		return nil
	}
	if p.SenderHardwareAddr[0]&1 != 0 || p.TargetIP != vip4 || p.SenderIP == p.TargetIP {
		return nil
	}
	return &p
}

// FuzzNDP feeds arbitrary IPv6 frames to the responder. It must not panic, and whatever it
// answers must be a valid neighbour advertisement for an owned VIP, from our MAC, with hop limit
// 255 and a correct checksum, answering a solicitation that passed the RFC 4861 checks. When
// fixChecksum is set, the ICMPv6 checksum is corrected before the frame is handed over, so the
// fuzzer gets past the checksum into option and address handling.
func FuzzNDP(f *testing.F) {
	group := solicitedNode(vip6)
	gmac := mcastHW(group)
	f.Add(nsFrame(f, macOther, gmac, client6, group, vip6, macClient, 255), true)
	f.Add(nsFrame(f, macClient, macEth0, client6, vip6, vip6, nil, 255), true)
	f.Add(nsFrame(f, macClient, gmac, netip.IPv6Unspecified(), group, vip6, nil, 255), true)
	f.Add(nsFrame(f, macClient, gmac, client6, group, vip6, macClient, 64), false)
	f.Add(nsFrame(f, macClient, gmac, client6, group, notOwned6, macClient, 255), false)
	r := newTestResponder(f)
	f.Fuzz(func(t *testing.T, frame []byte, fixChecksum bool) {
		if fixChecksum && len(frame) >= offICMPv6+4 {
			plen := int(binary.BigEndian.Uint16(frame[offIPv6Len:]))
			if plen >= 4 && offICMPv6+plen <= len(frame) {
				src := netip.AddrFrom16([16]byte(frame[offIPv6Src : offIPv6Src+16]))
				dst := netip.AddrFrom16([16]byte(frame[offIPv6Dst : offIPv6Dst+16]))
				icmp := frame[offICMPv6 : offICMPv6+plen]
				icmp[2], icmp[3] = 0, 0
				binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(src, dst, icmp))
			}
		}
		got := r.HandleFrame("eth0", frame)
		if got == nil {
			return
		}
		if len(frame) < 78 || frame[21] != 255 || frame[20] != 58 || frame[54] != 135 {
			t.Fatalf("answered a frame that is not a hop-limit-255 solicitation: %x", frame)
		}
		src := netip.AddrFrom16([16]byte(frame[22:38]))
		dst := netip.AddrFrom16([16]byte(frame[38:54]))
		plen := int(binary.BigEndian.Uint16(frame[18:20]))
		if icmpv6Checksum(src, dst, frame[54:54+plen]) != 0 {
			t.Fatalf("answered a solicitation with a bad checksum: %x", frame)
		}
		na := parseNA(t, got)
		if na.target != vip6 || na.src != vip6 || na.hopLimit != 255 || !na.override || !na.checksumOK ||
			na.targetLLA != macEth0.String() || na.ethSrc != macEth0.String() {
			t.Fatalf("bad advertisement %+v for solicitation %x", na, frame)
		}
		if src.IsUnspecified() != (na.dst == allNodes && !na.solicited) {
			t.Fatalf("advertisement %+v does not match solicitation source %v", na, src)
		}
	})
}
