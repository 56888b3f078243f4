package sim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/switchyard-lb/switchyard/core/clock"
	"github.com/switchyard-lb/switchyard/sim/host"
)

// ProbeKind is what a client attempt does.
type ProbeKind string

const (
	// ProbeTCP opens a TCP connection and reads the serving node's name.
	ProbeTCP ProbeKind = "tcp"
	// ProbeResolve asks who has an IP, as arping (ARP) or ndisc6 (neighbour solicitation) do,
	// regardless of the client's neighbour cache.
	ProbeResolve ProbeKind = "resolve"
	// ProbePing sends one ICMP echo request.
	ProbePing ProbeKind = "ping"
)

// Outcome is how an attempt ended.
type Outcome string

const (
	OutcomeOK          Outcome = "ok"
	OutcomeTimeout     Outcome = "timeout"
	OutcomeRefused     Outcome = "refused"
	OutcomeReset       Outcome = "reset"
	OutcomeUnreachable Outcome = "unreachable"
	OutcomeError       Outcome = "error"
)

// Attempt is one probe a client made and what came of it.
type Attempt struct {
	Kind ProbeKind
	// Target is the probed address (port 0 for resolve and ping).
	Target netip.AddrPort
	// Start and End are virtual times since the start of the simulation.
	Start, End time.Duration
	Outcome    Outcome
	// MAC is the source MAC of the answer: the ARP/NA sender, the SYN-ACK's or the echo
	// reply's frame source (a gateway's MAC when the target is routed).
	MAC string
	// Node is the name a serving node sent back (TCP only).
	Node string
	// Detail explains errors.
	Detail string
}

// Client is a simulated client machine. All its probes run on the driver, without goroutines.
// Probes leave through the stack's routes; Resolve and answer observation use the client's first
// interface.
type Client struct {
	sh *simHost

	mu       sync.Mutex
	attempts []Attempt
	pending  []*attempt // in the order they started
	untap    func()
	probes   []*probeLoop
}

// attempt is an attempt in progress.
type attempt struct {
	c       *Client
	rec     Attempt
	done    func(Attempt)
	timer   clock.Timer
	ep      tcpip.Endpoint
	wq      waiter.Queue
	entry   waiter.Entry
	port    uint16 // local TCP port, or ICMP ident
	queued  bool   // a poll timer is armed
	greet   bytes.Buffer
	connect bool // TCP handshake completed
	ended   bool
}

func (c *Client) attach() {
	nic := c.sh.host.NICs()[0]
	c.untap = nic.AddTap(c.observe)
}

// detach ends pending attempts when the client is powered off; they are recorded as errors.
func (c *Client) detach() {
	c.untap()
	c.mu.Lock()
	open := slices.Clone(c.pending)
	c.mu.Unlock()
	for _, a := range open {
		a.finish(OutcomeError, "client powered off")
	}
	for _, p := range c.probes {
		p.stop()
	}
}

// Name returns the client's name.
func (c *Client) Name() string { return c.sh.spec.Name }

// Attempts returns every finished attempt, in the order they finished.
func (c *Client) Attempts() []Attempt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.attempts)
}

func (c *Client) begin(kind ProbeKind, target netip.AddrPort, timeout time.Duration, done func(Attempt)) (*attempt, error) {
	if c.sh.host == nil {
		return nil, fmt.Errorf("sim: client %s is powered off", c.sh.spec.Name)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("sim: client %s: %s probe of %s: timeout must be positive", c.sh.spec.Name, kind, target)
	}
	a := &attempt{c: c, rec: Attempt{Kind: kind, Target: target, Start: c.sh.net.Elapsed()}, done: done}
	c.mu.Lock()
	c.pending = append(c.pending, a)
	c.mu.Unlock()
	a.timer = c.sh.host.Clock().AfterFunc(timeout, func() {
		if a.connect {
			a.finish(OutcomeOK, "no greeting before timeout")
			return
		}
		a.finish(OutcomeTimeout, "")
	})
	return a, nil
}

func (a *attempt) finish(o Outcome, detail string) {
	if a.ended {
		return
	}
	a.ended = true
	a.timer.Stop()
	if a.ep != nil {
		a.wq.EventUnregister(&a.entry)
		a.ep.Close()
	}
	a.rec.End = a.c.sh.net.Elapsed()
	a.rec.Outcome = o
	a.rec.Detail = detail
	c := a.c
	c.mu.Lock()
	c.pending = slices.DeleteFunc(c.pending, func(x *attempt) bool { return x == a })
	c.attempts = append(c.attempts, a.rec)
	c.mu.Unlock()
	c.sh.net.trace.Emit("client/"+c.sh.spec.Name, "attempt",
		slog.String("kind", string(a.rec.Kind)), slog.String("target", a.rec.Target.String()),
		slog.String("outcome", string(o)), slog.Duration("rtt", a.rec.End-a.rec.Start),
		slog.String("mac", a.rec.MAC), slog.String("node", a.rec.Node), slog.String("detail", detail))
	if a.done != nil {
		a.done(a.rec)
	}
}

// schedulePoll is the waiter callback: it runs on whichever goroutine made the endpoint ready
// and defers the work to a zero-delay timer on the driver.
func (a *attempt) schedulePoll(waiter.EventMask) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	if a.queued || a.ended {
		return
	}
	a.queued = true
	a.c.sh.host.Clock().AfterFunc(0, a.poll)
}

// ConnectTCP opens a TCP connection to target, reads the serving node's name and closes.
// done (may be nil) is called on the driver when the attempt ends.
func (c *Client) ConnectTCP(target netip.AddrPort, timeout time.Duration, done func(Attempt)) error {
	a, err := c.begin(ProbeTCP, target, timeout, done)
	if err != nil {
		return err
	}
	proto := ipv4.ProtocolNumber
	if target.Addr().Is6() {
		proto = ipv6.ProtocolNumber
	}
	ep, terr := c.sh.host.Stack().NewEndpoint(tcp.ProtocolNumber, proto, &a.wq)
	if terr != nil {
		a.finish(OutcomeError, terr.String())
		return nil
	}
	a.ep = ep
	a.entry = waiter.NewFunctionEntry(waiter.ReadableEvents|waiter.WritableEvents|waiter.EventHUp|waiter.EventErr, a.schedulePoll)
	a.wq.EventRegister(&a.entry)
	terr = ep.Connect(tcpip.FullAddress{Addr: tcpip.AddrFromSlice(target.Addr().AsSlice()), Port: target.Port()})
	if local, err := ep.GetLocalAddress(); err == nil {
		a.port = local.Port
	}
	switch terr.(type) {
	case nil, *tcpip.ErrConnectStarted:
	case *tcpip.ErrHostUnreachable, *tcpip.ErrNetworkUnreachable:
		a.finish(OutcomeUnreachable, terr.String())
	default:
		a.finish(OutcomeError, terr.String())
	}
	return nil
}

func (a *attempt) poll() {
	a.c.mu.Lock()
	a.queued = false
	a.c.mu.Unlock()
	if a.ended {
		return
	}
	switch a.rec.Kind {
	case ProbeTCP:
		a.pollTCP()
	case ProbePing:
		a.pollPing()
	}
}

func (a *attempt) pollTCP() {
	if terr := a.ep.LastError(); terr != nil {
		switch terr.(type) {
		case *tcpip.ErrConnectionRefused:
			a.finish(OutcomeRefused, "")
		case *tcpip.ErrConnectionReset:
			if a.connect {
				a.finish(OutcomeReset, "")
			} else {
				a.finish(OutcomeRefused, "")
			}
		case *tcpip.ErrHostUnreachable, *tcpip.ErrNetworkUnreachable:
			a.finish(OutcomeUnreachable, terr.String())
		case *tcpip.ErrTimeout:
			a.finish(OutcomeTimeout, terr.String())
		default:
			a.finish(OutcomeError, terr.String())
		}
		return
	}
	if !a.connect {
		if a.ep.Readiness(waiter.WritableEvents) == 0 {
			return
		}
		a.connect = true
	}
	for {
		_, terr := a.ep.Read(&a.greet, tcpip.ReadOptions{})
		switch terr.(type) {
		case nil:
			if line, _, ok := bytes.Cut(a.greet.Bytes(), []byte{'\n'}); ok {
				a.rec.Node = string(line)
				a.finish(OutcomeOK, "")
				return
			}
			continue
		case *tcpip.ErrWouldBlock:
			return
		case *tcpip.ErrClosedForReceive:
			a.rec.Node = a.greet.String()
			a.finish(OutcomeOK, "")
			return
		default:
			a.finish(OutcomeReset, terr.String())
			return
		}
	}
}

// Ping sends one ICMP echo request to target and waits for the reply.
func (c *Client) Ping(target netip.Addr, timeout time.Duration, done func(Attempt)) error {
	a, err := c.begin(ProbePing, netip.AddrPortFrom(target, 0), timeout, done)
	if err != nil {
		return err
	}
	netProto, transProto := ipv4.ProtocolNumber, icmp.ProtocolNumber4
	if target.Is6() {
		netProto, transProto = ipv6.ProtocolNumber, icmp.ProtocolNumber6
	}
	ep, terr := c.sh.host.Stack().NewEndpoint(transProto, netProto, &a.wq)
	if terr != nil {
		a.finish(OutcomeError, terr.String())
		return nil
	}
	a.ep = ep
	a.entry = waiter.NewFunctionEntry(waiter.ReadableEvents|waiter.EventErr, a.schedulePoll)
	a.wq.EventRegister(&a.entry)
	var req []byte
	if target.Is4() {
		h := header.ICMPv4(make([]byte, header.ICMPv4MinimumSize))
		h.SetType(header.ICMPv4Echo)
		h.SetSequence(1)
		req = h
	} else {
		h := header.ICMPv6(make([]byte, header.ICMPv6EchoMinimumSize))
		h.SetType(header.ICMPv6EchoRequest)
		h.SetSequence(1)
		req = h
	}
	var r bytes.Reader
	r.Reset(req)
	to := tcpip.FullAddress{Addr: tcpip.AddrFromSlice(target.AsSlice())}
	if _, terr := ep.Write(&r, tcpip.WriteOptions{To: &to}); terr != nil {
		switch terr.(type) {
		case *tcpip.ErrHostUnreachable, *tcpip.ErrNetworkUnreachable:
			a.finish(OutcomeUnreachable, terr.String())
		default:
			a.finish(OutcomeError, terr.String())
		}
		return nil
	}
	if local, err := ep.GetLocalAddress(); err == nil {
		a.port = local.Port
	}
	return nil
}

func (a *attempt) pollPing() {
	var buf bytes.Buffer
	if _, terr := a.ep.Read(&buf, tcpip.ReadOptions{}); terr == nil {
		a.finish(OutcomeOK, "")
	}
}

// Resolve asks who has target: an ARP request (IPv4) or a neighbour solicitation (IPv6),
// sent from the client's interface whatever its neighbour cache holds. The first answer wins.
func (c *Client) Resolve(target netip.Addr, timeout time.Duration, done func(Attempt)) error {
	a, err := c.begin(ProbeResolve, netip.AddrPortFrom(target, 0), timeout, done)
	if err != nil {
		return err
	}
	nic := c.sh.host.NICs()[0]
	src, ok := sourceFor(nic, target)
	if !ok {
		a.finish(OutcomeUnreachable, "no address of the target's family on the client")
		return nil
	}
	var frame []byte
	if target.Is4() {
		frame = arpRequest(nic.MAC(), src, target)
	} else {
		frame = neighborSolicit(nic.MAC(), src, target)
	}
	if err := nic.SendRaw(frame); err != nil {
		a.finish(OutcomeError, err.Error())
	}
	return nil
}

func sourceFor(nic *host.NIC, target netip.Addr) (netip.Addr, bool) {
	var first netip.Addr
	for _, p := range nic.Addrs() {
		if p.Addr().Is4() != target.Is4() {
			continue
		}
		if p.Masked().Contains(target) {
			return p.Addr(), true
		}
		if !first.IsValid() {
			first = p.Addr()
		}
	}
	return first, first.IsValid()
}

func arpRequest(mac net.HardwareAddr, src, target netip.Addr) []byte {
	f := make([]byte, header.EthernetMinimumSize+header.ARPSize)
	eth := header.Ethernet(f)
	eth.Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(mac), DstAddr: header.EthernetBroadcastAddress, Type: header.ARPProtocolNumber})
	a := header.ARP(f[header.EthernetMinimumSize:])
	a.SetIPv4OverEthernet()
	a.SetOp(header.ARPRequest)
	copy(a.HardwareAddressSender(), mac)
	copy(a.ProtocolAddressSender(), src.AsSlice())
	copy(a.ProtocolAddressTarget(), target.AsSlice())
	return f
}

func neighborSolicit(mac net.HardwareAddr, src, target netip.Addr) []byte {
	snm := header.SolicitedNodeAddr(tcpip.AddrFrom16(target.As16()))
	opts := header.NDPOptionsSerializer{header.NDPSourceLinkLayerAddressOption(tcpip.LinkAddress(mac))}
	icmpLen := header.ICMPv6NeighborSolicitMinimumSize + opts.Length()
	f := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+icmpLen)
	eth := header.Ethernet(f)
	eth.Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(mac), DstAddr: header.EthernetAddressFromMulticastIPv6Address(snm), Type: header.IPv6ProtocolNumber})
	ip := header.IPv6(f[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv6Fields{
		PayloadLength:     uint16(icmpLen),
		TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit:          header.NDPHopLimit,
		SrcAddr:           tcpip.AddrFrom16(src.As16()),
		DstAddr:           snm,
	})
	ic := header.ICMPv6(ip.Payload())
	ic.SetType(header.ICMPv6NeighborSolicit)
	ns := header.NDPNeighborSolicit(ic.MessageBody())
	ns.SetTargetAddress(tcpip.AddrFrom16(target.As16()))
	ns.Options().Serialize(opts)
	ic.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: ic, Src: ip.SourceAddress(), Dst: ip.DestinationAddress()}))
	return f
}

// observe sees every frame reaching the client and notes who answered pending attempts.
func (c *Client) observe(frame []byte) {
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		return
	}
	open := slices.Clone(c.pending)
	c.mu.Unlock()
	src := net.HardwareAddr(frame[6:12]).String()
	ans, ok := parseAnswer(frame)
	if !ok {
		return
	}
	for _, a := range open {
		if a.rec.MAC != "" || a.rec.Kind != ans.kind || a.rec.Target.Addr() != ans.from {
			continue
		}
		if ans.kind != ProbeResolve && a.port != ans.port {
			continue
		}
		a.rec.MAC = src
		if ans.kind == ProbeResolve {
			a.rec.MAC = ans.mac
			a.finish(OutcomeOK, "")
		}
	}
}

type answer struct {
	kind ProbeKind
	from netip.Addr
	port uint16 // TCP destination port or ICMP echo ident
	mac  string // resolved MAC (resolve answers)
}

// parseAnswer recognises ARP replies, neighbour advertisements, SYN-ACKs and echo replies.
func parseAnswer(frame []byte) (answer, bool) {
	etype := binary.BigEndian.Uint16(frame[12:14])
	payload := frame[header.EthernetMinimumSize:]
	switch etype {
	case uint16(header.ARPProtocolNumber):
		a := header.ARP(payload)
		if !a.IsValid() || a.Op() != header.ARPReply {
			return answer{}, false
		}
		return answer{kind: ProbeResolve, from: netip.AddrFrom4([4]byte(a.ProtocolAddressSender())),
			mac: net.HardwareAddr(a.HardwareAddressSender()).String()}, true
	case uint16(header.IPv4ProtocolNumber):
		ip := header.IPv4(payload)
		if !ip.IsValid(len(payload)) {
			return answer{}, false
		}
		from := netip.AddrFrom4(ip.SourceAddress().As4())
		return transportAnswer(from, ip.TransportProtocol(), ip.Payload())
	case uint16(header.IPv6ProtocolNumber):
		ip := header.IPv6(payload)
		if !ip.IsValid(len(payload)) {
			return answer{}, false
		}
		from := netip.AddrFrom16(ip.SourceAddress().As16())
		if ip.TransportProtocol() == header.ICMPv6ProtocolNumber {
			ic := header.ICMPv6(ip.Payload())
			if len(ic) >= header.ICMPv6NeighborAdvertMinimumSize && ic.Type() == header.ICMPv6NeighborAdvert {
				na := header.NDPNeighborAdvert(ic.MessageBody())
				mac := ""
				it, err := na.Options().Iter(false)
				for err == nil {
					opt, done, err := it.Next()
					if err != nil || done {
						break
					}
					if tll, ok := opt.(header.NDPTargetLinkLayerAddressOption); ok {
						mac = net.HardwareAddr(tll.EthernetAddress()).String()
					}
				}
				if mac == "" {
					mac = net.HardwareAddr(frame[6:12]).String()
				}
				return answer{kind: ProbeResolve, from: netip.AddrFrom16(na.TargetAddress().As16()), mac: mac}, true
			}
		}
		return transportAnswer(from, ip.TransportProtocol(), ip.Payload())
	}
	return answer{}, false
}

func transportAnswer(from netip.Addr, proto tcpip.TransportProtocolNumber, b []byte) (answer, bool) {
	switch proto {
	case header.TCPProtocolNumber:
		if len(b) < header.TCPMinimumSize {
			return answer{}, false
		}
		t := header.TCP(b)
		if t.Flags()&(header.TCPFlagSyn|header.TCPFlagAck) != header.TCPFlagSyn|header.TCPFlagAck {
			return answer{}, false
		}
		return answer{kind: ProbeTCP, from: from, port: t.DestinationPort()}, true
	case header.ICMPv4ProtocolNumber:
		if len(b) < header.ICMPv4MinimumSize || header.ICMPv4(b).Type() != header.ICMPv4EchoReply {
			return answer{}, false
		}
		return answer{kind: ProbePing, from: from, port: header.ICMPv4(b).Ident()}, true
	case header.ICMPv6ProtocolNumber:
		if len(b) < header.ICMPv6EchoMinimumSize || header.ICMPv6(b).Type() != header.ICMPv6EchoReply {
			return answer{}, false
		}
		return answer{kind: ProbePing, from: from, port: header.ICMPv6(b).Ident()}, true
	}
	return answer{}, false
}

// Probe describes attempts a client repeats at an interval, to measure an outage.
type Probe struct {
	Kind ProbeKind
	// Target is the address probed; the port is used by TCP probes only.
	Target netip.AddrPort
	// Interval is the time between the starts of two attempts.
	Interval time.Duration
	// Timeout ends an attempt that got no answer.
	Timeout time.Duration
}

type probeLoop struct {
	c       *Client
	p       Probe
	timer   clock.Timer
	stopped bool
}

// StartProbe starts attempts now and every Interval until StopProbes or power-off. Attempts are
// recorded in Attempts.
func (c *Client) StartProbe(p Probe) error {
	if p.Interval <= 0 || p.Timeout <= 0 {
		return fmt.Errorf("sim: client %s: probe of %s: interval and timeout must be positive", c.sh.spec.Name, p.Target)
	}
	switch p.Kind {
	case ProbeTCP, ProbeResolve, ProbePing:
	default:
		return fmt.Errorf("sim: client %s: probe kind %q is not tcp, resolve or ping", c.sh.spec.Name, p.Kind)
	}
	if c.sh.host == nil {
		return fmt.Errorf("sim: client %s is powered off", c.sh.spec.Name)
	}
	l := &probeLoop{c: c, p: p}
	c.probes = append(c.probes, l)
	l.timer = c.sh.host.Clock().AfterFunc(0, l.fire)
	return nil
}

// StopProbes stops every repeating probe; attempts in progress still finish.
func (c *Client) StopProbes() {
	for _, p := range c.probes {
		p.stop()
	}
	c.probes = nil
}

func (l *probeLoop) stop() {
	l.stopped = true
	l.timer.Stop()
}

func (l *probeLoop) fire() {
	if l.stopped {
		return
	}
	c, p := l.c, l.p
	var err error
	switch p.Kind {
	case ProbeTCP:
		err = c.ConnectTCP(p.Target, p.Timeout, nil)
	case ProbeResolve:
		err = c.Resolve(p.Target.Addr(), p.Timeout, nil)
	case ProbePing:
		err = c.Ping(p.Target.Addr(), p.Timeout, nil)
	}
	if err != nil {
		c.sh.net.trace.Emit("client/"+c.sh.spec.Name, "probe-error", slog.String("error", err.Error()))
		return
	}
	l.timer = c.sh.host.Clock().AfterFunc(p.Interval, l.fire)
}

// Outage is a span of consecutive failed attempts.
type Outage struct {
	// From is the start of the first failed attempt.
	From time.Duration
	// To is the start of the next successful attempt, or the end of the last failed one when
	// none succeeded after it.
	To time.Duration
	// Failed counts the failed attempts in the span.
	Failed int
}

// Duration is the length of the outage.
func (o Outage) Duration() time.Duration { return o.To - o.From }

// Outages returns the outages in attempts (typically one client's attempts of one probe), taking
// attempts in the order they started. An attempt fails unless its outcome is OutcomeOK.
func Outages(attempts []Attempt) []Outage {
	sorted := slices.Clone(attempts)
	slices.SortStableFunc(sorted, func(a, b Attempt) int { return int(a.Start - b.Start) })
	var out []Outage
	var cur *Outage
	for _, a := range sorted {
		if a.Outcome == OutcomeOK {
			if cur != nil {
				cur.To = a.Start
				out = append(out, *cur)
				cur = nil
			}
			continue
		}
		if cur == nil {
			cur = &Outage{From: a.Start}
		}
		cur.Failed++
		cur.To = max(cur.To, a.End)
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}
