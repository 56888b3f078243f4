package election_test

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/core/config"
	"github.com/switchyard-lb/switchyard/core/election"
	"github.com/switchyard-lb/switchyard/core/l2"
	"github.com/switchyard-lb/switchyard/core/liveness"
)

// speaker is the smallest composition of the three sans-I/O packages a real speaker makes:
// heartbeats feed liveness, liveness feeds the election, the election drives the responder.
type speaker struct {
	name   string
	mac    net.HardwareAddr
	linkUp bool
	det    *liveness.Detector
	resp   *l2.Responder
	owner  string // this speaker's view of the VIP's owner
}

// segment is one L2 segment in virtual time. Every heartbeat reaches every other speaker whose
// link is up, as long as the sender's link is up too.
type segment struct {
	t        *testing.T
	start    time.Time
	now      time.Time
	speakers []*speaker
	vip      netip.Addr
	electing bool     // false while speakers are still hearing each other for the first time
	log      []string // "at node what"
}

var (
	vip     = netip.MustParseAddr("192.0.2.10")
	subnet  = netip.MustParsePrefix("192.0.2.0/24")
	secret  = []byte("compose-test-secret")
	adverts = []*config.L2Advertisement{{Name: "l2"}}
)

func newSegment(t *testing.T, names ...string) *segment {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &segment{t: t, start: start, now: start, vip: vip}
	for i, name := range names {
		sp := &speaker{name: name, mac: net.HardwareAddr{2, 0, 0, 0, 0, byte(i + 1)}, linkUp: true}
		var err error
		if sp.det, err = liveness.NewDetector(liveness.Config{NodeName: name, Incarnation: 1, Key: secret}); err != nil {
			t.Fatal(err)
		}
		if _, err := sp.det.AddInterface("eth0", sp.mac, true, start); err != nil {
			t.Fatal(err)
		}
		if sp.resp, err = l2.NewResponder(l2.Config{}); err != nil {
			t.Fatal(err)
		}
		if _, err := sp.resp.SetInterface("eth0", sp.mac, true, start); err != nil {
			t.Fatal(err)
		}
		s.speakers = append(s.speakers, sp)
	}
	return s
}

func (s *segment) record(sp *speaker, format string, args ...any) {
	s.log = append(s.log, fmt.Sprintf("%v %s %s", s.now.Sub(s.start), sp.name, fmt.Sprintf(format, args...)))
}

// elect runs sp's election on sp's own view of the segment and applies the result.
func (s *segment) elect(sp *speaker) {
	var nodes []election.Node
	for _, other := range s.speakers {
		live := sp.linkUp
		if other != sp {
			live = sp.det.Alive("eth0", other.name)
		}
		nodes = append(nodes, election.Node{Name: other.name, Interfaces: []election.Interface{{Name: "eth0", Prefixes: []netip.Prefix{subnet}, Live: live}}})
	}
	r, err := election.Elect(election.Input{IPs: []netip.Addr{s.vip}, Nodes: nodes, Advertisements: adverts})
	if err != nil {
		s.t.Fatal(err)
	}
	if r.Owner == sp.owner {
		return
	}
	was := sp.owner
	sp.owner = r.Owner
	switch {
	case r.Owner == sp.name:
		out, err := sp.resp.Own(s.vip, r.Candidates[0].Announcements[0].Interfaces, s.now)
		if err != nil {
			s.t.Fatal(err)
		}
		s.record(sp, "takes over (%d frames)", len(out.Frames))
	case was == sp.name && r.Owner == "":
		sp.resp.Disown(s.vip)
		s.record(sp, "gives the VIP up: %v", r.Reason)
	case was == sp.name:
		sp.resp.Disown(s.vip)
		s.record(sp, "hands over to %s", r.Owner)
	}
}

// run advances virtual time to until, stepping from deadline to deadline.
func (s *segment) run(until time.Duration) {
	for {
		next := time.Time{}
		for _, sp := range s.speakers {
			for _, d := range []time.Time{sp.det.NextDeadline(), sp.resp.NextDeadline()} {
				if !d.IsZero() && (next.IsZero() || d.Before(next)) {
					next = d
				}
			}
		}
		if next.IsZero() || next.Sub(s.start) > until {
			s.now = s.start.Add(until)
			return
		}
		s.now = next
		for _, sp := range s.speakers {
			frames, events := sp.det.Tick(s.now)
			s.handle(sp, events)
			for _, f := range frames {
				for _, rcv := range s.speakers {
					if rcv == sp || !sp.linkUp || !rcv.linkUp {
						continue
					}
					if ev, ok := rcv.det.HandleFrame("eth0", f.Frame, s.now); ok {
						s.handle(rcv, []liveness.Event{ev})
					}
				}
			}
			sp.resp.Tick(s.now)
		}
	}
}

func (s *segment) handle(sp *speaker, events []liveness.Event) {
	if len(events) == 0 || !s.electing {
		return
	}
	was := sp.owner
	s.elect(sp)
	if was != sp.name || sp.owner != sp.name {
		return
	}
	for _, ev := range events {
		if ev.Alive {
			// A peer is back while we kept the VIP: a partition may have healed, and its side
			// may have learnt another MAC for the VIP meanwhile.
			out := sp.resp.Reannounce(s.now)
			s.record(sp, "re-announces (%d frames)", len(out.Frames))
			return
		}
	}
}

// TestFailoverAndFailback: three speakers, node-c owns the VIP (hash order c, b, a). Its link
// goes down at 5 s; the others heard its last heartbeat at 4.9 s and node-b takes over exactly
// 300 ms later. The link comes back at 8 s; after three heartbeats node-c is alive again
// everywhere, owns the VIP again and re-announces it, while node-b hands it back. The election
// is stateless, so the VIP fails back to its preferred owner.
func TestFailoverAndFailback(t *testing.T) {
	s := newSegment(t, "node-a", "node-b", "node-c")
	s.run(time.Second) // let everyone hear everyone
	s.electing = true
	for _, sp := range s.speakers {
		s.elect(sp)
	}
	s.run(5*time.Second - time.Millisecond)
	s.speakers[2].linkUp = false
	s.run(8*time.Second - time.Millisecond)
	s.speakers[2].linkUp = true
	s.run(10 * time.Second)

	want := []string{
		"1s node-c takes over (2 frames)",
		// node-b and node-a hear node-c's last heartbeat at 4.9 s; 300 ms later it is dead.
		"5.2s node-b takes over (2 frames)",
		// node-c's own link is down, so it is not live on the segment in its own view either.
		"5.2s node-c gives the VIP up: no eligible node is live on the IPs' segments",
		// Heartbeats at 8.0, 8.1, 8.2 s: node-c hears node-a rise first and takes the VIP
		// back, then node-b rise, which makes it re-announce to node-b's side.
		"8.2s node-c takes over (2 frames)",
		"8.2s node-c re-announces (2 frames)",
		"8.2s node-b hands over to node-c",
	}
	if !slices.Equal(s.log, want) {
		t.Fatalf("log:\n%v\nwant:\n%v", s.log, want)
	}
	for _, sp := range s.speakers {
		if sp.owner != "node-c" {
			t.Errorf("%s thinks %q owns the VIP, want node-c", sp.name, sp.owner)
		}
	}
}
