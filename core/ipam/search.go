package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Finding free addresses for a Service that holds none.

// allocateNew gives svc, which holds nothing, its requested addresses, or addresses from its
// requested pool, or from the pools that serve it, in MetalLB's order.
func (a *Allocator) allocateNew(svc *Service, kh keyHash, fams []Family) (uint32, error) {
	k := svc.Key()
	if len(svc.RequestedIPs) > 0 {
		ips := unmapAll(svc.RequestedIPs)
		if !sameFamilySet(ips, fams) {
			return 0, refuse(k, ErrFamilyMismatch, fmt.Sprintf("requests %s but its IP families are %s", joinAddrs(ips), joinFamilies(fams)))
		}
		p, err := a.checkAddrs(0, svc, ips)
		if err != nil {
			return 0, err
		}
		if svc.RequestedPool != "" && a.pools[p].name() != svc.RequestedPool {
			return 0, refuse(k, ErrPoolMismatch, fmt.Sprintf("requests %s, which is in pool %q, not in the requested pool %q", joinAddrs(ips), a.pools[p].name(), svc.RequestedPool))
		}
		return a.claim(svc, kh, orderByFamily(ips, fams), p, fams[0]), nil
	}
	if svc.RequestedPool != "" {
		i, ok := a.poolByName[svc.RequestedPool]
		if !ok {
			return 0, refuse(k, ErrNoPool, fmt.Sprintf("requested pool %q does not exist", svc.RequestedPool))
		}
		if ok, why := a.pools[i].serves(svc); !ok {
			return 0, refuse(k, ErrPoolMismatch, why)
		}
		return a.search(svc, kh, fams, a.pools[i:i+1])
	}
	var pinned []*pool
	for _, p := range a.selective {
		if ok, _ := p.serves(svc); ok {
			pinned = append(pinned, p)
		}
	}
	slices.SortStableFunc(pinned, comparePriority)
	if len(pinned)+len(a.open) == 0 {
		return 0, refuse(k, ErrNoPool, "no autoAssign address pool serves this Service")
	}
	return a.search(svc, kh, fams, pinned, a.open)
}

// freeFor returns the address of family f that pool p would give svc: an address already
// shared under svc's sharing key when one is compatible, else the lowest free address.
func (a *Allocator) freeFor(p *pool, f Family, svc *Service) (u128, bool) {
	if !p.hasFamily(f) {
		return u128{}, false
	}
	if svc.SharingKey != "" {
		var best u128
		found := false
		backendKey := svc.backendKey()
		for _, fa := range a.shared[svc.SharingKey] {
			if fa.family != f || p.rangeFor(f, fa.addr) == nil || (found && !fa.addr.less(best)) {
				continue
			}
			if a.checkShare(0, svc, backendKey, f, fa.addr) == nil {
				best, found = fa.addr, true
			}
		}
		if found {
			return best, true
		}
	}
	return p.lowestFree(f, a.inUse)
}

// search tries the stages of pools in order, each pool in order, as MetalLB does: the first
// pool with an address of every wanted family wins; a PreferDualStack Service that finds no
// such pool in a stage takes one address of its primary family, else of its secondary.
func (a *Allocator) search(svc *Service, kh keyHash, fams []Family, stages ...[]*pool) (uint32, error) {
	type pick struct {
		p    *pool
		addr u128
	}
	for _, pools := range stages {
		var single [2]*pick // first pool with the primary / secondary family free
		for _, p := range pools {
			var got [2]u128
			var ok [2]bool
			for i, f := range fams {
				got[i], ok[i] = a.freeFor(p, f, svc)
			}
			if ok[0] && (len(fams) == 1 || ok[1]) {
				var buf [2]netip.Addr // claim copies the addresses
				ips := buf[:len(fams)]
				for i, f := range fams {
					ips[i] = got[i].addr(f)
				}
				return a.claim(svc, kh, ips, p.index, fams[0]), nil
			}
			for i := range fams {
				if ok[i] && single[i] == nil {
					single[i] = &pick{p, got[i]}
				}
			}
		}
		if svc.FamilyPolicy == PreferDualStack && len(fams) == 2 {
			for i, s := range single {
				if s != nil {
					return a.claim(svc, kh, []netip.Addr{s.addr.addr(fams[i])}, s.p.index, fams[0]), nil
				}
			}
		}
	}
	return 0, a.exhausted(svc, fams, slices.Concat(stages...))
}

// exhausted explains why no pool had room.
func (a *Allocator) exhausted(svc *Service, fams []Family, pools []*pool) *AllocationError {
	preferDual := svc.FamilyPolicy == PreferDualStack && len(fams) == 2
	usable := 0 // pools that have the families the Service needs
	var parts []string
	for _, p := range pools {
		var why []string
		has := 0
		for _, f := range fams {
			if !p.hasFamily(f) {
				why = append(why, "no "+f.String()+" addresses")
				continue
			}
			has++
			if used, capacity := p.counts(f); used >= capacity {
				prefix := ""
				if len(fams) == 2 {
					prefix = f.String() + " "
				}
				why = append(why, fmt.Sprintf("%sexhausted: %d of %d in use", prefix, used, capacity))
			}
		}
		if has == len(fams) || preferDual && has > 0 {
			usable++
		}
		parts = append(parts, fmt.Sprintf("%q (%s)", p.name(), strings.Join(why, ", ")))
	}
	where := "pool " + strings.Join(parts, ", ")
	if len(parts) > 1 {
		where = "pools " + strings.Join(parts, ", ")
	}
	var want string
	switch {
	case len(fams) == 1:
		want = fams[0].String() + " address"
	case preferDual:
		want = fams[0].String() + " or " + fams[1].String() + " address"
	default:
		want = fams[0].String() + " and " + fams[1].String() + " addresses"
	}
	if usable == 0 {
		return refuse(svc.Key(), ErrNoPool, fmt.Sprintf("no address pool serving this Service has %s: %s", want, where))
	}
	return refuse(svc.Key(), ErrPoolExhausted, fmt.Sprintf("no %s available in %s", want, where))
}
