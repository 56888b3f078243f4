package sim

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// service is a node's stand-in for a Service backend: it accepts TCP on its ports at any
// destination address (the node's own or a VIP its speaker attracted), answers with the node's
// name and a newline, and closes. Clients record the name, so a test knows which node served.
// It runs without goroutines: listener readiness schedules a zero-delay timer that accepts.
type service struct {
	sh        *simHost
	listeners []*svcListener
}

type svcListener struct {
	svc   *service
	ep    tcpip.Endpoint
	wq    waiter.Queue
	entry waiter.Entry

	mu      sync.Mutex
	pending bool // an accept timer is armed
}

func startService(sh *simHost, ports []uint16) (*service, error) {
	s := &service{sh: sh}
	for _, port := range ports {
		for _, proto := range []tcpip.NetworkProtocolNumber{ipv4.ProtocolNumber, ipv6.ProtocolNumber} {
			l := &svcListener{svc: s}
			ep, err := sh.host.Stack().NewEndpoint(tcp.ProtocolNumber, proto, &l.wq)
			if err != nil {
				return nil, fmt.Errorf("sim: node %s: service port %d: %s", sh.spec.Name, port, err)
			}
			if proto == ipv6.ProtocolNumber {
				ep.SocketOptions().SetV6Only(true)
			}
			if err := ep.Bind(tcpip.FullAddress{Port: port}); err != nil {
				ep.Close()
				return nil, fmt.Errorf("sim: node %s: service port %d: %s", sh.spec.Name, port, err)
			}
			if err := ep.Listen(1024); err != nil {
				ep.Close()
				return nil, fmt.Errorf("sim: node %s: service port %d: %s", sh.spec.Name, port, err)
			}
			l.ep = ep
			l.entry = waiter.NewFunctionEntry(waiter.ReadableEvents, func(waiter.EventMask) { l.schedule() })
			l.wq.EventRegister(&l.entry)
			s.listeners = append(s.listeners, l)
		}
	}
	return s, nil
}

// schedule arms one accept timer; readiness callbacks come from gVisor's goroutines, and
// accepting on the driver keeps the order of accepted connections deterministic.
func (l *svcListener) schedule() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending {
		return
	}
	l.pending = true
	l.svc.sh.host.Clock().AfterFunc(0, l.acceptAll)
}

func (l *svcListener) acceptAll() {
	l.mu.Lock()
	l.pending = false
	l.mu.Unlock()
	sh := l.svc.sh
	for {
		ep, _, err := l.ep.Accept(nil)
		if err != nil {
			return // ErrWouldBlock: nothing left to accept
		}
		local, lerr := ep.GetLocalAddress()
		remote, rerr := ep.GetRemoteAddress()
		if lerr == nil && rerr == nil {
			s := Served{At: sh.net.Elapsed(), Node: sh.spec.Name, Local: addrPort(local), Remote: addrPort(remote)}
			sh.net.served = append(sh.net.served, s)
			sh.net.trace.Emit("node/"+sh.spec.Name, "served",
				slog.String("local", s.Local.String()), slog.String("remote", s.Remote.String()))
		}
		var greeting bytes.Reader
		greeting.Reset([]byte(sh.spec.Name + "\n"))
		_, _ = ep.Write(&greeting, tcpip.WriteOptions{})
		ep.Close()
	}
}

func addrPort(fa tcpip.FullAddress) netip.AddrPort {
	a, _ := netip.AddrFromSlice(fa.Addr.AsSlice())
	return netip.AddrPortFrom(a.Unmap(), fa.Port)
}
