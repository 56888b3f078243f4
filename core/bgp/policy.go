package bgp

import (
	"fmt"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/switchyard-lb/switchyard/core/config"
)

// Service is what the BGP policy needs to know about one LoadBalancer Service.
type Service struct {
	// Key identifies the Service, "namespace/name".
	Key string
	// IPs are the Service's assigned ingress IPs.
	IPs []netip.Addr
	// Pool is the name of the IPAddressPool the IPs came from.
	Pool string
	// TrafficPolicyLocal is true for externalTrafficPolicy: Local.
	TrafficPolicyLocal bool
	// LocalEndpointReady is true when this node runs a ready endpoint of the Service.
	LocalEndpointReady bool
	// AnyEndpointReady is true when any node runs a ready endpoint of the Service.
	AnyEndpointReady bool
}

// advertised reports whether this node should announce the Service at all: with
// externalTrafficPolicy Local only nodes with a ready local endpoint do (traffic to others
// would be dropped), with Cluster every node does as long as some endpoint is ready.
func (s *Service) advertised() bool {
	if s.TrafficPolicyLocal {
		return s.LocalEndpointReady
	}
	return s.AnyEndpointReady
}

// Policy decides which prefixes this node announces to which BGP peer, with which attributes.
//
// Inputs are the configuration's BGPAdvertisements and BGPPeers, this node's name and labels,
// and the Services; the output is, per peer, a table of routes. Every setter returns only the
// difference it caused, per peer name, ready for Session.Update. A Service change touches only
// that Service's prefixes, so it costs the same with ten Services or ten thousand.
//
// Rules, following MetalLB's BGP mode:
//   - A peer is used by this node when its nodeSelectors are empty or one of them matches.
//   - A BGPAdvertisement applies when one of its nodeSelectors matches (or it has none), the
//     Service's pool is among its pools (core/config has resolved ipAddressPools and
//     ipAddressPoolSelectors into that list), and the peer is among its peers (or it names
//     none).
//   - Each Service IP is announced as the prefix of the advertisement's aggregationLength
//     (IPv4) or aggregationLengthV6 (IPv6) containing it. An aggregate shared by several IPs is
//     withdrawn only when the last of them goes (reference counts).
//   - Attributes are the advertisement's localPref and communities. When several
//     advertisements give the same prefix to the same peer, the communities are united and
//     the highest localPref wins. LOCAL_PREF reaches iBGP peers only; Session drops it on eBGP.
//
// Policy is not safe for concurrent use.
type Policy struct {
	nodeName   string
	nodeLabels labels.Set

	adverts []*config.BGPAdvertisement
	peers   []*config.Peer

	// active are the peers this node uses, in configuration order.
	active []*peerTable
	// byPool lists, per pool name, the (advertisement, peer) pairs that announce it.
	byPool map[string][]*advertPeer

	services map[string]*serviceState
}

// peerTable is one peer's Adj-RIB-Out as the policy sees it.
type peerTable struct {
	name    string
	entries map[netip.Prefix]*tableEntry
}

// tableEntry is one prefix in a peer's table.
type tableEntry struct {
	// refs counts, per advertisement, the Service IPs inside this prefix.
	refs map[*advertPeer]int
	// announced and attrs are what the last returned Diff told the peer.
	announced bool
	attrs     Attributes
}

// advertPeer is one BGPAdvertisement applied to one peer.
type advertPeer struct {
	table      *peerTable
	aggV4      int
	aggV6      int
	attributes Attributes
}

// serviceState remembers what a Service contributed, so that a change can be undone exactly.
type serviceState struct {
	svc      Service
	contribs []contribution
}

type contribution struct {
	ap     *advertPeer
	prefix netip.Prefix
}

// NewPolicy returns a policy for the named node with no configuration and no Services.
func NewPolicy(nodeName string, nodeLabels map[string]string) *Policy {
	return &Policy{nodeName: nodeName, nodeLabels: labels.Set(nodeLabels), services: map[string]*serviceState{}, byPool: map[string][]*advertPeer{}}
}

// SetConfig replaces the BGPAdvertisements and BGPPeers.
func (p *Policy) SetConfig(adverts []*config.BGPAdvertisement, peers []*config.Peer) map[string]Diff {
	p.adverts, p.peers = adverts, peers
	return p.rebuild()
}

// SetNode replaces this node's labels.
func (p *Policy) SetNode(nodeLabels map[string]string) map[string]Diff {
	p.nodeLabels = labels.Set(nodeLabels)
	return p.rebuild()
}

// SetService adds or replaces a Service.
func (p *Policy) SetService(svc Service) map[string]Diff {
	svc.IPs = slices.Clone(svc.IPs)
	touched := newTouchSet()
	st := p.services[svc.Key]
	if st == nil {
		st = &serviceState{}
		p.services[svc.Key] = st
	}
	p.withdrawContribs(st, touched)
	st.svc = svc
	p.addContribs(st, touched)
	return touched.diffs()
}

// DeleteService removes a Service.
func (p *Policy) DeleteService(key string) map[string]Diff {
	st := p.services[key]
	if st == nil {
		return nil
	}
	touched := newTouchSet()
	p.withdrawContribs(st, touched)
	delete(p.services, key)
	return touched.diffs()
}

// Table returns the routes announced to the named peer, sorted by prefix.
func (p *Policy) Table(peer string) []Route {
	var out []Route
	for _, t := range p.active {
		if t.name != peer {
			continue
		}
		for prefix, e := range t.entries {
			if e.announced {
				out = append(out, Route{Prefix: prefix, Attrs: e.attrs})
			}
		}
	}
	slices.SortFunc(out, func(a, b Route) int { return comparePrefix(a.Prefix, b.Prefix) })
	return out
}

// rebuild recomputes every table after a configuration or node change and returns the
// difference from the tables announced before.
func (p *Policy) rebuild() map[string]Diff {
	before := map[string]map[netip.Prefix]Attributes{}
	for _, t := range p.active {
		old := map[netip.Prefix]Attributes{}
		for prefix, e := range t.entries {
			if e.announced {
				old[prefix] = e.attrs
			}
		}
		before[t.name] = old
	}

	p.active = nil
	clear(p.byPool)
	tables := map[string]*peerTable{}
	for _, peer := range p.peers {
		if !PeerAppliesToNode(peer, p.nodeLabels) {
			continue
		}
		t := &peerTable{name: peer.Name, entries: map[netip.Prefix]*tableEntry{}}
		tables[peer.Name] = t
		p.active = append(p.active, t)
	}
	for _, adv := range p.adverts {
		if !anySelectorMatches(adv.NodeSelectors, p.nodeLabels) {
			continue
		}
		attrs := Attributes{LocalPref: adv.LocalPref, Communities: slices.Clone(adv.Communities)}
		slices.SortFunc(attrs.Communities, compareCommunity)
		attrs.Communities = slices.Compact(attrs.Communities)
		for _, t := range p.active {
			if len(adv.Peers) > 0 && !slices.Contains(adv.Peers, t.name) {
				continue
			}
			ap := &advertPeer{table: t, aggV4: adv.AggregationLength, aggV6: adv.AggregationLengthV6, attributes: attrs}
			for _, pool := range adv.Pools {
				p.byPool[pool] = append(p.byPool[pool], ap)
			}
		}
	}

	touched := newTouchSet()
	for _, st := range p.services {
		st.contribs = st.contribs[:0]
		p.addContribs(st, touched)
	}
	// Every new entry starts unannounced; mark what the peer already has so the diff is
	// against it, not against nothing.
	for _, t := range p.active {
		for prefix, attrs := range before[t.name] {
			e := t.entries[prefix]
			if e == nil {
				e = &tableEntry{refs: map[*advertPeer]int{}}
				t.entries[prefix] = e
				touched.add(t, prefix)
			}
			e.announced, e.attrs = true, attrs
		}
	}
	diffs := touched.diffs()
	// Peers no longer used by this node lose every route.
	for name, old := range before {
		if _, still := tables[name]; still || len(old) == 0 {
			continue
		}
		d := Diff{}
		for prefix := range old {
			d.Withdraw = append(d.Withdraw, prefix)
		}
		slices.SortFunc(d.Withdraw, comparePrefix)
		diffs[name] = d
	}
	return diffs
}

// PeerAppliesToNode reports whether a node with the given labels peers with p: when p has no
// nodeSelectors, or one of them matches. The speaker runs Sessions only for such peers.
func PeerAppliesToNode(p *config.Peer, nodeLabels map[string]string) bool {
	return anySelectorMatches(p.NodeSelectors, labels.Set(nodeLabels))
}

func anySelectorMatches(selectors []labels.Selector, set labels.Set) bool {
	if len(selectors) == 0 {
		return true
	}
	for _, s := range selectors {
		if s.Matches(set) {
			return true
		}
	}
	return false
}

// addContribs adds the prefixes of st's Service to the tables.
func (p *Policy) addContribs(st *serviceState, touched *touchSet) {
	if !st.svc.advertised() {
		return
	}
	for _, ap := range p.byPool[st.svc.Pool] {
		for _, ip := range st.svc.IPs {
			prefix, err := aggregate(ip, ap.aggV4, ap.aggV6)
			if err != nil {
				continue
			}
			e := ap.table.entries[prefix]
			if e == nil {
				e = &tableEntry{refs: map[*advertPeer]int{}}
				ap.table.entries[prefix] = e
			}
			e.refs[ap]++
			st.contribs = append(st.contribs, contribution{ap: ap, prefix: prefix})
			touched.add(ap.table, prefix)
		}
	}
}

// withdrawContribs removes what st's Service contributed.
func (p *Policy) withdrawContribs(st *serviceState, touched *touchSet) {
	for _, c := range st.contribs {
		e := c.ap.table.entries[c.prefix]
		if e == nil {
			continue
		}
		if e.refs[c.ap]--; e.refs[c.ap] <= 0 {
			delete(e.refs, c.ap)
		}
		touched.add(c.ap.table, c.prefix)
	}
	st.contribs = st.contribs[:0]
}

// aggregate is the prefix of the given aggregation length containing ip (0 means a host
// prefix).
func aggregate(ip netip.Addr, aggV4, aggV6 int) (netip.Prefix, error) {
	ip = ip.Unmap()
	bits := aggV6
	if ip.Is4() {
		bits = aggV4
	}
	if bits == 0 {
		bits = ip.BitLen()
	}
	prefix, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("aggregating %v to /%d: %w", ip, bits, err)
	}
	return prefix, nil
}

// touchSet collects the (peer, prefix) pairs a change touched, to diff them afterwards.
type touchSet struct {
	byTable map[*peerTable][]netip.Prefix
	order   []*peerTable
}

func newTouchSet() *touchSet {
	return &touchSet{byTable: map[*peerTable][]netip.Prefix{}}
}

func (ts *touchSet) add(t *peerTable, prefix netip.Prefix) {
	list, seen := ts.byTable[t]
	if !seen {
		ts.order = append(ts.order, t)
	}
	ts.byTable[t] = append(list, prefix)
}

// diffs settles every touched entry — announce, re-announce with new attributes, withdraw —
// and returns the resulting per-peer differences.
func (ts *touchSet) diffs() map[string]Diff {
	out := map[string]Diff{}
	for _, t := range ts.order {
		prefixes := ts.byTable[t]
		slices.SortFunc(prefixes, comparePrefix)
		prefixes = slices.Compact(prefixes)
		var d Diff
		for _, prefix := range prefixes {
			e := t.entries[prefix]
			if e == nil {
				continue
			}
			if len(e.refs) == 0 {
				if e.announced {
					d.Withdraw = append(d.Withdraw, prefix)
				}
				delete(t.entries, prefix)
				continue
			}
			attrs := e.mergedAttributes()
			if !e.announced || !e.attrs.Equal(attrs) {
				d.Announce = append(d.Announce, Route{Prefix: prefix, Attrs: attrs})
			}
			e.announced, e.attrs = true, attrs
		}
		if !d.Empty() {
			out[t.name] = d
		}
	}
	return out
}

func (e *tableEntry) mergedAttributes() Attributes {
	if len(e.refs) == 1 {
		for ap := range e.refs {
			return ap.attributes
		}
	}
	all := make([]Attributes, 0, len(e.refs))
	for ap := range e.refs {
		all = append(all, ap.attributes)
	}
	return mergeAttributes(all)
}
