package sim

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-lb/switchyard/netio/netstack"
	"github.com/switchyard-lb/switchyard/sim/host"
	"github.com/switchyard-lb/switchyard/sim/l2switch"
	"github.com/switchyard-lb/switchyard/sim/trace"
	"github.com/switchyard-lb/switchyard/sim/vclock"
)

// Options are the inputs of a simulation besides its topology.
type Options struct {
	// Seed seeds every RNG of the simulation.
	Seed uint64
	// Trace, when not nil, receives the JSON-lines trace. Call Network.Flush before reading it.
	Trace io.Writer
}

// Network is a running simulation.
type Network struct {
	topo  Topology
	seed  uint64
	clock *vclock.Clock
	trace *trace.Trace

	switches []*l2switch.Switch
	segments map[string]*l2switch.Switch
	hosts    []*simHost
	byName   map[string]*simHost
	captures []*Capture
	served   []Served

	stalls uint64 // driver steps cut short because a goroutine never parked
}

// simHost is a host of the topology across power cycles.
type simHost struct {
	net   *Network
	kind  hostKind
	spec  Host
	ports []*l2switch.Port
	boot  uint64

	host    *host.Host // nil while powered off
	netio   *netstack.Node
	client  *Client
	service *service
}

// New builds the network described by topo and powers every host on. runtime.GOMAXPROCS must
// be 1 (see the package documentation).
func New(topo Topology, opts Options) (*Network, error) {
	if p := runtime.GOMAXPROCS(0); p != 1 {
		return nil, fmt.Errorf("sim: GOMAXPROCS is %d; a deterministic simulation needs runtime.GOMAXPROCS(1) before the network is built", p)
	}
	if err := topo.Validate(); err != nil {
		return nil, err
	}
	n := &Network{
		topo:     topo,
		seed:     opts.Seed,
		clock:    vclock.New(),
		segments: make(map[string]*l2switch.Switch),
		byName:   make(map[string]*simHost),
	}
	if opts.Trace != nil {
		n.trace = trace.New(opts.Trace, n.clock.Since)
	}
	for _, seg := range topo.Segments {
		sw := l2switch.New(seg.Name, n.clock, opts.Seed, n.trace)
		if seg.AgingTime.Duration > 0 {
			if err := sw.SetAgingTime(seg.AgingTime.Duration); err != nil {
				return nil, err
			}
		}
		n.switches = append(n.switches, sw)
		n.segments[seg.Name] = sw
	}
	for _, r := range topo.hosts() {
		sh := &simHost{net: n, kind: r.kind, spec: *r.spec}
		for _, ifc := range sh.spec.Interfaces {
			p, err := n.segments[ifc.Segment].AddPort(sh.spec.Name+"/"+ifc.Name, nil)
			if err != nil {
				return nil, err
			}
			if err := p.SetImpairment(ifc.Link.impairment()); err != nil {
				return nil, err
			}
			sh.ports = append(sh.ports, p)
		}
		n.hosts = append(n.hosts, sh)
		n.byName[sh.spec.Name] = sh
	}
	for _, sh := range n.hosts {
		if err := sh.powerOn(); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (l Link) impairment() l2switch.Impairment {
	return l2switch.Impairment{Loss: l.Loss, Duplicate: l.Duplicate, Delay: l.Delay.Duration}
}

func (sh *simHost) powerOn() error {
	n := sh.net
	var nics []host.NICConfig
	for i, ifc := range sh.spec.Interfaces {
		mac, err := ifc.hardwareAddr(sh.spec.Name)
		if err != nil {
			return err
		}
		nics = append(nics, host.NICConfig{Name: ifc.Name, MAC: mac, Addrs: ifc.Addrs, Port: sh.ports[i]})
	}
	var routes []host.Route
	for _, r := range sh.spec.Routes {
		routes = append(routes, host.Route{Dst: r.Dst, Via: r.Via})
	}
	// Clients, gateways and routers stand for Linux machines whose neighbour caches take a VIP's
	// new MAC from the new owner's gratuitous ARP; the failover times clients see depend on it.
	linuxNeighbours := sh.kind == kindClient || sh.kind == kindGateway || sh.kind == kindRouter
	h, err := host.New(host.Config{
		Name:           sh.spec.Name,
		Seed:           n.seed,
		Boot:           sh.boot,
		Clock:          n.clock.Group(),
		Trace:          n.trace,
		ServeVIPs:      sh.kind == kindNode,
		LinuxNeighbors: linuxNeighbours,
		Forwarding:     sh.kind == kindGateway || sh.kind == kindRouter,
	}, nics, routes)
	if err != nil {
		return err
	}
	sh.host = h
	sh.netio = netstack.New(h.Netstack())
	switch sh.kind {
	case kindNode:
		ports := sh.spec.ServePorts
		if len(ports) == 0 {
			ports = []uint16{80}
		}
		svc, err := startService(sh, ports)
		if err != nil {
			return err
		}
		sh.service = svc
	case kindClient:
		if sh.client == nil {
			sh.client = &Client{sh: sh}
		}
		sh.client.attach()
	}
	n.trace.Emit("host/"+sh.spec.Name, "power-on", slog.Uint64("boot", sh.boot))
	return nil
}

// Clock returns the simulation's virtual clock.
func (n *Network) Clock() *vclock.Clock { return n.clock }

// Trace returns the simulation's trace; nil when Options.Trace was nil (a nil trace records
// nothing and is safe to use).
func (n *Network) Trace() *trace.Trace { return n.trace }

// Elapsed returns the virtual time since the simulation started.
func (n *Network) Elapsed() time.Duration { return n.clock.Since() }

// Flush writes buffered trace events and captured frames to their writers.
func (n *Network) Flush() error {
	var errs []error
	errs = append(errs, n.trace.Flush())
	for _, c := range n.captures {
		errs = append(errs, c.Flush())
	}
	return errors.Join(errs...)
}

// Switch returns the switch of a segment.
func (n *Network) Switch(segment string) (*l2switch.Switch, error) {
	sw := n.segments[segment]
	if sw == nil {
		return nil, fmt.Errorf("sim: no segment %q", segment)
	}
	return sw, nil
}

func (n *Network) lookup(name string) (*simHost, error) {
	sh := n.byName[name]
	if sh == nil {
		return nil, fmt.Errorf("sim: no host %q", name)
	}
	return sh, nil
}

// NetIO returns the netio.Node of a powered-on node or router, on which a speaker or BGP
// router runs. A power cycle makes a new one.
func (n *Network) NetIO(name string) (*netstack.Node, error) {
	sh, err := n.lookup(name)
	if err != nil {
		return nil, err
	}
	if sh.host == nil {
		return nil, fmt.Errorf("sim: host %s is powered off", name)
	}
	return sh.netio, nil
}

// Host returns the gVisor host behind a powered-on host.
func (n *Network) Host(name string) (*host.Host, error) {
	sh, err := n.lookup(name)
	if err != nil {
		return nil, err
	}
	if sh.host == nil {
		return nil, fmt.Errorf("sim: host %s is powered off", name)
	}
	return sh.host, nil
}

// Client returns a client by name.
func (n *Network) Client(name string) (*Client, error) {
	sh, err := n.lookup(name)
	if err != nil {
		return nil, err
	}
	if sh.kind != kindClient {
		return nil, fmt.Errorf("sim: host %s is not a client", name)
	}
	return sh.client, nil
}

// PowerOff turns a host off at once: its ports go silent, its stack and every timer armed
// through its clock (its speaker's included) are gone. A client's attempts in progress end
// with OutcomeError and its repeating probes stop; start them again after PowerOn.
func (n *Network) PowerOff(name string) error {
	sh, err := n.lookup(name)
	if err != nil {
		return err
	}
	if sh.host == nil {
		return fmt.Errorf("sim: host %s is already off", name)
	}
	if sh.client != nil {
		sh.client.detach()
	}
	sh.host.Close()
	sh.host, sh.netio, sh.service = nil, nil, nil
	n.trace.Emit("host/"+name, "power-off")
	return nil
}

// PowerOn boots a host that is off, with a fresh stack (new ISNs, empty caches).
func (n *Network) PowerOn(name string) error {
	sh, err := n.lookup(name)
	if err != nil {
		return err
	}
	if sh.host != nil {
		return fmt.Errorf("sim: host %s is already on", name)
	}
	sh.boot++
	return sh.powerOn()
}

func (n *Network) port(hostName, ifname string) (*simHost, *l2switch.Port, error) {
	sh, err := n.lookup(hostName)
	if err != nil {
		return nil, nil, err
	}
	for i, ifc := range sh.spec.Interfaces {
		if ifc.Name == ifname {
			return sh, sh.ports[i], nil
		}
	}
	return nil, nil, fmt.Errorf("sim: host %s has no interface %q", hostName, ifname)
}

// SetLink cuts (up=false) or restores a host interface's cable. The host's netio watchers see
// the change.
func (n *Network) SetLink(hostName, ifname string, up bool) error {
	sh, p, err := n.port(hostName, ifname)
	if err != nil {
		return err
	}
	p.SetUp(up)
	if sh.netio != nil {
		sh.netio.LinkChanged(ifname)
	}
	return nil
}

// SetImpairment changes how a host interface's cable treats frames.
func (n *Network) SetImpairment(hostName, ifname string, l Link) error {
	_, p, err := n.port(hostName, ifname)
	if err != nil {
		return err
	}
	return p.SetImpairment(l.impairment())
}

// Partition splits a segment into groups that cannot reach each other. A member is a host name
// (its interface on the segment) or "host/interface". Ports in no group form one more group.
func (n *Network) Partition(segment string, groups ...[]string) error {
	sw, err := n.Switch(segment)
	if err != nil {
		return err
	}
	var portGroups [][]string
	for _, g := range groups {
		var pg []string
		for _, m := range g {
			name, err := n.portOn(sw, m)
			if err != nil {
				return err
			}
			pg = append(pg, name)
		}
		portGroups = append(portGroups, pg)
	}
	return sw.Partition(portGroups)
}

func (n *Network) portOn(sw *l2switch.Switch, member string) (string, error) {
	if strings.Contains(member, "/") {
		if sw.Port(member) == nil {
			return "", fmt.Errorf("sim: segment %s has no port %q", sw.Name(), member)
		}
		return member, nil
	}
	sh, err := n.lookup(member)
	if err != nil {
		return "", err
	}
	for _, p := range sh.ports {
		if p.Switch() == sw {
			return p.Name(), nil
		}
	}
	return "", fmt.Errorf("sim: host %s has no interface on segment %s", member, sw.Name())
}

// Heal removes a segment's partition.
func (n *Network) Heal(segment string) error {
	sw, err := n.Switch(segment)
	if err != nil {
		return err
	}
	sw.Heal()
	return nil
}

// At schedules a scripted event at virtual time t after the start of the simulation. The
// event is traced under component "script" with its name.
func (n *Network) At(t time.Duration, name string, f func()) {
	n.After(t-n.Elapsed(), name, f)
}

// After schedules a scripted event d from now.
func (n *Network) After(d time.Duration, name string, f func()) {
	n.clock.AfterFunc(d, func() {
		n.trace.Emit("script", name)
		f()
	})
}

// RunFor runs the simulation for d of virtual time.
func (n *Network) RunFor(d time.Duration) { n.Run(n.clock.Now().Add(d)) }

// Run runs the simulation until virtual time until: it settles the network (see the package
// documentation), jumps to the next deadline, and repeats; at the end the clock reads until.
func (n *Network) Run(until time.Time) {
	for {
		n.settle()
		next, ok := n.clock.Next()
		if !ok || next.After(until) {
			n.clock.AdvanceTo(until)
			n.settle()
			return
		}
		n.clock.AdvanceTo(next)
	}
}

// maxYields bounds how long the driver waits for other goroutines to park before it takes its
// next step anyway (and counts a stall): a goroutine that spins would otherwise hang the run.
const maxYields = 10_000

// settle does everything that is due now: one frame or one timer per step, letting other
// goroutines run to completion between steps, until nothing is left.
func (n *Network) settle() {
	yields := 0
	for {
		if othersRunnable() {
			if yields < maxYields {
				yields++
				runtime.Gosched()
				continue
			}
			n.stalls++
		}
		yields = 0
		if n.stepSwitches() {
			continue
		}
		if n.clock.RunOne() {
			continue
		}
		return
	}
}

func (n *Network) stepSwitches() bool {
	for _, sw := range n.switches {
		if sw.Step() {
			return true
		}
	}
	return false
}

// Stalls reports how many times the driver went on while a goroutine was still runnable
// (see maxYields). A deterministic simulation has none.
func (n *Network) Stalls() uint64 { return n.stalls }

var runnableSample = []metrics.Sample{{Name: "/sched/goroutines/runnable:goroutines"}}

// othersRunnable asks the Go scheduler whether any goroutine is ready to run. With GOMAXPROCS=1
// the driver holds the only P, so the count is exact: it is every other goroutine.
func othersRunnable() bool {
	metrics.Read(runnableSample)
	return runnableSample[0].Value.Uint64() > 0
}

// Served is a connection a node accepted.
type Served struct {
	// At is the virtual time since the start of the simulation.
	At time.Duration
	// Node is the node that accepted it.
	Node string
	// Local is the address the client connected to (a VIP, or the node's own).
	Local netip.AddrPort
	// Remote is the client's address.
	Remote netip.AddrPort
}

// Served returns every connection nodes accepted, in order.
func (n *Network) Served() []Served { return slices.Clone(n.served) }
