package l2

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandleARP(t *testing.T) {
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	bcast := ethernet.Broadcast
	request := func(ethDst net.HardwareAddr, spa, tpa netip.Addr) []byte {
		return arpFrame(t, ethDst, arp.OperationRequest, macClient, spa, zero, tpa)
	}
	tests := []struct {
		name  string
		iface string
		frame []byte
		want  string // hex of the reply, "" for none
		count func(Counters) uint64
	}{
		{
			name: "broadcast request for owned VIP", iface: "eth0",
			frame: request(bcast, client4, vip4),
			want: `02cc00000007 020000000001 0806
			       0001 0800 06 04 0002 020000000001 c000020a 02cc00000007 c000024d`,
			count: func(c Counters) uint64 { return c.ARPReplies },
		},
		{
			name: "unicast refresh to our MAC", iface: "eth0",
			frame: request(macEth0, client4, vip4),
			want: `02cc00000007 020000000001 0806
			       0001 0800 06 04 0002 020000000001 c000020a 02cc00000007 c000024d`,
			count: func(c Counters) uint64 { return c.ARPReplies },
		},
		{
			name: "address conflict probe (RFC 5227) is defended", iface: "eth0",
			frame: request(bcast, netip.IPv4Unspecified(), vip4),
			want: `02cc00000007 020000000001 0806
			       0001 0800 06 04 0002 020000000001 c000020a 02cc00000007 00000000`,
			count: func(c Counters) uint64 { return c.ARPReplies },
		},
		{
			name: "VIP owned on eth1 answered from eth1's MAC", iface: "eth1",
			frame: request(bcast, client4, vip4Eth1),
			want: `02cc00000007 020000000002 0806
			       0001 0800 06 04 0002 020000000002 c000020b 02cc00000007 c000024d`,
			count: func(c Counters) uint64 { return c.ARPReplies },
		},
		{
			name: "VIP owned on eth1 asked on eth0", iface: "eth0",
			frame: request(bcast, client4, vip4Eth1),
			count: func(c Counters) uint64 { return c.NotOwned },
		},
		{
			name: "address not owned", iface: "eth0",
			frame: request(bcast, client4, netip.MustParseAddr("192.0.2.200")),
			count: func(c Counters) uint64 { return c.NotOwned },
		},
		{
			name: "unicast to another host", iface: "eth0",
			frame: request(macOther, client4, vip4),
			count: func(c Counters) uint64 { return c.OtherDestination },
		},
		{
			name: "gratuitous request from a host claiming our VIP", iface: "eth0",
			frame: request(bcast, vip4, vip4),
			count: func(c Counters) uint64 { return c.Gratuitous },
		},
		{
			name: "ARP reply", iface: "eth0",
			frame: arpFrame(t, macEth0, arp.OperationReply, macClient, client4, macEth0, vip4),
			count: func(c Counters) uint64 { return c.NotRequest },
		},
		{
			name: "truncated", iface: "eth0",
			frame: request(bcast, client4, vip4)[:41],
			count: func(c Counters) uint64 { return c.Malformed },
		},
		{
			name: "8-byte hardware addresses", iface: "eth0",
			frame: func() []byte { b := request(bcast, client4, vip4); b[18] = 8; return b }(),
			count: func(c Counters) uint64 { return c.Malformed },
		},
		{
			name: "IPv6 protocol type", iface: "eth0",
			frame: func() []byte { b := request(bcast, client4, vip4); b[16], b[17] = 0x86, 0xdd; return b }(),
			count: func(c Counters) uint64 { return c.Malformed },
		},
		{
			name: "multicast sender hardware address", iface: "eth0",
			frame: func() []byte { b := request(bcast, client4, vip4); b[22] |= 1; return b }(),
			count: func(c Counters) uint64 { return c.Malformed },
		},
		{
			name: "unknown interface", iface: "eth7",
			frame: request(bcast, client4, vip4),
			count: func(c Counters) uint64 { return c.UnknownInterface },
		},
		{
			name: "IPv4 packet", iface: "eth0",
			frame: func() []byte { b := request(bcast, client4, vip4); b[12], b[13] = 0x08, 0x00; return b }(),
			count: func(c Counters) uint64 { return c.OtherEtherType },
		},
		{
			name: "shorter than an Ethernet header", iface: "eth0",
			frame: []byte{1, 2, 3},
			count: func(c Counters) uint64 { return c.Malformed },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestResponder(t)
			before := r.Counters()
			got := r.HandleFrame(tt.iface, tt.frame)
			want := []byte(nil)
			if tt.want != "" {
				want = mustHex(t, tt.want)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("reply =\n%x\nwant\n%x", got, want)
			}
			after := r.Counters()
			if n := tt.count(after) - tt.count(before); n != 1 {
				t.Fatalf("expected counter moved by %d, want 1 (counters %+v)", n, after)
			}
			before.Announcements = after.Announcements
			if moved := countersMoved(before, after); moved != 1 {
				t.Fatalf("%d counters moved, want exactly 1: %+v", moved, after)
			}
		})
	}
}

func countersMoved(a, b Counters) int {
	pairs := [][2]uint64{
		{a.ARPReplies, b.ARPReplies}, {a.NAReplies, b.NAReplies}, {a.Announcements, b.Announcements},
		{a.Malformed, b.Malformed}, {a.BadHopLimit, b.BadHopLimit}, {a.BadChecksum, b.BadChecksum},
		{a.NotRequest, b.NotRequest}, {a.NotOwned, b.NotOwned}, {a.Gratuitous, b.Gratuitous},
		{a.OtherDestination, b.OtherDestination}, {a.UnknownInterface, b.UnknownInterface},
		{a.OtherEtherType, b.OtherEtherType},
	}
	n := 0
	for _, p := range pairs {
		if p[0] != p[1] {
			n++
		}
	}
	return n
}

func TestHandleNDP(t *testing.T) {
	group := solicitedNode(vip6)
	groupMAC := mcastHW(group)
	fixChecksum := func(frame []byte) []byte {
		src := netip.AddrFrom16([16]byte(frame[22:38]))
		dst := netip.AddrFrom16([16]byte(frame[38:54]))
		frame[56], frame[57] = 0, 0
		c := icmpv6Checksum(src, dst, frame[54:])
		frame[56], frame[57] = byte(c>>8), byte(c)
		return frame
	}
	tests := []struct {
		name  string
		frame []byte
		want  *parsedNA
		count func(Counters) uint64
	}{
		{
			name:  "multicast solicitation with source link-layer address",
			frame: nsFrame(t, macOther, groupMAC, client6, group, vip6, macClient, 255),
			want: &parsedNA{ethDst: macClient.String(), ethSrc: macEth0.String(), src: vip6, dst: client6, hopLimit: 255,
				solicited: true, override: true, target: vip6, targetLLA: macEth0.String(), checksumOK: true},
			count: func(c Counters) uint64 { return c.NAReplies },
		},
		{
			name:  "unicast reachability probe without source link-layer address",
			frame: nsFrame(t, macClient, macEth0, client6, vip6, vip6, nil, 255),
			want: &parsedNA{ethDst: macClient.String(), ethSrc: macEth0.String(), src: vip6, dst: client6, hopLimit: 255,
				solicited: true, override: true, target: vip6, targetLLA: macEth0.String(), checksumOK: true},
			count: func(c Counters) uint64 { return c.NAReplies },
		},
		{
			name:  "duplicate address detection is answered to all nodes, not solicited",
			frame: nsFrame(t, macClient, groupMAC, netip.IPv6Unspecified(), group, vip6, nil, 255),
			want: &parsedNA{ethDst: "33:33:00:00:00:01", ethSrc: macEth0.String(), src: vip6, dst: allNodes, hopLimit: 255,
				solicited: false, override: true, target: vip6, targetLLA: macEth0.String(), checksumOK: true},
			count: func(c Counters) uint64 { return c.NAReplies },
		},
		{
			name:  "hop limit 64",
			frame: nsFrame(t, macClient, groupMAC, client6, group, vip6, macClient, 64),
			count: func(c Counters) uint64 { return c.BadHopLimit },
		},
		{
			name: "bad checksum",
			frame: func() []byte {
				b := nsFrame(t, macClient, groupMAC, client6, group, vip6, macClient, 255)
				b[57] ^= 0xff
				return b
			}(),
			count: func(c Counters) uint64 { return c.BadChecksum },
		},
		{
			name:  "target not owned",
			frame: nsFrame(t, macClient, mcastHW(solicitedNode(notOwned6)), client6, solicitedNode(notOwned6), notOwned6, macClient, 255),
			count: func(c Counters) uint64 { return c.NotOwned },
		},
		{
			name:  "solicited-node group of another address",
			frame: nsFrame(t, macClient, groupMAC, client6, solicitedNode(notOwned6), vip6, macClient, 255),
			count: func(c Counters) uint64 { return c.OtherDestination },
		},
		{
			name:  "unicast to another host's MAC",
			frame: nsFrame(t, macClient, macOther, client6, vip6, vip6, nil, 255),
			count: func(c Counters) uint64 { return c.OtherDestination },
		},
		{
			name:  "duplicate address detection with a source link-layer address",
			frame: nsFrame(t, macClient, groupMAC, netip.IPv6Unspecified(), group, vip6, macClient, 255),
			count: func(c Counters) uint64 { return c.Malformed },
		},
		{
			name:  "multicast source address",
			frame: nsFrame(t, macClient, mcastHW(group), netip.MustParseAddr("ff02::2"), group, vip6, nil, 255),
			count: func(c Counters) uint64 { return c.Malformed },
		},
		{
			name:  "multicast source link-layer address",
			frame: nsFrame(t, macClient, mcastHW(group), client6, group, vip6, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}, 255),
			count: func(c Counters) uint64 { return c.Malformed },
		},
		{
			name: "option of length zero",
			frame: fixChecksum(func() []byte {
				b := nsFrame(t, macClient, groupMAC, client6, group, vip6, macClient, 255)
				b[len(b)-7] = 0
				return b
			}()),
			count: func(c Counters) uint64 { return c.Malformed },
		},
		{
			name: "ICMPv6 code 1",
			frame: fixChecksum(func() []byte {
				b := nsFrame(t, macClient, groupMAC, client6, group, vip6, nil, 255)
				b[55] = 1
				return b
			}()),
			count: func(c Counters) uint64 { return c.Malformed },
		},
		{
			name:  "truncated",
			frame: nsFrame(t, macClient, groupMAC, client6, group, vip6, nil, 255)[:70],
			count: func(c Counters) uint64 { return c.Malformed },
		},
		{
			name:  "neighbour advertisement",
			frame: unsolicitedNA(&[6]byte{0x02, 0xee, 0, 0, 0, 0x09}, notOwned6),
			count: func(c Counters) uint64 { return c.NotRequest },
		},
		{
			name:  "UDP packet",
			frame: func() []byte { b := nsFrame(t, macClient, macEth0, client6, vip6, vip6, nil, 64); b[20] = 17; return b }(),
			count: func(c Counters) uint64 { return c.NotRequest },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestResponder(t)
			before := r.Counters()
			got := r.HandleFrame("eth0", tt.frame)
			switch {
			case tt.want == nil && got != nil:
				t.Fatalf("replied %x, want no reply", got)
			case tt.want != nil && got == nil:
				t.Fatalf("no reply (counters %+v)", r.Counters())
			case tt.want != nil:
				if p := parseNA(t, got); p != *tt.want {
					t.Fatalf("reply = %+v\nwant    %+v", p, *tt.want)
				}
			}
			after := r.Counters()
			if n := tt.count(after) - tt.count(before); n != 1 {
				t.Fatalf("expected counter moved by %d, want 1 (counters %+v)", n, after)
			}
			if moved := countersMoved(before, after); moved != 1 {
				t.Fatalf("%d counters moved, want exactly 1: %+v", moved, after)
			}
		})
	}
}

// sent is a transmitted frame summarised for comparison.
type sent struct {
	at    time.Duration
	iface string
	kind  string
}

func summarise(t *testing.T, at time.Duration, out Output) []sent {
	t.Helper()
	var s []sent
	for _, f := range out.Frames {
		kind := "?"
		switch {
		case bytes.Equal(f.Frame[12:14], []byte{0x08, 0x06}):
			var p arp.Packet
			if err := p.UnmarshalBinary(f.Frame[14:]); err != nil {
				t.Fatal(err)
			}
			kind = "garp-" + strings.ToLower(p.Operation.String()[9:]) + " " + p.SenderIP.String()
			if p.SenderIP != p.TargetIP || !bytes.Equal(f.Frame[0:6], ethernet.Broadcast) {
				t.Fatalf("not a gratuitous ARP: %+v to %x", p, f.Frame[0:6])
			}
		case bytes.Equal(f.Frame[12:14], []byte{0x86, 0xdd}):
			na := parseNA(t, f.Frame)
			if na.dst != allNodes || na.solicited || !na.override || !na.checksumOK {
				t.Fatalf("not an unsolicited NA with Override: %+v", na)
			}
			kind = "una " + na.target.String()
		}
		s = append(s, sent{at, f.Interface, kind})
	}
	return s
}

// drive runs r from t0 to t0+until, calling Tick at every NextDeadline, and records what it sent.
func drive(t *testing.T, r *Responder, from, until time.Duration) []sent {
	var got []sent
	for {
		next := r.NextDeadline()
		if next.IsZero() || next.Sub(t0) > until {
			return got
		}
		if next.Sub(t0) < from {
			t.Fatalf("deadline %v is in the past (%v)", next.Sub(t0), from)
		}
		got = append(got, summarise(t, next.Sub(t0), r.Tick(next))...)
	}
}

func TestAnnouncementSchedule(t *testing.T) {
	r, err := NewResponder(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetInterface("eth0", macEth0, true, t0); err != nil {
		t.Fatal(err)
	}
	out, err := r.Own(vip4, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	got := summarise(t, 0, out)
	got = append(got, drive(t, r, 0, 61*time.Second)...)
	want := []sent{
		{0, "eth0", "garp-reply 192.0.2.10"}, {0, "eth0", "garp-request 192.0.2.10"},
		{100 * time.Millisecond, "eth0", "garp-reply 192.0.2.10"}, {100 * time.Millisecond, "eth0", "garp-request 192.0.2.10"},
		{200 * time.Millisecond, "eth0", "garp-reply 192.0.2.10"}, {200 * time.Millisecond, "eth0", "garp-request 192.0.2.10"},
		{30200 * time.Millisecond, "eth0", "garp-reply 192.0.2.10"}, {30200 * time.Millisecond, "eth0", "garp-request 192.0.2.10"},
		{60200 * time.Millisecond, "eth0", "garp-reply 192.0.2.10"}, {60200 * time.Millisecond, "eth0", "garp-request 192.0.2.10"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("sent\n%v\nwant\n%v", got, want)
	}
	if c := r.Counters(); c.Announcements != 10 {
		t.Fatalf("Announcements = %d, want 10", c.Announcements)
	}
}

func TestGratuitousARPBytes(t *testing.T) {
	reply, request := gratuitousARP(vip4.As4(), (*[6]byte)(macEth0))
	wantReply := mustHex(t, `ffffffffffff 020000000001 0806
		0001 0800 06 04 0002 020000000001 c000020a 020000000001 c000020a`)
	wantRequest := mustHex(t, `ffffffffffff 020000000001 0806
		0001 0800 06 04 0001 020000000001 c000020a 000000000000 c000020a`)
	if !bytes.Equal(reply, wantReply) {
		t.Errorf("reply form =\n%x\nwant\n%x", reply, wantReply)
	}
	if !bytes.Equal(request, wantRequest) {
		t.Errorf("request form =\n%x\nwant\n%x", request, wantRequest)
	}
	// mdlayher's encoders give the same bytes (plus padding to 60, which the backend adds).
	refReply := arpFrame(t, ethernet.Broadcast, arp.OperationReply, macEth0, vip4, macEth0, vip4)
	refRequest := arpFrame(t, ethernet.Broadcast, arp.OperationRequest, macEth0, vip4, net.HardwareAddr{0, 0, 0, 0, 0, 0}, vip4)
	for _, c := range []struct{ got, ref []byte }{{reply, refReply}, {request, refRequest}} {
		if !bytes.Equal(c.got, c.ref[:len(c.got)]) || !bytes.Equal(c.ref[len(c.got):], make([]byte, len(c.ref)-len(c.got))) {
			t.Errorf("frame\n%x\ndiffers from mdlayher's\n%x", c.got, c.ref)
		}
	}
	// Appending to one frame (a backend padding it) must not overwrite the other.
	_ = append(reply, 0xaa)
	if !bytes.Equal(request, wantRequest) {
		t.Error("appending to the reply frame changed the request frame")
	}
}

func TestNeighborAdvertisementBytes(t *testing.T) {
	got := unsolicitedNA((*[6]byte)(macEth0), vip6)
	// Checksum f90c computed independently (Python, RFC 1071 over the pseudo-header).
	want := mustHex(t, `333300000001 020000000001 86dd
		60000000 0020 3a ff 20010db8000000000000000000000010 ff020000000000000000000000000001
		88 00 f90c 20000000 20010db8000000000000000000000010 02 01 020000000001`)
	if !bytes.Equal(got, want) {
		t.Fatalf("unsolicited NA =\n%x\nwant\n%x", got, want)
	}
	// The ICMPv6 part is what mdlayher's encoder produces, for both forms.
	for _, solicited := range []bool{false, true} {
		dst := allNodes
		if solicited {
			dst = client6
		}
		frame := neighborAdvertisement((*[6]byte)(macEth0), vip6, dst, (*[6]byte)(macClient), solicited)
		ref, err := ndp.MarshalMessageChecksum(&ndp.NeighborAdvertisement{
			Solicited: solicited, Override: true, TargetAddress: vip6,
			Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: macEth0}},
		}, vip6, dst)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(frame[54:], ref) {
			t.Errorf("solicited=%v: ICMPv6\n%x\nmdlayher\n%x", solicited, frame[54:], ref)
		}
	}
}

func TestOwnIPv6JoinsAndDisownLeaves(t *testing.T) {
	r, err := NewResponder(Config{BurstCount: 2, BurstSpacing: 50 * time.Millisecond, RefreshInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"eth0", "eth1"} {
		if _, err := r.SetInterface(name, macEth0, true, t0); err != nil {
			t.Fatal(err)
		}
	}
	group := netip.MustParseAddr("ff02::1:ff00:10")
	out, err := r.Own(vip6, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	wantJoins := []Group{{"eth0", group}, {"eth1", group}}
	if !slices.Equal(out.Joins, wantJoins) || len(out.Leaves) != 0 {
		t.Fatalf("Own joins %v leaves %v, want joins %v", out.Joins, out.Leaves, wantJoins)
	}
	got := summarise(t, 0, out)
	got = append(got, drive(t, r, 0, 11*time.Second)...)
	want := []sent{
		{0, "eth0", "una 2001:db8::10"}, {0, "eth1", "una 2001:db8::10"},
		{50 * time.Millisecond, "eth0", "una 2001:db8::10"}, {50 * time.Millisecond, "eth1", "una 2001:db8::10"},
		{10050 * time.Millisecond, "eth0", "una 2001:db8::10"}, {10050 * time.Millisecond, "eth1", "una 2001:db8::10"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("sent\n%v\nwant\n%v", got, want)
	}

	// Narrowing to eth1 leaves the group on eth0 and announces nothing new.
	out, err = r.Own(vip6, []string{"eth1"}, t0.Add(11*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Group{{"eth0", group}}; !slices.Equal(out.Leaves, want) || len(out.Joins) != 0 || len(out.Frames) != 0 {
		t.Fatalf("narrowing: %+v, want only leaves %v", out, want)
	}
	if got := r.HandleFrame("eth0", nsFrame(t, macClient, mcastHW(group), client6, group, vip6, nil, 255)); got != nil {
		t.Fatal("answered on eth0 after narrowing to eth1")
	}

	out = r.Disown(vip6)
	if want := []Group{{"eth1", group}}; !slices.Equal(out.Leaves, want) || len(out.Joins) != 0 {
		t.Fatalf("Disown: %+v, want leaves %v", out, want)
	}
	if !r.NextDeadline().IsZero() || len(r.Owned()) != 0 {
		t.Fatalf("after Disown: deadline %v, owned %v", r.NextDeadline(), r.Owned())
	}
}

func TestReannounceOnLinkUpAndPartitionHeal(t *testing.T) {
	r := newTestResponder(t)
	drive(t, r, 0, time.Second) // finish the takeover bursts
	// eth1 goes down: nothing is sent on it; it comes back: a burst for its VIP only.
	if out, _ := r.SetInterface("eth1", macEth1, false, t0.Add(2*time.Second)); len(out.Frames) != 0 {
		t.Fatalf("link down sent %d frames", len(out.Frames))
	}
	out, err := r.SetInterface("eth1", macEth1, true, t0.Add(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := summarise(t, 3*time.Second, out)
	got = append(got, drive(t, r, 3*time.Second, 3500*time.Millisecond)...)
	want := []sent{
		{3 * time.Second, "eth1", "garp-reply 192.0.2.11"}, {3 * time.Second, "eth1", "garp-request 192.0.2.11"},
		{3100 * time.Millisecond, "eth1", "garp-reply 192.0.2.11"}, {3100 * time.Millisecond, "eth1", "garp-request 192.0.2.11"},
		{3200 * time.Millisecond, "eth1", "garp-reply 192.0.2.11"}, {3200 * time.Millisecond, "eth1", "garp-request 192.0.2.11"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("link up sent\n%v\nwant\n%v", got, want)
	}
	got = summarise(t, 4*time.Second, r.Reannounce(t0.Add(4*time.Second)))
	want = []sent{
		{4 * time.Second, "eth0", "garp-reply 192.0.2.10"}, {4 * time.Second, "eth0", "garp-request 192.0.2.10"},
		{4 * time.Second, "eth1", "garp-reply 192.0.2.11"}, {4 * time.Second, "eth1", "garp-request 192.0.2.11"},
		{4 * time.Second, "eth0", "una 2001:db8::10"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Reannounce sent\n%v\nwant\n%v", got, want)
	}
}

func TestLateTickDoesNotCatchUp(t *testing.T) {
	r, _ := NewResponder(Config{})
	r.SetInterface("eth0", macEth0, true, t0)
	r.Own(vip4, nil, t0)
	// The caller was stalled for a second: one announcement now, the next one spacing later.
	got := summarise(t, time.Second, r.Tick(t0.Add(time.Second)))
	if len(got) != 2 {
		t.Fatalf("late Tick sent %v, want one announcement (2 frames)", got)
	}
	if next := r.NextDeadline().Sub(t0); next != 1100*time.Millisecond {
		t.Fatalf("NextDeadline = %v, want 1.1s", next)
	}
}

func TestInputValidation(t *testing.T) {
	r, _ := NewResponder(Config{})
	if _, err := r.SetInterface("eth0", net.HardwareAddr{1, 2, 3}, true, t0); err == nil {
		t.Error("SetInterface accepted a 3-byte MAC")
	}
	if _, err := r.SetInterface("eth0", net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}, true, t0); err == nil {
		t.Error("SetInterface accepted a multicast MAC")
	}
	for _, a := range []netip.Addr{{}, netip.MustParseAddr("224.0.0.1"), netip.MustParseAddr("::ffff:192.0.2.1"), netip.IPv6Unspecified()} {
		if _, err := r.Own(a, nil, t0); err == nil {
			t.Errorf("Own(%v) succeeded", a)
		}
	}
	for _, c := range []Config{{BurstCount: -1}, {BurstSpacing: time.Microsecond}, {RefreshInterval: time.Millisecond}} {
		if _, err := NewResponder(c); err == nil {
			t.Errorf("NewResponder(%+v) succeeded", c)
		}
	}
	if c := r.Config(); c.BurstCount != 3 || c.BurstSpacing != 100*time.Millisecond || c.RefreshInterval != 30*time.Second {
		t.Errorf("defaults = %+v", c)
	}
}

func TestSolicitedNodeAndChecksum(t *testing.T) {
	if got, want := solicitedNode(netip.MustParseAddr("2001:db8::1:2345:6789")), netip.MustParseAddr("ff02::1:ff45:6789"); got != want {
		t.Errorf("solicitedNode = %v, want %v", got, want)
	}
	if got, want := mcastHW(netip.MustParseAddr("ff02::1:ff45:6789")).String(), "33:33:ff:45:67:89"; got != want {
		t.Errorf("multicastMAC = %v, want %v", got, want)
	}
	// The checksum of mdlayher's encoder (via x/net/icmp) verifies with ours.
	msg, err := ndp.MarshalMessageChecksum(&ndp.NeighborSolicitation{TargetAddress: vip6}, client6, solicitedNode(vip6))
	if err != nil {
		t.Fatal(err)
	}
	if c := icmpv6Checksum(client6, solicitedNode(vip6), msg); c != 0 {
		t.Errorf("checksum of a correct message = %#04x, want 0", c)
	}
	msg[10] ^= 1
	if c := icmpv6Checksum(client6, solicitedNode(vip6), msg); c == 0 {
		t.Error("checksum of a corrupted message verified")
	}
}
