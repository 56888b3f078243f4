// Package netio is the speaker's window onto a node's network, and nothing more.
//
// A speaker needs a short list of things from a node: which interfaces exist (MAC, addresses,
// link state, and news when that changes), a way to send and receive raw Ethernet frames on each
// of them (ARP, NDP/ICMPv6 and the speaker's own heartbeat EtherType), IPv6 multicast group
// membership (so neighbour solicitations for a VIP's solicited-node address reach it), TCP from a
// chosen local address (BGP), and a clock. Node is that list. Two backends implement it:
//
//   - netio/rawsock: AF_PACKET sockets, kernel TCP, netlink, the wall clock. Production.
//   - netio/netstack: a port on the simulator's virtual switch and a gVisor TCP/IP stack, with
//     the simulator's virtual clock. Tests and `switchyard sim`.
//
// The speaker must behave identically on both; it cannot tell which one it has.
//
// Concurrency: a backend delivers frames and link changes through callbacks. Callbacks of one
// Port are never concurrent with each other, but callbacks of different ports, link watchers and
// clock timers may be concurrent on the rawsock backend (each port has its own reader). On the
// simulated backend everything runs on the simulator's single driver goroutine. Callers that
// share state between callbacks must therefore lock, and must never block inside a callback.
package netio

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/switchyard-lb/switchyard/core/clock"
)

// EtherTypes the speaker sends and receives.
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeIPv6 uint16 = 0x86dd
	// EtherTypeHeartbeat carries the speakers' data-path liveness frames. 0x88b5 is IEEE 802's
	// "local experimental EtherType 1": it is never forwarded by routers and never collides with a
	// registered protocol.
	EtherTypeHeartbeat uint16 = 0x88b5
)

// ErrUnsupported is returned (wrapped) when a backend cannot honour an option, such as TCP-MD5 on
// a stack without it. Callers may test for it with errors.Is.
var ErrUnsupported = errors.New("netio: not supported by this backend")

// Interface describes one network interface of a node at one moment.
type Interface struct {
	// Index is the interface index; stable for the life of the interface.
	Index int
	// Name is the interface name, e.g. "eth0".
	Name string
	// MAC is the interface's hardware address.
	MAC net.HardwareAddr
	// Addrs are the interface's addresses with their prefix length (so the subnet is known),
	// IPv4 and IPv6, in the order the backend reports them.
	Addrs []netip.Prefix
	// Up is true when the interface is administratively up and has carrier.
	Up bool
}

// Frame is one received Ethernet frame.
type Frame struct {
	// Data is the whole frame, starting at the destination MAC. It is only valid during the
	// handler call; a handler that keeps it must copy it.
	Data []byte
}

// FrameHandler receives frames from a Port. It must not block.
type FrameHandler func(Frame)

// PortConfig says which frames a Port receives.
type PortConfig struct {
	// EtherTypes selects the frames delivered to Handler. It must not be empty.
	EtherTypes []uint16
	// Handler is called for every received frame whose EtherType is in EtherTypes, including
	// frames to other unicast MACs seen by a promiscuous backend; the caller filters.
	// Frames this port sent itself are not delivered back.
	Handler FrameHandler
}

// Port sends and receives raw Ethernet frames on one interface.
type Port interface {
	// Send transmits frame as is: it must be a whole Ethernet frame starting at the destination
	// MAC. Short frames are padded by the backend. Send never blocks for long; a full queue is
	// an error, not a wait.
	Send(frame []byte) error
	// JoinGroup makes the interface receive frames for the IPv6 multicast group (e.g. a VIP's
	// solicited-node address ff02::1:ffXX:XXXX). Joining a group twice is counted: the
	// interface leaves it after as many LeaveGroup calls.
	JoinGroup(group netip.Addr) error
	// LeaveGroup undoes one JoinGroup.
	LeaveGroup(group netip.Addr) error
	// Close stops delivery and releases the port. After Close returns, Handler is not called
	// again.
	Close() error
}

// TCPOptions are the socket options BGP needs.
type TCPOptions struct {
	// MD5Key, when not empty, enables TCP-MD5 signatures (RFC 2385) with the peer's address.
	// A backend without TCP-MD5 returns ErrUnsupported.
	MD5Key string
	// TTL is the IP TTL / hop limit of sent packets; 0 means the system default. BGP uses 1
	// for directly connected eBGP and 255 for multihop.
	TTL int
	// MinTTL, when not 0, drops received packets whose TTL is lower (GTSM, RFC 5082).
	MinTTL int
	// MD5Peers is used by ListenTCP only: the TCP-MD5 key for each peer address that must sign
	// its segments. Peers not listed connect without signatures.
	MD5Peers map[netip.Addr]string
}

// Node is everything the speaker needs from a node's network.
type Node interface {
	// Clock is the node's time source.
	Clock() clock.Clock
	// Interfaces returns the node's interfaces now, ordered by Index.
	Interfaces() ([]Interface, error)
	// WatchLinks calls f with an interface's new state whenever its link state or addresses
	// change (and once is enough: f sees only changes after WatchLinks returns). The returned
	// function stops the watch.
	WatchLinks(f func(Interface)) (stop func())
	// OpenPort opens raw frame I/O on the named interface.
	OpenPort(ifname string, cfg PortConfig) (Port, error)
	// DialTCP opens a TCP connection from local (its port may be 0) to remote.
	DialTCP(ctx context.Context, local, remote netip.AddrPort, opts TCPOptions) (net.Conn, error)
	// ListenTCP accepts TCP connections on local. opts.MD5Peers gives per-peer TCP-MD5 keys;
	// opts.MD5Key is ignored.
	ListenTCP(local netip.AddrPort, opts TCPOptions) (net.Listener, error)
}
