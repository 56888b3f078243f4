package ipam

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/switchyard-lb/switchyard/core/config"
	"k8s.io/apimachinery/pkg/labels"
)

// pool is the allocator's state for one configured pool.
type pool struct {
	cfg   *config.Pool
	index int // in Allocator.pools
	// ranges holds the pool's ranges per family (index Family.index()), in address order.
	ranges [2][]*addrRange
}

func newPool(cfg *config.Pool) *pool {
	p := &pool{cfg: cfg}
	for _, r := range cfg.Ranges {
		if !r.First.IsValid() || !r.Last.IsValid() {
			continue
		}
		first, last := r.First.Unmap(), r.Last.Unmap()
		f := familyOf(first)
		if familyOf(last) != f || last.Less(first) {
			continue // the config validator rejects these; never trust them here
		}
		p.ranges[f.index()] = append(p.ranges[f.index()], newAddrRange(f, u128From(first), u128From(last), cfg.AvoidBuggyIPs))
	}
	for i := range p.ranges {
		slices.SortFunc(p.ranges[i], func(a, b *addrRange) int { return a.first.cmp(b.first) })
	}
	return p
}

func (p *pool) name() string { return p.cfg.Name }

func (p *pool) hasFamily(f Family) bool { return len(p.ranges[f.index()]) > 0 }

// rangeFor returns the range holding x, or nil.
func (p *pool) rangeFor(f Family, x u128) *addrRange {
	rs := p.ranges[f.index()]
	i, _ := slices.BinarySearchFunc(rs, x, func(r *addrRange, x u128) int {
		if r.last.less(x) {
			return -1
		}
		if x.less(r.first) {
			return 1
		}
		return 0
	})
	if i < len(rs) && rs[i].contains(x) {
		return rs[i]
	}
	return nil
}

// counts returns the addresses of family f in use and the pool's capacity for f (saturating).
func (p *pool) counts(f Family) (used, capacity uint64) {
	for _, r := range p.ranges[f.index()] {
		used += r.used
		capacity = satAdd(capacity, r.capacity)
	}
	return used, capacity
}

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint64(0)
}

// lowestFree returns the lowest free address of family f in the pool.
func (p *pool) lowestFree(f Family, inUse inUseFunc) (u128, bool) {
	for _, r := range p.ranges[f.index()] {
		if x, ok := r.lowestFree(inUse); ok {
			return x, true
		}
	}
	return u128{}, false
}

// serves reports whether the pool's serviceAllocation lets it serve svc, and if not, why.
func (p *pool) serves(svc *Service) (bool, string) {
	al := p.cfg.Allocation
	if al == nil {
		return true, ""
	}
	if len(al.Namespaces) > 0 || len(al.NamespaceSelectors) > 0 {
		ok := slices.Contains(al.Namespaces, svc.Namespace)
		if !ok && len(al.NamespaceSelectors) > 0 {
			ok = anyMatches(al.NamespaceSelectors, svc.NamespaceLabels)
		}
		if !ok {
			return false, fmt.Sprintf("pool %q does not serve namespace %q (serviceAllocation)", p.name(), svc.Namespace)
		}
	}
	if len(al.ServiceSelectors) > 0 && !anyMatches(al.ServiceSelectors, svc.Labels) {
		return false, fmt.Sprintf("pool %q does not serve this Service: no serviceAllocation.serviceSelectors matches its labels", p.name())
	}
	return true, ""
}

func anyMatches(sels []labels.Selector, l map[string]string) bool {
	set := labels.Set(l)
	for _, s := range sels {
		if s != nil && s.Matches(set) {
			return true
		}
	}
	return false
}

// priority orders pools for automatic assignment: serviceAllocation.priority ascending, with
// 0 (unset) after every set priority, then by name.
func comparePriority(a, b *pool) int {
	pa, pb := 0, 0
	if a.cfg.Allocation != nil {
		pa = a.cfg.Allocation.Priority
	}
	if b.cfg.Allocation != nil {
		pb = b.cfg.Allocation.Priority
	}
	switch {
	case pa == pb:
		return strings.Compare(a.name(), b.name())
	case pa == 0:
		return 1
	case pb == 0:
		return -1
	}
	return cmp.Compare(pa, pb)
}
