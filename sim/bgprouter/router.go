// Package bgprouter is the simulator's BGP router: a top-of-rack router that Kubernetes nodes'
// speakers peer with, running on a simulated host (sim.Topology's routers) through the same
// netio interface the speakers use.
//
// What it does, and what a scenario can ask it:
//
//   - BGP (RFC 4271, 4760, 6793) over the host's gVisor TCP, encoded and decoded with gobgp's
//     pkg/packet/bgp codec like the speaker's own sessions. It is passive: it listens on port
//     179 and accepts sessions from dynamic neighbours whose source address lies in one of the
//     configured ranges, as FRR's `bgp listen range` does. Each neighbour's routes go into a RIB
//     with multipath: a prefix's next hops are those of all paths tied on LOCAL_PREF and AS_PATH
//     length. Routes(), Paths() and History() show what the router knows and when it changed.
//   - BFD (optional, RFC 5880/5881 through netio/bfdio): every established neighbour gets a BFD
//     session with the configured profile; when it goes down the BGP session is closed at once
//     and the neighbour's routes are withdrawn, as a router with `neighbor X bfd` does.
//   - Forwarding with ECMP: IPv4 and IPv6 packets from clients to a destination the RIB has a
//     route for are sent to one of the route's next hops chosen by a hash of the flow's 5-tuple,
//     so a flow stays on one node while the set is stable. Flows() reports which next hop carried
//     which flow. Everything else (return traffic, the router's own) is the host's gVisor
//     forwarding.
//
// Everything runs on the simulation's virtual clock and is deterministic: connection readers and
// writers are goroutines that block on the host's connections (the driver lets them run), and
// timers are the host's clock timers. Router events and route changes also go to the
// simulation's trace under "router/<host>".
//
// The BGP scenarios of the "BGP mode" issue (bgp-ecmp, bgp-node-failure with and without BFD,
// bgp-etp-local, bgp-dual-stack, bgp-peer-restart) are scenario files in scenarios/, where the
// topology's routers run this router (bgpRouters) and every node runs the speaker's BGP runtime
// (netio/attach.BGP) against it.
package bgprouter

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-lb/switchyard/core/clock"
	"github.com/switchyard-lb/switchyard/core/config"
	"github.com/switchyard-lb/switchyard/netio"
	"github.com/switchyard-lb/switchyard/netio/bfdio"
	"github.com/switchyard-lb/switchyard/netio/netstack"
	"github.com/switchyard-lb/switchyard/sim/host"
	"github.com/switchyard-lb/switchyard/sim/trace"
)

// Config describes the router.
type Config struct {
	// ASN is the router's AS number.
	ASN uint32
	// RouterID is the BGP identifier; when invalid the host's first IPv4 address is used.
	RouterID netip.Addr
	// Neighbors are the ranges dynamic neighbours may connect from.
	Neighbors []netip.Prefix
	// PeerASN, when not 0, is the AS every neighbour must have; 0 accepts any.
	PeerASN uint32
	// HoldTime is the hold time the router offers (default 90 s); the session uses the smaller
	// of the two sides' offers (RFC 4271 §4.2).
	HoldTime time.Duration
	// BFD, when not nil, runs a BFD session with this profile with every established neighbour.
	BFD *config.BFDProfile
	// Seed seeds BFD's transmit jitter.
	Seed uint64
	// Logger receives session events; nil means slog.Default().
	Logger *slog.Logger
}

const defaultHoldTime = 90 * time.Second

// EventKind names what happened to a neighbour.
type EventKind string

// Neighbour events.
const (
	EventEstablished EventKind = "established"
	EventDown        EventKind = "down"
	EventBFDUp       EventKind = "bfd-up"
	EventBFDDown     EventKind = "bfd-down"
	EventRejected    EventKind = "rejected"
)

// Event is something that happened to a neighbour session.
type Event struct {
	At     time.Time
	Peer   netip.Addr
	Kind   EventKind
	Reason string
}

// Router is a running simulated BGP router.
type Router struct {
	cfg   Config
	node  *netstack.Node
	clock clock.Clock
	log   *slog.Logger
	// trace is the simulation's trace (nil records nothing); events go under component.
	trace     *trace.Trace
	component string
	fwd       *forwarder
	bfd       *bfdio.Driver

	listeners []net.Listener

	mu      sync.Mutex
	rib     *rib
	peers   map[netip.Addr]*peerSession
	events  []Event
	history []RouteChange
	stopped bool
}

// Start runs a router on a simulated host (sim.Network.NetIO of a router host). It must be
// called on the simulation's driver goroutine, between runs.
func Start(node *netstack.Node, cfg Config) (*Router, error) {
	if cfg.ASN == 0 {
		return nil, errors.New("bgprouter: ASN is required")
	}
	if len(cfg.Neighbors) == 0 {
		return nil, errors.New("bgprouter: at least one neighbour range is required")
	}
	if cfg.HoldTime == 0 {
		cfg.HoldTime = defaultHoldTime
	}
	if cfg.HoldTime < 3*time.Second {
		return nil, fmt.Errorf("bgprouter: hold time %v is below 3s", cfg.HoldTime)
	}
	h, ok := host.FromNode(node)
	if !ok {
		return nil, errors.New("bgprouter: the node is not a simulated host's (use sim.Network.NetIO)")
	}
	ifaces, err := node.Interfaces()
	if err != nil {
		return nil, err
	}
	var has6 bool
	for _, ifc := range ifaces {
		for _, p := range ifc.Addrs {
			if p.Addr().Is4() {
				if !cfg.RouterID.IsValid() {
					cfg.RouterID = p.Addr()
				}
			} else if !p.Addr().IsLinkLocalUnicast() {
				has6 = true
			}
		}
	}
	if !cfg.RouterID.IsValid() || !cfg.RouterID.Is4() {
		return nil, errors.New("bgprouter: no IPv4 router ID (give RouterID or an IPv4 address)")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &Router{
		cfg: cfg, node: node, clock: node.Clock(), log: log.With("router", h.Name()),
		trace: h.Trace(), component: "router/" + h.Name(),
		rib: newRIB(), peers: make(map[netip.Addr]*peerSession),
	}
	if cfg.BFD != nil {
		r.bfd, err = bfdio.New(node, bfdio.Options{Jitter: rand.New(rand.NewPCG(cfg.Seed, 0xbfd)), Logger: r.log})
		if err != nil {
			return nil, err
		}
	}
	r.fwd, err = newForwarder(h, r)
	if err != nil {
		return nil, err
	}
	// gVisor's IPv6 listener is dual-stack (IPv4 peers arrive as mapped addresses), so one
	// listener serves both families when the router has IPv6.
	wildcard := netip.IPv4Unspecified()
	if has6 {
		wildcard = netip.IPv6Unspecified()
	}
	l, err := node.ListenTCP(netip.AddrPortFrom(wildcard, 179), netio.TCPOptions{})
	if err != nil {
		r.Stop()
		return nil, fmt.Errorf("bgprouter: %w", err)
	}
	r.listeners = append(r.listeners, l)
	go r.accept(l)
	return r, nil
}

// accept takes connections until the listener closes.
func (r *Router) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		r.admit(c)
	}
}

// admit starts a session for a connection from an allowed range and refuses the rest.
func (r *Router) admit(c net.Conn) {
	remote := addrOf(c.RemoteAddr())
	local := addrOf(c.LocalAddr())
	r.mu.Lock()
	defer r.mu.Unlock()
	reason := ""
	switch {
	case r.stopped:
		reason = "router stopped"
	case !slices.ContainsFunc(r.cfg.Neighbors, func(p netip.Prefix) bool { return p.Contains(remote) }):
		reason = "source address outside every neighbour range"
	case r.peers[remote] != nil && r.peers[remote].established:
		// RFC 4271 §6.8: a connection from a peer with an established session loses the
		// collision.
		reason = "session already established"
	}
	if reason != "" {
		r.eventLocked(remote, EventRejected, reason)
		c.Close()
		return
	}
	if old := r.peers[remote]; old != nil {
		old.closeLocked(errors.New("replaced by a new connection"), nil)
	}
	s := newPeerSession(r, c, remote, local)
	r.peers[remote] = s
	s.start()
}

func addrOf(a net.Addr) netip.Addr {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.AddrPort().Addr().Unmap()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap.Addr().Unmap()
}

func (r *Router) eventLocked(peer netip.Addr, kind EventKind, reason string) {
	r.events = append(r.events, Event{At: r.clock.Now(), Peer: peer, Kind: kind, Reason: reason})
	r.log.Info("BGP neighbour event", "peer", peer, "event", kind, "reason", reason)
	r.trace.Emit(r.component, "bgp-"+string(kind), slog.String("peer", peer.String()), slog.String("reason", reason))
}

// routeChangedLocked records a change of prefix's multipath set and tells the forwarder.
func (r *Router) routeChangedLocked(prefix netip.Prefix) {
	r.history = append(r.history, RouteChange{At: r.clock.Now(), Prefix: prefix, NextHops: slices.Clone(r.rib.best[prefix])})
	if r.trace.Enabled() {
		hops := make([]string, len(r.rib.best[prefix]))
		for i, nh := range r.rib.best[prefix] {
			hops[i] = nh.String()
		}
		r.trace.Emit(r.component, "route", slog.String("prefix", prefix.String()), slog.String("nexthops", strings.Join(hops, ",")))
	}
	if r.fwd != nil {
		r.fwd.routeChanged(prefix, len(r.rib.best[prefix]) > 0)
	}
}

// Stop closes every session and listener and stops forwarding. The router's routes are gone.
func (r *Router) Stop() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	for _, addr := range sortedPeers(r.peers) {
		r.peers[addr].closeLocked(errors.New("router stopped"), nil)
	}
	r.mu.Unlock()
	for _, l := range r.listeners {
		l.Close()
	}
	if r.bfd != nil {
		r.bfd.Close()
	}
	if r.fwd != nil {
		r.fwd.close()
	}
}

func sortedPeers(m map[netip.Addr]*peerSession) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Established returns the neighbours with an established session, sorted.
func (r *Router) Established() []netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netip.Addr
	for _, a := range sortedPeers(r.peers) {
		if r.peers[a].established {
			out = append(out, a)
		}
	}
	return out
}

// Routes returns every prefix with its multipath set.
func (r *Router) Routes() map[netip.Prefix][]netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[netip.Prefix][]netip.Addr, len(r.rib.best))
	for p, nh := range r.rib.best {
		out[p] = slices.Clone(nh)
	}
	return out
}

// NextHops returns prefix's multipath set, sorted; nil when the router has no route.
func (r *Router) NextHops(prefix netip.Prefix) []netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rib.best[prefix])
}

// Paths returns every neighbour's path to prefix, sorted by neighbour.
func (r *Router) Paths(prefix netip.Prefix) []Path {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Path
	for _, p := range r.rib.paths[prefix] {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Path) int { return a.Peer.Compare(b.Peer) })
	return out
}

// History returns every change of every multipath set, in order.
func (r *Router) History() []RouteChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.history)
}

// Events returns the neighbour events, in order.
func (r *Router) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Flows returns, per next hop, how many flows the router forwarded to it. A flow is a 5-tuple,
// started anew by a TCP SYN; a flow moved to another next hop (when the set changes) counts
// there too.
func (r *Router) Flows() map[netip.Addr]int { return r.fwd.flowCounts() }

// ForwardStats returns the forwarder's counters.
func (r *Router) ForwardStats() ForwardStats { return r.fwd.stats() }
