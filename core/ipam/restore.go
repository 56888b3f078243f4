package ipam

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/switchyard-lb/switchyard/core/config"
)

// Restore rebuilds assignments from the addresses Services already hold (Service.CurrentIPs,
// their status), as a controller does when it starts: every Service keeps its addresses while
// they are valid, so a restart never moves an address.
//
// The result does not depend on the order of svcs: Services are restored oldest first
// (Created, then namespace/name), so when two claim one address they may not share, the
// older keeps it. Each Service that cannot keep its addresses is reported, sorted by
// namespace/name; the controller then gives it new ones with Allocate. Services of another
// loadBalancerClass are skipped silently, and Services holding nothing are not reported.
//
// Pass every Service in one call: conflicts are only resolved by age within a call. A
// Service that already has an assignment is first released.
func (a *Allocator) Restore(svcs []Service) []*AllocationError {
	b := newBatch(svcs, func(s *Service) bool { return len(s.CurrentIPs) > 0 }, false)
	var positions []int32
	errs := a.restore(b)
	for pos, err := range errs {
		if err != nil {
			positions = append(positions, int32(pos))
		}
	}
	slices.SortFunc(positions, func(x, y int32) int { return b.compareKeys(b.keys[x], b.keys[y]) })
	refused := make([]*AllocationError, len(positions))
	for i, pos := range positions {
		refused[i] = errs[pos]
	}
	return refused
}

// restore restores batch b and returns, per position in the batch, why that Service could
// not keep its addresses (nil when it did, or when it is of another class).
//
// Only Services competing for an address they may not share (or one Service listed twice)
// make the order matter. So restore first takes the batch as it comes, and only when it meets
// such a case undoes that pass and restores oldest first: the common case costs no sort.
// The first pass walks the Services in input order, whatever the batch's order, because
// reading them in the order they lie in memory is markedly faster for large batches.
func (a *Allocator) restore(b *batch) []*AllocationError {
	// Size the indexes for the batch up front instead of growing them step by step.
	a.st.reserve(len(b.keys))
	a.holdersV4.reserve(len(b.keys))
	refused := make([]*AllocationError, len(b.keys))
	claimed := make([]uint32, 0, len(b.keys))
	orderFree := true
	for pos := range b.inInputOrder() {
		if !a.restoreOne(b.service(pos), &refused[pos], &claimed) {
			orderFree = false
			break
		}
	}
	for _, id := range claimed {
		if orderFree {
			a.st.rec(id).poolFlags &^= flagRestoring
		} else {
			a.release(id)
		}
	}
	if orderFree {
		return refused
	}
	clear(refused)
	for _, o := range b.byAge() {
		a.restoreOne(b.service(o.pos), &refused[o.pos], nil)
	}
	return refused
}

// restoreOne lets svc keep its current addresses when they are valid, else records why not
// in *refusal. In the order-free pass (claimed != nil) it notes what it claimed, and returns
// false, changing nothing, when it meets a case whose outcome depends on the order.
func (a *Allocator) restoreOne(svc *Service, refusal **AllocationError, claimed *[]uint32) bool {
	fams, err := a.admit(svc)
	if err != nil {
		if err.Kind != ErrNotHandled {
			*refusal = err
		}
		return true
	}
	id, kh := a.st.find(svc.Key())
	if id != 0 {
		if claimed != nil && a.st.rec(id).has(flagRestoring) {
			return false // listed twice in the batch
		}
		a.release(id)
	}
	ips := unmapAll(svc.CurrentIPs)
	p, err := a.checkKeep(0, svc, fams, ips)
	if err != nil {
		if claimed != nil && err.Kind == ErrSharingConflict {
			return false
		}
		*refusal = err
		return true
	}
	id = a.claim(svc, kh, orderByFamily(ips, fams), p, fams[0])
	if claimed != nil {
		a.st.rec(id).poolFlags |= flagRestoring
		*claimed = append(*claimed, id)
	}
	return true
}

// Change is what a configuration change did to one assignment.
type Change struct {
	Service ServiceKey
	IPs     []netip.Addr
	// OldPool is the pool the addresses came from; NewPool the pool holding them now, or ""
	// when they were released.
	OldPool, NewPool string
	Reason           string
}

// Released reports whether the Service lost its addresses.
func (c Change) Released() bool { return c.NewPool == "" }

// SetConfig switches to cfg. Every assignment whose addresses are still inside one pool keeps
// them, under that pool; the others are released. It returns those two kinds of change,
// sorted by namespace/name (assignments that stay in the same pool are not listed).
//
// SetConfig looks at addresses only; whether a pool's serviceAllocation still selects a
// Service is checked when the controller passes the Service to Allocate again, as it must
// for every Service after a configuration change. Plan shows the combined effect beforehand.
func (a *Allocator) SetConfig(cfg *config.Config) []Change {
	next := New(cfg, a.opts) // only for its pool structures
	type move struct {
		id      uint32
		newPool int
	}
	var moves []move
	var changes []Change
	var doomed []uint32
	a.st.each(func(id uint32) {
		oldPool := a.pools[a.st.rec(id).pool()].name()
		ips := a.ipsOf(id)
		p, reason := next.poolOf(ips)
		switch {
		case p < 0:
			if _, kept := next.poolByName[oldPool]; !kept {
				reason = fmt.Sprintf("pool %q was removed", oldPool)
			}
			changes = append(changes, Change{Service: a.st.key(id), IPs: ips, OldPool: oldPool, Reason: reason})
			doomed = append(doomed, id)
		default:
			if newName := next.pools[p].name(); newName != oldPool {
				changes = append(changes, Change{Service: a.st.key(id), IPs: ips, OldPool: oldPool, NewPool: newName,
					Reason: fmt.Sprintf("%s moved from pool %q to pool %q", joinAddrs(ips), oldPool, newName)})
			}
			moves = append(moves, move{id, p})
		}
	})
	for _, id := range doomed {
		a.release(id)
	}
	a.setPools(cfg)
	for _, m := range moves {
		r := a.st.rec(m.id)
		r.poolFlags = r.poolFlags&^poolMask | uint32(m.newPool)
	}
	// The new ranges start empty: tell them which of their addresses are in use.
	for v4 := range a.holdersV4.all() {
		x := u128{lo: uint64(v4)}
		if _, r, ok := a.locate(IPv4, x); ok {
			r.take(x)
		}
	}
	for x := range a.holdersV6 {
		if _, r, ok := a.locate(IPv6, x); ok {
			r.take(x)
		}
	}
	slices.SortFunc(changes, func(x, y Change) int { return x.Service.compare(y.Service) })
	return changes
}

// poolOf returns the one pool holding every address of ips, or -1 and why not.
func (a *Allocator) poolOf(ips []netip.Addr) (int, string) {
	p := -1
	for _, ip := range ips {
		q, _, ok := a.locate(familyOf(ip), u128From(ip))
		if !ok {
			return -1, a.outsideDetail(ip)
		}
		if p >= 0 && q != p {
			return -1, fmt.Sprintf("%s are now in different pools (%q and %q)", joinAddrs(ips), a.pools[p].name(), a.pools[q].name())
		}
		p = q
	}
	return p, ""
}
