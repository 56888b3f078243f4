package speaker

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/switchyard-lb/switchyard/core/config"
)

// FNV-1a, 64 bits, is the core of the election's rank function. Any hash works as long as every
// speaker of a cluster uses the same; FNV is cheap enough to rank a thousand Services against a
// hundred peers in about a millisecond.
const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// rank is a node's rank for a Service; the lowest rank wins. FNV alone mixes its last input
// bytes poorly (node names that differ only in their last character would be ranked in the
// same order for most VIPs, piling VIPs onto one node), so the hash is finished with
// MurmurHash3's 64-bit finaliser.
func (svc *service) rank(node string) uint64 { return fmix64(fnvString(svc.rankSeed, node)) }

func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// beats reports whether node a with rank ra wins over node b with rank rb.
func beats(ra uint64, a string, rb uint64, b string) bool {
	return ra < rb || ra == rb && a < b
}

// elect recomputes ownership and returns what that changes.
func (s *Speaker) elect(now time.Time) Output {
	var out Output
	s.electInto(now, &out)
	return out
}

// electorate is what one election needs to know about the segments: those that may carry VIPs
// (up, and past this node's hold) and the candidate peers heard on each.
type electorate struct {
	segs  []*segment
	peers [][]candidatePeer // by index in segs
}

type candidatePeer struct {
	name   string
	labels map[string]string
}

func (s *Speaker) electorate() *electorate {
	el := &electorate{}
	for _, name := range s.segList {
		seg := s.segs[name]
		if !seg.Up || !seg.holdDone {
			continue
		}
		var peers []candidatePeer
		for node, pr := range seg.peers {
			if !pr.candidate {
				continue
			}
			var labels map[string]string
			if s.nodes != nil {
				n := s.nodes[node]
				if n == nil {
					continue // not a node of this cluster
				}
				labels = n.Labels
			}
			peers = append(peers, candidatePeer{name: node, labels: labels})
		}
		el.segs = append(el.segs, seg)
		el.peers = append(el.peers, peers)
	}
	return el
}

// electInto decides, for every Service, whether this node owns its VIPs, and applies the
// difference to the responder: released VIPs first, then claimed ones, each in address order.
func (s *Speaker) electInto(now time.Time, out *Output) {
	s.dirtyElection = false
	if s.stopped {
		return
	}
	s.deadlineStale = true
	el := s.electorate()
	if len(el.segs) == 0 && len(s.owned) == 0 {
		return // still in the hold, or no usable interface: nothing to claim, nothing to release
	}
	want := make(map[netip.Addr]*ownership, len(s.owned))
	var lost map[ServiceKey]string // why owned Services were lost, for the release events
	for _, key := range s.order {
		svc := s.services[key]
		vips, reason := s.wins(svc, el)
		if vips == nil {
			if s.ownsAny(svc) {
				if lost == nil {
					lost = map[ServiceKey]string{}
				}
				lost[key] = reason
			}
			continue
		}
		for _, vip := range svc.VIPs {
			ifs := vips[vip]
			if len(ifs) == 0 {
				continue
			}
			if o := want[vip]; o != nil {
				// A shared VIP: announce it wherever any of its Services wants it.
				o.interfaces = union(o.interfaces, ifs)
				continue
			}
			want[vip] = &ownership{service: key, interfaces: ifs}
		}
	}
	for _, vip := range slices.SortedFunc(maps.Keys(s.owned), netip.Addr.Compare) {
		if want[vip] != nil {
			continue
		}
		o := s.owned[vip]
		reason, ok := lost[o.service]
		if !ok {
			reason = "the Service no longer has this address"
		}
		s.addL2(out, s.responder.Disown(vip))
		out.Events = append(out.Events, Event{Kind: EventDisown, Service: o.service, VIP: vip, Interfaces: o.interfaces, Reason: reason})
		delete(s.owned, vip)
	}
	for _, vip := range slices.SortedFunc(maps.Keys(want), netip.Addr.Compare) {
		w := want[vip]
		if o := s.owned[vip]; o != nil && slices.Equal(o.interfaces, w.interfaces) {
			o.service = w.service
			continue
		}
		lo, err := s.responder.Own(vip, w.interfaces, now)
		if err != nil {
			// Services were validated, so the responder accepts every VIP; keep going if not.
			out.Events = append(out.Events, Event{Kind: EventDisown, Service: w.service, VIP: vip, Reason: err.Error()})
			continue
		}
		s.owned[vip] = w
		out.Events = append(out.Events, Event{Kind: EventOwn, Service: w.service, VIP: vip, Interfaces: w.interfaces})
		s.addL2(out, lo)
	}
}

func (s *Speaker) ownsAny(svc *service) bool {
	for _, vip := range svc.VIPs {
		if s.owned[vip] != nil {
			return true
		}
	}
	return false
}

// wins decides whether this node owns svc. It returns the interfaces to announce each VIP on,
// or nil and the reason it does not own the Service.
func (s *Speaker) wins(svc *service, el *electorate) (map[netip.Addr][]string, string) {
	if s.lb == nil {
		return nil, "no configuration"
	}
	poolName := svc.Pool
	if poolName == "" {
		p := s.lb.PoolFor(svc.VIPs[0])
		if p == nil {
			return nil, fmt.Sprintf("no pool holds %s", svc.VIPs[0])
		}
		poolName = p.Name
	}
	ads := s.adsFor[poolName]
	if len(ads) == 0 {
		return nil, fmt.Sprintf("pool %s is not announced by any L2Advertisement", poolName)
	}
	var selfLabels map[string]string
	if s.nodes != nil {
		self := s.nodes[s.name]
		if self == nil {
			return nil, "this node is not in the node list"
		}
		selfLabels = self.Labels
	}
	selected, allIfaces, everyNode := false, false, false
	var names []string
	for _, ad := range ads {
		if len(ad.NodeSelectors) == 0 {
			everyNode = true
		}
		if !selects(ad, selfLabels) {
			continue
		}
		selected = true
		if len(ad.Interfaces) == 0 {
			allIfaces = true
		}
		names = append(names, ad.Interfaces...)
	}
	if !selected {
		return nil, "no L2Advertisement selects this node"
	}
	local := svc.ExternalTrafficPolicy == TrafficLocal
	if local && !s.readyOn(svc.Key(), s.name) {
		return nil, "no ready endpoint on this node (externalTrafficPolicy Local)"
	}
	var vips map[netip.Addr][]string
	var on []int // indexes in el.segs of the segments carrying a VIP
	for i, seg := range el.segs {
		if !allIfaces && !slices.Contains(names, seg.Name) {
			continue
		}
		carries := false
		for _, vip := range svc.VIPs {
			if onSubnet(seg.Prefixes, vip) {
				if vips == nil {
					vips = map[netip.Addr][]string{}
				}
				vips[vip] = append(vips[vip], seg.Name)
				carries = true
			}
		}
		if carries {
			on = append(on, i)
		}
	}
	if len(on) == 0 {
		return nil, "no interface up on the VIP's subnet"
	}
	myRank := svc.rank(s.name)
	best, bestRank := "", uint64(0)
	for _, i := range on {
		for _, p := range el.peers[i] {
			if !everyNode && !slices.ContainsFunc(ads, func(ad *config.L2Advertisement) bool { return selects(ad, p.labels) }) {
				continue
			}
			if local && !s.readyOn(svc.Key(), p.name) {
				continue
			}
			if r := svc.rank(p.name); best == "" || beats(r, p.name, bestRank, best) {
				best, bestRank = p.name, r
			}
		}
	}
	if best != "" && beats(bestRank, best, myRank, s.name) {
		return nil, best + " ranks first"
	}
	return vips, ""
}

func (s *Speaker) readyOn(key ServiceKey, node string) bool {
	return slices.ContainsFunc(s.ends[key], func(ep Endpoint) bool { return ep.Ready && ep.Node == node })
}

// selects reports whether an advertisement's node selectors (any of them; none means every
// node) match a node's labels.
func selects(ad *config.L2Advertisement, nodeLabels map[string]string) bool {
	if len(ad.NodeSelectors) == 0 {
		return true
	}
	for _, sel := range ad.NodeSelectors {
		if sel.Matches(labelSet(nodeLabels)) {
			return true
		}
	}
	return false
}

// labelSet adapts a map to labels.Labels without copying.
type labelSet map[string]string

func (l labelSet) Has(k string) bool              { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string            { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) { v, ok := l[k]; return v, ok }

func onSubnet(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}
