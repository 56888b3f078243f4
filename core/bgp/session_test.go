package bgp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/switchyard-lb/switchyard/core/bgp/internal/fakeclock"
	"github.com/switchyard-lb/switchyard/core/config"
)

var quietLog = slog.New(slog.DiscardHandler)

// addrConn gives a net.Pipe end TCP addresses, as a real connection has.
type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (c addrConn) LocalAddr() net.Addr  { return c.local }
func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// testPeer is the router end of a piped session: it decodes everything the session sends.
type testPeer struct {
	t    *testing.T
	conn net.Conn
	msgs chan *bgp.BGPMessage
}

func (p *testPeer) readLoop() {
	defer close(p.msgs)
	for {
		hdr, body, err := readMessage(p.conn)
		if err != nil {
			return
		}
		msg, err := bgp.ParseBGPBody(&hdr, body)
		if err != nil {
			p.t.Errorf("session sent an undecodable message: %v", err)
			return
		}
		p.msgs <- msg
	}
}

// expect returns the next message the session sent.
func (p *testPeer) expect() *bgp.BGPMessage {
	p.t.Helper()
	select {
	case m, ok := <-p.msgs:
		if !ok {
			p.t.Fatal("session closed the connection; expected a message")
		}
		return m
	case <-time.After(5 * time.Second):
		p.t.Fatal("timed out waiting for a message from the session")
	}
	return nil
}

// expectClosed asserts that the session closes the connection without sending more.
func (p *testPeer) expectClosed() {
	p.t.Helper()
	select {
	case m, ok := <-p.msgs:
		if ok {
			p.t.Fatalf("expected the connection to close, got %s", describe(m))
		}
	case <-time.After(5 * time.Second):
		p.t.Fatal("timed out waiting for the session to close the connection")
	}
}

// expectNone asserts that nothing arrives within a short real-time window.
func (p *testPeer) expectNone() {
	p.t.Helper()
	select {
	case m, ok := <-p.msgs:
		if ok {
			p.t.Fatalf("expected no message, got %s", describe(m))
		}
		p.t.Fatal("expected no message, the connection closed")
	case <-time.After(50 * time.Millisecond):
	}
}

func (p *testPeer) send(m *bgp.BGPMessage) {
	p.t.Helper()
	b, err := m.Serialize()
	if err != nil {
		p.t.Fatal(err)
	}
	p.sendRaw(b)
}

func (p *testPeer) sendRaw(b []byte) {
	p.t.Helper()
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("writing to session: %v", err)
	}
}

func testPeerConfig() *config.Peer {
	return &config.Peer{
		Name: "r1", MyASN: 64512, ASN: 64513,
		Addr: netip.MustParseAddr("192.0.2.1"), RouterID: netip.MustParseAddr("10.0.0.1"),
		HoldTime: 90 * time.Second, KeepaliveTime: 30 * time.Second, ConnectTime: 10 * time.Second,
	}
}

type harness struct {
	t     *testing.T
	clock *fakeclock.Clock
	sess  *Session
	peer  *testPeer
	done  chan error
	stop  context.CancelFunc
}

// startServe serves one piped connection with the given peer configuration.
func startServe(t *testing.T, pc *config.Peer) *harness {
	t.Helper()
	clk := fakeclock.New()
	sess, err := NewSession(SessionConfig{
		Peer: pc, Clock: clk, Logger: quietLog, Jitter: rand.New(rand.NewPCG(1, 2)),
		Dial:      func(context.Context) (net.Conn, error) { return nil, io.EOF },
		NextHopV4: netip.MustParseAddr("192.0.2.10"), NextHopV6: netip.MustParseAddr("2001:db8::10"),
	})
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	local := &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 40000}
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 179}
	peer := &testPeer{t: t, conn: b, msgs: make(chan *bgp.BGPMessage, 64)}
	go peer.readLoop()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, clock: clk, sess: sess, peer: peer, done: make(chan error, 1), stop: cancel}
	go func() { h.done <- sess.Serve(ctx, addrConn{a, local, remote}) }()
	t.Cleanup(func() {
		cancel()
		b.Close()
		<-h.done
	})
	return h
}

// peerOpen is the OPEN a well-behaved peer in AS asn sends.
func peerOpen(asn uint32, hold uint16, families ...bgp.RouteFamily) *bgp.BGPMessage {
	caps := []bgp.ParameterCapabilityInterface{bgp.NewCapFourOctetASNumber(asn)}
	for _, f := range families {
		caps = append(caps, bgp.NewCapMultiProtocol(f))
	}
	as2 := uint16(asTrans)
	if asn <= 0xffff {
		as2 = uint16(asn)
	}
	return bgp.NewBGPOpenMessage(as2, hold, "10.0.0.254", []bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
}

// establish runs the OPEN exchange and returns the session's OPEN.
func (h *harness) establish(open *bgp.BGPMessage) *bgp.BGPOpen {
	h.t.Helper()
	ours := h.peer.expect()
	o, ok := ours.Body.(*bgp.BGPOpen)
	if !ok {
		h.t.Fatalf("first message is %s, want OPEN", describe(ours))
	}
	h.peer.send(open)
	if m := h.peer.expect(); m.Header.Type != bgp.BGP_MSG_KEEPALIVE {
		h.t.Fatalf("reply to OPEN is %s, want KEEPALIVE", describe(m))
	}
	h.peer.send(bgp.NewBGPKeepAliveMessage())
	h.waitState(StateEstablished)
	return o
}

func (h *harness) waitState(want State) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for h.sess.Stats().State != want {
		if time.Now().After(deadline) {
			h.t.Fatalf("session state %v, want %v", h.sess.Stats().State, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// describe renders a message compactly and canonically for comparisons.
func describe(m *bgp.BGPMessage) string {
	switch b := m.Body.(type) {
	case *bgp.BGPOpen:
		return fmt.Sprintf("OPEN as=%d hold=%d id=%v", b.MyAS, b.HoldTime, b.ID)
	case *bgp.BGPKeepAlive:
		return "KEEPALIVE"
	case *bgp.BGPNotification:
		return fmt.Sprintf("NOTIFICATION %d/%d data=%x", b.ErrorCode, b.ErrorSubcode, b.Data)
	case *bgp.BGPRouteRefresh:
		return "ROUTE-REFRESH"
	case *bgp.BGPUpdate:
		return describeUpdate(b)
	}
	return fmt.Sprintf("message type %d", m.Header.Type)
}

func describeUpdate(u *bgp.BGPUpdate) string {
	if len(u.WithdrawnRoutes) == 0 && len(u.NLRI) == 0 && len(u.PathAttributes) == 0 {
		return "EOR ipv4"
	}
	var parts []string
	if len(u.WithdrawnRoutes) > 0 {
		parts = append(parts, "withdraw "+prefixList(u.WithdrawnRoutes))
	}
	if len(u.NLRI) > 0 {
		parts = append(parts, "announce "+prefixList(u.NLRI))
	}
	for _, a := range u.PathAttributes {
		switch a := a.(type) {
		case *bgp.PathAttributeOrigin:
			parts = append(parts, fmt.Sprintf("origin=%d", a.Value))
		case *bgp.PathAttributeAsPath:
			var segs []string
			for _, p := range a.Value {
				segs = append(segs, p.String())
			}
			parts = append(parts, "aspath=["+strings.Join(segs, " ")+"]")
		case *bgp.PathAttributeAs4Path:
			parts = append(parts, "as4path=["+prefixList(a.Value)+"]")
		case *bgp.PathAttributeNextHop:
			parts = append(parts, "nh="+a.Value.String())
		case *bgp.PathAttributeLocalPref:
			parts = append(parts, fmt.Sprintf("localpref=%d", a.Value))
		case *bgp.PathAttributeCommunities:
			var cs []string
			for _, c := range a.Value {
				cs = append(cs, fmt.Sprintf("%d:%d", c>>16, c&0xffff))
			}
			parts = append(parts, "communities="+strings.Join(cs, ","))
		case *bgp.PathAttributeLargeCommunities:
			var cs []string
			for _, c := range a.Values {
				cs = append(cs, c.String())
			}
			parts = append(parts, "large="+strings.Join(cs, ","))
		case *bgp.PathAttributeMpReachNLRI:
			parts = append(parts, fmt.Sprintf("mp_reach nh=%v %s", a.Nexthop, prefixList(a.Value)))
		case *bgp.PathAttributeMpUnreachNLRI:
			if len(a.Value) == 0 && len(u.PathAttributes) == 1 {
				return fmt.Sprintf("EOR afi=%d", a.AFI)
			}
			parts = append(parts, "mp_unreach "+prefixList(a.Value))
		default:
			parts = append(parts, a.String())
		}
	}
	return "UPDATE " + strings.Join(parts, " ")
}

func prefixList[T interface{ String() string }](ps []T) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

func stdCommunity(a, b uint32) config.Community { return config.Community{Standard: a<<16 | b} }

func TestSessionAnnouncesTableWithdrawsAndChanges(t *testing.T) {
	h := startServe(t, testPeerConfig())
	comms := []config.Community{stdCommunity(64512, 100), {Large: true, GlobalAdmin: 64512, Local1: 1, Local2: 2}}
	h.sess.Update(Diff{Announce: []Route{
		{Prefix: netip.MustParsePrefix("198.51.100.2/32"), Attrs: Attributes{Communities: comms}},
		{Prefix: netip.MustParsePrefix("198.51.100.1/32"), Attrs: Attributes{Communities: comms}},
		{Prefix: netip.MustParsePrefix("2001:db8:1::1/128"), Attrs: Attributes{LocalPref: 200}},
	}})
	open := h.establish(peerOpen(64513, 180, bgp.RF_IPv4_UC, bgp.RF_IPv6_UC))
	if got, want := describe(&bgp.BGPMessage{Body: open}), "OPEN as=64512 hold=90 id=10.0.0.1"; got != want {
		t.Errorf("OPEN: got %q, want %q", got, want)
	}
	var got []string
	for range 4 {
		got = append(got, describe(h.peer.expect()))
	}
	want := []string{
		"UPDATE announce 198.51.100.1/32,198.51.100.2/32 origin=0 aspath=[64512] nh=192.0.2.10 communities=64512:100 large=64512:1:2",
		// LOCAL_PREF is not sent to an external peer.
		"UPDATE origin=0 aspath=[64512] mp_reach nh=2001:db8::10 2001:db8:1::1/128",
		"EOR ipv4",
		"EOR afi=2",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("initial table (-want +got):\n%s", diff)
	}

	h.sess.Update(Diff{
		Withdraw: []netip.Prefix{netip.MustParsePrefix("198.51.100.2/32"), netip.MustParsePrefix("2001:db8:1::1/128")},
		Announce: []Route{{Prefix: netip.MustParsePrefix("198.51.100.1/32"), Attrs: Attributes{}}},
	})
	got = nil
	for range 3 {
		got = append(got, describe(h.peer.expect()))
	}
	want = []string{
		"UPDATE withdraw 198.51.100.2/32",
		"UPDATE mp_unreach 2001:db8:1::1/128",
		"UPDATE announce 198.51.100.1/32 origin=0 aspath=[64512] nh=192.0.2.10",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("update (-want +got):\n%s", diff)
	}
	// Re-announcing the same attributes sends nothing.
	h.sess.Update(Diff{Announce: []Route{{Prefix: netip.MustParsePrefix("198.51.100.1/32")}}})
	h.peer.expectNone()

	st := h.sess.Stats()
	if st.Ups != 1 || st.Out.Update != 7 || st.Out.Open != 1 || st.Out.Keepalive != 1 || st.In.Open != 1 || st.In.Keepalive != 1 {
		t.Errorf("stats: %+v", st)
	}
}

func TestSessionIBGPSendsLocalPrefAndEmptyASPath(t *testing.T) {
	pc := testPeerConfig()
	pc.ASN = pc.MyASN
	h := startServe(t, pc)
	h.sess.Update(Diff{Announce: []Route{
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Attrs: Attributes{LocalPref: 150}},
	}})
	h.establish(peerOpen(pc.MyASN, 90, bgp.RF_IPv4_UC))
	if got, want := describe(h.peer.expect()), "UPDATE announce 198.51.100.0/24 origin=0 aspath=[] nh=192.0.2.10 localpref=150"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// The peer did not offer IPv6: only the IPv4 End-of-RIB follows.
	if got, want := describe(h.peer.expect()), "EOR ipv4"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	h.peer.expectNone()
}

func TestSessionHoldTimerExpiresExactlyAtHoldTime(t *testing.T) {
	h := startServe(t, testPeerConfig())
	h.establish(peerOpen(64513, 90, bgp.RF_IPv4_UC))
	if got := describe(h.peer.expect()); got != "EOR ipv4" {
		t.Fatalf("got %q, want EOR ipv4", got)
	}
	// Keepalives every 30 s; the peer stays silent.
	h.clock.Advance(90*time.Second - time.Nanosecond)
	for i := range 2 {
		if got := describe(h.peer.expect()); got != "KEEPALIVE" {
			t.Fatalf("keepalive %d: got %q", i, got)
		}
	}
	if st := h.sess.Stats().State; st != StateEstablished {
		t.Fatalf("state %v one nanosecond before the hold time, want Established", st)
	}
	h.clock.Advance(time.Nanosecond)
	// At 90 s the keepalive timer (re-armed at 60 s) and the hold timer (armed at 0 s) fall due
	// together; the hold timer was scheduled first, so it fires first and the session ends.
	if got, want := describe(h.peer.expect()), "NOTIFICATION 4/0 data="; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	h.peer.expectClosed()
	if st := h.sess.Stats(); st.State != StateIdle || st.Downs != 1 || st.NotificationsSent != 1 {
		t.Errorf("stats after hold expiry: %+v", st)
	}
}

func TestSessionKeepalivesResetHoldTimer(t *testing.T) {
	h := startServe(t, testPeerConfig())
	h.establish(peerOpen(64513, 9)) // hold 9 s: keepalive min(30 s, 3 s) = 3 s
	h.peer.expect()                 // EOR ipv4 (a peer without MP carries IPv4)
	for i := range 5 {
		h.clock.Advance(3 * time.Second)
		if got := describe(h.peer.expect()); got != "KEEPALIVE" {
			t.Fatalf("round %d: got %q", i, got)
		}
		h.peer.send(bgp.NewBGPKeepAliveMessage())
		waitFor(t, func() bool { return h.sess.Stats().In.Keepalive == uint64(i+2) })
	}
	if st := h.sess.Stats().State; st != StateEstablished {
		t.Fatalf("state %v after 15 s of keepalives with a 9 s hold time", st)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func hdrBytes(length int, typ byte) []byte {
	b := make([]byte, 19)
	for i := range 16 {
		b[i] = 0xff
	}
	b[16], b[17], b[18] = byte(length>>8), byte(length), typ
	return b
}

func serialize(t *testing.T, m *bgp.BGPMessage) []byte {
	b, err := m.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSessionResetsOnBadInputWithTheRightNotification(t *testing.T) {
	badMarker := hdrBytes(19, 4)
	badMarker[3] = 0
	// An UPDATE whose withdrawn-routes length runs past the message.
	badUpdate := append(hdrBytes(23, 2), 0x00, 0x09, 0x00, 0x00)
	tests := []struct {
		name string
		// established: send input after the session is up; else answer our OPEN with it.
		established bool
		input       func(t *testing.T) []byte
		// skip is the number of ordinary replies before the NOTIFICATION.
		skip int
		want string
	}{
		{"OPEN in OpenConfirm", false, func(t *testing.T) []byte {
			return append(serialize(t, peerOpen(64513, 90)), serialize(t, peerOpen(64513, 90))...)
		}, 1, "NOTIFICATION 5/2 data="},
		{"UPDATE in OpenConfirm", false, func(t *testing.T) []byte {
			return append(serialize(t, peerOpen(64513, 90)), serialize(t, bgp.NewEndOfRib(bgp.RF_IPv4_UC))...)
		}, 1, "NOTIFICATION 5/2 data="},
		{"marker not all ones", true, func(*testing.T) []byte { return badMarker }, 0, "NOTIFICATION 1/1 data="},
		{"length below header", true, func(*testing.T) []byte { return hdrBytes(18, 4) }, 0, "NOTIFICATION 1/2 data=0012"},
		{"keepalive too long", true, func(*testing.T) []byte { return hdrBytes(20, 4) }, 0, "NOTIFICATION 1/2 data=0014"},
		{"length above 4096", true, func(*testing.T) []byte { return hdrBytes(4097, 2) }, 0, "NOTIFICATION 1/2 data=1001"},
		{"unknown type", true, func(*testing.T) []byte { return hdrBytes(19, 9) }, 0, "NOTIFICATION 1/3 data=09"},
		{"update with broken lengths", true, func(*testing.T) []byte { return badUpdate }, 0, "NOTIFICATION 3/1 data="},
		{"OPEN when established", true, func(t *testing.T) []byte { return serialize(t, peerOpen(64513, 90)) }, 0, "NOTIFICATION 5/3 data="},
		{"KEEPALIVE instead of OPEN", false, func(t *testing.T) []byte { return serialize(t, bgp.NewBGPKeepAliveMessage()) }, 0, "NOTIFICATION 5/1 data="},
		{"UPDATE instead of OPEN", false, func(t *testing.T) []byte { return serialize(t, bgp.NewEndOfRib(bgp.RF_IPv4_UC)) }, 0, "NOTIFICATION 5/1 data="},
		{"wrong peer AS", false, func(t *testing.T) []byte { return serialize(t, peerOpen(64999, 90)) }, 0, "NOTIFICATION 2/2 data=fde7"},
		{"hold time 2 s", false, func(t *testing.T) []byte { return serialize(t, peerOpen(64513, 2)) }, 0, "NOTIFICATION 2/6 data="},
		{"BGP version 3", false, func(t *testing.T) []byte {
			b := serialize(t, peerOpen(64513, 90))
			b[19] = 3
			return b
		}, 0, "NOTIFICATION 2/1 data=0004"},
		{"zero BGP identifier", false, func(t *testing.T) []byte {
			return serialize(t, bgp.NewBGPOpenMessage(64513, 90, "0.0.0.0", nil))
		}, 0, "NOTIFICATION 2/3 data="},
		{"non-capability optional parameter", false, func(t *testing.T) []byte {
			return serialize(t, bgp.NewBGPOpenMessage(64513, 90, "10.0.0.254", []bgp.OptionParameterInterface{
				&bgp.OptionParameterUnknown{ParamType: 9, Value: []byte{1}}}))
		}, 0, "NOTIFICATION 2/4 data="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startServe(t, testPeerConfig())
			if tt.established {
				h.establish(peerOpen(64513, 90, bgp.RF_IPv4_UC))
				h.peer.expect() // EOR
			} else {
				h.peer.expect() // our OPEN
			}
			h.peer.sendRaw(tt.input(t))
			for range tt.skip {
				h.peer.expect()
			}
			if got := describe(h.peer.expect()); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			h.peer.expectClosed()
			st := h.sess.Stats()
			if st.State != StateIdle || st.NotificationsSent != 1 {
				t.Errorf("after reset: %+v", st)
			}
		})
	}
}

func TestSessionDynamicASN(t *testing.T) {
	tests := []struct {
		name    string
		dynamic config.DynamicASN
		peerASN uint32
		want    string
	}{
		{"internal accepts own AS", config.DynamicASNInternal, 64512, "KEEPALIVE"},
		{"internal rejects other AS", config.DynamicASNInternal, 64700, "NOTIFICATION 2/2 data=fcbc"},
		{"external accepts other AS", config.DynamicASNExternal, 4200000000, "KEEPALIVE"},
		{"external rejects own AS", config.DynamicASNExternal, 64512, "NOTIFICATION 2/2 data=fc00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc := testPeerConfig()
			pc.ASN, pc.DynamicASN = 0, tt.dynamic
			h := startServe(t, pc)
			h.peer.expect()
			h.peer.send(peerOpen(tt.peerASN, 90))
			if got := describe(h.peer.expect()); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSessionPeerNotificationClosesWithoutReply(t *testing.T) {
	h := startServe(t, testPeerConfig())
	h.establish(peerOpen(64513, 90, bgp.RF_IPv4_UC))
	h.peer.expect()
	h.peer.send(bgp.NewBGPNotificationMessage(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_ADMINISTRATIVE_RESET, nil))
	h.peer.expectClosed()
	if st := h.sess.Stats(); st.NotificationsReceived != 1 || st.NotificationsSent != 0 || st.Downs != 1 {
		t.Errorf("stats: %+v", st)
	}
}

func TestSessionBFDDownSendsCeaseAtOnce(t *testing.T) {
	h := startServe(t, testPeerConfig())
	h.establish(peerOpen(64513, 90, bgp.RF_IPv4_UC))
	h.peer.expect()
	h.sess.BFDDown()
	if got, want := describe(h.peer.expect()), "NOTIFICATION 6/10 data="; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	h.peer.expectClosed()
}

func TestSessionContextEndSendsAdministrativeShutdown(t *testing.T) {
	h := startServe(t, testPeerConfig())
	h.establish(peerOpen(64513, 90, bgp.RF_IPv4_UC))
	h.peer.expect()
	h.stop()
	if got, want := describe(h.peer.expect()), "NOTIFICATION 6/2 data="; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	h.peer.expectClosed()
}

func TestSessionRouteRefreshResendsTable(t *testing.T) {
	h := startServe(t, testPeerConfig())
	h.sess.Update(Diff{Announce: []Route{{Prefix: netip.MustParsePrefix("198.51.100.7/32")}}})
	h.establish(peerOpen(64513, 90, bgp.RF_IPv4_UC))
	first := describe(h.peer.expect())
	h.peer.expect() // EOR
	h.peer.send(bgp.NewBGPRouteRefreshMessage(1, 0, 1))
	if got := describe(h.peer.expect()); got != first {
		t.Errorf("after ROUTE-REFRESH got %q, want %q", got, first)
	}
}

func TestOpenCapabilities(t *testing.T) {
	pc := testPeerConfig()
	pc.MyASN = 4200000001
	pc.EnableGracefulRestart = true
	pc.HoldTime = 9000 * time.Second
	s, err := NewSession(SessionConfig{Peer: pc, Clock: fakeclock.New(), Jitter: rand.New(rand.NewPCG(1, 1)),
		Dial: func(context.Context) (net.Conn, error) { return nil, io.EOF }})
	if err != nil {
		t.Fatal(err)
	}
	op := s.openParams()
	op.routerID = netip.MustParseAddr("10.0.0.1")
	msg, err := bgp.ParseBGPMessage(serialize(t, op.message()))
	if err != nil {
		t.Fatal(err)
	}
	o := msg.Body.(*bgp.BGPOpen)
	var caps []string
	for _, p := range o.OptParams {
		for _, c := range p.(*bgp.OptionParameterCapability).Capability {
			switch c := c.(type) {
			case *bgp.CapMultiProtocol:
				caps = append(caps, "mp "+c.CapValue.String())
			case *bgp.CapFourOctetASNumber:
				caps = append(caps, fmt.Sprintf("as4 %d", c.CapValue))
			case *bgp.CapRouteRefresh:
				caps = append(caps, "route-refresh")
			case *bgp.CapGracefulRestart:
				var fams []string
				for _, tu := range c.Tuples {
					fams = append(fams, fmt.Sprintf("%v/fwd=%v", bgp.AfiSafiToRouteFamily(tu.AFI, tu.SAFI), tu.Flags&0x80 != 0))
				}
				caps = append(caps, fmt.Sprintf("gr time=%d flags=%x %s", c.Time, c.Flags, strings.Join(fams, ",")))
			}
		}
	}
	want := []string{"mp ipv4-unicast", "mp ipv6-unicast", "route-refresh", "as4 4200000001",
		"gr time=4095 flags=0 ipv4-unicast/fwd=true,ipv6-unicast/fwd=true"}
	if diff := cmp.Diff(want, caps); diff != "" {
		t.Errorf("capabilities (-want +got):\n%s", diff)
	}
	if o.MyAS != asTrans || o.HoldTime != 9000 {
		t.Errorf("OPEN as=%d hold=%d, want %d and 9000", o.MyAS, o.HoldTime, asTrans)
	}
}

func TestTransportFor(t *testing.T) {
	base := testPeerConfig()
	tests := []struct {
		name   string
		modify func(*config.Peer)
		want   Transport
	}{
		{"eBGP direct", func(*config.Peer) {}, Transport{Remote: netip.MustParseAddrPort("192.0.2.1:179"), TTL: 1}},
		{"eBGP multihop, port, source, password", func(p *config.Peer) {
			p.EBGPMultiHop, p.Port, p.SrcAddr, p.Password = true, 1179, netip.MustParseAddr("192.0.2.10"), "s3cret"
		}, Transport{Local: netip.MustParseAddrPort("192.0.2.10:0"), Remote: netip.MustParseAddrPort("192.0.2.1:1179"), TTL: 255, MD5Key: "s3cret"}},
		{"iBGP", func(p *config.Peer) { p.ASN = p.MyASN }, Transport{Remote: netip.MustParseAddrPort("192.0.2.1:179")}},
		{"dynamic internal", func(p *config.Peer) { p.ASN, p.DynamicASN = 0, config.DynamicASNInternal },
			Transport{Remote: netip.MustParseAddrPort("192.0.2.1:179")}},
		{"dynamic external", func(p *config.Peer) { p.ASN, p.DynamicASN = 0, config.DynamicASNExternal },
			Transport{Remote: netip.MustParseAddrPort("192.0.2.1:179"), TTL: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := *base
			tt.modify(&p)
			if got := TransportFor(&p); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSessionWithoutRouterIDGivesUpTheConnection(t *testing.T) {
	pc := testPeerConfig()
	pc.RouterID = netip.Addr{}
	pc.Addr = netip.MustParseAddr("2001:db8::1")
	clk := fakeclock.New()
	sess, err := NewSession(SessionConfig{Peer: pc, Clock: clk, Logger: quietLog, Jitter: rand.New(rand.NewPCG(1, 2)),
		Dial: func(context.Context) (net.Conn, error) { return nil, io.EOF }})
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer b.Close()
	conn := addrConn{a, &net.TCPAddr{IP: net.ParseIP("2001:db8::10"), Port: 40000}, &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 179}}
	err = sess.Serve(context.Background(), conn)
	if err == nil || !strings.Contains(err.Error(), "no IPv4 router ID") {
		t.Fatalf("Serve returned %v, want the missing router ID", err)
	}
	if st := sess.Stats(); st.Out.Open != 0 || st.State != StateIdle {
		t.Errorf("stats %+v", st)
	}
}

func TestSessionHoldTimeZeroMeansNoKeepalives(t *testing.T) {
	h := startServe(t, testPeerConfig())
	h.establish(peerOpen(64513, 0, bgp.RF_IPv4_UC))
	h.peer.expect() // EOR
	h.clock.Advance(time.Hour)
	h.peer.expectNone()
	if st := h.sess.Stats(); st.State != StateEstablished || st.Out.Keepalive != 1 {
		t.Errorf("after an hour with hold time 0: %+v", st)
	}
}
