package ipam

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-lb/switchyard/core/config"
	"k8s.io/apimachinery/pkg/labels"
)

// rng parses "10.0.0.0/24" or "10.0.0.1-10.0.0.9" into an AddressRange.
func rng(t testing.TB, s string) config.AddressRange {
	t.Helper()
	if first, last, ok := strings.Cut(s, "-"); ok {
		return config.AddressRange{First: netip.MustParseAddr(first), Last: netip.MustParseAddr(last)}
	}
	p := netip.MustParsePrefix(s)
	first := p.Masked().Addr()
	b := first.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	last, _ := netip.AddrFromSlice(b)
	return config.AddressRange{First: first, Last: last, CIDR: p}
}

// pool makes an autoAssign pool.
func mkPool(t testing.TB, name string, ranges ...string) *config.Pool {
	p := &config.Pool{Name: name, AutoAssign: true}
	for _, r := range ranges {
		p.Ranges = append(p.Ranges, rng(t, r))
	}
	slices.SortFunc(p.Ranges, func(a, b config.AddressRange) int { return a.First.Compare(b.First) })
	return p
}

func cfgOf(pools ...*config.Pool) *config.Config {
	slices.SortFunc(pools, func(a, b *config.Pool) int { return strings.Compare(a.Name, b.Name) })
	return &config.Config{Pools: pools}
}

func sel(t testing.TB, s string) labels.Selector {
	t.Helper()
	l, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// v4svc makes a single-stack IPv4 Service in namespace "default".
func v4svc(name string) Service {
	return Service{Namespace: "default", Name: name, Families: []Family{IPv4}}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func ipStrings(ips []netip.Addr) string {
	return joinAddrs(ips)
}
