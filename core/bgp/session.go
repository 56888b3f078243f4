package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/switchyard-lb/switchyard/core/clock"
	"github.com/switchyard-lb/switchyard/core/config"
)

// Connect retry backoff: the first retry comes after initialRetry, each further failure
// doubles the wait up to the peer's connectTime, and every wait is shortened by a random 0-25%
// so that many speakers restarted together do not dial a router in lockstep.
const (
	initialRetry       = time.Second
	defaultConnectTime = 120 * time.Second
	maxJitterFraction  = 0.25
	// stuckWriteGrace is how long a closing connection waits for a blocked write before it
	// closes the socket under it.
	stuckWriteGrace = 3 * time.Second
)

// ceaseBFDDown is the Cease subcode "BFD Down" (RFC 9384).
const ceaseBFDDown = 10

// SessionConfig configures a Session.
type SessionConfig struct {
	// Peer is the BGPPeer this session talks to. Its timers, ASNs, addresses, router ID and
	// graceful restart flag are used as RFC 4271 and the BGPPeer API describe; the transport
	// fields (port, source address, multihop, password) are for Dial, see TransportFor.
	Peer *config.Peer
	// Clock drives every protocol timer.
	Clock clock.Clock
	// Dial opens a TCP connection to the peer. It comes from netio, so the same session runs
	// on kernel TCP and on gVisor TCP.
	Dial func(ctx context.Context) (net.Conn, error)
	// Jitter randomizes the connect retry backoff. Seed it for reproducible runs.
	Jitter *rand.Rand
	// NextHopV4 and NextHopV6, when valid, are the next hops announced for each family.
	// Otherwise the peer's source address or the connection's local address of that family is
	// used; a family without any is not announced.
	NextHopV4, NextHopV6 netip.Addr
	// Logger receives session events; nil means slog.Default().
	Logger *slog.Logger
}

// Session is one BGP session to one peer. Run keeps it connected; Update changes the routes it
// announces; Stats reports its counters. All methods are safe for concurrent use.
//
// A Session starts no goroutines that outlive a call: Run and Serve run on the caller's
// goroutine, and Serve reads the connection on one helper goroutine that ends before it returns.
// Clock callbacks only queue work and never block.
type Session struct {
	cfg SessionConfig
	log *slog.Logger

	mu    sync.Mutex
	rib   *ribOut
	stats Stats
	// cur is the connection being served, nil between connections.
	cur *connection
	// failures counts consecutive connection attempts that did not reach Established.
	failures int
}

// NewSession checks cfg and returns an idle session.
func NewSession(cfg SessionConfig) (*Session, error) {
	switch {
	case cfg.Peer == nil:
		return nil, errors.New("bgp session: Peer is required")
	case cfg.Clock == nil:
		return nil, fmt.Errorf("bgp session %s: Clock is required", cfg.Peer.Name)
	case cfg.Dial == nil:
		return nil, fmt.Errorf("bgp session %s: Dial is required", cfg.Peer.Name)
	case cfg.Jitter == nil:
		return nil, fmt.Errorf("bgp session %s: Jitter is required", cfg.Peer.Name)
	case cfg.Peer.MyASN == 0:
		return nil, fmt.Errorf("bgp session %s: myASN is 0", cfg.Peer.Name)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Session{cfg: cfg, log: log, rib: newRIBOut()}, nil
}

// Transport is the TCP connection a peer asks for, for the caller's Dial.
type Transport struct {
	// Local is the source address (unspecified when the peer has none) with port 0.
	Local netip.AddrPort
	// Remote is the peer's address and port (179 unless configured).
	Remote netip.AddrPort
	// TTL is 1 for a directly connected eBGP peer, 255 with ebgpMultiHop, 0 (system default)
	// for iBGP.
	TTL int
	// MD5Key is the TCP-MD5 key (RFC 2385) given inline as password. A peer with
	// passwordSecret leaves it empty: the caller reads the Secret and fills it in.
	MD5Key string
}

// TransportFor returns the transport peer p needs. The TCP-MD5 key (password or
// passwordSecret) is resolved by the caller, who reads Secrets.
func TransportFor(p *config.Peer) Transport {
	port := p.Port
	if port == 0 {
		port = 179
	}
	t := Transport{Remote: netip.AddrPortFrom(p.Addr, port), MD5Key: p.Password}
	if p.SrcAddr.IsValid() {
		t.Local = netip.AddrPortFrom(p.SrcAddr, 0)
	}
	ebgp := p.DynamicASN == config.DynamicASNExternal || (p.DynamicASN == config.DynamicASNNone && p.ASN != p.MyASN)
	switch {
	case ebgp && p.EBGPMultiHop:
		t.TTL = 255
	case ebgp:
		t.TTL = 1
	}
	return t
}

// Stats returns a snapshot of the session's counters.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	if s.cur != nil {
		st.State = s.cur.fsm.state
	}
	return st
}

// Update applies a change to the routes the session announces. Established sessions send it
// at once; otherwise it is part of the table sent when the session comes up.
func (s *Session) Update(d Diff) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rib.apply(d)
	if s.cur != nil {
		s.cur.fsm.routesChanged()
	}
}

// BFDDown tears the session down at once because BFD declared the peer unreachable: a Cease
// NOTIFICATION with subcode BFD Down (RFC 9384), then the connection closes and Run retries
// with backoff.
func (s *Session) BFDDown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && !s.cur.closing {
		s.cur.fsm.stop(ceaseBFDDown, errors.New("BFD session down"))
	}
}

// Run keeps the session connected until ctx is done: it dials, serves the connection, and after
// a failure waits with exponential backoff before dialing again. On ctx's end an established
// session is closed with a Cease/Administrative Shutdown NOTIFICATION. Run returns nil then.
func (s *Session) Run(ctx context.Context) error {
	for {
		s.setIdleState(StateConnect)
		conn, err := s.dial(ctx)
		if ctx.Err() != nil {
			if conn != nil {
				conn.Close()
			}
			s.setIdleState(StateIdle)
			return nil
		}
		if err != nil {
			s.mu.Lock()
			s.stats.DialFailures++
			s.failures++
			s.mu.Unlock()
			s.log.Info("BGP connect failed", "peer", s.cfg.Peer.Name, "err", err)
		} else if err := s.Serve(ctx, conn); err != nil && ctx.Err() == nil {
			s.log.Info("BGP session ended", "peer", s.cfg.Peer.Name, "err", err)
		}
		s.setIdleState(StateIdle)
		if ctx.Err() != nil {
			return nil
		}
		if !s.sleep(ctx, s.nextRetryDelay()) {
			return nil
		}
	}
}

// dial calls Dial with a context that the session's clock cancels after connectTime, so that a
// peer that never answers costs one connect time, in virtual time too.
func (s *Session) dial(ctx context.Context) (net.Conn, error) {
	connectTime := s.cfg.Peer.ConnectTime
	if connectTime <= 0 {
		connectTime = defaultConnectTime
	}
	dialCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	timeout := s.cfg.Clock.AfterFunc(connectTime, cancel)
	defer timeout.Stop()
	conn, err := s.cfg.Dial(dialCtx)
	if err != nil && ctx.Err() == nil && dialCtx.Err() != nil {
		err = fmt.Errorf("no connection within connectTime %v: %w", connectTime, err)
	}
	return conn, err
}

func (s *Session) setIdleState(st State) {
	s.mu.Lock()
	s.stats.State = st
	s.mu.Unlock()
}

// nextRetryDelay is the wait before the next dial, from the count of consecutive failures.
func (s *Session) nextRetryDelay() time.Duration {
	s.mu.Lock()
	failures := s.failures
	s.mu.Unlock()
	return retryDelay(failures, s.cfg.Peer.ConnectTime, s.cfg.Jitter.Float64())
}

// retryDelay is the backoff after failures consecutive failures (at least 1), capped at
// connectTime, shortened by the fraction jitter01 × 25%.
func retryDelay(failures int, connectTime time.Duration, jitter01 float64) time.Duration {
	if connectTime <= 0 {
		connectTime = defaultConnectTime
	}
	d := min(initialRetry, connectTime)
	for i := 1; i < failures && d < connectTime; i++ {
		d = min(2*d, connectTime)
	}
	return d - time.Duration(float64(d)*maxJitterFraction*jitter01)
}

// sleep waits d on the session's clock; it reports false when ctx ended first.
func (s *Session) sleep(ctx context.Context, d time.Duration) bool {
	done := make(chan struct{})
	t := s.cfg.Clock.AfterFunc(d, func() { close(done) })
	select {
	case <-done:
		return true
	case <-ctx.Done():
		t.Stop()
		return false
	}
}

// Serve runs the session over conn until the connection ends, and returns why it ended.
// When ctx ends first, Serve sends Cease/Administrative Shutdown and closes conn. Serve closes
// conn in every case. Only one connection is served at a time.
func (s *Session) Serve(ctx context.Context, conn net.Conn) error {
	c := &connection{s: s, conn: conn, wake: make(chan struct{}, 1)}
	c.fsm = &fsm{
		peer:  s.cfg.Peer,
		open:  s.openParams(),
		rib:   s.rib,
		stats: &s.stats,
		out:   c,
		log:   s.log,
		// keepaliveTime 0 means "a third of the hold time".
		keepalive: s.cfg.Peer.KeepaliveTime,
		nextHopV4: s.cfg.NextHopV4,
		nextHopV6: s.cfg.NextHopV6,
	}
	s.mu.Lock()
	if s.cur != nil {
		s.mu.Unlock()
		conn.Close()
		return fmt.Errorf("bgp session %s: already serving a connection", s.cfg.Peer.Name)
	}
	s.cur = c
	upsBefore := s.stats.Ups
	c.fsm.connected(addrPortOf(conn.LocalAddr()))
	s.mu.Unlock()

	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			hdr, body, err := readMessage(conn)
			s.mu.Lock()
			if !c.closing {
				c.fsm.received(hdr, body, err)
			}
			stop := c.closing
			s.mu.Unlock()
			if err != nil || stop {
				return
			}
		}
	}()

	c.writeLoop(ctx, conn)
	conn.Close()
	<-readerDone

	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range numTimers {
		c.arm(t, 0)
	}
	s.cur = nil
	s.stats.State = StateIdle
	if s.stats.Ups > upsBefore {
		// The session had come up: the next attempt starts the backoff afresh.
		s.failures = 1
	} else {
		s.failures++
	}
	return c.closeErr
}

func (s *Session) openParams() openParams {
	p := s.cfg.Peer
	// The configuration has applied MetalLB's defaults already: a hold time of 0 here is an
	// explicit "no hold timer, no keepalives" (RFC 4271 §4.2).
	op := openParams{myASN: p.MyASN, holdTime: p.HoldTime, gracefulRestart: p.EnableGracefulRestart, ipv4: true, ipv6: true}
	if p.DisableMP {
		// Without multiprotocol sessions each session carries only its own family.
		op.ipv4, op.ipv6 = p.Addr.Is4(), p.Addr.Is6()
	}
	return op
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case interface{ AddrPort() netip.AddrPort }:
		return a.AddrPort()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap
	}
	return netip.AddrPort{}
}

// connection is the driver state of one served connection; it implements actions. Its fields
// are guarded by the Session's mutex.
type connection struct {
	s    *Session
	fsm  *fsm
	wake chan struct{}
	// outq holds encoded messages waiting for the write loop.
	outq [][]byte
	// timers and timerGen: a timer callback acts only if its generation is still current, so
	// a callback racing with a re-arm or stop does nothing.
	timers   [numTimers]clock.Timer
	timerGen [numTimers]uint64
	closing  bool
	closeErr error
	// conn is the connection; writing is true while the write loop is inside conn.Write.
	conn    net.Conn
	writing bool
}

func (c *connection) send(msg []byte, msgType uint8) {
	if c.closing {
		return
	}
	c.outq = append(c.outq, msg)
	c.signal()
}

func (c *connection) arm(t timerKind, d time.Duration) {
	if c.timers[t] != nil {
		c.timers[t].Stop()
		c.timers[t] = nil
	}
	c.timerGen[t]++
	if d <= 0 || c.closing {
		return
	}
	gen := c.timerGen[t]
	c.timers[t] = c.s.cfg.Clock.AfterFunc(d, func() {
		c.s.mu.Lock()
		defer c.s.mu.Unlock()
		if c.timerGen[t] != gen || c.closing {
			return
		}
		c.timers[t] = nil
		c.fsm.timerFired(t)
	})
}

func (c *connection) close(err error) {
	if c.closing {
		return
	}
	c.closing = true
	c.closeErr = err
	c.signal()
	if c.writing {
		// The write loop is stuck in a write the peer does not drain (a dead peer is the
		// usual reason to close). Give the queued NOTIFICATION a moment, then unblock it.
		c.s.cfg.Clock.AfterFunc(stuckWriteGrace, func() { c.conn.Close() })
	}
}

func (c *connection) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes queued messages until the FSM closes the connection or ctx ends.
func (c *connection) writeLoop(ctx context.Context, conn net.Conn) {
	s := c.s
	for {
		select {
		case <-c.wake:
		case <-ctx.Done():
			s.mu.Lock()
			if !c.closing {
				c.fsm.stop(bgp.BGP_ERROR_SUB_ADMINISTRATIVE_SHUTDOWN, ctx.Err())
			}
			s.mu.Unlock()
		}
		s.mu.Lock()
		out := c.outq
		c.outq = nil
		closing := c.closing
		c.writing = len(out) > 0
		s.mu.Unlock()
		for _, b := range out {
			if _, err := conn.Write(b); err != nil {
				s.mu.Lock()
				c.writing = false
				if !c.closing {
					c.fsm.close(fmt.Errorf("writing to peer: %w", err))
				}
				s.mu.Unlock()
				return
			}
		}
		s.mu.Lock()
		c.writing = false
		s.mu.Unlock()
		if closing {
			return
		}
	}
}
