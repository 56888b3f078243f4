package netstack

import (
	"bytes"
	"fmt"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/switchyard-lb/switchyard/netio"
)

var _ netio.UDPNode = (*Node)(nil)

// ListenUDP binds a gVisor UDP endpoint to local. Received datagrams carry the TTL (hop limit)
// gVisor read from their IP header. ReadFrom blocks, so, like Accept, it must run on a
// goroutine of its own, never on the driver's.
func (n *Node) ListenUDP(local netip.AddrPort, opts netio.UDPOptions) (netio.UDPConn, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("netstack: listen UDP %s: %w", local, err)
	}
	if !local.Addr().IsValid() {
		return nil, fmt.Errorf("netstack: listen UDP %s: no local address (0.0.0.0 or :: listen on all)", local)
	}
	if n.host.PoweredOff() {
		return nil, ErrPoweredOff
	}
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	u := &udpConn{done: make(chan struct{})}
	ep, terr := n.host.Stack().NewEndpoint(udp.ProtocolNumber, protocolOf(local.Addr()), &u.wq)
	if terr != nil {
		return nil, fmt.Errorf("netstack: listen UDP %s: %s", local, terr)
	}
	so := ep.SocketOptions()
	if local.Addr().Is4() {
		so.SetReceiveTTL(true)
	} else {
		so.SetV6Only(true)
		so.SetReceiveHopLimit(true)
	}
	if err := setTTL(ep, local.Addr(), opts.TTL); err != nil {
		ep.Close()
		return nil, err
	}
	if terr := ep.Bind(fullAddress(local)); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("netstack: listen UDP %s: %s", local, terr)
	}
	bound, terr := ep.GetLocalAddress()
	if terr != nil {
		ep.Close()
		return nil, fmt.Errorf("netstack: listen UDP %s: %s", local, terr)
	}
	u.ep = ep
	u.local = netip.AddrPortFrom(local.Addr(), bound.Port)
	return u, nil
}

// udpConn is a gVisor UDP endpoint behind netio.UDPConn.
type udpConn struct {
	wq    waiter.Queue
	ep    tcpip.Endpoint
	local netip.AddrPort

	closeOnce sync.Once
	done      chan struct{}
}

func (u *udpConn) LocalAddr() netip.AddrPort { return u.local }

func (u *udpConn) ReadFrom(b []byte) (int, netio.Datagram, error) {
	entry, notify := waiter.NewChannelEntry(waiter.ReadableEvents | waiter.EventHUp | waiter.EventErr)
	u.wq.EventRegister(&entry)
	defer u.wq.EventUnregister(&entry)
	for {
		select {
		case <-u.done:
			return 0, netio.Datagram{}, fmt.Errorf("netstack: UDP %s: %w", u.local, netio.ErrClosed)
		default:
		}
		var buf bytes.Buffer
		res, terr := u.ep.Read(&buf, tcpip.ReadOptions{NeedRemoteAddr: true})
		switch terr.(type) {
		case nil:
			n := copy(b, buf.Bytes())
			return n, u.datagram(res), nil
		case *tcpip.ErrWouldBlock:
			select {
			case <-notify:
			case <-u.done:
			}
		case *tcpip.ErrClosedForReceive, *tcpip.ErrInvalidEndpointState:
			// The host powered off (its stack closed every endpoint) or Close ran.
			return 0, netio.Datagram{}, fmt.Errorf("netstack: UDP %s: %w", u.local, netio.ErrClosed)
		default:
			return 0, netio.Datagram{}, fmt.Errorf("netstack: UDP %s: read: %s", u.local, terr)
		}
	}
}

// datagram describes a read's sender and the TTL or hop limit from its control messages.
func (u *udpConn) datagram(res tcpip.ReadResult) netio.Datagram {
	d := netio.Datagram{To: u.local.Addr()}
	if a, ok := netip.AddrFromSlice(res.RemoteAddr.Addr.AsSlice()); ok {
		d.From = netip.AddrPortFrom(a.Unmap(), res.RemoteAddr.Port)
	}
	cm := res.ControlMessages
	switch {
	case cm.HasTTL:
		d.TTL = int(cm.TTL)
	case cm.HasHopLimit:
		d.TTL = int(cm.HopLimit)
	}
	return d
}

func (u *udpConn) WriteTo(b []byte, to netip.AddrPort) error {
	select {
	case <-u.done:
		return fmt.Errorf("netstack: UDP %s: %w", u.local, netio.ErrClosed)
	default:
	}
	if to.Addr().Is4() != u.local.Addr().Is4() {
		return fmt.Errorf("netstack: UDP %s: destination %s is of another IP family", u.local, to)
	}
	dst := fullAddress(to)
	var r bytes.Reader
	r.Reset(b)
	if _, terr := u.ep.Write(&r, tcpip.WriteOptions{To: &dst}); terr != nil {
		return fmt.Errorf("netstack: UDP %s: send to %s: %s", u.local, to, terr)
	}
	return nil
}

func (u *udpConn) Close() error {
	u.closeOnce.Do(func() {
		close(u.done)
		u.ep.Close()
	})
	return nil
}
