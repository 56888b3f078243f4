package netio

import (
	"errors"
	"fmt"
	"net/netip"
)

// UDP is optional: a Node that can carry BFD (RFC 5880/5881) also implements UDPNode. BFD is
// the only user, and what it needs from UDP is narrow: datagrams from one chosen local address
// and port, sent with a chosen TTL (255 for single-hop BFD), and the TTL every received datagram
// arrived with, because RFC 5881 §5 (the Generalized TTL Security Mechanism) makes a receiver
// drop single-hop packets that did not arrive with TTL 255, which proves the sender is on the
// link.

// UDPOptions are the socket options of a UDP endpoint.
type UDPOptions struct {
	// TTL is the IP TTL / hop limit of sent datagrams; 0 means the system default.
	TTL int
}

// Validate reports options a backend cannot honour.
func (o UDPOptions) Validate() error {
	if o.TTL < 0 || o.TTL > 255 {
		return fmt.Errorf("UDPOptions.TTL %d is outside 0..255", o.TTL)
	}
	return nil
}

// Datagram is one received UDP datagram.
type Datagram struct {
	// From is the sender's address and port.
	From netip.AddrPort
	// To is the local address the datagram was sent to, when the backend knows it (it may be
	// invalid for an endpoint bound to a specific address: then it is that address).
	To netip.Addr
	// TTL is the IPv4 TTL or IPv6 hop limit the datagram arrived with.
	TTL int
}

// UDPConn is a bound UDP endpoint.
type UDPConn interface {
	// ReadFrom blocks until a datagram arrives, copies its payload into b (truncating it when b
	// is too short) and returns the payload length and where it came from, with its TTL. After
	// Close it returns ErrClosed (wrapped).
	ReadFrom(b []byte) (int, Datagram, error)
	// WriteTo sends b as one datagram to to.
	WriteTo(b []byte, to netip.AddrPort) error
	// LocalAddr is the address and port the endpoint is bound to.
	LocalAddr() netip.AddrPort
	// Close releases the endpoint and wakes a blocked ReadFrom.
	Close() error
}

// ErrClosed is returned (wrapped) by a UDPConn's methods after Close.
var ErrClosed = errors.New("netio: endpoint closed")

// UDPNode is implemented by Nodes that offer UDP.
type UDPNode interface {
	// ListenUDP binds a UDP endpoint to local. The address must be one of the node's own or
	// unspecified (0.0.0.0 or ::, then only that family is received); port 0 picks a free one.
	ListenUDP(local netip.AddrPort, opts UDPOptions) (UDPConn, error)
}
