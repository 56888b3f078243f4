package bgprouter

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/switchyard-lb/switchyard/sim/vclock"
)

// A neighbour outside every range is refused; the others peer.
func TestRejectsNeighboursOutsideRanges(t *testing.T) {
	l := newLabWith(t, 1, nil, func(c *Config) { c.Neighbors = []netip.Prefix{mustPrefix("10.10.0.12/31")} })
	l.net.RunFor(2 * time.Second)
	if got, want := l.router.Established(), addrs("10.10.0.12", "10.10.0.13"); !slices.Equal(got, want) {
		t.Errorf("established %v, want %v", got, want)
	}
	ev := lastEvent(l.router.Events(), EventRejected)
	if ev.Peer != nodeAddr(0) || ev.Reason != "source address outside every neighbour range" {
		t.Errorf("last rejection %+v, want node-1's address outside the ranges", ev)
	}
}

// A neighbour with the wrong AS gets OPEN error Bad Peer AS and never comes up.
func TestRejectsWrongPeerAS(t *testing.T) {
	l := newLabWith(t, 1, nil, func(c *Config) { c.PeerASN = 64999 })
	l.net.RunFor(2 * time.Second)
	if got := l.router.Established(); len(got) != 0 {
		t.Errorf("established %v, want none", got)
	}
	st, ok := l.speakers["node-1"].Stats("tor")
	if !ok {
		t.Fatal("node-1 has no session with tor")
	}
	if st.NotificationsReceived == 0 || st.Ups != 0 {
		t.Errorf("speaker stats %+v, want NOTIFICATIONs received and no session up", st)
	}
}

func TestStartErrors(t *testing.T) {
	l := newLab(t, 1, nil)
	nio, err := l.net.NetIO("tor")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Neighbors: []netip.Prefix{mustPrefix("10.0.0.0/8")}}, "ASN is required"},
		{Config{ASN: 1}, "at least one neighbour range"},
		{Config{ASN: 1, Neighbors: []netip.Prefix{mustPrefix("10.0.0.0/8")}, HoldTime: time.Second}, "hold time 1s is below 3s"},
	} {
		if _, err := Start(nio, tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Start(%+v) = %v, want an error containing %q", tt.cfg, err, tt.want)
		}
	}
}

// fuzzRouter is a router without a network, for feeding one session's byte stream.
func fuzzRouter() (*Router, *peerSession) {
	r := &Router{
		cfg:   Config{ASN: 64512, HoldTime: 90 * time.Second, RouterID: netip.MustParseAddr("10.10.0.1")},
		clock: vclock.New(), log: quiet, rib: newRIB(), peers: make(map[netip.Addr]*peerSession),
	}
	peer := netip.MustParseAddr("10.10.0.11")
	s := newPeerSession(r, nil, peer, netip.MustParseAddr("10.10.0.1"))
	s.opened, s.established, s.holdTime = true, true, 90*time.Second
	r.peers[peer] = s
	return r, s
}

// feed runs every message in data through an established session, as its reader would.
func feed(r *Router, s *peerSession, data []byte) {
	in := bytes.NewReader(data)
	r.mu.Lock()
	defer r.mu.Unlock()
	for !s.closed {
		msg, err := readMessage(in)
		if err != nil {
			if n, ok := err.(*notification); ok {
				s.closeLocked(err, n)
			}
			return
		}
		s.handleLocked(msg)
	}
}

func serialize(t testing.TB, msgs ...*bgp.BGPMessage) []byte {
	var out []byte
	for _, m := range msgs {
		b, err := m.Serialize()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

func announce4(nh string, prefixes ...string) *bgp.BGPMessage {
	var nlri []*bgp.IPAddrPrefix
	for _, p := range prefixes {
		pp := netip.MustParsePrefix(p)
		nlri = append(nlri, bgp.NewIPAddrPrefix(uint8(pp.Bits()), pp.Addr().String()))
	}
	return bgp.NewBGPUpdateMessage(nil, []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(0),
		bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{64500})}),
		bgp.NewPathAttributeNextHop(nh),
		bgp.NewPathAttributeCommunities([]uint32{64512<<16 | 100}),
	}, nlri)
}

func announce6(nh string, prefix string) *bgp.BGPMessage {
	pp := netip.MustParsePrefix(prefix)
	return bgp.NewBGPUpdateMessage(nil, []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(0),
		bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{}),
		bgp.NewPathAttributeMpReachNLRI(nh, []bgp.AddrPrefixInterface{bgp.NewIPv6AddrPrefix(uint8(pp.Bits()), pp.Addr().String())}),
		bgp.NewPathAttributeLocalPref(200),
		bgp.NewPathAttributeLargeCommunities([]*bgp.LargeCommunity{bgp.NewLargeCommunity(64512, 1, 2)}),
	}, nil)
}

// TestUpdatesIntoRIB: announcements, attributes and withdrawals of both families land in the
// RIB exactly; a malformed message ends the session and takes its routes away.
func TestUpdatesIntoRIB(t *testing.T) {
	r, s := fuzzRouter()
	feed(r, s, serialize(t,
		announce4("10.10.0.11", "203.0.113.10/32", "203.0.113.11/32"),
		announce6("fd00:10::11", "2001:db8:100::10/128"),
		bgp.NewBGPUpdateMessage([]*bgp.IPAddrPrefix{bgp.NewIPAddrPrefix(32, "203.0.113.11")}, nil, nil),
		bgp.NewBGPKeepAliveMessage(),
	))
	want := map[netip.Prefix]Path{
		mustPrefix("203.0.113.10/32"): {Peer: s.remote, NextHop: netip.MustParseAddr("10.10.0.11"), ASPathLen: 1,
			Communities: []uint32{64512<<16 | 100}},
		mustPrefix("2001:db8:100::10/128"): {Peer: s.remote, NextHop: netip.MustParseAddr("fd00:10::11"), LocalPref: 200,
			HasLocalPref: true, LargeCommunities: [][3]uint32{{64512, 1, 2}}},
	}
	if len(r.rib.paths) != len(want) {
		t.Fatalf("RIB has %d prefixes, want %d: %v", len(r.rib.paths), len(want), r.rib.paths)
	}
	for p, w := range want {
		got := r.rib.paths[p][s.remote]
		if got.NextHop != w.NextHop || got.ASPathLen != w.ASPathLen || got.LocalPref != w.LocalPref ||
			got.HasLocalPref != w.HasLocalPref || !slices.Equal(got.Communities, w.Communities) ||
			!slices.Equal(got.LargeCommunities, w.LargeCommunities) {
			t.Errorf("path to %s = %+v, want %+v", p, got, w)
		}
	}
	// A message with a broken marker resets the session (NOTIFICATION 1/1) and withdraws all.
	bad := serialize(t, bgp.NewBGPKeepAliveMessage())
	bad[0] = 0
	feed(r, s, bad)
	if !s.closed || len(r.rib.paths) != 0 || len(r.rib.best) != 0 {
		t.Fatalf("after a broken marker: closed %v, RIB %v", s.closed, r.rib.paths)
	}
	if len(s.outq) != 1 || !bytes.Equal(s.outq[0][18:21], []byte{bgp.BGP_MSG_NOTIFICATION, 1, 1}) {
		t.Errorf("queued %x, want one NOTIFICATION 1/1", s.outq)
	}
	if ev := lastEvent(r.Events(), EventDown); !strings.Contains(ev.Reason, "marker") {
		t.Errorf("down event %+v, want the marker error", ev)
	}
}

// FuzzRouterSession feeds arbitrary bytes to an established session: the router never panics,
// and its RIB stays consistent (every multipath set comes from paths it holds; a closed
// session leaves nothing behind).
func FuzzRouterSession(f *testing.F) {
	f.Add(serialize(f, announce4("10.10.0.11", "203.0.113.10/32"), announce6("fd00:10::11", "2001:db8:100::10/128")))
	f.Add(serialize(f, announce4("10.10.0.11", "0.0.0.0/0"), bgp.NewBGPNotificationMessage(6, 2, nil)))
	f.Add(serialize(f, bgp.NewBGPKeepAliveMessage(), bgp.NewBGPRouteRefreshMessage(1, 0, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, s := fuzzRouter()
		feed(r, s, data)
		for p, hops := range r.rib.best {
			for _, nh := range hops {
				found := false
				for _, path := range r.rib.paths[p] {
					found = found || path.NextHop == nh
				}
				if !found {
					t.Fatalf("next hop %v of %v is in no path", nh, p)
				}
			}
		}
		if s.closed && (len(r.rib.paths) != 0 || len(r.rib.best) != 0) {
			t.Fatalf("closed session left routes: %v", r.rib.paths)
		}
	})
}
