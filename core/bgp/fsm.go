package bgp

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/switchyard-lb/switchyard/core/config"
)

// openHoldTime is the hold timer while waiting for the peer's OPEN: "a large value", 4 minutes
// as RFC 4271 §8.2.2 suggests.
const openHoldTime = 4 * time.Minute

// timerKind names the FSM's timers. Connect retry is not among them: it runs between
// connections, in Session.Run.
type timerKind uint8

const (
	timerHold timerKind = iota
	timerKeepalive
	numTimers
)

// actions is the FSM's output port: what it asks its driver to do.
type actions interface {
	// send writes one encoded message of type msgType to the connection.
	send(msg []byte, msgType uint8)
	// arm (re)starts timer t to fire after d; d <= 0 stops it.
	arm(t timerKind, d time.Duration)
	// close ends the connection after everything sent so far is written. err says why.
	close(err error)
}

// ribOut is the session's Adj-RIB-Out: the routes it should announce (want, kept across
// connections), what the current connection has announced (sent) and which prefixes changed
// since the last flush (dirty).
type ribOut struct {
	want  map[netip.Prefix]Attributes
	sent  map[netip.Prefix]Attributes
	dirty map[netip.Prefix]struct{}
}

func newRIBOut() *ribOut {
	return &ribOut{want: map[netip.Prefix]Attributes{}, sent: map[netip.Prefix]Attributes{}, dirty: map[netip.Prefix]struct{}{}}
}

// apply records d in want and marks its prefixes dirty.
func (r *ribOut) apply(d Diff) {
	for _, p := range d.Withdraw {
		delete(r.want, p)
		r.dirty[p] = struct{}{}
	}
	for _, rt := range d.Announce {
		r.want[rt.Prefix] = rt.Attrs
		r.dirty[rt.Prefix] = struct{}{}
	}
}

// fsm is the sans-I/O BGP session state machine for one connection. Its methods are the
// events; it answers through out. It is not safe for concurrent use: the driver serializes.
type fsm struct {
	peer  *config.Peer
	open  openParams
	rib   *ribOut
	stats *Stats
	out   actions
	log   *slog.Logger
	// keepalive is the configured keepalive interval.
	keepalive time.Duration
	// nextHopV4 and nextHopV6 override the next hops derived from the connection.
	nextHopV4, nextHopV6 netip.Addr

	state State
	neg   negotiated
	upd   updateBuilder
}

// connected starts the session on a new connection from the local address.
func (f *fsm) connected(local netip.AddrPort) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	f.open.routerID = chooseRouterID(f.peer, local.Addr())
	if !f.open.routerID.IsValid() {
		// Nothing was sent yet, so there is no session to notify: just give up this connection.
		f.close(fmt.Errorf("peer %s: no IPv4 router ID: set routerID, or an IPv4 sourceAddress", f.peer.Name))
		return
	}
	f.upd = updateBuilder{
		myASN:         f.open.myASN,
		ipv4Transport: local.Addr().Is4(),
		nextHopV4:     pickNextHop(f.nextHopV4, f.peer.SrcAddr, local.Addr(), true),
		nextHopV6:     pickNextHop(f.nextHopV6, f.peer.SrcAddr, local.Addr(), false),
	}
	clear(f.rib.sent)
	clear(f.rib.dirty)
	f.sendMessage(f.open.message())
	f.state = StateOpenSent
	f.out.arm(timerHold, openHoldTime)
}

// chooseRouterID is the configured router ID, else the IPv4 source or local address.
func chooseRouterID(peer *config.Peer, local netip.Addr) netip.Addr {
	for _, a := range []netip.Addr{peer.RouterID, peer.SrcAddr, local} {
		if a.Is4() && !a.IsUnspecified() {
			return a
		}
	}
	return netip.Addr{}
}

// pickNextHop is the configured next hop of a family, else the source address, else the local
// address of the connection, whichever is of the family first.
func pickNextHop(configured, src, local netip.Addr, v4 bool) netip.Addr {
	for _, a := range []netip.Addr{configured, src, local} {
		if a.IsValid() && a.Is4() == v4 && !a.IsUnspecified() {
			return a
		}
	}
	return netip.Addr{}
}

// received handles one message read from the connection (or the framing error that stopped
// reading it).
func (f *fsm) received(hdr bgp.BGPHeader, body []byte, readErr error) {
	if f.state < StateOpenSent {
		return
	}
	if readErr != nil {
		var n *notification
		if errors.As(readErr, &n) {
			f.stats.Malformed++
			f.fail(n)
			return
		}
		f.close(fmt.Errorf("reading from peer: %w", readErr))
		return
	}
	msg, fault := decodeBody(hdr, body)
	if fault != nil {
		f.stats.Malformed++
		f.fail(fault)
		return
	}
	f.stats.In.add(hdr.Type)
	switch m := msg.Body.(type) {
	case *bgp.BGPNotification:
		f.stats.NotificationsReceived++
		f.close(fmt.Errorf("peer sent NOTIFICATION %d/%d", m.ErrorCode, m.ErrorSubcode))
	case *bgp.BGPOpen:
		if f.state != StateOpenSent {
			f.unexpected("OPEN")
			return
		}
		neg, fault := checkOpen(m, f.open, f.peer)
		if fault != nil {
			f.fail(fault)
			return
		}
		f.neg = neg
		f.upd.ibgp, f.upd.as4 = neg.ibgp, neg.as4
		f.sendMessage(bgp.NewBGPKeepAliveMessage())
		f.state = StateOpenConfirm
		f.out.arm(timerHold, neg.holdTime)
		f.out.arm(timerKeepalive, f.keepaliveInterval())
	case *bgp.BGPKeepAlive:
		switch f.state {
		case StateOpenSent:
			f.unexpected("KEEPALIVE")
		case StateOpenConfirm:
			f.state = StateEstablished
			f.stats.Ups++
			f.log.Info("BGP session established", "peer", f.peer.Name, "peerASN", f.neg.peerASN,
				"ipv4", f.neg.ipv4, "ipv6", f.neg.ipv6, "holdTime", f.neg.holdTime)
			f.out.arm(timerHold, f.neg.holdTime)
			f.sendInitialTable()
		default:
			f.out.arm(timerHold, f.neg.holdTime)
		}
	case *bgp.BGPUpdate:
		if f.state != StateEstablished {
			f.unexpected("UPDATE")
			return
		}
		// Received routes are not used; the message still proves the peer alive.
		f.out.arm(timerHold, f.neg.holdTime)
	case *bgp.BGPRouteRefresh:
		if f.state != StateEstablished {
			f.unexpected("ROUTE-REFRESH")
			return
		}
		f.out.arm(timerHold, f.neg.holdTime)
		f.resendTable()
	}
}

// keepaliveInterval is the configured keepalive interval, at most a third of the negotiated
// hold time (RFC 4271 §10); 0 when the hold time is 0.
func (f *fsm) keepaliveInterval() time.Duration {
	if f.neg.holdTime == 0 {
		return 0
	}
	if f.keepalive <= 0 || f.keepalive > f.neg.holdTime/3 {
		return f.neg.holdTime / 3
	}
	return f.keepalive
}

// timerFired handles the expiry of timer t.
func (f *fsm) timerFired(t timerKind) {
	if f.state < StateOpenSent {
		return
	}
	switch t {
	case timerHold:
		f.fail(&notification{code: bgp.BGP_ERROR_HOLD_TIMER_EXPIRED, reason: "hold timer expired"})
	case timerKeepalive:
		f.sendMessage(bgp.NewBGPKeepAliveMessage())
		f.out.arm(timerKeepalive, f.keepaliveInterval())
	}
}

// routesChanged sends what changed in the Adj-RIB-Out, once established.
func (f *fsm) routesChanged() {
	if f.state == StateEstablished {
		f.flush()
	}
}

// stop ends the session with a Cease NOTIFICATION of the given subcode (RFC 4486).
func (f *fsm) stop(subcode uint8, why error) {
	if f.state >= StateOpenSent {
		f.stats.NotificationsSent++
		f.sendMessage(bgp.NewBGPNotificationMessage(bgp.BGP_ERROR_CEASE, subcode, nil))
	}
	f.close(why)
}

// unexpected resets the session for a message its state does not allow (RFC 4271 §6.6 with the
// RFC 6608 subcodes naming the state).
func (f *fsm) unexpected(what string) {
	var sub uint8
	switch f.state {
	case StateOpenSent:
		sub = bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_OPENSENT_STATE
	case StateOpenConfirm:
		sub = bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_OPENCONFIRM_STATE
	case StateEstablished:
		sub = bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_ESTABLISHED_STATE
	}
	f.fail(&notification{code: bgp.BGP_ERROR_FSM_ERROR, subcode: sub, reason: what + " in state " + f.state.String()})
}

// fail sends the NOTIFICATION n and closes the connection.
func (f *fsm) fail(n *notification) {
	f.stats.NotificationsSent++
	f.sendMessage(n.message())
	f.close(n)
}

func (f *fsm) close(err error) {
	if f.state == StateEstablished {
		f.stats.Downs++
	}
	f.state = StateIdle
	for t := range numTimers {
		f.out.arm(t, 0)
	}
	f.out.close(err)
}

func (f *fsm) sendMessage(m *bgp.BGPMessage) {
	b, err := m.Serialize()
	if err != nil {
		// Only our own constructed messages get here; failing to encode one is a bug, but it
		// must still not take the speaker down.
		f.log.Error("encoding BGP message", "peer", f.peer.Name, "type", m.Header.Type, "err", err)
		return
	}
	f.sendRaw(b, m.Header.Type)
}

func (f *fsm) sendRaw(b []byte, msgType uint8) {
	f.stats.Out.add(msgType)
	f.out.send(b, msgType)
}

// sendInitialTable announces every wanted route, then End-of-RIB per family (RFC 4724 §2).
func (f *fsm) sendInitialTable() {
	f.resendTable()
	if f.neg.ipv4 {
		f.sendMessage(bgp.NewEndOfRib(bgp.RF_IPv4_UC))
	}
	if f.neg.ipv6 {
		f.sendMessage(bgp.NewEndOfRib(bgp.RF_IPv6_UC))
	}
}

// resendTable announces the whole table again (initial table, or a ROUTE-REFRESH request).
func (f *fsm) resendTable() {
	clear(f.rib.sent)
	for p := range f.rib.want {
		f.rib.dirty[p] = struct{}{}
	}
	f.flush()
}

// flush sends the difference between want and sent for the dirty prefixes, in a
// deterministic order: withdrawals first, then announcements grouped by attributes.
func (f *fsm) flush() {
	if len(f.rib.dirty) == 0 {
		return
	}
	dirty := make([]netip.Prefix, 0, len(f.rib.dirty))
	for p := range f.rib.dirty {
		dirty = append(dirty, p)
	}
	clear(f.rib.dirty)
	slices.SortFunc(dirty, comparePrefix)

	type group struct {
		attrs    Attributes
		prefixes []netip.Prefix
	}
	var withdraw4, withdraw6 []netip.Prefix
	var groups []*group
	byKey := map[string]*group{}
	for _, p := range dirty {
		want, wanted := f.rib.want[p]
		sent, wasSent := f.rib.sent[p]
		switch {
		case !wanted && wasSent:
			delete(f.rib.sent, p)
			if p.Addr().Is4() {
				withdraw4 = append(withdraw4, p)
			} else {
				withdraw6 = append(withdraw6, p)
			}
		case wanted && (!wasSent || !sent.Equal(want)):
			if !f.canSend(p) {
				f.stats.UnsendableRoutes++
				if wasSent {
					delete(f.rib.sent, p)
				}
				continue
			}
			key := attrsKey(p.Addr().Is4(), want)
			g := byKey[key]
			if g == nil {
				g = &group{attrs: want}
				byKey[key] = g
				groups = append(groups, g)
			}
			g.prefixes = append(g.prefixes, p)
			f.rib.sent[p] = want
		}
	}
	for _, w := range [][]netip.Prefix{withdraw4, withdraw6} {
		msgs, err := f.upd.withdraw(w)
		f.sendUpdates(msgs, err)
	}
	for _, g := range groups {
		msgs, err := f.upd.announce(g.prefixes, g.attrs)
		f.sendUpdates(msgs, err)
	}
}

func (f *fsm) sendUpdates(msgs [][]byte, err error) {
	if err != nil {
		f.log.Error("encoding UPDATE", "peer", f.peer.Name, "err", err)
	}
	for _, m := range msgs {
		f.sendRaw(m, bgp.BGP_MSG_UPDATE)
	}
}

// canSend reports whether the session carries p's family and has a next hop for it.
func (f *fsm) canSend(p netip.Prefix) bool {
	if p.Addr().Is4() {
		return f.neg.ipv4 && f.upd.nextHopV4.IsValid()
	}
	return f.neg.ipv6 && f.upd.nextHopV6.IsValid()
}

// attrsKey is a compact key identifying a family and attribute set, for grouping.
func attrsKey(v4 bool, a Attributes) string {
	b := make([]byte, 0, 5+13*len(a.Communities))
	if v4 {
		b = append(b, 4)
	} else {
		b = append(b, 6)
	}
	b = binary.BigEndian.AppendUint32(b, a.LocalPref)
	for _, c := range a.Communities {
		if c.Large {
			b = append(b, 'L')
			b = binary.BigEndian.AppendUint32(b, c.GlobalAdmin)
			b = binary.BigEndian.AppendUint32(b, c.Local1)
			b = binary.BigEndian.AppendUint32(b, c.Local2)
		} else {
			b = append(b, 'S')
			b = binary.BigEndian.AppendUint32(b, c.Standard)
		}
	}
	return string(b)
}

// comparePrefix orders prefixes by address, then length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}
