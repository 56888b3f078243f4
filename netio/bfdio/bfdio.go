// Package bfdio carries BFD control packets (RFC 5880) over UDP for single-hop sessions
// (RFC 5881), through netio's optional UDP interface, so the same BFD code runs on kernel
// sockets and on the simulator's gVisor stacks.
//
// core/bgp/bfd holds the protocol (codec and state machine) and does no I/O. This package is its
// driver on one node:
//
//   - one receiving endpoint per address family on UDP port 3784, shared by every session; a
//     packet goes to the session whose local discriminator equals its Your Discriminator field,
//     or, while the peer does not know ours yet (Your Discriminator 0), to the session for the
//     packet's source address (RFC 5880 §6.3);
//   - one sending endpoint per session, bound to the session's source address and a port in
//     49152–65535 that the session keeps for its life (RFC 5881 §4), sending with TTL / hop limit
//     255 (§5);
//   - the TTL of every received packet is handed to the session, which drops packets that
//     arrived with less than 255 (the Generalized TTL Security Mechanism: only a neighbour on
//     the link can send them).
//
// The echo function is not implemented (see package bfd).
package bfdio

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"

	"github.com/switchyard-lb/switchyard/core/bgp/bfd"
	"github.com/switchyard-lb/switchyard/core/config"
	"github.com/switchyard-lb/switchyard/netio"
)

// Well-known ports of single-hop BFD (RFC 5881 §4).
const (
	// ControlPort is the destination port of BFD control packets.
	ControlPort = 3784
	// firstSourcePort and lastSourcePort bound the source ports a session may send from.
	firstSourcePort = 49152
	lastSourcePort  = 65535
)

// maxPacket is larger than any BFD control packet (24 octets without authentication, at most
// 24+28 with it), so a truncated read shows up as a length the codec rejects.
const maxPacket = 128

// Options configure a Driver.
type Options struct {
	// Jitter seeds the sessions' transmit jitter (RFC 5880 §6.8.7). Seed it for reproducible
	// runs; each session gets its own generator derived from it.
	Jitter *rand.Rand
	// Logger receives session state changes; nil means slog.Default().
	Logger *slog.Logger
}

// Driver runs the BFD sessions of one node.
type Driver struct {
	node   netio.Node
	udp    netio.UDPNode
	jitter *rand.Rand
	log    *slog.Logger

	mu sync.Mutex
	// receivers are the port-3784 endpoints by family (true for IPv4), opened on first use.
	receivers map[bool]netio.UDPConn
	byDiscr   map[uint32]*Session
	byPeer    map[netip.Addr]*Session
	nextDiscr uint32
	nextPort  uint16
	closed    bool
	stats     Stats
}

// Stats count packets the driver could not give to any session.
type Stats struct {
	// Unmatched counts packets for no known session (unknown discriminator or source).
	Unmatched uint64
	// Short counts packets too short to carry discriminators.
	Short uint64
}

// New returns a driver for node, which must implement netio.UDPNode.
func New(node netio.Node, opts Options) (*Driver, error) {
	u, ok := node.(netio.UDPNode)
	if !ok {
		return nil, fmt.Errorf("bfdio: node backend %T has no UDP: %w", node, netio.ErrUnsupported)
	}
	if opts.Jitter == nil {
		return nil, errors.New("bfdio: Options.Jitter is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Driver{
		node: node, udp: u, jitter: opts.Jitter, log: log,
		receivers: make(map[bool]netio.UDPConn),
		byDiscr:   make(map[uint32]*Session),
		byPeer:    make(map[netip.Addr]*Session),
		nextDiscr: 1,
		nextPort:  firstSourcePort,
	}, nil
}

// SessionConfig describes one BFD session.
type SessionConfig struct {
	// Peer is the neighbour's address.
	Peer netip.Addr
	// Local is the source address; when invalid the node's routing picks one.
	Local netip.Addr
	// Profile gives the intervals, multiplier and passive mode.
	Profile *config.BFDProfile
	// OnChange is told of every state change. It runs on the driver's reader or a clock timer
	// and must not block; tearing a BGP session down (bgp.Session.BFDDown) is fine. Close
	// reports AdminDown through it on the caller's goroutine, so a caller that closes the
	// session while holding a lock must not take that lock for AdminDown.
	OnChange func(bfd.State, bfd.Diag)
}

// Session is one running BFD session.
type Session struct {
	d    *Driver
	peer netip.Addr
	tx   netio.UDPConn
	bfd  *bfd.Session
	// discr is the session's local discriminator.
	discr uint32
}

// Add starts a session with cfg.Peer. A second session to the same peer is an error.
func (d *Driver) Add(cfg SessionConfig) (*Session, error) {
	peer := cfg.Peer.Unmap()
	switch {
	case !peer.IsValid():
		return nil, errors.New("bfdio: session without a peer address")
	case cfg.Profile == nil:
		return nil, fmt.Errorf("bfdio: session with %s: no BFD profile", peer)
	case cfg.OnChange == nil:
		return nil, fmt.Errorf("bfdio: session with %s: OnChange is required", peer)
	case cfg.Local.IsValid() && cfg.Local.Unmap().Is4() != peer.Is4():
		return nil, fmt.Errorf("bfdio: session with %s: local address %s is of another IP family", peer, cfg.Local)
	}
	s, err := d.add(peer, cfg)
	if err != nil {
		return nil, err
	}
	// Start sends the first packet through the backend; the driver's lock is not held then.
	s.bfd.Start()
	return s, nil
}

func (d *Driver) add(peer netip.Addr, cfg SessionConfig) (*Session, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("bfdio: driver closed")
	}
	if d.byPeer[peer] != nil {
		return nil, fmt.Errorf("bfdio: a session with %s exists already", peer)
	}
	if err := d.ensureReceiver(peer.Is4()); err != nil {
		return nil, err
	}
	discr := d.nextDiscr
	bcfg, err := bfd.ConfigFromProfile(cfg.Profile, discr, false)
	if err != nil {
		return nil, err
	}
	tx, err := d.bindSource(cfg.Local.Unmap(), peer.Is4())
	if err != nil {
		return nil, fmt.Errorf("bfdio: session with %s: %w", peer, err)
	}
	s := &Session{d: d, peer: peer, tx: tx, discr: discr}
	dst := netip.AddrPortFrom(peer, ControlPort)
	send := func(b []byte) {
		if err := tx.WriteTo(b, dst); err != nil && !errors.Is(err, netio.ErrClosed) {
			d.log.Debug("BFD send failed", "peer", peer, "err", err)
		}
	}
	onChange := func(st bfd.State, diag bfd.Diag) {
		d.log.Info("BFD session state", "peer", peer, "state", st, "diag", diag)
		cfg.OnChange(st, diag)
	}
	jitter := rand.New(rand.NewPCG(d.jitter.Uint64(), d.jitter.Uint64()))
	s.bfd, err = bfd.NewSession(bcfg, d.node.Clock(), jitter, send, onChange)
	if err != nil {
		tx.Close()
		return nil, err
	}
	d.nextDiscr++
	d.byDiscr[discr] = s
	d.byPeer[peer] = s
	return s, nil
}

// bindSource opens the sending endpoint of a new session on the next free source port.
func (d *Driver) bindSource(local netip.Addr, v4 bool) (netio.UDPConn, error) {
	if !local.IsValid() {
		local = netip.IPv6Unspecified()
		if v4 {
			local = netip.IPv4Unspecified()
		}
	}
	var lastErr error
	for range lastSourcePort - firstSourcePort + 1 {
		port := d.nextPort
		if d.nextPort == lastSourcePort {
			d.nextPort = firstSourcePort
		} else {
			d.nextPort++
		}
		c, err := d.udp.ListenUDP(netip.AddrPortFrom(local, port), netio.UDPOptions{TTL: bfd.SingleHopTTL})
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("no free source port in %d-%d: %w", firstSourcePort, lastSourcePort, lastErr)
}

// ensureReceiver opens the family's port-3784 endpoint and its reader.
func (d *Driver) ensureReceiver(v4 bool) error {
	if d.receivers[v4] != nil {
		return nil
	}
	wildcard := netip.IPv6Unspecified()
	if v4 {
		wildcard = netip.IPv4Unspecified()
	}
	c, err := d.udp.ListenUDP(netip.AddrPortFrom(wildcard, ControlPort), netio.UDPOptions{TTL: bfd.SingleHopTTL})
	if err != nil {
		return fmt.Errorf("bfdio: %w", err)
	}
	d.receivers[v4] = c
	go d.read(c)
	return nil
}

// read delivers the packets of one receiving endpoint until it is closed.
func (d *Driver) read(c netio.UDPConn) {
	buf := make([]byte, maxPacket)
	for {
		n, dg, err := c.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, netio.ErrClosed) {
				d.log.Warn("BFD receive failed", "local", c.LocalAddr(), "err", err)
			}
			return
		}
		if s := d.sessionFor(buf[:n], dg.From.Addr()); s != nil {
			s.bfd.Receive(buf[:n], dg.TTL)
		}
	}
}

// sessionFor demultiplexes a received packet (RFC 5880 §6.3).
func (d *Driver) sessionFor(b []byte, from netip.Addr) *Session {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, your, ok := bfd.PeekDiscriminators(b)
	if !ok {
		d.stats.Short++
		return nil
	}
	var s *Session
	if your != 0 {
		s = d.byDiscr[your]
	} else {
		s = d.byPeer[from.Unmap()]
	}
	if s == nil || s.peer != from.Unmap() {
		// A packet for our discriminator from another address is not this session's peer.
		d.stats.Unmatched++
		return nil
	}
	return s
}

// Stats returns the driver's counters.
func (d *Driver) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Close stops every session and the receivers.
func (d *Driver) Close() error {
	d.mu.Lock()
	sessions := make([]*Session, 0, len(d.byDiscr))
	for _, s := range d.byDiscr {
		sessions = append(sessions, s)
	}
	receivers := d.receivers
	d.receivers = map[bool]netio.UDPConn{}
	d.closed = true
	d.mu.Unlock()
	for _, s := range sessions {
		s.Close()
	}
	var errs []error
	for _, c := range receivers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Stats returns the session's BFD counters and state.
func (s *Session) Stats() bfd.Stats { return s.bfd.Stats() }

// Peer is the neighbour's address.
func (s *Session) Peer() netip.Addr { return s.peer }

// LocalDiscriminator identifies the session in the peer's packets.
func (s *Session) LocalDiscriminator() uint32 { return s.discr }

// Close takes the session administratively down, which the peer hears at once (one AdminDown
// packet, RFC 5880 §6.8.16), then stops it and releases its source port.
func (s *Session) Close() {
	d := s.d
	d.mu.Lock()
	if d.byDiscr[s.discr] == s {
		delete(d.byDiscr, s.discr)
		delete(d.byPeer, s.peer)
	}
	d.mu.Unlock()
	s.bfd.AdminDown()
	s.bfd.Close()
	s.tx.Close()
}
