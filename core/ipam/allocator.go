package ipam

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/switchyard-lb/switchyard/core/config"
)

// Options configure an Allocator.
type Options struct {
	// LoadBalancerClass is the spec.loadBalancerClass this controller handles. Empty means
	// Services without a class, as MetalLB does when started without --lb-class.
	LoadBalancerClass string
}

// Assignment is the addresses a Service holds and the pool they come from.
type Assignment struct {
	Service ServiceKey
	// IPs has one address per family, the Service's primary family first.
	IPs  []netip.Addr
	Pool string
}

// Allocator assigns pool addresses to Services. See the package documentation for the rules.
type Allocator struct {
	opts       Options
	cfg        *config.Config
	pools      []*pool // sorted by name
	poolByName map[string]int
	// ranges lists every pool range per family in address order, to find the pool of an
	// address by binary search. Pools never overlap.
	ranges [2][]rangeRef

	// open lists the autoAssign pools without serviceAllocation, by name; selective the
	// autoAssign pools with one. Both are fixed per configuration.
	open, selective []*pool

	st *store
	// holders map an address in use to the id of its first holder; further holders of a
	// shared address are chained through extension.next.
	holdersV4 *v4Holders
	holdersV6 map[u128]uint32
	// shared lists, per sharing key, the addresses held under that key.
	shared map[string][]familyAddr

	inUse inUseFunc // a.isInUse, bound once
}

type rangeRef struct {
	r    *addrRange
	pool int
}

type familyAddr struct {
	family Family
	addr   u128
}

// New returns an Allocator for cfg holding no assignments. A nil cfg means no pools.
func New(cfg *config.Config, opts Options) *Allocator {
	a := &Allocator{
		opts:      opts,
		st:        newStore(),
		holdersV4: newV4Holders(),
		holdersV6: map[u128]uint32{},
		shared:    map[string][]familyAddr{},
	}
	a.inUse = a.isInUse
	a.setPools(cfg)
	return a
}

func (a *Allocator) setPools(cfg *config.Config) {
	if cfg == nil {
		cfg = &config.Config{}
	}
	a.cfg = cfg
	a.pools = a.pools[:0:0]
	a.poolByName = make(map[string]int, len(cfg.Pools))
	a.ranges = [2][]rangeRef{}
	a.open, a.selective = nil, nil
	// Config promises pools sorted by name; sort anyway, since "by name" is an allocation rule.
	configured := slices.Clone(cfg.Pools)
	slices.SortStableFunc(configured, func(x, y *config.Pool) int {
		if x == nil || y == nil {
			return 0
		}
		return strings.Compare(x.Name, y.Name)
	})
	for _, pc := range configured {
		if pc == nil || len(a.pools) == maxPools {
			continue
		}
		i := len(a.pools)
		p := newPool(pc)
		p.index = i
		a.pools = append(a.pools, p)
		a.poolByName[pc.Name] = i
		switch {
		case !pc.AutoAssign:
		case pc.Allocation == nil:
			a.open = append(a.open, p)
		default:
			a.selective = append(a.selective, p)
		}
		for f := range p.ranges {
			for _, r := range p.ranges[f] {
				a.ranges[f] = append(a.ranges[f], rangeRef{r: r, pool: i})
			}
		}
	}
	for f := range a.ranges {
		slices.SortFunc(a.ranges[f], func(x, y rangeRef) int { return x.r.first.cmp(y.r.first) })
	}
}

// locate returns the pool index and range holding address x of family f.
func (a *Allocator) locate(f Family, x u128) (int, *addrRange, bool) {
	rs := a.ranges[f.index()]
	// The last range starting at or before x is the only candidate.
	i, found := slices.BinarySearchFunc(rs, x, func(r rangeRef, x u128) int { return r.r.first.cmp(x) })
	if !found {
		i--
	}
	if i < 0 || !rs[i].r.contains(x) {
		return 0, nil, false
	}
	return rs[i].pool, rs[i].r, true
}

func (a *Allocator) assignment(id uint32) Assignment {
	return Assignment{Service: a.st.key(id), IPs: a.ipsOf(id), Pool: a.pools[a.st.rec(id).pool()].name()}
}

// Lookup returns the Service's assignment.
func (a *Allocator) Lookup(k ServiceKey) (Assignment, bool) {
	id, _ := a.st.find(k)
	if id == 0 {
		return Assignment{}, false
	}
	return a.assignment(id), true
}

// Len returns the number of Services holding addresses.
func (a *Allocator) Len() int { return a.st.live }

// Release frees the Service's addresses. It reports whether the Service held any.
func (a *Allocator) Release(k ServiceKey) bool {
	id, _ := a.st.find(k)
	if id == 0 {
		return false
	}
	a.release(id)
	return true
}

// Allocate gives svc its addresses: the ones it holds when they are still valid, else the
// ones it requests, else free ones from the pools that serve it. A Service whose held
// addresses became invalid loses them, also when no new address can be found.
func (a *Allocator) Allocate(svc *Service) (Assignment, error) {
	fams, refusal := a.admit(svc)
	if refusal != nil {
		return Assignment{}, refusal
	}
	id, kh := a.st.find(svc.Key())
	var held []netip.Addr
	if id != 0 {
		held = a.ipsOf(id)
	} else {
		held = unmapAll(svc.CurrentIPs)
	}
	if len(held) > 0 {
		if p, err := a.checkKeep(id, svc, fams, held); err == nil {
			if id == 0 || !a.sameSharing(id, svc) || a.st.rec(id).pool() != p {
				if id != 0 {
					a.release(id)
				}
				id = a.claim(svc, kh, held, p, fams[0])
			}
			a.topUp(id, svc, fams)
			return a.assignment(id), nil
		}
		if id != 0 {
			a.release(id)
		}
	}
	id, err := a.allocateNew(svc, kh, fams)
	if err != nil {
		return Assignment{}, err
	}
	return a.assignment(id), nil
}

// sameSharing reports whether record id was made with svc's sharing attributes.
func (a *Allocator) sameSharing(id uint32, svc *Service) bool {
	var e extension
	if r := a.st.rec(id); r.ext != 0 {
		e = a.st.exts[r.ext]
	}
	if e.sharingKey != svc.SharingKey {
		return false
	}
	return svc.SharingKey == "" || e.backendKey == svc.backendKey() && slices.Equal(e.ports, svc.Ports)
}

// topUp gives a PreferDualStack Service holding one family an address of the other family
// from the same pool, when one is free.
func (a *Allocator) topUp(id uint32, svc *Service, fams []Family) {
	if svc.FamilyPolicy != PreferDualStack || len(fams) != 2 || len(svc.RequestedIPs) > 0 {
		return
	}
	held := a.familiesOf(id).list()
	if len(held) != 1 {
		return
	}
	missing := held[0].other()
	if x, ok := a.freeFor(a.pools[a.st.rec(id).pool()], missing, svc); ok {
		a.addAddr(id, svc.SharingKey, missing, x)
	}
}

// PoolStats are one pool's address counts, for IPAddressPool status and metrics. Counts of
// IPv6 addresses saturate at MaxUint64.
type PoolStats struct {
	Pool                        string
	AssignedIPv4, AvailableIPv4 uint64
	AssignedIPv6, AvailableIPv6 uint64
}

// Stats returns every pool's counts, by pool name. A shared address counts once.
func (a *Allocator) Stats() []PoolStats {
	out := make([]PoolStats, len(a.pools))
	for i, p := range a.pools {
		u4, c4 := p.counts(IPv4)
		u6, c6 := p.counts(IPv6)
		out[i] = PoolStats{Pool: p.name(), AssignedIPv4: u4, AvailableIPv4: c4 - u4, AssignedIPv6: u6, AvailableIPv6: c6 - u6}
	}
	return out
}

// unmapAll drops invalid addresses and unmaps IPv4-mapped IPv6 ones; it returns ips itself
// when there is nothing to change.
func unmapAll(ips []netip.Addr) []netip.Addr {
	clean := true
	for _, ip := range ips {
		clean = clean && ip.IsValid() && !ip.Is4In6()
	}
	if clean {
		return ips
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if ip.IsValid() {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

func sameAddrSet(x, y []netip.Addr) bool {
	if len(x) != len(y) {
		return false
	}
	for _, ip := range x {
		if !slices.Contains(y, ip.Unmap()) {
			return false
		}
	}
	return true
}

func sameFamilySet(ips []netip.Addr, fams []Family) bool {
	if len(ips) != len(fams) {
		return false
	}
	seen := [2]bool{}
	for _, ip := range ips {
		f := familyOf(ip)
		if seen[f.index()] || !slices.Contains(fams, f) {
			return false
		}
		seen[f.index()] = true
	}
	return true
}

// orderByFamily orders ips (one per family) like fams.
func orderByFamily(ips []netip.Addr, fams []Family) []netip.Addr {
	if len(ips) == 2 && familyOf(ips[0]) != fams[0] {
		return []netip.Addr{ips[1], ips[0]}
	}
	return ips
}

func joinAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

func joinFamilies(fams []Family) string {
	s := make([]string, len(fams))
	for i, f := range fams {
		s[i] = f.String()
	}
	return strings.Join(s, ", ")
}
