package scenarios

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/switchyard-lb/switchyard/core/config"
	"github.com/switchyard-lb/switchyard/core/ipam"
	"github.com/switchyard-lb/switchyard/core/liveness"
	"github.com/switchyard-lb/switchyard/core/speaker"
	"github.com/switchyard-lb/switchyard/netio/attach"
	"github.com/switchyard-lb/switchyard/sim"
)

// heartbeatKey is the heartbeat secret every simulated speaker shares.
var heartbeatKey = []byte("switchyard-simulation")

// Options are the inputs of a run besides the scenario.
type Options struct {
	// Seed, when not 0, replaces the scenario's seed.
	Seed uint64
	// Trace, when not nil, receives the simulation's JSON-lines trace.
	Trace io.Writer
	// PCAP, when not nil, is asked for a writer per segment and receives that segment's
	// frames as pcapng.
	PCAP func(segment string) (io.Writer, error)
}

// Result is what a run found.
type Result struct {
	Scenario string
	Seed     uint64
	// Timeline lists what happened, in order.
	Timeline []Entry
	// Outages are the outages clients observed after each measured event.
	Outages []Outage
	// Verdicts has one entry per expectation, in file order.
	Verdicts []Verdict
	// Problems are events that could not be carried out (e.g. "ownerOf" a Service nobody
	// owned); each makes the run fail.
	Problems []string
	// Stalls counts simulation driver stalls; a deterministic run has none.
	Stalls uint64
}

// Passed reports whether every expectation held and every event could be carried out.
func (r *Result) Passed() bool {
	if len(r.Problems) > 0 {
		return false
	}
	for _, v := range r.Verdicts {
		if !v.Pass {
			return false
		}
	}
	return true
}

// Entry is one line of the timeline.
type Entry struct {
	At time.Duration
	// Who is the node, client or "script" the entry is about.
	Who  string
	What string
}

// Outage is the outage one client probe observed after one event: from the event until the
// end of the first successful attempt started after it. It is 0 when no attempt started after
// the event failed or was delayed, that is when the client noticed nothing.
type Outage struct {
	Event  string
	At     time.Duration
	Client string
	Target netip.AddrPort
	// Duration is valid when Recovered; otherwise it is the time until the end of the run.
	Duration  time.Duration
	Recovered bool
	// ServedBy is the node that served the first successful attempt (TCP probes).
	ServedBy string
}

// Verdict is the outcome of one expectation.
type Verdict struct {
	Expectation string
	Pass        bool
	Detail      string
}

// runner carries one run.
type runner struct {
	sc   *Scenario
	net  *sim.Network
	cfg  *config.Config
	seed uint64

	services  []speaker.Service
	byKey     map[string]*speaker.Service
	endpoints map[speaker.ServiceKey][]speaker.Endpoint
	nodes     []speaker.Node

	bindings map[string]*attach.Binding // running speakers by node
	bgp      map[string]*attach.BGP     // running BGP runtimes by node
	starts   map[string]uint64
	routers  map[string]*routerRun
	// start is the virtual wall-clock time of the simulation's start.
	start time.Time

	owners    map[netip.Addr]map[string]int // open interval index per owner
	intervals []ownership

	probes []probe
	res    *Result
}

// ownership is a period during which a node owned a VIP; To is -1 while open.
type ownership struct {
	VIP      netip.Addr
	Node     string
	From, To time.Duration
}

type probe struct {
	client *sim.Client
	spec   *ClientProbe
	target netip.AddrPort
}

// Run runs a scenario. It needs runtime.GOMAXPROCS(1) (see package sim). The error is for
// scenarios that cannot be run at all (invalid configuration, Services without addresses);
// failed expectations are in the Result.
func Run(sc *Scenario, opts Options) (*Result, error) {
	r := &runner{
		sc:        sc,
		seed:      sc.Seed,
		byKey:     map[string]*speaker.Service{},
		endpoints: map[speaker.ServiceKey][]speaker.Endpoint{},
		bindings:  map[string]*attach.Binding{},
		bgp:       map[string]*attach.BGP{},
		starts:    map[string]uint64{},
		owners:    map[netip.Addr]map[string]int{},
	}
	if opts.Seed != 0 {
		r.seed = opts.Seed
	}
	r.res = &Result{Scenario: sc.Name, Seed: r.seed}
	if err := r.loadConfig(); err != nil {
		return nil, err
	}
	if err := r.assignAddresses(); err != nil {
		return nil, err
	}
	for _, n := range sc.Topology.Nodes {
		r.nodes = append(r.nodes, speaker.Node{Name: n.Name, Labels: sc.NodeLabels[n.Name]})
	}
	n, err := sim.New(sc.Topology, sim.Options{Seed: r.seed, Trace: opts.Trace})
	if err != nil {
		return nil, err
	}
	r.net = n
	r.start = n.Clock().Now()
	if opts.PCAP != nil {
		for _, seg := range sc.Topology.Segments {
			w, err := opts.PCAP(seg.Name)
			if err != nil {
				return nil, err
			}
			if _, err := n.CaptureSegment(seg.Name, w); err != nil {
				return nil, err
			}
		}
	}
	if err := r.startRouters(); err != nil {
		return nil, err
	}
	for _, node := range sc.Topology.Nodes {
		if err := r.startSpeaker(node.Name); err != nil {
			return nil, err
		}
	}
	if err := r.scheduleProbes(); err != nil {
		return nil, err
	}
	for i := range sc.Events {
		e := &sc.Events[i]
		n.At(e.At.Duration, e.Name, func() { r.apply(e) })
	}
	n.RunFor(sc.Duration.Duration)
	end := n.Elapsed()
	// Probes stop at the end; attempts still in flight get their timeout to finish, so that
	// none of them is left out of the outage measurements.
	var drain time.Duration
	for _, p := range r.probes {
		p.client.StopProbes()
		drain = max(drain, p.spec.Timeout.Duration)
	}
	n.RunFor(drain)
	r.finishRouters()
	// Let the BGP sessions and routers end before the network is dropped, one node per step
	// so that the order of their goodbyes does not depend on the Go scheduler.
	for _, node := range slices.Sorted(maps.Keys(r.bgp)) {
		n.After(0, "stop BGP on "+node, func() { r.stopBGP(node) })
	}
	for _, host := range slices.Sorted(maps.Keys(r.routers)) {
		if rr := r.routers[host]; rr.cur != nil {
			n.After(0, "stop router "+host, rr.cur.Stop)
		}
	}
	n.RunFor(time.Second)
	r.res.Stalls = n.Stalls()
	if err := n.Flush(); err != nil {
		return nil, err
	}
	r.measureOutages(end)
	r.judge(end)
	slices.SortStableFunc(r.res.Timeline, func(a, b Entry) int { return cmp.Compare(a.At, b.At) })
	return r.res, nil
}

func (r *runner) loadConfig() error {
	var sources []config.Source
	if r.sc.Config.YAML != "" {
		sources = append(sources, config.Source{Name: "config", Data: []byte(r.sc.Config.YAML)})
	}
	for _, f := range r.sc.ConfigFiles {
		path := f
		if !filepath.IsAbs(path) {
			path = filepath.Join(r.sc.dir, f)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("configFiles: %w", err)
		}
		sources = append(sources, config.Source{Name: f, Data: data})
	}
	res, err := config.Load(sources...)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	r.cfg = res.Config
	return nil
}

// assignAddresses gives the Services their VIPs as the controller would.
func (r *runner) assignAddresses() error {
	alloc := ipam.New(r.cfg, ipam.Options{})
	for i := range r.sc.Services {
		spec := &r.sc.Services[i]
		svc := ipam.Service{
			Namespace:             spec.Namespace,
			Name:                  spec.Name,
			FamilyPolicy:          ipam.FamilyPolicy(spec.IPFamilyPolicy),
			RequestedIPs:          spec.LoadBalancerIPs,
			RequestedPool:         spec.Pool,
			ExternalTrafficPolicy: ipam.TrafficPolicy(spec.ExternalTrafficPolicy),
			Ports:                 []ipam.Port{{Protocol: "TCP", Port: 80}},
		}
		for _, f := range spec.IPFamilies {
			if f == "IPv4" {
				svc.Families = append(svc.Families, ipam.IPv4)
			} else {
				svc.Families = append(svc.Families, ipam.IPv6)
			}
		}
		a, err := alloc.Allocate(&svc)
		if err != nil {
			return fmt.Errorf("services[%d] (%s): no address: %w", i, spec.Key(), err)
		}
		r.services = append(r.services, speaker.Service{
			Namespace: spec.Namespace, Name: spec.Name, VIPs: a.IPs, Pool: a.Pool,
			ExternalTrafficPolicy: speaker.TrafficPolicy(spec.ExternalTrafficPolicy),
		})
		if len(spec.Endpoints) > 0 {
			r.endpoints[spec.Key()] = endpointsOf(spec.Endpoints)
		}
	}
	for i := range r.services {
		r.byKey[r.services[i].Key().String()] = &r.services[i]
	}
	return nil
}

func endpointsOf(specs []EndpointSpec) []speaker.Endpoint {
	eps := make([]speaker.Endpoint, 0, len(specs))
	for _, s := range specs {
		eps = append(eps, speaker.Endpoint{Node: s.Node, Ready: s.Ready == nil || *s.Ready})
	}
	return eps
}

// startSpeaker starts a fresh speaker on a powered-on node and hands it the cluster state.
func (r *runner) startSpeaker(node string) error {
	nio, err := r.net.NetIO(node)
	if err != nil {
		return err
	}
	r.starts[node]++
	set := r.sc.Speaker
	sp, err := speaker.New(speaker.Config{Liveness: liveness.Config{
		NodeName:      node,
		Key:           heartbeatKey,
		Incarnation:   r.starts[node],
		Interval:      set.HeartbeatInterval.Duration,
		Multiplier:    set.Multiplier,
		MaxMultiplier: set.MaxMultiplier,
	}})
	if err != nil {
		return err
	}
	b, err := attach.Start(nio, sp, attach.Options{
		Logger:  r.net.Trace().Logger("speaker/" + node),
		OnEvent: func(ev speaker.Event) { r.speakerEvent(node, ev) },
	})
	if err != nil {
		return err
	}
	r.bindings[node] = b
	r.entry(node, "speaker started")
	err = errors.Join(b.SetConfig(r.cfg), b.SetNodes(r.nodes), b.SetServices(r.services), b.SetAllEndpoints(r.endpoints))
	index := slices.IndexFunc(r.sc.Topology.Nodes, func(h sim.Host) bool { return h.Name == node })
	return errors.Join(err, r.startBGP(node, index))
}

func (r *runner) entry(who, what string) {
	r.res.Timeline = append(r.res.Timeline, Entry{At: r.net.Elapsed(), Who: who, What: what})
}

func (r *runner) speakerEvent(node string, ev speaker.Event) {
	r.entry(node, ev.String())
	switch ev.Kind {
	case speaker.EventOwn:
		r.setOwner(ev.VIP, node, true)
	case speaker.EventDisown:
		r.setOwner(ev.VIP, node, false)
	}
}

func (r *runner) setOwner(vip netip.Addr, node string, owns bool) {
	now := r.net.Elapsed()
	open := r.owners[vip]
	if open == nil {
		open = map[string]int{}
		r.owners[vip] = open
	}
	i, isOpen := open[node]
	switch {
	case owns && !isOpen:
		open[node] = len(r.intervals)
		r.intervals = append(r.intervals, ownership{VIP: vip, Node: node, From: now, To: -1})
	case !owns && isOpen:
		r.intervals[i].To = now
		delete(open, node)
	}
}

// releaseAll ends every ownership of a node that went dark (powered off).
func (r *runner) releaseAll(node string) {
	for _, vip := range slices.SortedFunc(maps.Keys(r.owners), netip.Addr.Compare) {
		r.setOwner(vip, node, false)
	}
}

func (r *runner) scheduleProbes() error {
	for i := range r.sc.Clients {
		spec := &r.sc.Clients[i]
		c, err := r.net.Client(spec.Client)
		if err != nil {
			return err
		}
		var targets []netip.Addr
		if spec.Service != "" {
			targets = r.byKey[spec.Service].VIPs
		} else {
			targets = []netip.Addr{spec.Target}
		}
		for _, t := range targets {
			port := spec.Port
			if spec.Kind != sim.ProbeTCP {
				port = 0
			}
			p := probe{client: c, spec: spec, target: netip.AddrPortFrom(t, port)}
			r.probes = append(r.probes, p)
			r.net.At(spec.Start.Duration, "probe "+spec.Client+" → "+p.target.String(), func() {
				err := c.StartProbe(sim.Probe{Kind: spec.Kind, Target: p.target, Interval: spec.Interval.Duration, Timeout: spec.Timeout.Duration})
				if err != nil {
					r.problem("client %s: %v", spec.Client, err)
				}
			})
		}
	}
	return nil
}

func (r *runner) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.res.Problems = append(r.res.Problems, fmt.Sprintf("%.6fs: %s", r.net.Elapsed().Seconds(), msg))
	r.entry("script", "problem: "+msg)
	r.net.Trace().Emit("script", "problem", slog.String("error", msg))
}

// resolve turns a NodeRef into a node name.
func (r *runner) resolve(ref NodeRef) (string, error) {
	if ref.Node != "" {
		return ref.Node, nil
	}
	owners := r.ownersAt(r.byKey[ref.OwnerOf].VIPs[0], r.net.Elapsed())
	if len(owners) != 1 {
		return "", fmt.Errorf("ownerOf %s: %d nodes own it (%v), need exactly one", ref.OwnerOf, len(owners), owners)
	}
	return owners[0], nil
}

// apply carries out one event.
func (r *runner) apply(e *Event) {
	if err := r.applyErr(e); err != nil {
		r.problem("event %q: %v", e.Name, err)
	}
}

func (r *runner) applyErr(e *Event) error {
	n := r.net
	host := func(l *LinkRef) (string, error) {
		if l.Host != "" {
			return l.Host, nil
		}
		return r.resolve(l.NodeRef)
	}
	switch {
	case e.Crash != nil:
		node, err := r.resolve(*e.Crash)
		if err != nil {
			return err
		}
		r.entry("script", "crash "+node+" (power off, no leave)")
		delete(r.bindings, node)
		r.releaseAll(node)
		err = n.PowerOff(node)
		r.stopBGP(node) // after the power is gone: its goodbye never reaches the wire
		return err
	case e.PowerOn != nil:
		node, err := r.resolve(*e.PowerOn)
		if err != nil {
			return err
		}
		r.entry("script", "power on "+node)
		if err := n.PowerOn(node); err != nil {
			return err
		}
		return r.startSpeaker(node)
	case e.Stop != nil:
		node, err := r.resolve(*e.Stop)
		if err != nil {
			return err
		}
		b := r.bindings[node]
		if b == nil {
			return fmt.Errorf("node %s runs no speaker", node)
		}
		r.entry("script", "stop speaker on "+node+" (graceful)")
		delete(r.bindings, node)
		b.Stop()
		r.stopBGP(node)
		return nil
	case e.Start != nil:
		node, err := r.resolve(*e.Start)
		if err != nil {
			return err
		}
		if r.bindings[node] != nil {
			return fmt.Errorf("node %s already runs a speaker", node)
		}
		r.entry("script", "start speaker on "+node)
		return r.startSpeaker(node)
	case e.Isolate != nil:
		node, err := r.resolve(e.Isolate.NodeRef)
		if err != nil {
			return err
		}
		r.entry("script", "isolate "+node+" on segment "+e.Isolate.Segment)
		return n.Partition(e.Isolate.Segment, []string{node})
	case e.Heal != nil:
		r.entry("script", "heal segment "+e.Heal.Segment)
		return n.Heal(e.Heal.Segment)
	case e.LinkDown != nil, e.LinkUp != nil:
		l, up := e.LinkDown, false
		if l == nil {
			l, up = e.LinkUp, true
		}
		h, err := host(l)
		if err != nil {
			return err
		}
		r.entry("script", fmt.Sprintf("link %s/%s %s", h, l.Interface, map[bool]string{true: "up", false: "down"}[up]))
		return n.SetLink(h, l.Interface, up)
	case e.Impair != nil:
		h, err := host(&e.Impair.LinkRef)
		if err != nil {
			return err
		}
		l := e.Impair.Link
		r.entry("script", fmt.Sprintf("impair %s/%s: loss %g, duplicate %g, delay %v", h, e.Impair.Interface, l.Loss, l.Duplicate, l.Delay.Duration))
		return n.SetImpairment(h, e.Impair.Interface, l)
	case e.Endpoints != nil:
		key := r.byKey[e.Endpoints.Service].Key()
		eps := endpointsOf(e.Endpoints.Endpoints)
		r.endpoints[key] = eps
		r.entry("script", fmt.Sprintf("endpoints of %s now %s", key, describeEndpoints(eps)))
		var errs []error
		for _, node := range slices.Sorted(maps.Keys(r.bindings)) {
			errs = append(errs, r.bindings[node].SetEndpoints(key, eps))
		}
		for _, node := range slices.Sorted(maps.Keys(r.bgp)) {
			r.bgp[node].SetEndpoints(key, eps)
		}
		return errors.Join(errs...)
	case e.RestartRouter != nil:
		return r.restartRouter(e)
	}
	return errors.New("event has no action")
}

func describeEndpoints(eps []speaker.Endpoint) string {
	s := ""
	for i, ep := range eps {
		if i > 0 {
			s += ", "
		}
		s += ep.Node
		if !ep.Ready {
			s += " (not ready)"
		}
	}
	if s == "" {
		return "none"
	}
	return s
}

// ownersAt returns the nodes owning vip at t, sorted.
func (r *runner) ownersAt(vip netip.Addr, t time.Duration) []string {
	var out []string
	for _, o := range r.intervals {
		if o.VIP == vip && o.From <= t && (o.To < 0 || t < o.To) {
			out = append(out, o.Node)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
