package ipam

import (
	"fmt"
	"net/netip"
	"slices"
)

// The checks an address must pass before a Service may hold it.

// admit checks what every operation needs from a Service and returns its wanted families.
func (a *Allocator) admit(svc *Service) ([]Family, *AllocationError) {
	k := svc.Key()
	if svc.LoadBalancerClass != a.opts.LoadBalancerClass {
		handled := fmt.Sprintf("loadBalancerClass %q", a.opts.LoadBalancerClass)
		if a.opts.LoadBalancerClass == "" {
			handled = "Services without a loadBalancerClass"
		}
		return nil, refuse(k, ErrNotHandled, fmt.Sprintf("loadBalancerClass %q is not handled by this controller, which handles %s", svc.LoadBalancerClass, handled))
	}
	if svc.Namespace == "" || svc.Name == "" {
		return nil, refuse(k, ErrInvalidService, "a Service needs a namespace and a name")
	}
	fams, err := svc.wantedFamilies()
	if err != nil {
		return nil, refuse(k, ErrInvalidService, err.Error())
	}
	return fams, nil
}

// checkShare checks that svc may hold x alongside x's holders other than self.
func (a *Allocator) checkShare(self uint32, svc *Service, backendKey string, f Family, x u128) *AllocationError {
	for h := a.head(f, x); h != 0; h = a.nextHolder(h, f) {
		if h == self {
			continue
		}
		other := a.st.key(h)
		conflict := func(detail string) *AllocationError {
			e := refuse(svc.Key(), ErrSharingConflict, detail)
			e.Conflicting = other
			return e
		}
		ip := x.addr(f)
		var oe *extension
		if r := a.st.rec(h); r.ext != 0 {
			oe = &a.st.exts[r.ext]
		}
		switch {
		case oe == nil || oe.sharingKey == "":
			return conflict(fmt.Sprintf("%s is in use by %s, which does not allow sharing", ip, other))
		case svc.SharingKey == "":
			return conflict(fmt.Sprintf("%s is in use by %s and this Service has no sharing key (metallb.io/allow-shared-ip)", ip, other))
		case oe.sharingKey != svc.SharingKey:
			return conflict(fmt.Sprintf("sharing key %q conflicts with %s, which holds %s with sharing key %q", svc.SharingKey, other, ip, oe.sharingKey))
		case oe.backendKey != backendKey:
			return conflict(fmt.Sprintf("sharing key %q conflicts with %s: Services sharing %s must all have externalTrafficPolicy Cluster, or all Local with the same selector", svc.SharingKey, other, ip))
		}
		for _, p := range svc.Ports {
			if slices.Contains(oe.ports, p) {
				return conflict(fmt.Sprintf("sharing key %q conflicts with %s: both use %s", svc.SharingKey, other, p))
			}
		}
	}
	return nil
}

// checkAddrs checks that svc may hold ips: one per family, all in one pool that serves svc,
// shareable with their other holders (self excluded). It returns the pool.
func (a *Allocator) checkAddrs(self uint32, svc *Service, ips []netip.Addr) (int, *AllocationError) {
	k := svc.Key()
	if len(ips) == 0 || len(ips) > 2 || (len(ips) == 2 && familyOf(ips[0]) == familyOf(ips[1])) {
		return 0, refuse(k, ErrInvalidService, fmt.Sprintf("%s: a Service holds one address per family", joinAddrs(ips)))
	}
	p := -1
	for _, ip := range ips {
		f := familyOf(ip)
		ip2, _, ok := a.locate(f, u128From(ip))
		if !ok {
			return 0, refuse(k, ErrOutsidePools, a.outsideDetail(ip))
		}
		if p >= 0 && ip2 != p {
			return 0, refuse(k, ErrPoolMismatch, fmt.Sprintf("%s are in different pools (%q and %q); both families must come from one pool", joinAddrs(ips), a.pools[p].name(), a.pools[ip2].name()))
		}
		p = ip2
	}
	if ok, why := a.pools[p].serves(svc); !ok {
		return 0, refuse(k, ErrPoolMismatch, why)
	}
	backendKey := svc.backendKey()
	for _, ip := range ips {
		if err := a.checkShare(self, svc, backendKey, familyOf(ip), u128From(ip)); err != nil {
			return 0, err
		}
	}
	return p, nil
}

// outsideDetail explains why ip belongs to no pool: it is in none, or avoidBuggyIPs excludes it.
func (a *Allocator) outsideDetail(ip netip.Addr) string {
	for _, p := range a.pools {
		if p.cfg.AvoidBuggyIPs && isBuggy(familyOf(ip), u128From(ip)) {
			for _, r := range p.cfg.Ranges {
				if r.Contains(ip) {
					return fmt.Sprintf("%s is in pool %q, which avoids addresses ending in .0 and .255 (avoidBuggyIPs)", ip, p.name())
				}
			}
		}
	}
	return ip.String() + " is outside every address pool"
}

// checkKeep decides whether svc may keep ips, the addresses it holds (self is its record, or
// 0 when it holds none in the allocator yet, as in Restore).
func (a *Allocator) checkKeep(self uint32, svc *Service, fams []Family, ips []netip.Addr) (int, *AllocationError) {
	k := svc.Key()
	var heldBuf [2]Family
	held := heldBuf[:0]
	for _, ip := range ips {
		held = append(held, familyOf(ip))
	}
	sameFamilies := len(held) == len(fams) && (len(held) == 1 && held[0] == fams[0] ||
		len(held) == 2 && held[0] != held[1])
	partialPreferred := svc.FamilyPolicy == PreferDualStack && len(held) == 1 && slices.Contains(fams, held[0])
	if !sameFamilies && !partialPreferred {
		return 0, refuse(k, ErrFamilyMismatch, fmt.Sprintf("holds %s but its IP families are %s", joinAddrs(ips), joinFamilies(fams)))
	}
	if len(svc.RequestedIPs) > 0 && !sameAddrSet(svc.RequestedIPs, ips) {
		return 0, refuse(k, ErrRequestChanged, fmt.Sprintf("holds %s but requests %s", joinAddrs(ips), joinAddrs(svc.RequestedIPs)))
	}
	p, err := a.checkAddrs(self, svc, ips)
	if err != nil {
		return 0, err
	}
	if svc.RequestedPool != "" && a.pools[p].name() != svc.RequestedPool {
		return 0, refuse(k, ErrRequestChanged, fmt.Sprintf("holds %s from pool %q but requests pool %q", joinAddrs(ips), a.pools[p].name(), svc.RequestedPool))
	}
	return p, nil
}
