package bgprouter

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// The router's behaviour in the rack of rackTopology: three nodes peering (eBGP, AS 64500 →
// 64512) with the router "tor" through netio/attach's BGP runtime, and a client on the far side
// of the router that opens TCP connections to the VIP. The BGP scenarios of the "BGP mode"
// issue themselves are scenarios/bgp-*.yaml; these tests check what only the router can tell:
// its flow accounting, its BFD and hold-timer events, and its trace.

var (
	host4 = netip.PrefixFrom(vip4, 32)
	host6 = netip.PrefixFrom(vip6, 128)
	all3  = addrs("10.10.0.11", "10.10.0.12", "10.10.0.13")
)

// With three next hops the router spreads the client's flows over all three, and its flow
// counts per next hop are exactly the connections each node served.
func TestECMPFlowAccounting(t *testing.T) {
	l := newLab(t, 1, nil)
	l.setService([]netip.Addr{vip4}, false, nodeNames...)
	l.net.RunFor(time.Second)
	if got := l.router.Established(); !slices.Equal(got, all3) {
		t.Fatalf("established neighbours %v, want %v", got, all3)
	}
	if got := l.hops(vip4); !slices.Equal(got, all3) {
		t.Fatalf("next hops of %s: %v, want %v", host4, got, all3)
	}
	l.probe(vip4, 50*time.Millisecond)
	l.net.RunFor(5 * time.Second)
	served := l.servedBy(vip4, time.Second, 6*time.Second)
	for _, n := range nodeNames {
		if served[n] < 10 {
			t.Errorf("node %s served %d of the client's connections, want at least 10 (all: %v)", n, served[n], served)
		}
	}
	if f := l.failedAttempts(vip4, time.Second, 5500*time.Millisecond); f != 0 {
		t.Errorf("%d client connections failed, want 0", f)
	}
	flows := l.router.Flows()
	t.Logf("flows per next hop %v; connections served per node %v", flows, served)
	total := 0
	for _, nh := range all3 {
		total += flows[nh]
	}
	if total != len(l.net.Served()) || len(flows) != 3 {
		t.Errorf("router flow counts %v (sum %d), want 3 next hops summing to the %d connections served", flows, total, len(l.net.Served()))
	}
	for i, n := range nodeNames {
		if flows[nodeAddr(i)] != served[n] {
			t.Errorf("router sent %d flows to %s, node %s served %d", flows[nodeAddr(i)], nodeAddr(i), n, served[n])
		}
	}
}

// With BFD 100 ms × 3 the router's BFD sessions come up with every neighbour, and the crashed
// node's goes down and takes its BGP session and next hop with it within 350 ms.
func TestBFDDownWithdrawsNeighbour(t *testing.T) {
	l := newLab(t, 1, fastBFD)
	l.setService([]netip.Addr{vip4}, false, nodeNames...)
	l.net.RunFor(3 * time.Second)
	if got := l.hops(vip4); !slices.Equal(got, all3) {
		t.Fatalf("next hops before the crash: %v, want %v", got, all3)
	}
	for _, ev := range l.router.Events() {
		if ev.Kind == EventBFDDown {
			t.Fatalf("BFD went down before the crash: %+v", ev)
		}
	}
	if n := countEvents(l.router.Events(), EventBFDUp); n != 3 {
		t.Fatalf("%d BFD sessions came up, want 3", n)
	}
	crashAt := l.net.Elapsed()
	l.crash("node-2")
	l.probe(vip4, 50*time.Millisecond)
	l.net.RunFor(3 * time.Second)
	remaining := addrs("10.10.0.11", "10.10.0.13")
	at, ok := l.changeAfter(host4, crashAt, remaining)
	if !ok {
		t.Fatalf("the router never dropped node-2's next hop; history %v", l.router.History())
	}
	if d := at - crashAt; d > 350*time.Millisecond || d < 200*time.Millisecond {
		t.Errorf("next hop removed %v after the crash, want within (200ms, 350ms]", d)
	} else {
		t.Logf("with BFD 100ms x 3 the router removed the crashed node's next hop %v after the crash", d)
	}
	if got := l.hops(vip4); !slices.Equal(got, remaining) {
		t.Errorf("next hops after the crash: %v, want %v", got, remaining)
	}
	if ev := lastEvent(l.router.Events(), EventBFDDown); ev.Peer != nodeAddr(1) {
		t.Errorf("BFD down event for %v, want %v", ev.Peer, nodeAddr(1))
	}
	served := l.servedBy(vip4, crashAt+time.Second, l.net.Elapsed())
	if served["node-2"] != 0 || served["node-1"] == 0 || served["node-3"] == 0 {
		t.Errorf("connections served after the failover %v, want node-1 and node-3 only", served)
	}
	if f := l.failedAttempts(vip4, crashAt+400*time.Millisecond, l.net.Elapsed()-time.Second); f != 0 {
		t.Errorf("%d connections failed after the route was withdrawn, want 0", f)
	}
}

// Without BFD the router notices a crashed neighbour only when the 9 s hold timer expires,
// between 6 s and 9 s after the crash (the last keepalive came up to 3 s before it).
func TestHoldTimerExpiry(t *testing.T) {
	l := newLab(t, 1, nil)
	l.setService([]netip.Addr{vip4}, false, nodeNames...)
	l.net.RunFor(3500 * time.Millisecond)
	crashAt := l.net.Elapsed()
	l.crash("node-2")
	l.net.RunFor(6 * time.Second)
	if got := l.hops(vip4); !slices.Equal(got, all3) {
		t.Fatalf("next hops 6s after the crash: %v, want all three still (hold time 9s)", got)
	}
	l.net.RunFor(4 * time.Second)
	remaining := addrs("10.10.0.11", "10.10.0.13")
	at, ok := l.changeAfter(host4, crashAt, remaining)
	if !ok {
		t.Fatalf("the router never dropped node-2's next hop; history %v", l.router.History())
	}
	if d := at - crashAt; d <= 6*time.Second || d > 9*time.Second {
		t.Errorf("next hop removed %v after the crash, want within (6s, 9s]", d)
	} else {
		t.Logf("without BFD the router removed the crashed node's next hop %v after the crash (hold time 9s)", d)
	}
	if ev := lastEvent(l.router.Events(), EventDown); ev.Peer != nodeAddr(1) || ev.Reason != "hold timer expired" {
		t.Errorf("last down event %+v, want node-2's hold timer", ev)
	}
}

// Same seed, same run: the router's route history and flow placement are identical.
func TestDeterministic(t *testing.T) {
	run := func() string {
		l := newLab(t, 7, fastBFD)
		l.setService([]netip.Addr{vip4, vip6}, false, nodeNames...)
		l.probe(vip4, 30*time.Millisecond)
		l.net.RunFor(time.Second)
		l.crash("node-3")
		l.net.RunFor(time.Second)
		start := l.net.Clock().Now().Add(-l.net.Elapsed())
		s := ""
		for _, c := range l.router.History() {
			s += fmt.Sprintf("%v %v %v\n", c.At.Sub(start), c.Prefix, c.NextHops)
		}
		if err := l.net.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(l.trace.Bytes(), []byte(`"router/tor"`)) {
			t.Error("the trace has no router events")
		}
		return s + fmt.Sprint(l.router.Flows(), l.net.Served()) + "\n" + l.trace.String()
	}
	a, b := run(), run()
	if a != b {
		t.Fatalf("two runs with one seed differ (route history, flows, connections or trace):\n%.2000s\n---\n%.2000s", a, b)
	}
}

func countEvents(evs []Event, kind EventKind) int {
	n := 0
	for _, e := range evs {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func lastEvent(evs []Event, kind EventKind) Event {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == kind {
			return evs[i]
		}
	}
	return Event{}
}
