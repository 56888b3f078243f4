package ipam

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestRangeCapacity(t *testing.T) {
	tests := []struct {
		first, last string
		avoidBuggy  bool
		want        uint64
	}{
		{"10.0.0.0", "10.0.0.255", false, 256},
		{"10.0.0.0", "10.0.0.255", true, 254},
		{"10.0.0.0", "10.3.255.255", true, 262144 - 2*1024},
		{"10.0.0.255", "10.0.1.0", true, 0},
		{"10.0.0.1", "10.0.0.254", true, 254},
		{"0.0.0.0", "255.255.255.255", false, 1 << 32},
		{"fd00::", "fd00::ff", true, 256},
		{"fd00::", "fd00::ffff:ffff:ffff:ffff", false, ^uint64(0)},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, ^uint64(0)},
	}
	for _, tt := range tests {
		first, last := netip.MustParseAddr(tt.first), netip.MustParseAddr(tt.last)
		if got := rangeCapacity(familyOf(first), u128From(first), u128From(last), tt.avoidBuggy); got != tt.want {
			t.Errorf("%s-%s avoidBuggy=%v: %d, want %d", tt.first, tt.last, tt.avoidBuggy, got, tt.want)
		}
	}
}

func TestU128RoundTrip(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "10.1.2.3", "255.255.255.255", "::", "fd00::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		a := netip.MustParseAddr(s)
		if got := u128From(a).addr(familyOf(a)); got != a {
			t.Errorf("%s -> %s", a, got)
		}
	}
	if got := (u128{lo: ^uint64(0)}).next(); got != (u128{hi: 1}) {
		t.Errorf("carry: %+v", got)
	}
}

// TestAddrRangeAgainstModel drives one range with random takes and puts and compares every
// lowestFree answer with a brute-force model.
func TestAddrRangeAgainstModel(t *testing.T) {
	for seed := range uint64(10) {
		rnd := rand.New(rand.NewPCG(seed, 2))
		avoid := seed%2 == 0
		first := netip.MustParseAddr("10.0.0.250")
		const size = 300
		r := newAddrRange(IPv4, u128From(first), u128{lo: u128From(first).lo + size - 1}, avoid)
		used := map[u128]bool{}
		inUse := func(_ Family, x u128) bool { return used[x] }
		model := func() (u128, bool) {
			for i := range uint64(size) {
				x := u128{lo: u128From(first).lo + i}
				if !used[x] && !(avoid && isBuggy(IPv4, x)) {
					return x, true
				}
			}
			return u128{}, false
		}
		for step := range 5000 {
			x := u128{lo: u128From(first).lo + uint64(rnd.IntN(size))}
			switch op := rnd.IntN(3); {
			case op == 0 && !used[x] && r.contains(x): // claim a specific address
				used[x] = true
				r.take(x)
			case op == 1 && used[x]:
				delete(used, x)
				r.put(x, inUse)
			default: // take the lowest free
				got, ok := r.lowestFree(inUse)
				want, wantOK := model()
				if got != want || ok != wantOK {
					t.Fatalf("seed %d step %d: lowestFree = %v %v, model %v %v", seed, step, got.addr(IPv4), ok, want.addr(IPv4), wantOK)
				}
				if ok {
					used[got] = true
					r.take(got)
				}
			}
			if r.used != uint64(len(used)) {
				t.Fatalf("seed %d step %d: used %d, model %d", seed, step, r.used, len(used))
			}
			if uint64(len(r.released)) > 2*r.freeBelow+65 {
				t.Fatalf("seed %d step %d: heap has %d entries for %d free addresses", seed, step, len(r.released), r.freeBelow)
			}
		}
	}
}

// TestStoreIndexAgainstMap adds and removes random keys and checks every lookup against a
// map, which exercises the index's growth and backward-shift deletion.
func TestStoreIndexAgainstMap(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	s := newStore()
	model := map[ServiceKey]uint32{}
	key := func() ServiceKey {
		return ServiceKey{fmt.Sprintf("ns%d", rnd.IntN(5)), fmt.Sprintf("svc%d", rnd.IntN(3000))}
	}
	for step := range 50000 {
		k := key()
		id, kh := s.find(k)
		if id != model[k] {
			t.Fatalf("step %d: find(%s) = %d, want %d", step, k, id, model[k])
		}
		if id == 0 {
			model[k] = s.add(k, kh)
		} else if rnd.IntN(2) == 0 {
			s.remove(id)
			delete(model, k)
		}
	}
	if s.live != len(model) {
		t.Fatalf("live %d, model %d", s.live, len(model))
	}
	for k, id := range model {
		if got, _ := s.find(k); got != id || s.key(id) != k {
			t.Fatalf("%s: find %d key %s, want %d", k, got, s.key(id), id)
		}
	}
}

// TestAddrRangeCompaction makes most heap entries stale (addresses released, then claimed
// again by request) and checks that the next release compacts the heap to the live entries.
func TestAddrRangeCompaction(t *testing.T) {
	first := u128From(netip.MustParseAddr("10.0.0.0"))
	r := newAddrRange(IPv4, first, u128{lo: first.lo + 255}, false)
	used := map[u128]bool{}
	inUse := func(_ Family, x u128) bool { return used[x] }
	at := func(i int) u128 { return u128{lo: first.lo + uint64(i)} }
	for i := range 200 {
		x, ok := r.lowestFree(inUse)
		if !ok || x != at(i) {
			t.Fatalf("allocation %d: %v %v", i, x.addr(IPv4), ok)
		}
		used[x] = true
		r.take(x)
	}
	for i := range 200 {
		delete(used, at(i))
		r.put(at(i), inUse)
	}
	// Claim the upper 150 of the released addresses by request: their heap entries go stale.
	for i := 50; i < 200; i++ {
		used[at(i)] = true
		r.take(at(i))
	}
	if len(r.released) != 200 || r.freeBelow != 50 {
		t.Fatalf("before compaction: %d heap entries, %d free below the cursor", len(r.released), r.freeBelow)
	}
	used[at(10)] = true
	r.take(at(10))
	delete(used, at(10))
	r.put(at(10), inUse) // 201 entries for 50 free addresses: compact
	if len(r.released) != 50 || r.freeBelow != 50 {
		t.Fatalf("after compaction: %d heap entries, %d free below the cursor", len(r.released), r.freeBelow)
	}
	for i := range 50 {
		x, ok := r.lowestFree(inUse)
		if !ok || x != at(i) {
			t.Fatalf("after compaction, allocation %d: %v %v", i, x.addr(IPv4), ok)
		}
		used[x] = true
		r.take(x)
	}
	if x, _ := r.lowestFree(inUse); x != at(200) {
		t.Fatalf("then the cursor: %v", x.addr(IPv4))
	}
}

// TestBatchSortAgainstModel checks the batch's radix sort against a comparison sort by
// namespace/name, then input position. The names are built to exercise every branch: long
// shared prefixes, names longer than the 16-byte prefix that differ only after it, names
// that differ only by trailing NUL bytes (equal zero-padded prefixes), duplicates, and
// buckets both above and below the radix sort's cutoff.
func TestBatchSortAgainstModel(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 9))
	stems := []string{"svc-", "a-very-long-common-stem-", "", "x", "x\x00", "zzzzzzzzzzzzzzzz", "zzzzzzzzzzzzzzzz\x00"}
	for _, n := range []int{0, 1, 2, smallSort, smallSort + 1, 5000} {
		svcs := make([]Service, n)
		for i := range svcs {
			name := stems[rnd.IntN(len(stems))]
			for range rnd.IntN(4) {
				name += string(rune('0' + rnd.IntN(10)))
			}
			if name == "" {
				name = "s"
			}
			svcs[i] = Service{Namespace: fmt.Sprintf("ns%d", rnd.IntN(3)), Name: name}
		}
		want := make([]int32, n)
		for i := range want {
			want[i] = int32(i)
		}
		slices.SortFunc(want, func(x, y int32) int {
			if c := svcs[x].Key().compare(svcs[y].Key()); c != 0 {
				return c
			}
			return cmp.Compare(x, y)
		})
		b := newBatch(svcs, func(*Service) bool { return true }, true)
		got := make([]int32, len(b.keys))
		for pos, k := range b.keys {
			got[pos] = k.idx
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%d Services: batch order %v, want %v", n, got, want)
		}
	}
}

// TestV4HoldersAgainstMap drives the paged IPv4 holder table and a map with the same random
// sets and deletions, over addresses dense enough to fill pages and to empty them again.
func TestV4HoldersAgainstMap(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 11))
	h := newV4Holders()
	model := map[uint32]uint32{}
	for step := range 50000 {
		x := uint32(0x0a000000 + rnd.IntN(200))
		if rnd.IntN(50) == 0 {
			x = rnd.Uint32() // a lone address in its own page
		}
		if got := h.get(x); got != model[x] {
			t.Fatalf("step %d: get(%#x) = %d, want %d", step, x, got, model[x])
		}
		id := uint32(rnd.IntN(3)) // 0 frees the address
		h.set(x, id)
		if id == 0 {
			delete(model, x)
		} else {
			model[x] = id
		}
	}
	if h.len() != len(model) {
		t.Fatalf("len %d, model %d", h.len(), len(model))
	}
	got := map[uint32]uint32{}
	for x, id := range h.all() {
		got[x] = id
	}
	if !maps.Equal(got, model) {
		t.Fatalf("all() yields %d addresses, model has %d", len(got), len(model))
	}
	for key, p := range h.pages {
		if p.used == 0 {
			t.Fatalf("page %#x is empty but kept", key)
		}
	}
}
