package speaker

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-lb/switchyard/core/liveness"
)

var (
	vip4 = netip.MustParseAddr("10.0.0.200")
	vip6 = netip.MustParseAddr("fd00::200")
)

// TestElectionOrder states the order core/election gives the test nodes for the test VIPs;
// the expectations of the tests below are written for it.
func TestElectionOrder(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c"}
	for _, svc := range []Service{web("10.0.0.200"), web("10.0.0.200", "fd00::200")} {
		if got, want := electionOrder(t, svc, nodes), []string{"node-b", "node-a", "node-c"}; !slices.Equal(got, want) {
			t.Errorf("order for %v = %v, want %v", svc.VIPs, got, want)
		}
	}
}

func TestStartupElectsOneOwnerAfterTheHold(t *testing.T) {
	l := newLAN(t, "node-a", "node-c", "node-b")
	l.setServices([]Service{web("10.0.0.200")})
	l.runUntil(299 * time.Millisecond)
	if got := l.owners(vip4); len(got) != 0 {
		t.Fatalf("owners during the hold = %v, want none", got)
	}
	l.runUntil(time.Second)
	want := []string{"300ms node-b owns 10.0.0.200 (default/web) on eth0"}
	if diff := cmp.Diff(want, l.ownershipLog()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	// The takeover burst: 3 announcements 100 ms apart.
	var announce []string
	for _, line := range l.log {
		if strings.Contains(line, "announces") {
			announce = append(announce, line)
		}
	}
	wantAnnounce := []string{
		"300ms node-b announces 10.0.0.200 on eth0",
		"400ms node-b announces 10.0.0.200 on eth0",
		"500ms node-b announces 10.0.0.200 on eth0",
	}
	if diff := cmp.Diff(wantAnnounce, announce); diff != "" {
		t.Errorf("announcements (-want +got):\n%s", diff)
	}
}

func TestFailover(t *testing.T) {
	tests := []struct {
		name  string
		event func(l *lan)
		want  []string
	}{{
		// Crash: no leave; the others detect the silence 3.5 intervals after the last heartbeat
		// (5.0 s), and the next in the order takes over.
		name:  "crash",
		event: func(l *lan) { l.crash("node-b") },
		want: []string{
			"300ms node-b owns 10.0.0.200 (default/web) on eth0",
			"5.05s node-b crashed",
			"5.35s node-a owns 10.0.0.200 (default/web) on eth0",
		},
	}, {
		// Graceful stop: the leave heartbeat hands over at once.
		name:  "stop",
		event: func(l *lan) { l.deliver("node-b", l.speakers["node-b"].Stop(l.now)); l.crash("node-b") },
		want: []string{
			"300ms node-b owns 10.0.0.200 (default/web) on eth0",
			"5.05s node-b releases 10.0.0.200 (default/web): speaker stopping",
			"5.05s node-b stopped, leave sent",
			"5.05s node-a owns 10.0.0.200 (default/web) on eth0",
			"5.05s node-b crashed",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLAN(t, "node-a", "node-c", "node-b")
			l.setServices([]Service{web("10.0.0.200")})
			l.runUntil(5050 * time.Millisecond)
			tt.event(l)
			l.runUntil(7 * time.Second)
			if diff := cmp.Diff(tt.want, l.ownershipLog()); diff != "" {
				t.Errorf("log (-want +got):\n%s", diff)
			}
			if got := l.owners(vip4); !slices.Equal(got, []string{"node-a"}) {
				t.Errorf("owners at the end = %v, want [node-a]", got)
			}
		})
	}
}

// TestPartitionHeal: the cut-off owner keeps its VIP, the others elect a new owner; after the
// heal the lower-ranked owner yields at the first heartbeat it hears (within one interval) and
// the elected owner re-announces.
func TestPartitionHeal(t *testing.T) {
	l := newLAN(t, "node-a", "node-c", "node-b")
	l.setServices([]Service{web("10.0.0.200")})
	l.runUntil(5050 * time.Millisecond)
	l.cut["node-b"] = true
	l.runUntil(7050 * time.Millisecond)
	if got := l.owners(vip4); !slices.Equal(got, []string{"node-a", "node-b"}) {
		t.Fatalf("owners during the partition = %v, want both sides' [node-a node-b]", got)
	}
	l.log = nil
	l.cut["node-b"] = false
	l.runUntil(8 * time.Second)
	want := []string{
		"7.1s node-b announces 10.0.0.200 on eth0",
		"7.1s node-a releases 10.0.0.200 (default/web): node-b ranks first",
		"7.2s node-b announces 10.0.0.200 on eth0",
		"7.3s node-b announces 10.0.0.200 on eth0",
	}
	if diff := cmp.Diff(want, l.log); diff != "" {
		t.Errorf("log after the heal (-want +got):\n%s", diff)
	}
}

// TestRestartTakesOverAtHoldEnd: a restarted node that ranks first takes its VIP back at the
// end of its hold, and the interim owner lets go at that same instant.
func TestRestartTakesOverAtHoldEnd(t *testing.T) {
	l := newLAN(t, "node-a", "node-c", "node-b")
	l.setServices([]Service{web("10.0.0.200")})
	l.runUntil(5050 * time.Millisecond)
	l.crash("node-b")
	l.runUntil(6050 * time.Millisecond)
	l.start("node-b")
	l.runUntil(7 * time.Second)
	want := []string{
		"300ms node-b owns 10.0.0.200 (default/web) on eth0",
		"5.05s node-b crashed",
		"5.35s node-a owns 10.0.0.200 (default/web) on eth0",
		"6.35s node-b owns 10.0.0.200 (default/web) on eth0",
		"6.35s node-a releases 10.0.0.200 (default/web): node-b ranks first",
	}
	if diff := cmp.Diff(want, l.ownershipLog()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

func TestDualStackVIPsMoveTogether(t *testing.T) {
	l := newLAN(t, "node-a", "node-c", "node-b")
	l.setServices([]Service{web("10.0.0.200", "fd00::200")})
	l.runUntil(5050 * time.Millisecond)
	l.crash("node-b")
	l.runUntil(6 * time.Second)
	want := []string{
		"300ms node-b owns 10.0.0.200 (default/web) on eth0",
		"300ms node-b owns fd00::200 (default/web) on eth0",
		"5.05s node-b crashed",
		"5.35s node-a owns 10.0.0.200 (default/web) on eth0",
		"5.35s node-a owns fd00::200 (default/web) on eth0",
	}
	if diff := cmp.Diff(want, l.ownershipLog()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

func TestEligibility(t *testing.T) {
	const selectorConfig = `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: [10.0.0.200-10.0.0.250, 10.0.5.200-10.0.5.250]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: quiet, namespace: metallb-system}
spec:
  addresses: [10.0.0.100-10.0.0.110]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: zone-c, namespace: metallb-system}
spec:
  ipAddressPools: [lan]
  nodeSelectors: [{matchLabels: {zone: c}}]
`
	ready, notReady := true, false
	tests := []struct {
		name      string
		svc       Service
		endpoints []Endpoint
		labels    map[string]map[string]string
		want      []string
	}{
		{"node selector picks the only matching node", web("10.0.0.200"), nil,
			map[string]map[string]string{"node-c": {"zone": "c"}}, []string{"node-c"}},
		{"no node matches the selector", web("10.0.0.200"), nil, nil, nil},
		{"pool without L2Advertisement", web("10.0.0.100"), nil,
			map[string]map[string]string{"node-a": {"zone": "c"}}, nil},
		{"VIP outside every interface's subnet", web("10.0.5.200"), nil,
			map[string]map[string]string{"node-a": {"zone": "c"}}, nil},
		{"Local: only the node with a ready endpoint",
			Service{Namespace: "default", Name: "web", VIPs: []netip.Addr{vip4}, ExternalTrafficPolicy: TrafficLocal},
			[]Endpoint{{Node: "node-a", Ready: notReady}, {Node: "node-c", Ready: ready}},
			map[string]map[string]string{"node-a": {"zone": "c"}, "node-b": {"zone": "c"}, "node-c": {"zone": "c"}},
			[]string{"node-c"}},
		{"Local: no ready endpoint, no owner",
			Service{Namespace: "default", Name: "web", VIPs: []netip.Addr{vip4}, ExternalTrafficPolicy: TrafficLocal},
			[]Endpoint{{Node: "node-a", Ready: notReady}},
			map[string]map[string]string{"node-a": {"zone": "c"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLAN(t, "node-a", "node-b", "node-c")
			l.cfg = loadConfig(t, selectorConfig)
			var nodes []Node
			for _, n := range l.names {
				nodes = append(nodes, Node{Name: n, Labels: tt.labels[n]})
			}
			l.everyone(func(sp *Speaker) (Output, error) { return sp.SetConfig(l.cfg, l.now) })
			l.everyone(func(sp *Speaker) (Output, error) { return sp.SetNodes(nodes, l.now) })
			l.everyone(func(sp *Speaker) (Output, error) { return sp.SetEndpoints(tt.svc.Key(), tt.endpoints, l.now) })
			l.setServices([]Service{tt.svc})
			l.runUntil(time.Second)
			if got := l.owners(tt.svc.VIPs[0]); !slices.Equal(got, tt.want) {
				t.Errorf("owners = %v, want %v", got, tt.want)
			}
		})
	}
}

func arpRequest(sender net.HardwareAddr, senderIP, target netip.Addr) []byte {
	f := make([]byte, 42)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], sender)
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	binary.BigEndian.PutUint16(f[14:], 1)      // Ethernet
	binary.BigEndian.PutUint16(f[16:], 0x0800) // IPv4
	f[18], f[19] = 6, 4
	binary.BigEndian.PutUint16(f[20:], 1) // request
	copy(f[22:28], sender)
	copy(f[28:32], senderIP.AsSlice())
	copy(f[38:42], target.AsSlice())
	return f
}

// TestInvalidInputKeepsAnnouncing: every invalid input is rejected with an error naming the
// object and field, and the owner keeps answering for its VIP.
func TestInvalidInputKeepsAnnouncing(t *testing.T) {
	l := newLAN(t, "node-a", "node-b")
	l.setServices([]Service{web("10.0.0.200")})
	l.runUntil(time.Second)
	sp := l.speakers["node-b"]
	badVIP := web("10.0.0.200")
	badVIP.VIPs = append(badVIP.VIPs, netip.MustParseAddr("10.0.0.201"))
	tests := []struct {
		name string
		call func() (Output, error)
		want string
	}{
		{"nil config", func() (Output, error) { return sp.SetConfig(nil, l.now) }, "speaker: configuration is nil"},
		{"two VIPs of one family", func() (Output, error) { return sp.SetServices([]Service{badVIP}, l.now) },
			"speaker: services[0] (default/web): vips: 10.0.0.200 and 10.0.0.201 are of the same family"},
		{"no VIP", func() (Output, error) { return sp.SetServices([]Service{{Namespace: "default", Name: "web"}}, l.now) },
			"speaker: services[0] (default/web): vips: has 0 addresses, want 1 or 2"},
		{"unknown traffic policy", func() (Output, error) {
			s := web("10.0.0.200")
			s.ExternalTrafficPolicy = "Nearby"
			return sp.SetServices([]Service{s}, l.now)
		}, `speaker: services[0] (default/web): externalTrafficPolicy: "Nearby" is not Cluster or Local`},
		{"duplicate Service", func() (Output, error) { return sp.SetServices([]Service{web("10.0.0.200"), web("10.0.0.201")}, l.now) },
			"speaker: services[1] (default/web): listed twice"},
		{"endpoint without node", func() (Output, error) {
			return sp.SetEndpoints(ServiceKey{"default", "web"}, []Endpoint{{Ready: true}}, l.now)
		}, "speaker: endpoints of default/web: [0]: node is empty"},
		{"duplicate node", func() (Output, error) { return sp.SetNodes([]Node{{Name: "node-b"}, {Name: "node-b"}}, l.now) },
			"speaker: nodes[1] (node-b): listed twice"},
		{"short MAC", func() (Output, error) {
			return sp.SetInterfaces([]Interface{{Name: "eth0", MAC: net.HardwareAddr{1, 2, 3}, Up: true}}, l.now)
		}, "speaker: interfaces[0] (eth0): hardware address 01:02:03 is not 6 bytes"},
	}
	for _, tt := range tests {
		out, err := tt.call()
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: error = %v, want %q", tt.name, err, tt.want)
		}
		if !out.empty() {
			t.Errorf("%s: rejected input produced output %+v", tt.name, out)
		}
		if got := sp.Owned(); !slices.Equal(got, []netip.Addr{vip4}) {
			t.Errorf("%s: owned = %v after the rejected input, want [%s]", tt.name, got, vip4)
		}
	}
	client := net.HardwareAddr{0x02, 0xcc, 0, 0, 0, 1}
	out := sp.HandleFrame("eth0", arpRequest(client, netip.MustParseAddr("10.0.0.100"), vip4), l.now)
	if len(out.Frames) != 1 {
		t.Fatalf("ARP request for the VIP after rejected inputs: %d frames, want 1 reply", len(out.Frames))
	}
	reply := out.Frames[0].Frame
	if got := net.HardwareAddr(reply[22:28]); got.String() != macOf("node-b").String() {
		t.Errorf("reply says %s is at %s, want node-b's %s", vip4, got, macOf("node-b"))
	}
	if out := l.speakers["node-a"].HandleFrame("eth0", arpRequest(client, netip.MustParseAddr("10.0.0.100"), vip4), l.now); len(out.Frames) != 0 {
		t.Errorf("node-a, not the owner, answered: %d frames", len(out.Frames))
	}
}

func TestMalformedFramesAreCountedAndDropped(t *testing.T) {
	l := newLAN(t, "node-a")
	sp := l.speakers["node-a"]
	hb := liveness.Heartbeat{Type: liveness.TypeHello, NodeName: "node-z", Incarnation: 1, Sequence: 1, Interval: 100 * time.Millisecond}
	good, err := hb.MarshalFrame(macOf("node-z"), []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := hb.MarshalFrame(macOf("node-z"), []byte("other key"))
	frames := [][]byte{
		nil,
		{1, 2, 3},
		good[:20],
		forged,
		append(slices.Clone(good[:14]), 9, 9, 9),
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, 0},
	}
	for _, f := range frames {
		if out := sp.HandleFrame("eth0", f, l.now); len(out.Frames) != 0 || len(out.Events) != 0 {
			t.Errorf("frame %x: output %+v, want nothing", f, out)
		}
	}
	c := sp.Counters()
	if c.Liveness.Malformed != 2 || c.Liveness.BadMAC != 1 || c.L2.Malformed != 1 {
		t.Errorf("counters = %+v, want 2 malformed and 1 forged heartbeat, 1 malformed ARP", c)
	}
	if out := sp.HandleFrame("eth0", good, l.now); len(out.Events) != 1 || out.Events[0].Peer != "node-z" || !out.Events[0].Alive {
		t.Errorf("a valid heartbeat after the bad ones: events %+v, want node-z candidate", out.Events)
	}
}

// TestIncrementalElectionMatchesFull: after peer changes the speaker re-elects only the
// Services they can affect; at every step a full election must find nothing to change.
func TestIncrementalElectionMatchesFull(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c", "node-d", "node-e"}
	l := newLAN(t, nodes...)
	var svcs []Service
	for i := range 40 {
		svc := web(fmt.Sprintf("10.0.0.%d", 200+i))
		svc.Name = fmt.Sprintf("web-%02d", i)
		svcs = append(svcs, svc)
	}
	l.setServices(svcs)
	steps := []struct {
		at   time.Duration
		what func()
	}{
		{5050 * time.Millisecond, func() { l.crash("node-b") }},
		{6 * time.Second, func() { l.cut["node-c"] = true }},
		{7 * time.Second, func() { l.start("node-b") }},
		{8 * time.Second, func() { l.cut["node-c"] = false }},
		{9 * time.Second, func() { l.deliver("node-d", l.speakers["node-d"].Stop(l.now)); l.crash("node-d") }},
		{10 * time.Second, func() { l.start("node-d") }},
	}
	checks := 0
	for _, step := range steps {
		for l.now.Before(epoch.Add(step.at)) {
			l.runUntil(l.now.Sub(epoch) + 50*time.Millisecond)
			for _, n := range nodes {
				sp := l.speakers[n]
				if l.crashed[n] || sp.Stopped() {
					continue
				}
				out := sp.electAll(l.now)
				for _, ev := range out.Events {
					if ev.Kind == EventOwn || ev.Kind == EventDisown {
						t.Fatalf("%v: %s: a full election changed ownership: %s", l.now.Sub(epoch), n, ev)
					}
				}
				checks++
			}
		}
		step.what()
	}
	l.runUntil(12 * time.Second)
	owned := 0
	for _, n := range nodes {
		owned += len(l.speakers[n].Owned())
	}
	if owned != len(svcs) || checks == 0 {
		t.Errorf("%d VIPs owned at the end, want %d (checks: %d)", owned, len(svcs), checks)
	}
}

// TestLinkFlap: a node whose interface goes down releases its VIPs at once (it can no longer
// answer there) and forgets the peers it heard there; the others take over when its
// heartbeats stop. When the link returns it heartbeats at once, and until it hears the others
// again it presumes the peers it had are still there, so it claims back exactly the VIPs it
// ranks first for, in the instant the interim owner yields them, and no others.
func TestLinkFlap(t *testing.T) {
	tests := []struct {
		node      string
		want      []string
		wantPeers []string
	}{{
		node: "node-b", // the owner
		want: []string{
			"300ms node-b owns 10.0.0.200 (default/web) on eth0",
			"5.05s node-b releases 10.0.0.200 (default/web): no eligible node is live on the IPs' segments",
			"5.35s node-a owns 10.0.0.200 (default/web) on eth0",
			"6s node-b owns 10.0.0.200 (default/web) on eth0",
			"6s node-a releases 10.0.0.200 (default/web): node-b ranks first",
		},
		wantPeers: []string{
			"5.05s peer node-a lost on eth0 (link down)",
			"5.05s peer node-c lost on eth0 (link down)",
			"6s peer node-a candidate on eth0 (presumed until heard, link up)",
			"6s peer node-c candidate on eth0 (presumed until heard, link up)",
		},
	}, {
		node: "node-a", // not the owner: it must not claim the VIP when its link returns
		want: []string{
			"300ms node-b owns 10.0.0.200 (default/web) on eth0",
		},
		wantPeers: []string{
			"5.05s peer node-b lost on eth0 (link down)",
			"5.05s peer node-c lost on eth0 (link down)",
			"6s peer node-b candidate on eth0 (presumed until heard, link up)",
			"6s peer node-c candidate on eth0 (presumed until heard, link up)",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.node, func(t *testing.T) {
			l := newLAN(t, "node-a", "node-b", "node-c")
			l.setServices([]Service{web("10.0.0.200")})
			l.runUntil(5050 * time.Millisecond)
			link := func(up bool) {
				l.cut[tt.node] = !up
				l.apply(tt.node, func(sp *Speaker) (Output, error) {
					return sp.SetInterfaces([]Interface{{Name: "eth0", MAC: macOf(tt.node), Up: up,
						Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fd00::1/64")}}}, l.now)
				})
			}
			var peerEvents []string
			l.onEvent = func(node string, ev Event) {
				if ev.Kind == EventPeer && node == tt.node {
					peerEvents = append(peerEvents, fmt.Sprintf("%v %s", l.now.Sub(epoch), ev))
				}
			}
			link(false)
			l.runUntil(6 * time.Second)
			link(true)
			l.runUntil(8 * time.Second)
			if diff := cmp.Diff(tt.want, l.ownershipLog()); diff != "" {
				t.Errorf("log (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantPeers, peerEvents); diff != "" {
				t.Errorf("%s's peer events (-want +got):\n%s", tt.node, diff)
			}
		})
	}
}
