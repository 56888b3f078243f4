package bgprouter

import (
	"net/netip"
	"slices"
	"testing"
)

func TestRIBMultipath(t *testing.T) {
	p := mustPrefix("203.0.113.10/32")
	n1, n2, n3 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	path := func(peer netip.Addr, lp uint32, asLen int) Path {
		return Path{Peer: peer, NextHop: peer, LocalPref: lp, HasLocalPref: lp != 0, ASPathLen: asLen}
	}
	type op struct {
		set     *Path
		remove  netip.Addr
		changed bool
		want    []netip.Addr
	}
	ptr := func(p Path) *Path { return &p }
	tests := []struct {
		name string
		ops  []op
	}{
		{"equal paths share the route", []op{
			{set: ptr(path(n2, 0, 1)), changed: true, want: []netip.Addr{n2}},
			{set: ptr(path(n1, 0, 1)), changed: true, want: []netip.Addr{n1, n2}},
			{set: ptr(path(n3, 0, 1)), changed: true, want: []netip.Addr{n1, n2, n3}},
			{set: ptr(path(n3, 0, 1)), changed: false, want: []netip.Addr{n1, n2, n3}},
			{remove: n2, changed: true, want: []netip.Addr{n1, n3}},
			{remove: n2, changed: false, want: []netip.Addr{n1, n3}},
		}},
		{"higher LOCAL_PREF wins; absent counts as 100", []op{
			{set: ptr(path(n1, 0, 1)), changed: true, want: []netip.Addr{n1}},
			{set: ptr(path(n2, 100, 1)), changed: true, want: []netip.Addr{n1, n2}},
			{set: ptr(path(n3, 200, 3)), changed: true, want: []netip.Addr{n3}},
			{remove: n3, changed: true, want: []netip.Addr{n1, n2}},
		}},
		{"shorter AS_PATH wins at equal LOCAL_PREF", []op{
			{set: ptr(path(n1, 0, 2)), changed: true, want: []netip.Addr{n1}},
			{set: ptr(path(n2, 0, 1)), changed: true, want: []netip.Addr{n2}},
			{set: ptr(path(n2, 0, 3)), changed: true, want: []netip.Addr{n1}},
			{remove: n1, changed: true, want: []netip.Addr{n2}},
			{remove: n2, changed: true, want: nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRIB()
			for i, o := range tt.ops {
				var changed bool
				if o.set != nil {
					changed = r.set(p, *o.set)
				} else {
					changed = r.remove(p, o.remove)
				}
				if changed != o.changed || !slices.Equal(r.best[p], o.want) {
					t.Fatalf("op %d: changed %v, set %v; want %v, %v", i, changed, r.best[p], o.changed, o.want)
				}
			}
			if len(r.best) == 0 && (len(r.paths) != 0 || len(r.lengths[true]) != 0) {
				t.Errorf("empty RIB keeps paths %v or lengths %v", r.paths, r.lengths)
			}
		})
	}
}

func TestRIBLongestPrefixMatch(t *testing.T) {
	r := newRIB()
	hop := func(s string) Path {
		a := netip.MustParseAddr(s)
		return Path{Peer: a, NextHop: a}
	}
	r.set(mustPrefix("203.0.113.0/24"), hop("10.0.0.1"))
	r.set(mustPrefix("203.0.113.10/32"), hop("10.0.0.2"))
	r.set(mustPrefix("2001:db8::/64"), hop("fd00::1"))
	tests := []struct {
		dst    string
		prefix string
		hop    string
	}{
		{"203.0.113.10", "203.0.113.10/32", "10.0.0.2"},
		{"203.0.113.11", "203.0.113.0/24", "10.0.0.1"},
		{"2001:db8::5", "2001:db8::/64", "fd00::1"},
		{"198.51.100.1", "", ""},
		{"2001:db8:1::5", "", ""},
	}
	for _, tt := range tests {
		p, hops, ok := r.lookup(netip.MustParseAddr(tt.dst))
		if tt.prefix == "" {
			if ok {
				t.Errorf("lookup(%s) = %v %v, want no route", tt.dst, p, hops)
			}
			continue
		}
		if !ok || p != mustPrefix(tt.prefix) || !slices.Equal(hops, []netip.Addr{netip.MustParseAddr(tt.hop)}) {
			t.Errorf("lookup(%s) = %v %v %v, want %s via %s", tt.dst, p, hops, ok, tt.prefix, tt.hop)
		}
	}
	if got := r.prefixesOf(netip.MustParseAddr("10.0.0.1")); !slices.Equal(got, []netip.Prefix{mustPrefix("203.0.113.0/24")}) {
		t.Errorf("prefixesOf(10.0.0.1) = %v", got)
	}
}
