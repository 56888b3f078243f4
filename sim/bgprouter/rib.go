package bgprouter

import (
	"net/netip"
	"slices"
	"time"
)

// Path is one route to a prefix as learned from one neighbour.
type Path struct {
	// Peer is the neighbour's address.
	Peer netip.Addr
	// NextHop is the NEXT_HOP (IPv4 over an IPv4 session) or MP_REACH_NLRI next hop.
	NextHop netip.Addr
	// LocalPref is LOCAL_PREF; HasLocalPref is false when the attribute was absent.
	LocalPref    uint32
	HasLocalPref bool
	// ASPathLen is the number of ASes in AS_PATH.
	ASPathLen int
	// Communities are standard communities as sent; LargeCommunities "global:local1:local2".
	Communities      []uint32
	LargeCommunities [][3]uint32
}

// defaultLocalPref is the LOCAL_PREF a path without one is compared with (RFC 4271 §9.1.1
// leaves it to local policy; 100 is what FRR, BIRD and gobgp use).
const defaultLocalPref = 100

func (p Path) localPref() uint32 {
	if p.HasLocalPref {
		return p.LocalPref
	}
	return defaultLocalPref
}

// RouteChange records a change of a prefix's multipath set.
type RouteChange struct {
	// At is the virtual time of the change.
	At time.Time
	// Prefix is the destination.
	Prefix netip.Prefix
	// NextHops is the new multipath set, sorted; empty when the route is gone.
	NextHops []netip.Addr
}

// rib is the router's Loc-RIB: every neighbour's paths per prefix, and per prefix the
// multipath set the forwarder uses (the next hops of all best paths).
type rib struct {
	paths map[netip.Prefix]map[netip.Addr]Path
	// best is the multipath set per prefix, sorted by address; absent when no path is left.
	best map[netip.Prefix][]netip.Addr
	// maxBits tracks which prefix lengths exist per family, for longest-prefix match.
	lengths map[bool]map[int]int
}

func newRIB() *rib {
	return &rib{
		paths:   make(map[netip.Prefix]map[netip.Addr]Path),
		best:    make(map[netip.Prefix][]netip.Addr),
		lengths: map[bool]map[int]int{true: {}, false: {}},
	}
}

// set installs or replaces peer's path to prefix and reports whether the multipath set
// changed.
func (r *rib) set(prefix netip.Prefix, p Path) bool {
	m := r.paths[prefix]
	if m == nil {
		m = make(map[netip.Addr]Path)
		r.paths[prefix] = m
		r.lengths[prefix.Addr().Is4()][prefix.Bits()]++
	}
	m[p.Peer] = p
	return r.recompute(prefix)
}

// remove deletes peer's path to prefix and reports whether the multipath set changed.
func (r *rib) remove(prefix netip.Prefix, peer netip.Addr) bool {
	m := r.paths[prefix]
	if _, ok := m[peer]; !ok {
		return false
	}
	delete(m, peer)
	if len(m) == 0 {
		delete(r.paths, prefix)
		lens := r.lengths[prefix.Addr().Is4()]
		if lens[prefix.Bits()]--; lens[prefix.Bits()] == 0 {
			delete(lens, prefix.Bits())
		}
	}
	return r.recompute(prefix)
}

// prefixesOf returns the prefixes peer has a path to, sorted.
func (r *rib) prefixesOf(peer netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for prefix, m := range r.paths {
		if _, ok := m[peer]; ok {
			out = append(out, prefix)
		}
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

// recompute chooses prefix's multipath set: the paths with the highest LOCAL_PREF and, among
// those, the shortest AS_PATH (RFC 4271 §9.1.2.2 a-b; the later tie-breakers are exactly what
// multipath ignores). It reports whether the set changed.
func (r *rib) recompute(prefix netip.Prefix) bool {
	var set []netip.Addr
	var bestPref uint32
	bestLen := -1
	for _, p := range r.paths[prefix] {
		lp := p.localPref()
		switch {
		case bestLen < 0 || lp > bestPref || (lp == bestPref && p.ASPathLen < bestLen):
			bestPref, bestLen = lp, p.ASPathLen
			set = append(set[:0], p.NextHop)
		case lp == bestPref && p.ASPathLen == bestLen:
			set = append(set, p.NextHop)
		}
	}
	slices.SortFunc(set, netip.Addr.Compare)
	set = slices.Compact(set)
	old := r.best[prefix]
	if slices.Equal(old, set) {
		return false
	}
	if len(set) == 0 {
		delete(r.best, prefix)
	} else {
		r.best[prefix] = set
	}
	return true
}

// lookup is a longest-prefix match of dst over the multipath sets.
func (r *rib) lookup(dst netip.Addr) (netip.Prefix, []netip.Addr, bool) {
	lens := r.lengths[dst.Is4()]
	for bits := dst.BitLen(); bits >= 0; bits-- {
		if lens[bits] == 0 {
			continue
		}
		p := netip.PrefixFrom(dst, bits).Masked()
		if nh := r.best[p]; len(nh) > 0 {
			return p, nh, true
		}
	}
	return netip.Prefix{}, nil, false
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
