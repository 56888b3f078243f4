package l2

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

var (
	t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	macEth0   = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	macEth1   = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
	macClient = net.HardwareAddr{0x02, 0xcc, 0x00, 0x00, 0x00, 0x07}
	macOther  = net.HardwareAddr{0x02, 0xee, 0x00, 0x00, 0x00, 0x09}

	vip4      = netip.MustParseAddr("192.0.2.10")
	vip4Eth1  = netip.MustParseAddr("192.0.2.11")
	client4   = netip.MustParseAddr("192.0.2.77")
	vip6      = netip.MustParseAddr("2001:db8::10")
	client6   = netip.MustParseAddr("2001:db8::77")
	notOwned6 = netip.MustParseAddr("2001:db8::99")
)

// newTestResponder returns a responder with eth0 and eth1 up, owning vip4 and vip6 on eth0 and
// vip4Eth1 on eth1.
func newTestResponder(t testing.TB) *Responder {
	t.Helper()
	r, err := NewResponder(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		name string
		mac  net.HardwareAddr
	}{{"eth0", macEth0}, {"eth1", macEth1}} {
		if _, err := r.SetInterface(s.name, s.mac, true, t0); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []struct {
		addr  netip.Addr
		iface string
	}{{vip4, "eth0"}, {vip6, "eth0"}, {vip4Eth1, "eth1"}} {
		if _, err := r.Own(o.addr, []string{o.iface}, t0); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// arpFrame builds an ARP frame with mdlayher's packages, the reference encoder.
func arpFrame(t testing.TB, ethDst net.HardwareAddr, op arp.Operation, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, sha, spa, tha, tpa)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f := ethernet.Frame{Destination: ethDst, Source: sha, EtherType: ethernet.EtherTypeARP, Payload: payload}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nsFrame builds a neighbour solicitation frame; sourceLLA nil omits the option. hopLimit is
// normally 255.
func nsFrame(t testing.TB, ethSrc, ethDst net.HardwareAddr, src, dst, target netip.Addr, sourceLLA net.HardwareAddr, hopLimit byte) []byte {
	t.Helper()
	ns := &ndp.NeighborSolicitation{TargetAddress: target}
	if sourceLLA != nil {
		ns.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: sourceLLA}}
	}
	icmp, err := ndp.MarshalMessageChecksum(ns, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	return ipv6Frame(ethSrc, ethDst, src, dst, hopLimit, icmp)
}

func ipv6Frame(ethSrc, ethDst net.HardwareAddr, src, dst netip.Addr, hopLimit byte, icmp []byte) []byte {
	b := make([]byte, 54, 54+len(icmp))
	copy(b[0:], ethDst)
	copy(b[6:], ethSrc)
	binary.BigEndian.PutUint16(b[12:], 0x86dd)
	b[14] = 0x60
	binary.BigEndian.PutUint16(b[18:], uint16(len(icmp)))
	b[20] = 58
	b[21] = hopLimit
	s, d := src.As16(), dst.As16()
	copy(b[22:], s[:])
	copy(b[38:], d[:])
	return append(b, icmp...)
}

// parsedNA is a received neighbour advertisement frame, decoded with mdlayher's ndp.
type parsedNA struct {
	ethDst, ethSrc      string
	src, dst            netip.Addr
	hopLimit            byte
	solicited, override bool
	target              netip.Addr
	targetLLA           string
	checksumOK          bool
}

func parseNA(t testing.TB, frame []byte) parsedNA {
	t.Helper()
	if len(frame) < 54 || binary.BigEndian.Uint16(frame[12:]) != 0x86dd || frame[20] != 58 {
		t.Fatalf("not an ICMPv6 frame: %x", frame)
	}
	src := netip.AddrFrom16([16]byte(frame[22:38]))
	dst := netip.AddrFrom16([16]byte(frame[38:54]))
	icmp := frame[54:]
	if int(binary.BigEndian.Uint16(frame[18:])) != len(icmp) {
		t.Fatalf("payload length %d, ICMPv6 message is %d bytes", binary.BigEndian.Uint16(frame[18:]), len(icmp))
	}
	m, err := ndp.ParseMessage(icmp)
	if err != nil {
		t.Fatalf("ndp.ParseMessage: %v", err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		t.Fatalf("got %T, want a neighbor advertisement", m)
	}
	p := parsedNA{
		ethDst: net.HardwareAddr(frame[0:6]).String(), ethSrc: net.HardwareAddr(frame[6:12]).String(),
		src: src, dst: dst, hopLimit: frame[21],
		solicited: na.Solicited, override: na.Override, target: na.TargetAddress,
		checksumOK: icmpv6Checksum(src, dst, icmp) == 0,
	}
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			p.targetLLA = lla.Addr.String()
		}
	}
	return p
}

// mcastHW is multicastMAC as a net.HardwareAddr, for mdlayher's APIs.
func mcastHW(g netip.Addr) net.HardwareAddr {
	m := multicastMAC(g)
	return m[:]
}
