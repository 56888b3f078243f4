package election

import (
	"crypto/sha256"
	"net/netip"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/switchyard-lb/switchyard/core/config"
)

var (
	vip4   = netip.MustParseAddr("192.0.2.10")
	vip6   = netip.MustParseAddr("2001:db8::10")
	lan4   = netip.MustParsePrefix("192.0.2.5/24")
	lan6   = netip.MustParsePrefix("2001:db8::5/64")
	other4 = netip.MustParsePrefix("198.51.100.5/24")
)

func selector(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

// node returns a node with one live interface eth0 on the given prefixes.
func node(name string, prefixes ...netip.Prefix) Node {
	return Node{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}, Interfaces: []Interface{{Name: "eth0", Prefixes: prefixes, Live: true}}}
}

var anyNode = []*config.L2Advertisement{{Name: "all"}}

func owners(r Result) []string {
	var names []string
	for _, c := range r.Candidates {
		names = append(names, c.Node)
	}
	return names
}

func TestHashOrder(t *testing.T) {
	nodes := []Node{node("node-a", lan4), node("node-b", lan4), node("node-c", lan4), node("node-d", lan4), node("node-e", lan4)}
	r, err := Elect(Input{IPs: []netip.Addr{vip4}, Nodes: nodes, Advertisements: anyNode})
	if err != nil {
		t.Fatal(err)
	}
	// The order follows SHA-256(name, 0, ::ffff:192.0.2.10), computed here independently.
	want := slices.Clone([]string{"node-a", "node-b", "node-c", "node-d", "node-e"})
	key := func(name string) string {
		b := append([]byte(name), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 10)
		h := sha256.Sum256(b)
		return string(h[:])
	}
	slices.SortFunc(want, func(a, b string) int {
		if key(a) < key(b) {
			return -1
		}
		return 1
	})
	if got := owners(r); !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	// And pinned (computed with Python's hashlib), so that a change of hash input is noticed:
	// speakers of different versions must agree.
	if got, pinned := owners(r), []string{"node-e", "node-c", "node-b", "node-d", "node-a"}; !slices.Equal(got, pinned) {
		t.Fatalf("order = %v, pinned %v", got, pinned)
	}
	if r.Owner != r.Candidates[0].Node || r.Reason != ReasonNone {
		t.Fatalf("owner %q reason %v, want %q", r.Owner, r.Reason, r.Candidates[0].Node)
	}
}

func TestElect(t *testing.T) {
	tests := []struct {
		name       string
		in         func(t *testing.T) Input
		wantOrder  []string
		wantReason Reason
		wantOwner  []Announcement // the owner's announcements, when checked
	}{
		{
			name: "no advertisement",
			in: func(t *testing.T) Input {
				return Input{IPs: []netip.Addr{vip4}, Nodes: []Node{node("a", lan4)}}
			},
			wantReason: ReasonNoAdvertisement,
		},
		{
			name: "node selectors match nobody",
			in: func(t *testing.T) Input {
				return Input{IPs: []netip.Addr{vip4}, Nodes: []Node{node("a", lan4)},
					Advertisements: []*config.L2Advertisement{{Name: "edge", NodeSelectors: []labels.Selector{selector(t, "role=edge")}}}}
			},
			wantReason: ReasonNoNodeSelected,
		},
		{
			name: "node selectors pick the edge nodes",
			in: func(t *testing.T) Input {
				a, b, c := node("a", lan4), node("b", lan4), node("c", lan4)
				b.Labels["role"] = "edge"
				c.Labels["zone"] = "z1"
				return Input{IPs: []netip.Addr{vip4}, Nodes: []Node{a, b, c},
					Advertisements: []*config.L2Advertisement{{Name: "edge", NodeSelectors: []labels.Selector{selector(t, "role=edge"), selector(t, "zone=z1")}}}}
			},
			wantOrder: []string{"c", "b"}, // hash order of a, b, c is c, a, b
		},
		{
			name: "split subnets: only nodes on the VIP's subnet",
			in: func(t *testing.T) Input {
				return Input{IPs: []netip.Addr{vip4}, Nodes: []Node{node("a", other4), node("b", lan4), node("c", other4)}, Advertisements: anyNode}
			},
			wantOrder: []string{"b"},
			wantOwner: []Announcement{{IP: vip4, Interfaces: []string{"eth0"}}},
		},
		{
			name: "no node on the subnet",
			in: func(t *testing.T) Input {
				return Input{IPs: []netip.Addr{vip4}, Nodes: []Node{node("a", other4)}, Advertisements: anyNode}
			},
			wantReason: ReasonNoInterface,
		},
		{
			name: "advertisement restricts interfaces",
			in: func(t *testing.T) Input {
				a := node("a", lan4)
				b := node("b")
				b.Interfaces = []Interface{{Name: "eth0", Prefixes: []netip.Prefix{other4}, Live: true}, {Name: "bond0", Prefixes: []netip.Prefix{lan4}, Live: true}}
				return Input{IPs: []netip.Addr{vip4}, Nodes: []Node{a, b},
					Advertisements: []*config.L2Advertisement{{Name: "bond", Interfaces: []string{"bond0"}}}}
			},
			wantOrder: []string{"b"},
			wantOwner: []Announcement{{IP: vip4, Interfaces: []string{"bond0"}}},
		},
		{
			name: "dead on the segment",
			in: func(t *testing.T) Input {
				a, b := node("a", lan4), node("b", lan4)
				a.Interfaces[0].Live = false
				b.Interfaces[0].Live = false
				return Input{IPs: []netip.Addr{vip4}, Nodes: []Node{a, b}, Advertisements: anyNode}
			},
			wantReason: ReasonNoLiveNode,
		},
		{
			name: "one of two NICs on the segment dead: announce on the live one",
			in: func(t *testing.T) Input {
				a := node("a")
				a.Interfaces = []Interface{{Name: "eth1", Prefixes: []netip.Prefix{lan4}, Live: true}, {Name: "eth0", Prefixes: []netip.Prefix{lan4}, Live: false}}
				return Input{IPs: []netip.Addr{vip4}, Nodes: []Node{a}, Advertisements: anyNode}
			},
			wantOrder: []string{"a"},
			wantOwner: []Announcement{{IP: vip4, Interfaces: []string{"eth1"}}},
		},
		{
			name: "externalTrafficPolicy Local without ready endpoints",
			in: func(t *testing.T) Input {
				return Input{IPs: []netip.Addr{vip4}, Nodes: []Node{node("a", lan4), node("b", lan4)}, Advertisements: anyNode,
					LocalTrafficPolicy: true, ReadyEndpointNodes: []string{"c"}}
			},
			wantReason: ReasonNoReadyEndpoint,
		},
		{
			name: "externalTrafficPolicy Local picks the nodes with endpoints",
			in: func(t *testing.T) Input {
				return Input{IPs: []netip.Addr{vip4}, Nodes: []Node{node("a", lan4), node("b", lan4), node("c", lan4)}, Advertisements: anyNode,
					LocalTrafficPolicy: true, ReadyEndpointNodes: []string{"c", "a"}}
			},
			wantOrder: []string{"c", "a"},
		},
		{
			name: "ready endpoints are ignored with policy Cluster",
			in: func(t *testing.T) Input {
				return Input{IPs: []netip.Addr{vip4}, Nodes: []Node{node("a", lan4), node("b", lan4)}, Advertisements: anyNode, ReadyEndpointNodes: []string{"a"}}
			},
			wantOrder: []string{"a", "b"},
		},
		{
			name: "dual stack: only nodes on both subnets, one owner for both IPs",
			in: func(t *testing.T) Input {
				a := node("a", lan4, lan6)
				b := node("b", lan4)
				c := node("c", lan6)
				c.Interfaces = append(c.Interfaces, Interface{Name: "eth1", Prefixes: []netip.Prefix{lan4}, Live: true})
				return Input{IPs: []netip.Addr{vip6, vip4}, Nodes: []Node{a, b, c}, Advertisements: anyNode}
			},
			wantOrder: []string{"c", "a"},
			wantOwner: []Announcement{{IP: vip4, Interfaces: []string{"eth1"}}, {IP: vip6, Interfaces: []string{"eth0"}}},
		},
		{
			name: "preferred weights come before the hash",
			in: func(t *testing.T) Input {
				nodes := []Node{node("node-a", lan4), node("node-b", lan4), node("node-c", lan4), node("node-d", lan4), node("node-e", lan4)}
				nodes[3].Labels["tier"] = "gold"
				nodes[2].Labels["tier"] = "gold"
				nodes[2].Labels["rack"] = "r1"
				return Input{IPs: []netip.Addr{vip4}, Nodes: nodes, Advertisements: anyNode,
					Preferred: []PreferredNodes{{Weight: 10, Selector: selector(t, "tier=gold")}, {Weight: 5, Selector: selector(t, "rack=r1")}}}
			},
			// node-c weighs 15, node-d 10, the rest 0 in hash order (see TestHashOrder).
			wantOrder: []string{"node-c", "node-d", "node-e", "node-b", "node-a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Elect(tt.in(t))
			if err != nil {
				t.Fatal(err)
			}
			if got := owners(r); !slices.Equal(got, tt.wantOrder) {
				t.Fatalf("candidates = %v, want %v", got, tt.wantOrder)
			}
			if r.Reason != tt.wantReason {
				t.Fatalf("reason = %v, want %v", r.Reason, tt.wantReason)
			}
			wantOwner := ""
			if len(tt.wantOrder) > 0 {
				wantOwner = tt.wantOrder[0]
			}
			if r.Owner != wantOwner {
				t.Fatalf("owner = %q, want %q", r.Owner, wantOwner)
			}
			if tt.wantOwner != nil && !slices.EqualFunc(r.Candidates[0].Announcements, tt.wantOwner, func(a, b Announcement) bool {
				return a.IP == b.IP && slices.Equal(a.Interfaces, b.Interfaces)
			}) {
				t.Fatalf("owner announces %+v, want %+v", r.Candidates[0].Announcements, tt.wantOwner)
			}
		})
	}
}

func TestElectRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		in   Input
	}{
		{"no IPs", Input{Nodes: []Node{node("a", lan4)}, Advertisements: anyNode}},
		{"invalid IP", Input{IPs: []netip.Addr{{}}, Advertisements: anyNode}},
		{"zoned IP", Input{IPs: []netip.Addr{netip.MustParseAddr("fe80::1%eth0")}, Advertisements: anyNode}},
		{"duplicate IP", Input{IPs: []netip.Addr{vip4, netip.MustParseAddr("::ffff:192.0.2.10")}, Advertisements: anyNode}},
		{"nameless node", Input{IPs: []netip.Addr{vip4}, Nodes: []Node{node("", lan4)}, Advertisements: anyNode}},
		{"duplicate node", Input{IPs: []netip.Addr{vip4}, Nodes: []Node{node("a", lan4), node("a", lan4)}, Advertisements: anyNode}},
		{"zero weight", Input{IPs: []netip.Addr{vip4}, Advertisements: anyNode, Preferred: []PreferredNodes{{Weight: 0, Selector: labels.Everything()}}}},
		{"no selector", Input{IPs: []netip.Addr{vip4}, Advertisements: anyNode, Preferred: []PreferredNodes{{Weight: 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := Elect(tt.in); err == nil {
				t.Fatalf("Elect = %+v, want error", r)
			}
		})
	}
}

func TestReasonStrings(t *testing.T) {
	for r := ReasonNone; r <= ReasonNoReadyEndpoint; r++ {
		if s := r.String(); s == "" || s[0] == 'R' {
			t.Errorf("Reason(%d).String() = %q", r, s)
		}
	}
}

// TestKeyIP: a dual-stack group ranks by its IPv4 address, so it elects the same owner as a
// single-stack Service sharing that address would. (Ranked by the IPv6 address the order would
// be node-e, node-d, node-b, node-c, node-a.)
func TestKeyIP(t *testing.T) {
	var nodes []Node
	for _, name := range []string{"node-a", "node-b", "node-c", "node-d", "node-e"} {
		nodes = append(nodes, node(name, lan4, lan6))
	}
	want := []string{"node-e", "node-c", "node-b", "node-d", "node-a"}
	for _, ips := range [][]netip.Addr{{vip4}, {vip6, vip4}, {vip4, vip6}} {
		r, err := Elect(Input{IPs: ips, Nodes: nodes, Advertisements: anyNode})
		if err != nil {
			t.Fatal(err)
		}
		if got := owners(r); !slices.Equal(got, want) {
			t.Errorf("IPs %v: order %v, want %v", ips, got, want)
		}
	}
}
