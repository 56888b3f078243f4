// Package rawsock is the production backend of netio: a node's real network, reached through
// Linux AF_PACKET sockets, kernel TCP and rtnetlink.
//
//   - Ports are AF_PACKET SOCK_RAW sockets bound to one interface, one per Port. A classic BPF
//     program attached before the socket is bound lets only the Port's EtherTypes through, and
//     neither the host's own outgoing frames nor 802.1Q-tagged frames (those belong to a VLAN
//     interface, which gets its own Port). Each Port has one reader goroutine that calls the
//     handler, so a Port's callbacks are serialized but different Ports run concurrently.
//   - IPv6 multicast groups are joined by adding the group's Ethernet address (33:33 + the low 32
//     bits of the group) to the interface's multicast filter with PACKET_ADD_MEMBERSHIP. That is
//     what a NIC needs to pass neighbour solicitations for an address the kernel itself does not
//     own; no MLD report is sent.
//   - Interfaces and their changes come from rtnetlink (links and addresses).
//   - TCP is the kernel's, with TCP-MD5 (RFC 2385), TTL and GTSM minimum TTL (RFC 5082) set as
//     socket options before the connection is made.
//   - The clock is the wall clock.
//
// A Node normally works in the network namespace of the process. Options.NetNS makes it work in
// another one instead: every socket it opens is then created on an OS thread inside that
// namespace, which is how tests run several nodes on one machine.
package rawsock

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/switchyard-lb/switchyard/core/clock"
	"github.com/switchyard-lb/switchyard/netio"
)

// DefaultFrameBufferSize is the receive buffer of a Port unless Options say otherwise: the
// largest IPv4/IPv6 packet plus an Ethernet header, so no frame of a normal or jumbo MTU is ever
// truncated.
const DefaultFrameBufferSize = 1<<16 + 14

// Options configure a Node.
type Options struct {
	// NetNS is the path of a network namespace (e.g. /var/run/netns/NAME or /proc/PID/ns/net)
	// the node works in. Empty means the process's own namespace.
	NetNS string
	// FrameBufferSize is the size of each Port's receive buffer; larger frames are dropped and
	// counted in Stats.TruncatedFrames. 0 means DefaultFrameBufferSize.
	FrameBufferSize int
	// LinkWatchBufferSize is the socket receive buffer, in bytes, of the rtnetlink
	// subscriptions behind WatchLinks (SO_RCVBUF, so at most net.core.rmem_max); 0 means the
	// kernel default. A burst of changes larger than the buffer makes a watch resubscribe and
	// compare every interface (see WatchLinks).
	LinkWatchBufferSize int
	// Logger receives the node's log records. nil means slog.Default().
	Logger *slog.Logger
}

// Node is a netio.Node on the machine's real network.
type Node struct {
	netNS     netns.NsHandle // netns.None() when working in the process's namespace
	nl        *netlink.Handle
	bufSize   int
	watchBuf  int
	log       *slog.Logger
	closeOnce sync.Once

	mu     sync.Mutex
	ports  map[*Port]struct{}
	closed Stats // counters of ports already closed, so Node.Stats is monotonic
}

var _ netio.Node = (*Node)(nil)

// New returns a Node working in the namespace opts name. Close releases it.
func New(opts Options) (*Node, error) {
	n := &Node{
		netNS:    netns.None(),
		bufSize:  opts.FrameBufferSize,
		watchBuf: opts.LinkWatchBufferSize,
		log:      opts.Logger,
		ports:    make(map[*Port]struct{}),
	}
	if n.bufSize == 0 {
		n.bufSize = DefaultFrameBufferSize
	}
	if n.bufSize < minFrameLen {
		return nil, fmt.Errorf("rawsock: Options.FrameBufferSize %d is smaller than an Ethernet frame (%d bytes)", opts.FrameBufferSize, minFrameLen)
	}
	if n.watchBuf < 0 {
		return nil, fmt.Errorf("rawsock: Options.LinkWatchBufferSize %d is negative", opts.LinkWatchBufferSize)
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	if opts.NetNS != "" {
		h, err := netns.GetFromPath(opts.NetNS)
		if err != nil {
			return nil, fmt.Errorf("rawsock: Options.NetNS %q: %w", opts.NetNS, err)
		}
		n.netNS = h
		n.log = n.log.With("netns", opts.NetNS)
	}
	var err error
	if n.netNS.IsOpen() {
		n.nl, err = netlink.NewHandleAt(n.netNS, unix.NETLINK_ROUTE)
	} else {
		n.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		n.netNS.Close()
		return nil, fmt.Errorf("rawsock: open rtnetlink: %w", err)
	}
	return n, nil
}

// Close closes every Port still open and releases the node's netlink socket and namespace
// handle. Link watches must be stopped by their owners.
func (n *Node) Close() error {
	var errs []error
	n.closeOnce.Do(func() {
		n.mu.Lock()
		ports := make([]*Port, 0, len(n.ports))
		for p := range n.ports {
			ports = append(ports, p)
		}
		n.mu.Unlock()
		for _, p := range ports {
			errs = append(errs, p.Close())
		}
		n.nl.Close()
		if n.netNS.IsOpen() {
			errs = append(errs, n.netNS.Close())
		}
	})
	return errors.Join(errs...)
}

// Clock returns the wall clock.
func (n *Node) Clock() clock.Clock { return clock.Wall{} }

// Interfaces returns the node's interfaces ordered by index.
func (n *Node) Interfaces() ([]netio.Interface, error) {
	// A dump that races with a change is flagged as interrupted and may be inconsistent; the
	// kernel's advice is to ask again.
	var err error
	for range dumpAttempts {
		var ifs []netio.Interface
		if ifs, err = n.interfaces(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return ifs, err
		}
	}
	return nil, err
}

// dumpAttempts bounds how often Interfaces repeats an interrupted dump.
const dumpAttempts = 5

func (n *Node) interfaces() ([]netio.Interface, error) {
	links, err := n.nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("rawsock: list links: %w", err)
	}
	addrs, err := n.nl.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("rawsock: list addresses: %w", err)
	}
	byLink := make(map[int][]netip.Prefix)
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			byLink[a.LinkIndex] = append(byLink[a.LinkIndex], p)
		}
	}
	ifs := make([]netio.Interface, 0, len(links))
	for _, l := range links {
		ifs = append(ifs, interfaceOf(l.Attrs(), byLink[l.Attrs().Index]))
	}
	slices.SortFunc(ifs, func(a, b netio.Interface) int { return cmp.Compare(a.Index, b.Index) })
	return ifs, nil
}

// interfaceOf builds the netio view of one link.
func interfaceOf(attrs *netlink.LinkAttrs, addrs []netip.Prefix) netio.Interface {
	return netio.Interface{
		Index: attrs.Index,
		Name:  attrs.Name,
		MAC:   slices.Clone(attrs.HardwareAddr),
		Addrs: addrs,
		// IFF_UP is the administrative state, IFF_LOWER_UP the carrier.
		Up: attrs.RawFlags&unix.IFF_UP != 0 && attrs.RawFlags&unix.IFF_LOWER_UP != 0,
	}
}

// prefixOf converts a netlink address to a netip.Prefix, IPv4 addresses in their 4-byte form.
func prefixOf(ipn *net.IPNet) (netip.Prefix, bool) {
	if ipn == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(ipn.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := ipn.Mask.Size()
	addr = addr.Unmap()
	if bits == 128 && addr.Is4() {
		ones -= 96
	}
	if bits == 0 || ones < 0 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(addr, ones), true
}

// inNetNS runs fn on an OS thread inside the node's namespace, or directly when the node works
// in the process's own namespace. Sockets fn creates stay in the namespace for their lifetime.
func (n *Node) inNetNS(fn func() error) error {
	if !n.netNS.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine exits the runtime destroys the thread instead of
		// returning it, still inside the namespace, to the scheduler.
		runtime.LockOSThread()
		if err := netns.Set(n.netNS); err != nil {
			errc <- fmt.Errorf("rawsock: enter network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
