package ipam

import (
	"fmt"
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
	pools      []*pool // sorted by name, as in the Config
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
	holdersV4 map[uint32]uint32
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
		holdersV4: map[uint32]uint32{},
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
	for _, pc := range cfg.Pools {
		if pc == nil || len(a.pools) == maxPools {
			continue
		}
		i := len(a.pools)
		p := newPool(pc)
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

func (a *Allocator) isInUse(f Family, x u128) bool { return a.head(f, x) != 0 }

func (a *Allocator) head(f Family, x u128) uint32 {
	if f == IPv4 {
		return a.holdersV4[uint32(x.lo)]
	}
	return a.holdersV6[x]
}

func (a *Allocator) setHead(f Family, x u128, id uint32) {
	switch {
	case f == IPv4 && id == 0:
		delete(a.holdersV4, uint32(x.lo))
	case f == IPv4:
		a.holdersV4[uint32(x.lo)] = id
	case id == 0:
		delete(a.holdersV6, x)
	default:
		a.holdersV6[x] = id
	}
}

// nextHolder returns the holder after id on id's address of family f, or 0.
func (a *Allocator) nextHolder(id uint32, f Family) uint32 {
	if e := a.st.rec(id).ext; e != 0 {
		return a.st.exts[e].next[f.index()]
	}
	return 0
}

// addrOf returns record id's address of family f.
func (a *Allocator) addrOf(id uint32, f Family) u128 {
	r := a.st.rec(id)
	if f == IPv4 {
		return u128{lo: uint64(r.v4)}
	}
	return a.st.exts[r.ext].v6
}

// familyList is the families a record holds, in the Service's order; a fixed array keeps the
// hot paths free of allocations.
type familyList struct {
	f [2]Family
	n int
}

func (l familyList) list() []Family { return l.f[:l.n] }

// familiesOf lists the families record id holds.
func (a *Allocator) familiesOf(id uint32) familyList {
	r := a.st.rec(id)
	var l familyList
	if r.has(flagV4) {
		l.f[l.n] = IPv4
		l.n++
	}
	if r.has(flagV6) {
		l.f[l.n] = IPv6
		l.n++
	}
	if l.n == 2 && r.has(flagV6First) {
		l.f = [2]Family{IPv6, IPv4}
	}
	return l
}

func (a *Allocator) ipsOf(id uint32) []netip.Addr {
	fams := a.familiesOf(id)
	ips := make([]netip.Addr, fams.n)
	for i, f := range fams.list() {
		ips[i] = a.addrOf(id, f).addr(f)
	}
	return ips
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

func (a *Allocator) release(id uint32) {
	fams := a.familiesOf(id)
	for _, f := range fams.list() {
		a.unlink(id, f, a.addrOf(id, f))
	}
	a.st.remove(id)
}

// unlink removes id from the holders of x; the last holder frees the address.
func (a *Allocator) unlink(id uint32, f Family, x u128) {
	head := a.head(f, x)
	next := a.nextHolder(id, f)
	if head == id {
		a.setHead(f, x, next)
		if next == 0 {
			if _, r, ok := a.locate(f, x); ok {
				r.put(x, a.inUse)
			}
			if e := a.st.rec(id).ext; e != 0 && a.st.exts[e].sharingKey != "" {
				a.unshare(a.st.exts[e].sharingKey, familyAddr{f, x})
			}
		}
	} else {
		prev := head
		for a.nextHolder(prev, f) != id {
			prev = a.nextHolder(prev, f)
		}
		a.st.exts[a.st.rec(prev).ext].next[f.index()] = next
	}
	if e := a.st.rec(id).ext; e != 0 {
		a.st.exts[e].next[f.index()] = 0
	}
}

func (a *Allocator) unshare(key string, fa familyAddr) {
	list := a.shared[key]
	if i := slices.Index(list, fa); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(a.shared, key)
	} else {
		a.shared[key] = list
	}
}

// claim records that svc holds ips (already checked) from pool p; fams orders them.
// kh is the key's hash from find; svc must hold no record.
func (a *Allocator) claim(svc *Service, kh keyHash, ips []netip.Addr, p int, primary Family) uint32 {
	id := a.st.add(svc.Key(), kh)
	flags := uint32(p)
	if primary == IPv6 {
		flags |= flagV6First
	}
	a.st.rec(id).poolFlags = flags
	if svc.SharingKey != "" {
		e := a.st.extOf(id)
		e.sharingKey = svc.SharingKey
		e.backendKey = svc.backendKey()
		e.ports = slices.Clone(svc.Ports)
	}
	for _, ip := range ips {
		a.addAddr(id, svc.SharingKey, familyOf(ip), u128From(ip))
	}
	return id
}

// addAddr gives record id the address x of family f.
func (a *Allocator) addAddr(id uint32, sharingKey string, f Family, x u128) {
	r := a.st.rec(id)
	if f == IPv4 {
		r.v4 = uint32(x.lo)
		r.poolFlags |= flagV4
	} else {
		a.st.extOf(id).v6 = x
		a.st.rec(id).poolFlags |= flagV6
	}
	head := a.head(f, x)
	if head == 0 {
		a.setHead(f, x, id)
		if _, rg, ok := a.locate(f, x); ok {
			rg.take(x)
		}
		if sharingKey != "" {
			a.shared[sharingKey] = append(a.shared[sharingKey], familyAddr{f, x})
		}
		return
	}
	// Join a shared address: insert after the head. Both have extensions, since only
	// Services with a sharing key share. (extOf may grow the table: index, don't hold
	// pointers across it.)
	mine := a.st.extOf(id)
	heads := &a.st.exts[a.st.rec(head).ext]
	mine.next[f.index()] = heads.next[f.index()]
	heads.next[f.index()] = id
}

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
	return fmt.Sprintf("%s is outside every address pool", ip)
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
			return 0, refuse(k, ErrPoolMismatch, fmt.Sprintf("requests %s, which is in pool %q, and pool %q", joinAddrs(ips), a.pools[p].name(), svc.RequestedPool))
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
				return a.claim(svc, kh, ips, a.poolByName[p.name()], fams[0]), nil
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
					return a.claim(svc, kh, []netip.Addr{s.addr.addr(fams[i])}, a.poolByName[s.p.name()], fams[0]), nil
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
