package rawsock

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/switchyard-lb/switchyard/netio"
)

var _ netio.UDPNode = (*Node)(nil)

// ListenUDP binds a kernel UDP socket to local in the node's namespace. The socket asks the
// kernel for every datagram's TTL (IP_RECVTTL) or hop limit (IPV6_RECVHOPLIMIT) and sends with
// opts.TTL. An IPv6 socket is IPv6-only, so IPv4 and IPv6 endpoints on one port can coexist.
func (n *Node) ListenUDP(local netip.AddrPort, opts netio.UDPOptions) (netio.UDPConn, error) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	if !local.Addr().IsValid() {
		return nil, errors.New("rawsock: listen UDP: no local address (0.0.0.0 or :: listen on all)")
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("rawsock: listen UDP %s: %w", local, err)
	}
	network, family := "udp6", unix.AF_INET6
	if local.Addr().Is4() {
		network, family = "udp4", unix.AF_INET
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		cerr := c.Control(func(fd uintptr) { err = setUDPOptions(int(fd), family, opts.TTL) })
		return errors.Join(cerr, err)
	}}
	var pc net.PacketConn
	err := n.inNetNS(func() error {
		var err error
		pc, err = lc.ListenPacket(context.Background(), network, local.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rawsock: listen UDP %s: %w", local, err)
	}
	c := pc.(*net.UDPConn)
	bound := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return &udpConn{c: c, v4: family == unix.AF_INET,
		local: netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port())}, nil
}

func setUDPOptions(fd, family, ttl int) error {
	if family == unix.AF_INET {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVTTL, 1); err != nil {
			return fmt.Errorf("set IP_RECVTTL: %w", err)
		}
		if ttl != 0 {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, ttl); err != nil {
				return fmt.Errorf("set TTL %d: %w", ttl, err)
			}
		}
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
		return fmt.Errorf("set IPV6_V6ONLY: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1); err != nil {
		return fmt.Errorf("set IPV6_RECVHOPLIMIT: %w", err)
	}
	if ttl != 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl); err != nil {
			return fmt.Errorf("set hop limit %d: %w", ttl, err)
		}
	}
	return nil
}

// udpConn is a kernel UDP socket behind netio.UDPConn.
type udpConn struct {
	c     *net.UDPConn
	v4    bool
	local netip.AddrPort
}

func (u *udpConn) LocalAddr() netip.AddrPort { return u.local }

// oobSize holds one IP_TTL or IPV6_HOPLIMIT control message (a 4-byte int) with room to spare.
const oobSize = 64

func (u *udpConn) ReadFrom(b []byte) (int, netio.Datagram, error) {
	var oob [oobSize]byte
	n, oobn, _, from, err := u.c.ReadMsgUDPAddrPort(b, oob[:])
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return 0, netio.Datagram{}, fmt.Errorf("rawsock: UDP %s: %w", u.local, netio.ErrClosed)
		}
		return 0, netio.Datagram{}, fmt.Errorf("rawsock: UDP %s: read: %w", u.local, err)
	}
	ttl, err := receivedTTL(oob[:oobn])
	if err != nil {
		return 0, netio.Datagram{}, fmt.Errorf("rawsock: UDP %s: datagram from %s: %w", u.local, from, err)
	}
	d := netio.Datagram{From: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), To: u.local.Addr(), TTL: ttl}
	return n, d, nil
}

// receivedTTL finds the IP_TTL or IPV6_HOPLIMIT control message among oob.
func receivedTTL(oob []byte) (int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, fmt.Errorf("control messages: %w", err)
	}
	for _, m := range msgs {
		h := m.Header
		if (h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TTL) ||
			(h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_HOPLIMIT) {
			if len(m.Data) < 4 {
				return 0, fmt.Errorf("TTL control message of %d bytes", len(m.Data))
			}
			return int(binary.NativeEndian.Uint32(m.Data)), nil
		}
	}
	return 0, errors.New("the kernel reported no TTL")
}

func (u *udpConn) WriteTo(b []byte, to netip.AddrPort) error {
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	if to.Addr().Is4() != u.v4 {
		return fmt.Errorf("rawsock: UDP %s: destination %s is of another IP family", u.local, to)
	}
	if _, err := u.c.WriteToUDPAddrPort(b, to); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("rawsock: UDP %s: %w", u.local, netio.ErrClosed)
		}
		return fmt.Errorf("rawsock: UDP %s: send to %s: %w", u.local, to, err)
	}
	return nil
}

func (u *udpConn) Close() error { return u.c.Close() }
