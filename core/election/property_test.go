package election

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/switchyard-lb/switchyard/core/config"
)

// randomInput builds an election input from rng: up to 12 nodes with random labels, interfaces
// on a few subnets with random liveness, random advertisements, preferences and endpoints, for
// one IP or a dual-stack pair.
func randomInput(t *testing.T, rng *rand.Rand) Input {
	subnets := []netip.Prefix{lan4, lan6, other4, netip.MustParsePrefix("2001:db8:1::5/64")}
	ifnames := []string{"eth0", "eth1", "bond0"}
	zones := []string{"z1", "z2", "z3"}
	in := Input{IPs: []netip.Addr{vip4}}
	if rng.IntN(2) == 0 {
		in.IPs = append(in.IPs, vip6)
	}
	for i := range 1 + rng.IntN(12) {
		n := Node{Name: fmt.Sprintf("node-%02d", i), Labels: map[string]string{"zone": zones[rng.IntN(len(zones))]}}
		if rng.IntN(3) == 0 {
			n.Labels["tier"] = "gold"
		}
		for _, name := range ifnames {
			if rng.IntN(2) == 0 {
				continue
			}
			ifc := Interface{Name: name, Live: rng.IntN(5) != 0}
			for _, p := range subnets {
				if rng.IntN(2) == 0 {
					ifc.Prefixes = append(ifc.Prefixes, p)
				}
			}
			n.Interfaces = append(n.Interfaces, ifc)
		}
		in.Nodes = append(in.Nodes, n)
		if rng.IntN(2) == 0 {
			in.ReadyEndpointNodes = append(in.ReadyEndpointNodes, n.Name)
		}
	}
	for i := range rng.IntN(3) {
		a := &config.L2Advertisement{Name: fmt.Sprintf("adv-%d", i)}
		if rng.IntN(2) == 0 {
			a.NodeSelectors = append(a.NodeSelectors, mustSelector(t, "zone in ("+zones[rng.IntN(3)]+","+zones[rng.IntN(3)]+")"))
		}
		if rng.IntN(2) == 0 {
			a.Interfaces = append(a.Interfaces, ifnames[rng.IntN(3)], ifnames[rng.IntN(3)])
		}
		in.Advertisements = append(in.Advertisements, a)
	}
	if rng.IntN(2) == 0 {
		in.Preferred = append(in.Preferred, PreferredNodes{Weight: int32(1 + rng.IntN(100)), Selector: mustSelector(t, "tier=gold")})
	}
	if rng.IntN(2) == 0 {
		in.Preferred = append(in.Preferred, PreferredNodes{Weight: int32(1 + rng.IntN(100)), Selector: mustSelector(t, "zone="+zones[rng.IntN(3)])})
	}
	in.LocalTrafficPolicy = rng.IntN(3) == 0
	return in
}

func mustSelector(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

// shuffled returns a deep copy of in with every list in a random order.
func shuffled(in Input, rng *rand.Rand) Input {
	out := in
	shuffle := func(n int, swap func(i, j int)) { rng.Shuffle(n, swap) }
	out.IPs = slices.Clone(in.IPs)
	shuffle(len(out.IPs), func(i, j int) { out.IPs[i], out.IPs[j] = out.IPs[j], out.IPs[i] })
	out.Nodes = make([]Node, len(in.Nodes))
	for i, n := range in.Nodes {
		n.Interfaces = slices.Clone(n.Interfaces)
		for k := range n.Interfaces {
			n.Interfaces[k].Prefixes = slices.Clone(n.Interfaces[k].Prefixes)
			ps := n.Interfaces[k].Prefixes
			shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
		}
		shuffle(len(n.Interfaces), func(i, j int) { n.Interfaces[i], n.Interfaces[j] = n.Interfaces[j], n.Interfaces[i] })
		out.Nodes[i] = n
	}
	shuffle(len(out.Nodes), func(i, j int) { out.Nodes[i], out.Nodes[j] = out.Nodes[j], out.Nodes[i] })
	out.Advertisements = slices.Clone(in.Advertisements)
	shuffle(len(out.Advertisements), func(i, j int) {
		out.Advertisements[i], out.Advertisements[j] = out.Advertisements[j], out.Advertisements[i]
	})
	out.Preferred = slices.Clone(in.Preferred)
	shuffle(len(out.Preferred), func(i, j int) { out.Preferred[i], out.Preferred[j] = out.Preferred[j], out.Preferred[i] })
	out.ReadyEndpointNodes = slices.Clone(in.ReadyEndpointNodes)
	shuffle(len(out.ReadyEndpointNodes), func(i, j int) {
		out.ReadyEndpointNodes[i], out.ReadyEndpointNodes[j] = out.ReadyEndpointNodes[j], out.ReadyEndpointNodes[i]
	})
	return out
}

func without(in Input, name string) Input {
	out := in
	out.Nodes = slices.DeleteFunc(slices.Clone(in.Nodes), func(n Node) bool { return n.Name == name })
	return out
}

func sameResult(a, b Result) bool {
	return a.Owner == b.Owner && a.Reason == b.Reason && slices.EqualFunc(a.Candidates, b.Candidates, func(x, y Candidate) bool {
		return x.Node == y.Node && x.Weight == y.Weight && x.Hash == y.Hash &&
			slices.EqualFunc(x.Announcements, y.Announcements, func(p, q Announcement) bool {
				return p.IP == q.IP && slices.Equal(p.Interfaces, q.Interfaces)
			})
	})
}

func elect(t *testing.T, in Input) Result {
	t.Helper()
	r, err := Elect(in)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPropertyOrderIndependent: every speaker gets its inputs in its own order (informer caches,
// interface enumeration); the result must not depend on it.
func TestPropertyOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	elected := 0
	for range 2000 {
		in := randomInput(t, rng)
		want := elect(t, in)
		if want.Owner != "" {
			elected++
		}
		for range 3 {
			if got := elect(t, shuffled(in, rng)); !sameResult(got, want) {
				t.Fatalf("shuffled input elects %+v, original %+v", got, want)
			}
		}
	}
	// The generator must exercise both outcomes for the property to mean something.
	if elected < 200 || elected > 1800 {
		t.Fatalf("%d of 2000 random inputs had an owner; the generator is lopsided", elected)
	}
}

// TestPropertyRemovingNonOwner: a node leaving that is not the owner never moves the VIP.
func TestPropertyRemovingNonOwner(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	checked := 0
	for range 2000 {
		in := randomInput(t, rng)
		want := elect(t, in)
		if want.Owner == "" {
			continue
		}
		for _, n := range in.Nodes {
			if n.Name == want.Owner {
				continue
			}
			checked++
			if got := elect(t, without(in, n.Name)); got.Owner != want.Owner {
				t.Fatalf("removing %s moved the owner from %s to %s", n.Name, want.Owner, got.Owner)
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d removals checked", checked)
	}
}

// TestPropertyRemovingOwner: when the owner goes, the previous second candidate takes over, and
// the rest of the order is kept.
func TestPropertyRemovingOwner(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	checked := 0
	for range 2000 {
		in := randomInput(t, rng)
		before := elect(t, in)
		if before.Owner == "" {
			continue
		}
		after := elect(t, without(in, before.Owner))
		if len(before.Candidates) == 1 {
			if after.Owner != "" {
				t.Fatalf("sole candidate %s removed, yet %s elected", before.Owner, after.Owner)
			}
			continue
		}
		checked++
		if after.Owner != before.Candidates[1].Node {
			t.Fatalf("owner %s removed: %s elected, want the previous second %s", before.Owner, after.Owner, before.Candidates[1].Node)
		}
		if !slices.Equal(owners(after), owners(before)[1:]) {
			t.Fatalf("order after removing the owner %v, want %v", owners(after), owners(before)[1:])
		}
	}
	if checked < 200 {
		t.Fatalf("only %d owner removals checked", checked)
	}
}
