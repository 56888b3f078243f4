package bgprouter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/switchyard-lb/switchyard/core/bgp/bfd"
	"github.com/switchyard-lb/switchyard/core/clock"
	"github.com/switchyard-lb/switchyard/netio/bfdio"
)

// openHoldTime is the hold timer while waiting for the neighbour's OPEN (RFC 4271 §8.2.2
// suggests 4 minutes).
const openHoldTime = 4 * time.Minute

// peerSession is the router's side of one neighbour's BGP session. Its fields are guarded by
// the router's mutex.
type peerSession struct {
	r      *Router
	conn   net.Conn
	remote netip.Addr
	local  netip.Addr

	// state: opened is true once the neighbour's OPEN was accepted (our OPEN and KEEPALIVE are
	// sent then); established once its first KEEPALIVE or UPDATE arrived.
	opened, established bool
	closed              bool
	as4                 bool
	holdTime            time.Duration

	holdTimer, keepaliveTimer clock.Timer
	bfd                       *bfdio.Session

	// outq is written by the writer goroutine; wake signals it.
	outq [][]byte
	wake chan struct{}
}

func newPeerSession(r *Router, c net.Conn, remote, local netip.Addr) *peerSession {
	return &peerSession{r: r, conn: c, remote: remote, local: local, wake: make(chan struct{}, 1)}
}

// start arms the OPEN wait and starts the reader and writer. The router's lock is held.
func (s *peerSession) start() {
	s.armHold(openHoldTime)
	go s.readLoop()
	go s.writeLoop()
}

func (s *peerSession) readLoop() {
	for {
		msg, err := readMessage(s.conn)
		s.r.mu.Lock()
		if s.closed {
			s.r.mu.Unlock()
			return
		}
		if err != nil {
			var n *notification
			if errors.As(err, &n) {
				s.closeLocked(err, n)
			} else {
				s.closeLocked(fmt.Errorf("reading: %w", err), nil)
			}
			s.r.mu.Unlock()
			return
		}
		s.handleLocked(msg)
		s.r.mu.Unlock()
	}
}

func (s *peerSession) writeLoop() {
	for range s.wake {
		s.r.mu.Lock()
		out := s.outq
		s.outq = nil
		closed := s.closed
		s.r.mu.Unlock()
		for _, b := range out {
			if _, err := s.conn.Write(b); err != nil {
				s.r.mu.Lock()
				s.closeLocked(fmt.Errorf("writing: %w", err), nil)
				s.r.mu.Unlock()
				s.conn.Close()
				return
			}
		}
		if closed {
			s.conn.Close()
			return
		}
	}
}

// sendLocked queues a message for the writer.
func (s *peerSession) sendLocked(m *bgp.BGPMessage) {
	b, err := m.Serialize()
	if err != nil {
		s.r.log.Error("encoding BGP message", "peer", s.remote, "type", m.Header.Type, "err", err)
		return
	}
	s.outq = append(s.outq, b)
	s.signal()
}

func (s *peerSession) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// handleLocked runs one received message through the session.
func (s *peerSession) handleLocked(msg *bgp.BGPMessage) {
	switch body := msg.Body.(type) {
	case *bgp.BGPOpen:
		if s.opened {
			s.closeLocked(errors.New("second OPEN"), &notification{code: bgp.BGP_ERROR_FSM_ERROR,
				subcode: bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_OPENCONFIRM_STATE})
			return
		}
		s.openLocked(body)
	case *bgp.BGPKeepAlive:
		if !s.opened {
			s.closeLocked(errors.New("KEEPALIVE before OPEN"), &notification{code: bgp.BGP_ERROR_FSM_ERROR,
				subcode: bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_OPENSENT_STATE})
			return
		}
		s.establishLocked()
		s.armHold(s.holdTime)
	case *bgp.BGPUpdate:
		if !s.established {
			s.closeLocked(errors.New("UPDATE before the session was established"), &notification{code: bgp.BGP_ERROR_FSM_ERROR})
			return
		}
		s.armHold(s.holdTime)
		s.updateLocked(body)
	case *bgp.BGPNotification:
		s.closeLocked(fmt.Errorf("NOTIFICATION %d/%d received", body.ErrorCode, body.ErrorSubcode), nil)
	case *bgp.BGPRouteRefresh:
		// The router keeps no Adj-RIB-Out: it announces nothing, so there is nothing to resend.
		s.armHold(s.holdTime)
	}
}

// openLocked checks the neighbour's OPEN and answers with ours and a KEEPALIVE.
func (s *peerSession) openLocked(o *bgp.BGPOpen) {
	cfg := s.r.cfg
	asn := uint32(o.MyAS)
	for _, p := range o.OptParams {
		c, ok := p.(*bgp.OptionParameterCapability)
		if !ok {
			continue
		}
		for _, capability := range c.Capability {
			if as4, ok := capability.(*bgp.CapFourOctetASNumber); ok {
				s.as4 = true
				asn = as4.CapValue
			}
		}
	}
	switch {
	case o.Version != 4:
		s.closeLocked(fmt.Errorf("BGP version %d", o.Version), &notification{code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR,
			subcode: bgp.BGP_ERROR_SUB_UNSUPPORTED_VERSION_NUMBER, data: []byte{0, 4}})
		return
	case cfg.PeerASN != 0 && asn != cfg.PeerASN:
		s.closeLocked(fmt.Errorf("neighbour AS %d, want %d", asn, cfg.PeerASN), &notification{
			code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, subcode: bgp.BGP_ERROR_SUB_BAD_PEER_AS})
		return
	case o.HoldTime == 1 || o.HoldTime == 2:
		s.closeLocked(fmt.Errorf("hold time %d s", o.HoldTime), &notification{
			code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, subcode: bgp.BGP_ERROR_SUB_UNACCEPTABLE_HOLD_TIME})
		return
	}
	s.holdTime = min(cfg.HoldTime, time.Duration(o.HoldTime)*time.Second)
	s.opened = true
	caps := []bgp.ParameterCapabilityInterface{
		bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC),
		bgp.NewCapMultiProtocol(bgp.RF_IPv6_UC),
		bgp.NewCapRouteRefresh(),
		bgp.NewCapFourOctetASNumber(cfg.ASN),
	}
	as2 := uint16(bgp.AS_TRANS)
	if cfg.ASN <= 0xffff {
		as2 = uint16(cfg.ASN)
	}
	s.sendLocked(bgp.NewBGPOpenMessage(as2, uint16(cfg.HoldTime/time.Second), cfg.RouterID.String(),
		[]bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)}))
	s.sendLocked(bgp.NewBGPKeepAliveMessage())
	s.armHold(s.holdTime)
	s.armKeepalive()
}

// establishLocked moves to Established and starts BFD.
func (s *peerSession) establishLocked() {
	if s.established {
		return
	}
	s.established = true
	r := s.r
	r.eventLocked(s.remote, EventEstablished, "")
	if r.bfd == nil {
		return
	}
	b, err := r.bfd.Add(bfdio.SessionConfig{Peer: s.remote, Local: s.local, Profile: r.cfg.BFD,
		OnChange: func(st bfd.State, diag bfd.Diag) { r.bfdChanged(s, st, diag) }})
	if err != nil {
		r.log.Error("starting BFD", "peer", s.remote, "err", err)
		return
	}
	s.bfd = b
}

// bfdChanged runs on BFD's reader or timer, without the router's lock, and from the BFD
// session's Close (with AdminDown) under the router's lock, which is why it ignores that state
// before locking.
func (r *Router) bfdChanged(s *peerSession, st bfd.State, diag bfd.Diag) {
	if st != bfd.StateUp && st != bfd.StateDown {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.closed {
		return
	}
	switch st {
	case bfd.StateUp:
		r.eventLocked(s.remote, EventBFDUp, "")
	case bfd.StateDown:
		if s.bfd != nil && s.bfd.Stats().Ups > 0 {
			r.eventLocked(s.remote, EventBFDDown, fmt.Sprintf("diagnostic %d", diag))
			s.closeLocked(fmt.Errorf("BFD down: %v", diag), &notification{code: bgp.BGP_ERROR_CEASE, subcode: ceaseBFDDown})
		}
	}
}

// ceaseBFDDown is the Cease subcode "BFD Down" (RFC 9384).
const ceaseBFDDown = 10

// updateLocked applies an UPDATE to the RIB.
func (s *peerSession) updateLocked(u *bgp.BGPUpdate) {
	r := s.r
	var withdrawn, announced []netip.Prefix
	for _, w := range u.WithdrawnRoutes {
		if p, ok := prefixOf(w); ok {
			withdrawn = append(withdrawn, p)
		}
	}
	path := Path{Peer: s.remote}
	var mpNextHop netip.Addr
	for _, a := range u.PathAttributes {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			path.NextHop, _ = netip.AddrFromSlice(a.Value)
			path.NextHop = path.NextHop.Unmap()
		case *bgp.PathAttributeMpReachNLRI:
			mpNextHop, _ = netip.AddrFromSlice(a.Nexthop)
			mpNextHop = mpNextHop.Unmap()
			for _, n := range a.Value {
				if p, ok := prefixOf(n); ok {
					announced = append(announced, p)
				}
			}
		case *bgp.PathAttributeMpUnreachNLRI:
			for _, n := range a.Value {
				if p, ok := prefixOf(n); ok {
					withdrawn = append(withdrawn, p)
				}
			}
		case *bgp.PathAttributeLocalPref:
			path.LocalPref, path.HasLocalPref = a.Value, true
		case *bgp.PathAttributeAsPath:
			for _, seg := range a.Value {
				path.ASPathLen += seg.ASLen()
			}
		case *bgp.PathAttributeCommunities:
			path.Communities = append([]uint32(nil), a.Value...)
		case *bgp.PathAttributeLargeCommunities:
			for _, c := range a.Values {
				path.LargeCommunities = append(path.LargeCommunities, [3]uint32{c.ASN, c.LocalData1, c.LocalData2})
			}
		}
	}
	for _, p := range withdrawn {
		if r.rib.remove(p, s.remote) {
			r.routeChangedLocked(p)
		}
	}
	for _, n := range u.NLRI {
		if p, ok := prefixOf(n); ok && path.NextHop.IsValid() {
			if r.rib.set(p, path) {
				r.routeChangedLocked(p)
			}
		}
	}
	if mpNextHop.IsValid() {
		mp := path
		mp.NextHop = mpNextHop
		for _, p := range announced {
			if r.rib.set(p, mp) {
				r.routeChangedLocked(p)
			}
		}
	}
}

func prefixOf(n bgp.AddrPrefixInterface) (netip.Prefix, bool) {
	var ip net.IP
	var bits uint8
	switch n := n.(type) {
	case *bgp.IPAddrPrefix:
		ip, bits = n.Prefix, n.Length
	case *bgp.IPv6AddrPrefix:
		ip, bits = n.Prefix, n.Length
	default:
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	if a.Is4In6() && bits <= 32 {
		a = a.Unmap()
	}
	p, err := a.Prefix(int(bits))
	return p, err == nil
}

func (s *peerSession) armHold(d time.Duration) {
	if s.holdTimer != nil {
		s.holdTimer.Stop()
		s.holdTimer = nil
	}
	if d <= 0 || s.closed {
		return
	}
	var self clock.Timer
	self = s.r.clock.AfterFunc(d, func() {
		s.r.mu.Lock()
		defer s.r.mu.Unlock()
		if s.holdTimer != self || s.closed {
			return
		}
		s.closeLocked(errors.New("hold timer expired"), &notification{code: bgp.BGP_ERROR_HOLD_TIMER_EXPIRED})
	})
	s.holdTimer = self
}

func (s *peerSession) armKeepalive() {
	if s.holdTime <= 0 || s.closed {
		return
	}
	var self clock.Timer
	self = s.r.clock.AfterFunc(s.holdTime/3, func() {
		s.r.mu.Lock()
		defer s.r.mu.Unlock()
		if s.keepaliveTimer != self || s.closed {
			return
		}
		s.sendLocked(bgp.NewBGPKeepAliveMessage())
		s.armKeepalive()
	})
	s.keepaliveTimer = self
}

// closeLocked ends the session: the NOTIFICATION n (if any) is the last message written, the
// neighbour's routes leave the RIB at once and its BFD session stops.
func (s *peerSession) closeLocked(why error, n *notification) {
	if s.closed {
		return
	}
	r := s.r
	if n != nil {
		s.sendLocked(bgp.NewBGPNotificationMessage(n.code, n.subcode, n.data))
	}
	s.closed = true
	s.signal()
	for _, t := range []clock.Timer{s.holdTimer, s.keepaliveTimer} {
		if t != nil {
			t.Stop()
		}
	}
	if s.bfd != nil {
		s.bfd.Close()
	}
	for _, p := range r.rib.prefixesOf(s.remote) {
		if r.rib.remove(p, s.remote) {
			r.routeChangedLocked(p)
		}
	}
	if r.peers[s.remote] == s {
		delete(r.peers, s.remote)
	}
	if s.opened {
		r.eventLocked(s.remote, EventDown, why.Error())
	}
}

// notification is a NOTIFICATION to send before closing.
type notification struct {
	code, subcode uint8
	data          []byte
	reason        string
}

func (n *notification) Error() string {
	return fmt.Sprintf("BGP error %d/%d: %s", n.code, n.subcode, n.reason)
}

// readMessage reads and decodes one message. Framing and decoding faults come back as a
// *notification (RFC 4271 §6.1, §6.3).
func readMessage(r io.Reader) (*bgp.BGPMessage, error) {
	buf := make([]byte, bgp.BGP_HEADER_LENGTH, bgp.BGP_MAX_MESSAGE_LENGTH)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	for _, b := range buf[:16] {
		if b != 0xff {
			return nil, &notification{code: bgp.BGP_ERROR_MESSAGE_HEADER_ERROR,
				subcode: bgp.BGP_ERROR_SUB_CONNECTION_NOT_SYNCHRONIZED, reason: "marker is not all ones"}
		}
	}
	length := int(binary.BigEndian.Uint16(buf[16:18]))
	if length < bgp.BGP_HEADER_LENGTH || length > bgp.BGP_MAX_MESSAGE_LENGTH {
		return nil, &notification{code: bgp.BGP_ERROR_MESSAGE_HEADER_ERROR,
			subcode: bgp.BGP_ERROR_SUB_BAD_MESSAGE_LENGTH, data: buf[16:18], reason: fmt.Sprintf("length %d", length)}
	}
	buf = buf[:length]
	if _, err := io.ReadFull(r, buf[bgp.BGP_HEADER_LENGTH:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	msg, err := bgp.ParseBGPMessage(buf)
	if err != nil {
		n := &notification{code: bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, reason: err.Error()}
		var me *bgp.MessageError
		if errors.As(err, &me) {
			n.code, n.subcode, n.data = me.TypeCode, me.SubTypeCode, me.Data
		}
		return nil, n
	}
	return msg, nil
}
