package scenarios

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-lb/switchyard/sim"
)

// succeeded reports whether an attempt reached a serving node (or got its answer).
func succeeded(a sim.Attempt) bool { return a.Outcome == sim.OutcomeOK }

// measureOutages computes, for every measured event and every probe, the outage the client
// observed, and adds the recoveries to the timeline.
func (r *runner) measureOutages(end time.Duration) {
	for _, p := range r.probes {
		var attempts []sim.Attempt
		for _, a := range p.client.Attempts() {
			if a.Target == p.target {
				attempts = append(attempts, a)
			}
		}
		for i := range r.sc.Events {
			e := &r.sc.Events[i]
			if !*e.Measure {
				continue
			}
			o := outageAfter(attempts, e.At.Duration, end)
			o.Event, o.Client, o.Target = e.Name, p.client.Name(), p.target
			r.res.Outages = append(r.res.Outages, o)
			if o.Recovered {
				what := fmt.Sprintf("first success to %s after %q", p.target, e.Name)
				if o.ServedBy != "" {
					what += ", served by " + o.ServedBy
				}
				r.res.Timeline = append(r.res.Timeline, Entry{At: e.At.Duration + o.Duration, Who: p.client.Name(), What: what})
			}
		}
		for _, a := range attempts {
			if succeeded(a) {
				what := fmt.Sprintf("first successful connection to %s", p.target)
				if a.Node != "" {
					what += ", served by " + a.Node
				}
				r.res.Timeline = append(r.res.Timeline, Entry{At: a.End, Who: p.client.Name(), What: what})
				break
			}
		}
	}
}

// outageAfter measures what a client saw after an event at t: the first successful attempt
// started at or after t marks the recovery; the outage lasts from t to its end, unless every
// attempt started in between went through at once (then the client saw nothing: 0).
func outageAfter(attempts []sim.Attempt, t, end time.Duration) Outage {
	o := Outage{At: t}
	recovery := -1
	for i, a := range attempts {
		if a.Start >= t && succeeded(a) && (recovery < 0 || a.End < attempts[recovery].End) {
			recovery = i
		}
	}
	if recovery < 0 {
		o.Duration = end - t
		return o
	}
	rec := attempts[recovery]
	o.Recovered, o.ServedBy = true, rec.Node
	for _, a := range attempts {
		if a.Start >= t && a.Start < rec.Start && (!succeeded(a) || a.End > rec.End) {
			o.Duration = rec.End - t
			return o
		}
	}
	return o
}

// judge evaluates the expectations.
func (r *runner) judge(end time.Duration) {
	for _, x := range r.sc.Expect {
		var v Verdict
		switch {
		case x.MaxOutage != nil:
			v = r.judgeOutage(x.MaxOutage)
		case x.Owner != nil:
			v = r.judgeOwner(x.Owner)
		case x.NoFailover != nil:
			v = r.judgeNoFailover(x.NoFailover.Service)
		case x.SplitBrain != nil:
			v = r.judgeSplitBrain(x.SplitBrain, end)
		case x.OwnersInSubnet != nil:
			v = r.judgeSubnet(x.OwnersInSubnet)
		case x.SameOwner != nil:
			v = r.judgeSameOwner(x.SameOwner.Service)
		case x.ClientEndsOnOwner != nil:
			v = r.judgeClientEnd(x.ClientEndsOnOwner.Client, end)
		case x.NextHops != nil:
			v = r.judgeNextHops(x.NextHops)
		case x.FlowSpread != nil:
			v = r.judgeFlowSpread(x.FlowSpread)
		case x.NextHopRemoved != nil:
			v = r.judgeNextHopRemoved(x.NextHopRemoved)
		case x.Readvertised != nil:
			v = r.judgeReadvertised(x.Readvertised)
		}
		r.res.Verdicts = append(r.res.Verdicts, v)
	}
}

func (r *runner) judgeOutage(x *OutageExpectation) Verdict {
	v := Verdict{Expectation: fmt.Sprintf("client-observed outage ≤ %v", x.Max.Duration), Pass: true}
	if x.Event != "" {
		v.Expectation += fmt.Sprintf(" after %q", x.Event)
	}
	var details []string
	for _, o := range r.res.Outages {
		if x.Event != "" && o.Event != x.Event {
			continue
		}
		switch {
		case !o.Recovered:
			v.Pass = false
			details = append(details, fmt.Sprintf("%s → %s after %q: no successful attempt until the end", o.Client, o.Target, o.Event))
		case o.Duration > x.Max.Duration:
			v.Pass = false
			details = append(details, fmt.Sprintf("%s → %s after %q: %v", o.Client, o.Target, o.Event, o.Duration))
		default:
			details = append(details, fmt.Sprintf("%s → %s after %q: %v", o.Client, o.Target, o.Event, o.Duration))
		}
	}
	if len(details) == 0 {
		v.Pass = false
		details = append(details, "nothing was measured: no client probes, or no measured event")
	}
	v.Detail = strings.Join(details, "; ")
	return v
}

func (r *runner) judgeOwner(x *OwnerExpectation) Verdict {
	v := Verdict{Expectation: fmt.Sprintf("owner of %s at %v is %s", x.Service, x.At.Duration, x.Node), Pass: true}
	var details []string
	for _, vip := range r.byKey[x.Service].VIPs {
		owners := r.ownersAt(vip, x.At.Duration)
		got := strings.Join(owners, ",")
		if got == "" {
			got = "none"
		}
		if got != x.Node {
			v.Pass = false
		}
		details = append(details, fmt.Sprintf("%s owned by %s", vip, got))
	}
	v.Detail = strings.Join(details, "; ")
	return v
}

func (r *runner) judgeNoFailover(service string) Verdict {
	v := Verdict{Expectation: "no failover of " + service, Pass: true}
	var details []string
	for _, vip := range r.byKey[service].VIPs {
		var owners []string
		for _, o := range r.intervals {
			if o.VIP == vip {
				to := "the end"
				if o.To >= 0 {
					to = o.To.String()
				}
				owners = append(owners, fmt.Sprintf("%s from %v to %s", o.Node, o.From, to))
			}
		}
		if len(owners) != 1 {
			v.Pass = false
		}
		details = append(details, fmt.Sprintf("%s: %s", vip, strings.Join(owners, ", ")))
	}
	v.Detail = strings.Join(details, "; ")
	return v
}

// judgeSplitBrain measures, after each heal event, how long two or more nodes owned one of the
// Service's VIPs.
func (r *runner) judgeSplitBrain(x *SplitBrainExpectation, end time.Duration) Verdict {
	v := Verdict{Expectation: fmt.Sprintf("after a heal, two nodes own a VIP of %s for ≤ %v", x.Service, x.Max.Duration), Pass: true}
	var details []string
	for i, e := range r.sc.Events {
		if e.Heal == nil {
			continue
		}
		until := end
		for _, later := range r.sc.Events[i+1:] {
			if later.Heal == nil && later.Isolate == nil && later.LinkDown == nil {
				continue
			}
			until = later.At.Duration
			break
		}
		for _, vip := range r.byKey[x.Service].VIPs {
			d := r.multiOwned(vip, e.At.Duration, until)
			if d > x.Max.Duration {
				v.Pass = false
			}
			details = append(details, fmt.Sprintf("%s after %q: %v", vip, e.Name, d))
		}
	}
	if len(details) == 0 {
		v.Pass = false
		details = append(details, "the scenario has no heal event")
	}
	v.Detail = strings.Join(details, "; ")
	return v
}

// multiOwned returns how long in [from, until) vip had two or more owners.
func (r *runner) multiOwned(vip netip.Addr, from, until time.Duration) time.Duration {
	points := []time.Duration{from, until}
	for _, o := range r.intervals {
		if o.VIP != vip {
			continue
		}
		to := o.To
		if to < 0 {
			to = until
		}
		for _, t := range []time.Duration{o.From, to} {
			if t > from && t < until {
				points = append(points, t)
			}
		}
	}
	slices.Sort(points)
	points = slices.Compact(points)
	var total time.Duration
	for i := 0; i+1 < len(points); i++ {
		if len(r.ownersAt(vip, points[i])) >= 2 {
			total += points[i+1] - points[i]
		}
	}
	return total
}

func (r *runner) judgeSubnet(x *SubnetExpectation) Verdict {
	v := Verdict{Expectation: fmt.Sprintf("every owner of %s is on %s", x.Service, x.Subnet), Pass: true}
	onSubnet := map[string]bool{}
	for _, n := range r.sc.Topology.Nodes {
		for _, ifc := range n.Interfaces {
			for _, a := range ifc.Addrs {
				if x.Subnet.Contains(a.Addr()) {
					onSubnet[n.Name] = true
				}
			}
		}
	}
	seen := map[string]bool{}
	var owners []string
	for _, vip := range r.byKey[x.Service].VIPs {
		for _, o := range r.intervals {
			if o.VIP == vip && !seen[o.Node] {
				seen[o.Node] = true
				owners = append(owners, o.Node)
				if !onSubnet[o.Node] {
					v.Pass = false
				}
			}
		}
	}
	if len(owners) == 0 {
		v.Pass = false
		v.Detail = "nobody ever owned it"
		return v
	}
	v.Detail = "owners: " + strings.Join(owners, ", ")
	return v
}

func (r *runner) judgeSameOwner(service string) Verdict {
	vips := r.byKey[service].VIPs
	v := Verdict{Expectation: "all VIPs of " + service + " always have the same owner", Pass: true}
	var points []time.Duration
	for _, o := range r.intervals {
		if slices.Contains(vips, o.VIP) {
			points = append(points, o.From, o.To)
		}
	}
	slices.Sort(points)
	points = slices.Compact(points)
	changes := 0
	for _, t := range points {
		first := r.ownersAt(vips[0], t)
		for _, vip := range vips[1:] {
			if other := r.ownersAt(vip, t); !slices.Equal(first, other) {
				v.Pass = false
				v.Detail = fmt.Sprintf("at %v %s is owned by %v but %s by %v", t, vips[0], first, vip, other)
				return v
			}
		}
		changes++
	}
	v.Detail = fmt.Sprintf("%d VIPs, same owners at all %d ownership changes", len(vips), changes)
	return v
}

func (r *runner) judgeClientEnd(client string, end time.Duration) Verdict {
	v := Verdict{Expectation: client + " ends on the elected owner", Pass: true}
	var details []string
	for _, p := range r.probes {
		if p.client.Name() != client {
			continue
		}
		var last *sim.Attempt
		for _, a := range p.client.Attempts() {
			if a.Target == p.target && succeeded(a) && a.Node != "" {
				a := a
				last = &a
			}
		}
		owners := r.ownersAt(p.target.Addr(), end)
		switch {
		case last == nil:
			v.Pass = false
			details = append(details, fmt.Sprintf("%s: no successful attempt", p.target))
		case len(owners) != 1 || owners[0] != last.Node:
			v.Pass = false
			details = append(details, fmt.Sprintf("%s: last served by %s at %v, owners at the end %v", p.target, last.Node, last.End, owners))
		default:
			details = append(details, fmt.Sprintf("%s: last served by %s at %v, the owner", p.target, last.Node, last.End))
		}
	}
	if len(details) == 0 {
		v.Pass = false
		details = append(details, "the client probes nothing")
	}
	v.Detail = strings.Join(details, "; ")
	return v
}
