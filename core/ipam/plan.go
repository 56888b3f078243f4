package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/switchyard-lb/switchyard/core/config"
)

// Action is what a configuration change does to a Service's addresses.
type Action string

// The actions of a plan.
const (
	// Keep: the Service keeps its addresses (possibly now counted in another pool).
	Keep Action = "Keep"
	// Reassign: the Service loses its addresses and gets new ones.
	Reassign Action = "Reassign"
	// Release: the Service loses its addresses and no pool has new ones for it.
	Release Action = "Release"
)

// PlanEntry is the fate of one Service's addresses under a new configuration.
type PlanEntry struct {
	Service ServiceKey
	Action  Action
	OldIPs  []netip.Addr // the Service's CurrentIPs (shared with the input, not copied)
	NewIPs  []netip.Addr // equal to OldIPs for Keep, empty for Release
	// OldPool is the pool holding OldIPs under the old configuration ("" when none did);
	// NewPool the pool holding NewIPs under the new one.
	OldPool, NewPool string
	Reason           string
	// Err is the refusal behind a Reassign or Release.
	Err *AllocationError
}

// Plan shows what switching from oldCfg to newCfg would do to the Services' current
// addresses (Service.CurrentIPs), without changing anything: every Service holding addresses
// gets one entry, sorted by namespace/name. It applies the same rules as a controller starting
// on newCfg: addresses still valid (inside a pool that serves the Service, of the right
// family, shareable) are kept, then the others are reassigned oldest Service first.
// Services holding nothing and Services of another loadBalancerClass are left out.
func Plan(oldCfg, newCfg *config.Config, svcs []Service, opts Options) []PlanEntry {
	old := New(oldCfg, opts)
	next := New(newCfg, opts)
	b := newBatch(svcs, func(s *Service) bool {
		return len(s.CurrentIPs) > 0 && s.LoadBalancerClass == opts.LoadBalancerClass
	}, true)
	refused := next.restore(b)

	// entries[pos] is the entry of the Service at position pos of the batch, which is sorted
	// by namespace/name.
	entries := make([]PlanEntry, len(b.keys))
	stillIn := make(map[string]string, len(next.pools)) // pool -> Keep reason, built once
	var toReassign []agePosition
	for pos := range entries {
		svc := b.service(int32(pos))
		ips := unmapAll(svc.CurrentIPs)
		e := &entries[pos]
		e.Service, e.OldIPs = svc.Key(), ips
		if p, _ := old.poolOf(ips); p >= 0 {
			e.OldPool = old.pools[p].name()
		}
		if err := refused[pos]; err != nil {
			e.Err = err
			e.Reason = explain(err, e.OldPool, next)
			toReassign = append(toReassign, b.agePosition(int32(pos)))
			continue
		}
		// Restored: the addresses are unchanged and inside one pool of the new configuration.
		e.Action, e.NewIPs = Keep, ips
		if len(ips) == 2 {
			if fams, err := svc.wantedFamilies(); err == nil {
				e.NewIPs = orderByFamily(ips, fams)
			}
		}
		if p, _ := next.poolOf(ips); p >= 0 {
			e.NewPool = next.pools[p].name()
		}
		switch {
		case e.OldPool == e.NewPool:
			reason, ok := stillIn[e.NewPool]
			if !ok {
				reason = fmt.Sprintf("still in pool %q", e.NewPool)
				stillIn[e.NewPool] = reason
			}
			e.Reason = reason
		case e.OldPool == "":
			e.Reason = fmt.Sprintf("now in pool %q", e.NewPool)
		default:
			e.Reason = fmt.Sprintf("moved from pool %q to pool %q", e.OldPool, e.NewPool)
		}
	}

	// Reassign in the order Restore resolves conflicts: oldest first, then by key.
	slices.SortFunc(toReassign, b.compareAge)
	for _, o := range toReassign {
		e := &entries[o.pos]
		svc := *b.service(o.pos)
		svc.CurrentIPs = nil
		as, err := next.Allocate(&svc)
		if err != nil {
			e.Action = Release
			e.Reason += "; no new address: " + errDetail(err)
			continue
		}
		e.Action, e.NewIPs, e.NewPool = Reassign, as.IPs, as.Pool
	}
	return entries
}

// explain turns a refusal to keep addresses into a reason that names the configuration
// change behind it.
func explain(err *AllocationError, oldPool string, next *Allocator) string {
	if err.Kind == ErrOutsidePools && oldPool != "" {
		if _, ok := next.poolByName[oldPool]; !ok {
			return "pool " + strconv.Quote(oldPool) + " was removed"
		}
		return "pool " + strconv.Quote(oldPool) + " no longer holds them: " + err.Detail
	}
	return err.Detail
}

func errDetail(err error) string {
	var ae *AllocationError
	if errors.As(err, &ae) {
		return ae.Detail
	}
	return err.Error()
}
