package scenarios

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-lb/switchyard/core/config"
	"github.com/switchyard-lb/switchyard/netio/attach"
	"github.com/switchyard-lb/switchyard/sim/bgprouter"
)

// BGP mode in scenarios: routers of the topology run sim/bgprouter, every node whose
// configuration has BGPPeers runs the BGP runtime of netio/attach next to its layer-2 speaker,
// and expectations look at the routers' routes and at which node served which connection.

// BGPRouterSpec runs a simulated BGP router (sim/bgprouter) on a host of topology.routers.
type BGPRouterSpec struct {
	// Host is the router host in topology.routers.
	Host string `json:"host"`
	// ASN is the router's AS number.
	ASN uint32 `json:"asn"`
	// PeerASN, when set, is the AS every neighbour must have.
	PeerASN uint32 `json:"peerASN,omitempty"`
	// Neighbors are the ranges neighbours may connect from (a `bgp listen range`).
	Neighbors []netip.Prefix `json:"neighbors"`
	// HoldTime is the hold time the router offers (default 90s).
	HoldTime Duration `json:"holdTime,omitempty"`
	// BFDProfile names a BFDProfile of the scenario's configuration; the router runs BFD with
	// it towards every established neighbour.
	BFDProfile string `json:"bfdProfile,omitempty"`
}

// RouterRestart powers a BGP router off and boots it again DownFor later.
type RouterRestart struct {
	Router  string   `json:"router"`
	DownFor Duration `json:"downFor"`
}

// NextHopsExpectation says what a router's route to each of a Service's VIPs is at a time:
// how many next hops (Count), or which nodes they are (Nodes; an empty list means no route).
type NextHopsExpectation struct {
	Router  string   `json:"router,omitempty"`
	Service string   `json:"service"`
	At      Duration `json:"at"`
	Count   *int     `json:"count,omitempty"`
	Nodes   []string `json:"nodes,omitempty"`
}

// FlowSpreadExpectation says every node (or every node of Nodes) served at least Min of the
// client connections to the Service's VIPs made in [From, To); with Nodes, the other nodes
// served none. With MaxFailed, at most that many client attempts to the VIPs started in the
// window failed.
type FlowSpreadExpectation struct {
	Service   string   `json:"service"`
	From      Duration `json:"from,omitempty"`
	To        Duration `json:"to"`
	Min       int      `json:"min"`
	Nodes     []string `json:"nodes,omitempty"`
	MaxFailed *int     `json:"maxFailed,omitempty"`
}

// NextHopRemovedExpectation bounds how long after an event a router stops routing a
// Service's VIPs to a node: at most Max, and at least Min when given (a removal that is too
// early shows the wrong mechanism at work, e.g. hold time instead of BFD). Node defaults to
// the node the event crashes.
type NextHopRemovedExpectation struct {
	Router  string   `json:"router,omitempty"`
	Service string   `json:"service"`
	Event   string   `json:"event"`
	Node    string   `json:"node,omitempty"`
	Min     Duration `json:"min,omitempty"`
	Max     Duration `json:"max"`
}

// ReadvertisedExpectation says that after a restartRouter event the router, once booted,
// again has every route it had before the restart, with the same next hops, within Within.
type ReadvertisedExpectation struct {
	Event  string   `json:"event"`
	Within Duration `json:"within"`
}

// validateBGP checks the bgpRouters section.
func (sc *Scenario) validateBGP() (map[string]bool, error) {
	hosts := map[string]bool{}
	for _, h := range sc.Topology.Routers {
		hosts[h.Name] = true
	}
	routers := map[string]bool{}
	for i, r := range sc.BGPRouters {
		where := fmt.Sprintf("bgpRouters[%d]", i)
		switch {
		case !hosts[r.Host]:
			return nil, fmt.Errorf("%s.host: %q is not in topology.routers", where, r.Host)
		case routers[r.Host]:
			return nil, fmt.Errorf("%s.host: %q runs a router already", where, r.Host)
		case r.ASN == 0:
			return nil, fmt.Errorf("%s.asn: is required", where)
		case len(r.Neighbors) == 0:
			return nil, fmt.Errorf("%s.neighbors: at least one range is required", where)
		case r.HoldTime.Duration != 0 && r.HoldTime.Duration < 3*time.Second:
			return nil, fmt.Errorf("%s.holdTime: %v is below 3s", where, r.HoldTime)
		}
		for j, p := range r.Neighbors {
			if !p.IsValid() {
				return nil, fmt.Errorf("%s.neighbors[%d]: a prefix such as 10.0.0.0/24 is required", where, j)
			}
		}
		routers[r.Host] = true
	}
	return routers, nil
}

// checkBGPExpectation validates the BGP expectations of one entry and returns how many are
// set.
func (sc *Scenario) checkBGPExpectation(where string, x *Expectation, routers, nodes, events map[string]bool,
	checkService func(string, string) error) (int, error) {
	set := 0
	var err error
	router := func(field string, name *string) error {
		if *name == "" && len(sc.BGPRouters) == 1 {
			*name = sc.BGPRouters[0].Host
		}
		if !routers[*name] {
			return fmt.Errorf("%s: %q is not in bgpRouters (give router when there are several)", field, *name)
		}
		return nil
	}
	nodeList := func(field string, list []string) error {
		for i, n := range list {
			if !nodes[n] {
				return fmt.Errorf("%s[%d]: %q is not in topology.nodes", field, i, n)
			}
		}
		return nil
	}
	keep := func(e error) {
		if err == nil {
			err = e
		}
	}
	if h := x.NextHops; h != nil {
		set++
		keep(router(where+".nextHops.router", &h.Router))
		keep(checkService(where+".nextHops.service", h.Service))
		if (h.Count == nil) == (h.Nodes == nil) {
			keep(fmt.Errorf("%s.nextHops: exactly one of count and nodes is required", where))
		}
		keep(nodeList(where+".nextHops.nodes", h.Nodes))
	}
	if f := x.FlowSpread; f != nil {
		set++
		keep(checkService(where+".flowSpread.service", f.Service))
		if f.To.Duration <= f.From.Duration {
			keep(fmt.Errorf("%s.flowSpread.to: must be after from", where))
		}
		if f.Min < 1 {
			keep(fmt.Errorf("%s.flowSpread.min: must be at least 1", where))
		}
		if f.MaxFailed != nil && *f.MaxFailed < 0 {
			keep(fmt.Errorf("%s.flowSpread.maxFailed: must not be negative", where))
		}
		keep(nodeList(where+".flowSpread.nodes", f.Nodes))
	}
	if rm := x.NextHopRemoved; rm != nil {
		set++
		keep(router(where+".nextHopRemoved.router", &rm.Router))
		keep(checkService(where+".nextHopRemoved.service", rm.Service))
		if !events[rm.Event] {
			keep(fmt.Errorf("%s.nextHopRemoved.event: no event is named %q", where, rm.Event))
		} else if rm.Node == "" {
			for _, e := range sc.Events {
				if e.Name == rm.Event && e.Crash != nil && e.Crash.Node != "" {
					rm.Node = e.Crash.Node
				}
			}
			if rm.Node == "" {
				keep(fmt.Errorf("%s.nextHopRemoved.node: is required unless the event crashes a named node", where))
			}
		} else if !nodes[rm.Node] {
			keep(fmt.Errorf("%s.nextHopRemoved.node: %q is not in topology.nodes", where, rm.Node))
		}
		if rm.Max.Duration <= 0 || rm.Min.Duration < 0 || rm.Min.Duration > rm.Max.Duration {
			keep(fmt.Errorf("%s.nextHopRemoved: max must be positive and min within 0..max", where))
		}
	}
	if ra := x.Readvertised; ra != nil {
		set++
		i := slices.IndexFunc(sc.Events, func(e Event) bool { return e.Name == ra.Event })
		switch {
		case i < 0:
			keep(fmt.Errorf("%s.readvertised.event: no event is named %q", where, ra.Event))
		case sc.Events[i].RestartRouter == nil:
			keep(fmt.Errorf("%s.readvertised.event: %q is not a restartRouter event", where, ra.Event))
		}
		if ra.Within.Duration <= 0 {
			keep(fmt.Errorf("%s.readvertised.within: must be positive", where))
		}
	}
	return set, err
}

// routerRun is one BGP router of a run across its restarts.
type routerRun struct {
	spec BGPRouterSpec
	cfg  bgprouter.Config
	cur  *bgprouter.Router // nil while powered off
	// history is the route changes of every instance so far, times since the start; a
	// stopped instance's routes end with it.
	history []routeChange
	// restarts records, per restartRouter event, the routes before and the boot time.
	restarts map[string]*restartRecord
}

type routeChange struct {
	At       time.Duration
	Prefix   netip.Prefix
	NextHops []netip.Addr
}

type restartRecord struct {
	before map[netip.Prefix][]netip.Addr
	bootAt time.Duration
	booted bool
}

// startRouters starts every BGP router; called once the configuration is loaded.
func (r *runner) startRouters() error {
	r.routers = map[string]*routerRun{}
	for i, spec := range r.sc.BGPRouters {
		cfg := bgprouter.Config{ASN: spec.ASN, PeerASN: spec.PeerASN, Neighbors: spec.Neighbors,
			HoldTime: spec.HoldTime.Duration, Seed: r.seed, Logger: r.net.Trace().Logger("router/" + spec.Host)}
		if spec.BFDProfile != "" {
			j := slices.IndexFunc(r.cfg.BFDProfiles, func(p *config.BFDProfile) bool { return p.Name == spec.BFDProfile })
			if j < 0 {
				return fmt.Errorf("bgpRouters[%d].bfdProfile: the configuration has no BFDProfile %q", i, spec.BFDProfile)
			}
			cfg.BFD = r.cfg.BFDProfiles[j]
		}
		rr := &routerRun{spec: spec, cfg: cfg, restarts: map[string]*restartRecord{}}
		r.routers[spec.Host] = rr
		if err := r.bootRouter(rr); err != nil {
			return fmt.Errorf("bgpRouters[%d]: %w", i, err)
		}
	}
	return nil
}

func (r *runner) bootRouter(rr *routerRun) error {
	nio, err := r.net.NetIO(rr.spec.Host)
	if err != nil {
		return err
	}
	rt, err := bgprouter.Start(nio, rr.cfg)
	if err != nil {
		return err
	}
	rr.cur = rt
	r.entry(rr.spec.Host, "BGP router started")
	return nil
}

// shutRouter powers a router off and keeps what its instance saw.
func (r *runner) shutRouter(rr *routerRun) error {
	r.collectRouter(rr, true)
	if err := r.net.PowerOff(rr.spec.Host); err != nil {
		return err
	}
	rr.cur.Stop()
	rr.cur = nil
	return nil
}

// collectRouter moves the current instance's route history and neighbour events into the
// run; when the instance has ended, so have its routes.
func (r *runner) collectRouter(rr *routerRun, ended bool) {
	rt := rr.cur
	for _, c := range rt.History() {
		rr.history = append(rr.history, routeChange{At: c.At.Sub(r.start), Prefix: c.Prefix, NextHops: c.NextHops})
	}
	if ended {
		now := r.net.Elapsed()
		for _, p := range slices.SortedFunc(maps.Keys(rt.Routes()), comparePrefix) {
			rr.history = append(rr.history, routeChange{At: now, Prefix: p})
		}
	}
	for _, ev := range rt.Events() {
		what := fmt.Sprintf("neighbour %s (%s): %s", ev.Peer, r.nodeOf(ev.Peer), ev.Kind)
		if ev.Reason != "" {
			what += " (" + ev.Reason + ")"
		}
		r.res.Timeline = append(r.res.Timeline, Entry{At: ev.At.Sub(r.start), Who: rr.spec.Host, What: what})
	}
}

// finishRouters collects the routers still running at the end and adds route changes to the
// timeline.
func (r *runner) finishRouters() {
	for _, host := range slices.Sorted(maps.Keys(r.routers)) {
		rr := r.routers[host]
		if rr.cur != nil {
			r.collectRouter(rr, false)
		}
		for _, c := range rr.history {
			r.res.Timeline = append(r.res.Timeline, Entry{At: c.At, Who: host,
				What: fmt.Sprintf("route %s via %s", c.Prefix, r.describeHops(c.NextHops))})
		}
	}
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// nodeOf names the node that has addr, or returns addr itself.
func (r *runner) nodeOf(addr netip.Addr) string {
	for _, n := range r.sc.Topology.Nodes {
		for _, ifc := range n.Interfaces {
			for _, p := range ifc.Addrs {
				if p.Addr() == addr {
					return n.Name
				}
			}
		}
	}
	return addr.String()
}

func (r *runner) describeHops(hops []netip.Addr) string {
	if len(hops) == 0 {
		return "nothing (withdrawn)"
	}
	parts := make([]string, len(hops))
	for i, h := range hops {
		parts[i] = r.nodeOf(h)
	}
	return strings.Join(parts, ", ")
}

// routesAt replays a router's history up to and including t.
func (rr *routerRun) routesAt(t time.Duration) map[netip.Prefix][]netip.Addr {
	out := map[netip.Prefix][]netip.Addr{}
	for _, c := range rr.history {
		if c.At > t {
			break
		}
		if len(c.NextHops) == 0 {
			delete(out, c.Prefix)
		} else {
			out[c.Prefix] = c.NextHops
		}
	}
	return out
}

// lookup returns the next hops of the longest prefix containing vip.
func lookup(routes map[netip.Prefix][]netip.Addr, vip netip.Addr) []netip.Addr {
	best := -1
	var hops []netip.Addr
	for p, h := range routes {
		if p.Contains(vip) && p.Bits() > best {
			best, hops = p.Bits(), h
		}
	}
	return hops
}

// startBGP starts a node's BGP runtime when the configuration has BGPPeers.
func (r *runner) startBGP(node string, index int) error {
	if len(r.cfg.Peers) == 0 {
		return nil
	}
	nio, err := r.net.NetIO(node)
	if err != nil {
		return err
	}
	b, err := attach.StartBGP(nio, r.cfg, attach.BGPOptions{NodeName: node, NodeLabels: r.sc.NodeLabels[node],
		Seed: r.seed<<8 + uint64(index)<<4 + r.starts[node], Logger: r.net.Trace().Logger("bgp/" + node)})
	if err != nil {
		return err
	}
	b.SetServices(r.services)
	b.SetAllEndpoints(r.endpoints)
	r.bgp[node] = b
	r.entry(node, "BGP sessions started with "+strings.Join(b.Peers(), ", "))
	return nil
}

// stopBGP ends a node's BGP sessions: gracefully when the node runs on, silently when it has
// just been powered off (nothing reaches the wire any more).
func (r *runner) stopBGP(node string) {
	if b := r.bgp[node]; b != nil {
		b.Stop()
		delete(r.bgp, node)
	}
}

// restartRouter carries out a restartRouter event.
func (r *runner) restartRouter(e *Event) error {
	rr := r.routers[e.RestartRouter.Router]
	if rr.cur == nil {
		return fmt.Errorf("router %s is not running", rr.spec.Host)
	}
	rec := &restartRecord{before: rr.cur.Routes()}
	rr.restarts[e.Name] = rec
	r.entry("script", fmt.Sprintf("restart router %s (power off, %v down)", rr.spec.Host, e.RestartRouter.DownFor.Duration))
	if err := r.shutRouter(rr); err != nil {
		return err
	}
	r.net.After(e.RestartRouter.DownFor.Duration, "boot "+rr.spec.Host, func() {
		r.entry("script", "power on router "+rr.spec.Host)
		err := r.net.PowerOn(rr.spec.Host)
		if err == nil {
			err = r.bootRouter(rr)
		}
		if err != nil {
			r.problem("event %q: booting %s: %v", e.Name, rr.spec.Host, err)
			return
		}
		rec.bootAt, rec.booted = r.net.Elapsed(), true
	})
	return nil
}

// vipsOf returns a Service's VIPs.
func (r *runner) vipsOf(service string) []netip.Addr { return r.byKey[service].VIPs }

func (r *runner) judgeNextHops(x *NextHopsExpectation) Verdict {
	rr := r.routers[x.Router]
	want := ""
	if x.Count != nil {
		want = fmt.Sprintf("%d next hops", *x.Count)
	} else {
		want = "next hops " + describeNodes(x.Nodes)
	}
	v := Verdict{Expectation: fmt.Sprintf("%s routes %s at %v to %s", x.Router, x.Service, x.At.Duration, want), Pass: true}
	routes := rr.routesAt(x.At.Duration)
	var details []string
	for _, vip := range r.vipsOf(x.Service) {
		hops := lookup(routes, vip)
		nodes := make([]string, len(hops))
		for i, h := range hops {
			nodes[i] = r.nodeOf(h)
		}
		slices.Sort(nodes)
		if x.Count != nil && len(hops) != *x.Count || x.Count == nil && !slices.Equal(nodes, slices.Sorted(slices.Values(x.Nodes))) {
			v.Pass = false
		}
		details = append(details, fmt.Sprintf("%s via %s", vip, r.describeHops(hops)))
	}
	v.Detail = strings.Join(details, "; ")
	return v
}

func describeNodes(nodes []string) string {
	if len(nodes) == 0 {
		return "none"
	}
	return strings.Join(nodes, ", ")
}

func (r *runner) judgeFlowSpread(x *FlowSpreadExpectation) Verdict {
	who := "every node"
	if x.Nodes != nil {
		who = describeNodes(x.Nodes) + " (and no other node)"
	}
	v := Verdict{Expectation: fmt.Sprintf("%s served ≥ %d connections to %s in [%v, %v)", who, x.Min, x.Service, x.From.Duration, x.To.Duration), Pass: true}
	vips := r.vipsOf(x.Service)
	served := map[string]int{}
	for _, s := range r.net.Served() {
		if slices.Contains(vips, s.Local.Addr()) && s.At >= x.From.Duration && s.At < x.To.Duration {
			served[s.Node]++
		}
	}
	var details []string
	for _, n := range r.sc.Topology.Nodes {
		must := x.Nodes == nil || slices.Contains(x.Nodes, n.Name)
		switch {
		case must && served[n.Name] < x.Min:
			v.Pass = false
		case !must && served[n.Name] > 0:
			v.Pass = false
		}
		details = append(details, fmt.Sprintf("%s %d", n.Name, served[n.Name]))
	}
	v.Detail = "served: " + strings.Join(details, ", ")
	failed, attempts := 0, 0
	for _, p := range r.probes {
		for _, a := range p.client.Attempts() {
			if a.Target == p.target && slices.Contains(vips, a.Target.Addr()) && a.Start >= x.From.Duration && a.Start < x.To.Duration {
				attempts++
				if !succeeded(a) {
					failed++
				}
			}
		}
	}
	v.Detail += fmt.Sprintf("; %d of %d client attempts failed", failed, attempts)
	if x.MaxFailed != nil {
		v.Expectation += fmt.Sprintf(", ≤ %d attempts failed", *x.MaxFailed)
		if failed > *x.MaxFailed {
			v.Pass = false
		}
	}
	return v
}

func (r *runner) judgeNextHopRemoved(x *NextHopRemovedExpectation) Verdict {
	bounds := fmt.Sprintf("≤ %v", x.Max.Duration)
	if x.Min.Duration > 0 {
		bounds = fmt.Sprintf("within [%v, %v]", x.Min.Duration, x.Max.Duration)
	}
	v := Verdict{Expectation: fmt.Sprintf("%s stops routing %s to %s %s after %q", x.Router, x.Service, x.Node, bounds, x.Event)}
	i := slices.IndexFunc(r.sc.Events, func(e Event) bool { return e.Name == x.Event })
	at := r.sc.Events[i].At.Duration
	rr := r.routers[x.Router]
	var details []string
	pass := true
	for _, vip := range r.vipsOf(x.Service) {
		on := func(routes map[netip.Prefix][]netip.Addr) bool {
			return slices.ContainsFunc(lookup(routes, vip), func(a netip.Addr) bool { return r.nodeOf(a) == x.Node })
		}
		if !on(rr.routesAt(at)) {
			pass = false
			details = append(details, fmt.Sprintf("%s: %s was not a next hop when %q happened", vip, x.Node, x.Event))
			continue
		}
		removed := time.Duration(-1)
		for _, c := range rr.history {
			if c.At >= at && c.Prefix.Contains(vip) && !on(rr.routesAt(c.At)) {
				removed = c.At - at
				break
			}
		}
		switch {
		case removed < 0:
			pass = false
			details = append(details, fmt.Sprintf("%s: still routed to %s at the end", vip, x.Node))
		case removed > x.Max.Duration || removed < x.Min.Duration:
			pass = false
			details = append(details, fmt.Sprintf("%s: removed after %v", vip, removed))
		default:
			details = append(details, fmt.Sprintf("%s: removed after %v", vip, removed))
		}
	}
	v.Pass, v.Detail = pass, strings.Join(details, "; ")
	return v
}

func (r *runner) judgeReadvertised(x *ReadvertisedExpectation) Verdict {
	i := slices.IndexFunc(r.sc.Events, func(e Event) bool { return e.Name == x.Event })
	host := r.sc.Events[i].RestartRouter.Router
	v := Verdict{Expectation: fmt.Sprintf("%s has every route back within %v of booting after %q", host, x.Within.Duration, x.Event)}
	rr := r.routers[host]
	rec := rr.restarts[x.Event]
	switch {
	case rec == nil || !rec.booted:
		v.Detail = "the router did not boot again"
		return v
	case len(rec.before) == 0:
		v.Detail = "the router had no routes before the restart"
		return v
	}
	complete := func(t time.Duration) bool {
		now := rr.routesAt(t)
		for p, hops := range rec.before {
			if !slices.Equal(now[p], hops) {
				return false
			}
		}
		return true
	}
	for _, c := range rr.history {
		if c.At >= rec.bootAt && complete(c.At) {
			d := c.At - rec.bootAt
			v.Pass = d <= x.Within.Duration
			v.Detail = fmt.Sprintf("all %d routes back %v after boot", len(rec.before), d)
			return v
		}
	}
	var missing []string
	final := rr.routesAt(time.Duration(1<<63 - 1))
	for _, p := range slices.SortedFunc(maps.Keys(rec.before), comparePrefix) {
		if !slices.Equal(final[p], rec.before[p]) {
			missing = append(missing, fmt.Sprintf("%s via %s (now %s)", p, r.describeHops(rec.before[p]), r.describeHops(final[p])))
		}
	}
	v.Detail = "never complete; missing " + strings.Join(missing, ", ")
	return v
}
