package ipam

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/core/config"
)

func mustAllocate(t *testing.T, a *Allocator, s Service) Assignment {
	t.Helper()
	as, err := a.Allocate(&s)
	if err != nil {
		t.Fatalf("Allocate %s: %v", s.Key(), err)
	}
	return as
}

func TestAllocateKeepsAndMoves(t *testing.T) {
	cfg := cfgOf(mkPool(t, "p", "10.0.0.0/24"), mkPool(t, "q", "10.1.0.0/24"))
	tests := []struct {
		name     string
		svc      Service
		wantIPs  string
		wantPool string
	}{
		{"a held address stays although a lower one is free", mk("web", current("10.0.0.9")), "10.0.0.9", "p"},
		{"a held address outside every pool is replaced", mk("web", current("192.168.0.1")), "10.0.0.0", "p"},
		{"a changed request moves the Service", mk("web", current("10.0.0.9"), requestIPs("10.0.0.20")), "10.0.0.20", "p"},
		{"a changed pool request moves the Service", mk("web", current("10.0.0.9"), requestPool("q")), "10.1.0.0", "q"},
		{"a held address of the wrong family is replaced", mk("web", current("fd00::1")), "10.0.0.0", "p"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(cfg, Options{})
			got := mustAllocate(t, a, tt.svc)
			if s := ipStrings(got.IPs); s != tt.wantIPs || got.Pool != tt.wantPool {
				t.Fatalf("got %s from %q, want %s from %q", s, got.Pool, tt.wantIPs, tt.wantPool)
			}
			checkInvariants(t, a)
		})
	}
}

func TestAllocateIsIdempotent(t *testing.T) {
	a := New(cfgOf(mkPool(t, "p", "10.0.0.0/24")), Options{})
	web := mk("web", shared("k", 80))
	first := mustAllocate(t, a, web)
	mustAllocate(t, a, mk("other", shared("k", 443)))
	// The same Service again, and then with a changed port that does not collide.
	again := mustAllocate(t, a, web)
	web.Ports = []Port{{"UDP", 53}}
	changed := mustAllocate(t, a, web)
	if ipStrings(first.IPs) != "10.0.0.0" || ipStrings(again.IPs) != "10.0.0.0" || ipStrings(changed.IPs) != "10.0.0.0" {
		t.Fatalf("addresses %v, %v, %v; want 10.0.0.0 each time", first.IPs, again.IPs, changed.IPs)
	}
	// A port change that collides with the co-holder moves the Service, as in MetalLB.
	web.Ports = []Port{{"TCP", 443}}
	moved := mustAllocate(t, a, web)
	if ipStrings(moved.IPs) != "10.0.0.1" {
		t.Fatalf("after a colliding port change: %v, want 10.0.0.1", moved.IPs)
	}
	checkInvariants(t, a)
}

func TestReleaseReusesLowestAddress(t *testing.T) {
	a := New(cfgOf(mkPool(t, "p", "10.0.0.0/24")), Options{})
	for i := range 10 {
		mustAllocate(t, a, mk(fmt.Sprintf("s%d", i)))
	}
	for _, name := range []string{"s7", "s3", "s5"} {
		if !a.Release(ServiceKey{"default", name}) {
			t.Fatalf("Release %s: not held", name)
		}
	}
	if a.Release(ServiceKey{"default", "s3"}) {
		t.Fatal("second Release of s3 reported a release")
	}
	var got []string
	for i := range 4 {
		got = append(got, ipStrings(mustAllocate(t, a, mk(fmt.Sprintf("new%d", i))).IPs))
	}
	want := []string{"10.0.0.3", "10.0.0.5", "10.0.0.7", "10.0.0.10"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	checkInvariants(t, a)
}

func TestPreferDualStackTopUp(t *testing.T) {
	a := New(cfgOf(mkPool(t, "dual", "10.0.0.0/24", "fd00::/128")), Options{})
	mustAllocate(t, a, mk("v6user", families(SingleStack, IPv6)))
	web := mk("web", families(PreferDualStack, IPv4, IPv6))
	if got := ipStrings(mustAllocate(t, a, web).IPs); got != "10.0.0.0" {
		t.Fatalf("with IPv6 full: %s, want 10.0.0.0", got)
	}
	a.Release(ServiceKey{"default", "v6user"})
	if got := ipStrings(mustAllocate(t, a, web).IPs); got != "10.0.0.0, fd00::" {
		t.Fatalf("after IPv6 frees up: %s, want 10.0.0.0, fd00::", got)
	}
	checkInvariants(t, a)
}

func TestRestoreConflictOlderWins(t *testing.T) {
	cfg := cfgOf(mkPool(t, "p", "10.0.0.0/24"))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	older := mk("zeta", current("10.0.0.5"))
	older.Created = t0
	newer := mk("alpha", current("10.0.0.5"))
	newer.Created = t0.Add(time.Hour)
	tie1 := mk("b", current("10.0.0.6"))
	tie2 := mk("a", current("10.0.0.6"))
	for _, order := range [][]Service{{older, newer, tie1, tie2}, {tie2, newer, tie1, older}} {
		a := New(cfg, Options{})
		refused := a.Restore(order)
		var msgs []string
		for _, e := range refused {
			msgs = append(msgs, e.Error())
			if !errors.Is(e, ErrSharingConflict) {
				t.Errorf("%v is not a sharing conflict", e)
			}
		}
		want := []string{
			"default/alpha: 10.0.0.5 is in use by default/zeta, which does not allow sharing",
			"default/b: 10.0.0.6 is in use by default/a, which does not allow sharing",
		}
		if !slices.Equal(msgs, want) {
			t.Fatalf("refused\n got: %q\nwant: %q", msgs, want)
		}
		if as, _ := a.Lookup(older.Key()); ipStrings(as.IPs) != "10.0.0.5" {
			t.Fatalf("older Service holds %v", as.IPs)
		}
		// The refused Service gets a new address from Allocate.
		if got := ipStrings(mustAllocate(t, a, newer).IPs); got != "10.0.0.0" {
			t.Fatalf("refused Service reallocated to %s, want 10.0.0.0", got)
		}
		checkInvariants(t, a)
	}
}

// TestRestoreOrderIndependent restores random assignments (with duplicates, sharing, dual
// stack, and invalid addresses) in many orders and expects identical state every time.
func TestRestoreOrderIndependent(t *testing.T) {
	cfg := cfgOf(
		mkPool(t, "a", "10.0.0.0/28", "fd00::/124"),
		avoidBuggy(mkPool(t, "b", "10.0.1.250-10.0.2.5")),
		allocation(mkPool(t, "c", "10.0.3.0/29"), config.ServiceAllocation{Namespaces: []string{"team"}}),
	)
	candidates := addrs("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.255", "10.0.2.1", "10.0.3.1", "10.0.3.2", "192.168.0.1", "fd00::1", "fd00::2")
	for seed := range uint64(20) {
		rnd := rand.New(rand.NewPCG(seed, 1))
		var svcs []Service
		for i := range 40 {
			s := mk(fmt.Sprintf("s%02d", i))
			if rnd.IntN(3) == 0 {
				s.Namespace = "team"
			}
			s.Created = time.Unix(int64(rnd.IntN(5)), 0)
			if rnd.IntN(2) == 0 {
				s.SharingKey = []string{"k", "j"}[rnd.IntN(2)]
				s.Ports = []Port{{"TCP", int32(80 + rnd.IntN(3))}}
			}
			ip := candidates[rnd.IntN(len(candidates))]
			s.CurrentIPs = []netip.Addr{ip}
			if ip.Is6() {
				s.Families = []Family{IPv6}
			}
			if rnd.IntN(4) == 0 && ip.Is4() {
				s.FamilyPolicy, s.Families = RequireDualStack, []Family{IPv4, IPv6}
				s.CurrentIPs = append(s.CurrentIPs, candidates[8+rnd.IntN(2)])
			}
			svcs = append(svcs, s)
		}
		var want string
		for round := range 10 {
			shuffled := slices.Clone(svcs)
			rnd.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			a := New(cfg, Options{})
			refused := a.Restore(shuffled)
			checkInvariants(t, a)
			got := dumpState(a, svcs, refused)
			if round == 0 {
				want = got
			} else if got != want {
				t.Fatalf("seed %d: restore order changed the result\nfirst:\n%s\nnow:\n%s", seed, want, got)
			}
		}
	}
}

func dumpState(a *Allocator, svcs []Service, refused []*AllocationError) string {
	var out string
	for _, s := range svcs {
		if as, ok := a.Lookup(s.Key()); ok {
			out += fmt.Sprintf("%s %s %s\n", s.Key(), ipStrings(as.IPs), as.Pool)
		}
	}
	for _, e := range refused {
		out += e.Error() + "\n"
	}
	for _, st := range a.Stats() {
		out += fmt.Sprintf("%+v\n", st)
	}
	return out
}

func TestSetConfig(t *testing.T) {
	a := New(cfgOf(mkPool(t, "old", "10.0.0.0/24"), mkPool(t, "gone", "10.9.0.0/24")), Options{})
	mustAllocate(t, a, mk("low", requestIPs("10.0.0.1")))
	mustAllocate(t, a, mk("high", requestIPs("10.0.0.200")))
	mustAllocate(t, a, mk("lost", requestIPs("10.9.0.1")))
	changes := a.SetConfig(cfgOf(mkPool(t, "old", "10.0.0.0/25"), mkPool(t, "new", "10.0.0.128/25")))
	got := fmt.Sprint(changes)
	want := fmt.Sprint([]Change{
		{Service: ServiceKey{"default", "high"}, IPs: addrs("10.0.0.200"), OldPool: "old", NewPool: "new", Reason: `10.0.0.200 moved from pool "old" to pool "new"`},
		{Service: ServiceKey{"default", "lost"}, IPs: addrs("10.9.0.1"), OldPool: "gone", Reason: `pool "gone" was removed`},
	})
	if got != want {
		t.Fatalf("changes\n got: %s\nwant: %s", got, want)
	}
	if !changes[1].Released() || changes[0].Released() {
		t.Fatal("Released() disagrees with NewPool")
	}
	if _, ok := a.Lookup(ServiceKey{"default", "lost"}); ok {
		t.Fatal("released Service still holds an address")
	}
	checkInvariants(t, a)
	// The new ranges know which addresses are taken.
	if got := ipStrings(mustAllocate(t, a, mk("next", requestPool("old"))).IPs); got != "10.0.0.0" {
		t.Fatalf("next from old: %s", got)
	}
	if got := ipStrings(mustAllocate(t, a, mk("next2", requestPool("old"))).IPs); got != "10.0.0.2" {
		t.Fatalf("next2 from old: %s", got)
	}
	wantStats := []PoolStats{
		{Pool: "new", AssignedIPv4: 1, AvailableIPv4: 127},
		{Pool: "old", AssignedIPv4: 3, AvailableIPv4: 125},
	}
	if got := a.Stats(); !slices.Equal(got, wantStats) {
		t.Fatalf("stats %+v, want %+v", got, wantStats)
	}
	checkInvariants(t, a)
}

func TestStats(t *testing.T) {
	a := New(cfgOf(
		avoidBuggy(mkPool(t, "buggy", "10.0.0.0/23")),
		mkPool(t, "dual", "10.1.0.0/30", "fd00::/64"),
		mkPool(t, "huge", "fd01::/56"),
	), Options{})
	mustAllocate(t, a, mk("x", shared("k", 80), requestPool("buggy")))
	mustAllocate(t, a, mk("y", shared("k", 81), requestPool("buggy")))
	mustAllocate(t, a, mk("z", families(RequireDualStack, IPv6, IPv4), requestPool("dual")))
	want := []PoolStats{
		{Pool: "buggy", AssignedIPv4: 1, AvailableIPv4: 512 - 4 - 1},
		{Pool: "dual", AssignedIPv4: 1, AvailableIPv4: 3, AssignedIPv6: 1, AvailableIPv6: 1<<64 - 2},
		{Pool: "huge", AvailableIPv6: 1<<64 - 1},
	}
	if got := a.Stats(); !slices.Equal(got, want) {
		t.Fatalf("stats\n got: %+v\nwant: %+v", got, want)
	}
}

// TestRestoreDuplicateKeys: a Service listed twice (two versions of one object) resolves the
// same way whatever the order: the newer entry, by creation time, is the one kept.
func TestRestoreDuplicateKeys(t *testing.T) {
	cfg := cfgOf(mkPool(t, "p", "10.0.0.0/24"))
	v1 := mk("web", current("10.0.0.1"))
	v1.Created = time.Unix(100, 0)
	v2 := mk("web", current("10.0.0.2"))
	v2.Created = time.Unix(200, 0)
	other := mk("other", current("10.0.0.3"))
	for _, order := range [][]Service{{v1, v2, other}, {v2, other, v1}, {other, v1, v2}} {
		a := New(cfg, Options{})
		if refused := a.Restore(order); len(refused) != 0 {
			t.Fatalf("refused: %v", refused)
		}
		as, _ := a.Lookup(v1.Key())
		if got := ipStrings(as.IPs); got != "10.0.0.2" {
			t.Fatalf("order %v: web holds %s, want 10.0.0.2", order, got)
		}
		if a.Len() != 2 {
			t.Fatalf("%d assignments, want 2", a.Len())
		}
		checkInvariants(t, a)
	}
}
