package config

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/switchyard-lb/switchyard/api/v1beta1"
	"github.com/switchyard-lb/switchyard/api/v1beta2"
)

// MetalLB's defaults, applied where a field is unset.
const (
	DefaultPeerPort      = 179
	DefaultHoldTime      = 90 * time.Second
	DefaultKeepaliveTime = 30 * time.Second
	DefaultConnectTime   = 120 * time.Second

	DefaultAggregationLength   = 32
	DefaultAggregationLengthV6 = 128

	DefaultBFDReceiveInterval  = 300 * time.Millisecond
	DefaultBFDTransmitInterval = 300 * time.Millisecond
	DefaultBFDDetectMultiplier = 3
	DefaultBFDEchoInterval     = 50 * time.Millisecond
	DefaultBFDMinimumTTL       = 254
)

// Limits of the BGP timers (RFC 4271 §4.2: the hold time is 0 or at least 3 s and fits in 16
// bits of seconds), and of the connect timer MetalLB accepts.
const (
	minHoldTime    = 3 * time.Second
	maxHoldTime    = 65535 * time.Second
	minConnectTime = 1 * time.Second
	maxConnectTime = 65535 * time.Second
	maxPeerPort    = 16384
)

// passwordSecretType and passwordSecretKey are what MetalLB requires of a BGP password Secret.
const (
	passwordSecretType = corev1.SecretTypeBasicAuth
	passwordSecretKey  = "password"
)

// Build validates objs and resolves them into a Config: pools with parsed ranges,
// advertisements resolved to pool names and community values, peers with their timers, every
// default applied.
//
// It checks what MetalLB's webhooks and configuration parser check and reports every problem,
// not only the first: when any is found, the returned error is an Errors and the Config is
// nil. The warnings are problems that do not invalidate the configuration (a peer naming a
// missing BFDProfile, an advertisement naming a missing pool); they are returned either way.
//
// Build does not modify objs and keeps no reference to it.
func Build(objs *Objects) (*Config, []*Error, error) {
	b := &builder{
		cfg:       &Config{},
		pools:     map[string]*Pool{},
		poolNames: map[string]bool{},
		peerNames: map[string]bool{},
		bfdNames:  map[string]bool{},
		aliases:   map[string]aliasDef{},
	}
	b.buildBFDProfiles(objs.BFDProfiles)
	b.buildCommunityAliases(objs.Communities)
	b.buildPools(objs.Pools)
	b.buildPeers(objs.Peers, objs.Secrets)
	b.buildL2Advertisements(objs.L2Advertisements)
	b.buildBGPAdvertisements(objs.BGPAdvertisements)
	if err := b.errs.errorsOrNil(); err != nil {
		return nil, b.warnings, err
	}
	c := b.cfg
	sort.Slice(c.Pools, func(i, j int) bool { return c.Pools[i].Name < c.Pools[j].Name })
	sort.Slice(c.Peers, func(i, j int) bool { return c.Peers[i].Name < c.Peers[j].Name })
	sort.Slice(c.BFDProfiles, func(i, j int) bool { return c.BFDProfiles[i].Name < c.BFDProfiles[j].Name })
	sort.Slice(c.L2Advertisements, func(i, j int) bool { return c.L2Advertisements[i].Name < c.L2Advertisements[j].Name })
	sort.Slice(c.BGPAdvertisements, func(i, j int) bool { return c.BGPAdvertisements[i].Name < c.BGPAdvertisements[j].Name })
	return c, b.warnings, nil
}

// builder carries the state of one Build.
type builder struct {
	problems
	cfg *Config
	// pools are the valid pools by name; poolNames are all pool names seen, valid or not, so
	// that a reference to an invalid pool is not also reported as a reference to a missing one.
	pools     map[string]*Pool
	poolNames map[string]bool
	peerNames map[string]bool
	bfdNames  map[string]bool
	aliases   map[string]aliasDef
}

// aliasDef is one community alias and where it was defined.
type aliasDef struct {
	value  Community
	origin string
}

// checkName rejects an object without a name or with the name of an earlier object of the same
// kind, and reports whether the object may be built. Names are unique per kind across
// namespaces because Switchyard reads one namespace and references are by name only.
func (b *builder) checkName(o object, seen map[string]string) bool {
	if o.name == "" {
		b.reject(o, "metadata.name", "missing")
		return false
	}
	if first, dup := seen[o.name]; dup {
		if first == qualified(o.namespace, o.name) {
			b.reject(o, "metadata.name", fmt.Sprintf("%s %s is defined more than once", o.kind, first))
		} else {
			b.reject(o, "metadata.name", fmt.Sprintf("%s %q is also defined as %s; names must be unique across namespaces", o.kind, o.name, first))
		}
		return false
	}
	seen[o.name] = qualified(o.namespace, o.name)
	return true
}

func qualified(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// selectors converts label selectors, rejecting malformed and repeated ones.
func (b *builder) selectors(o object, field string, in []metav1.LabelSelector) []labels.Selector {
	var out []labels.Selector
	seen := map[string]int{}
	for i := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		sel, err := metav1.LabelSelectorAsSelector(&in[i])
		if err != nil {
			b.reject(o, f, "invalid label selector: "+err.Error())
			continue
		}
		key := sel.String()
		if j, dup := seen[key]; dup {
			b.reject(o, f, fmt.Sprintf("duplicate of %s[%d]", field, j))
			continue
		}
		seen[key] = i
		out = append(out, sel)
	}
	return out
}

func (b *builder) buildBFDProfiles(in []v1beta1.BFDProfile) {
	seen := map[string]string{}
	for i := range in {
		obj := &in[i]
		o := object{KindBFDProfile, obj.Namespace, obj.Name, i}
		if o.name != "" {
			b.bfdNames[o.name] = true
		}
		if !b.checkName(o, seen) {
			continue
		}
		s := &obj.Spec
		nerr := len(b.errs)
		p := &BFDProfile{
			Name:             obj.Name,
			ReceiveInterval:  b.bfdInterval(o, "spec.receiveInterval", s.ReceiveInterval, DefaultBFDReceiveInterval),
			TransmitInterval: b.bfdInterval(o, "spec.transmitInterval", s.TransmitInterval, DefaultBFDTransmitInterval),
			DetectMultiplier: b.bfdNumber(o, "spec.detectMultiplier", s.DetectMultiplier, DefaultBFDDetectMultiplier, 2, 255),
			EchoInterval:     b.bfdInterval(o, "spec.echoInterval", s.EchoInterval, DefaultBFDEchoInterval),
			EchoMode:         s.EchoMode != nil && *s.EchoMode,
			PassiveMode:      s.PassiveMode != nil && *s.PassiveMode,
			MinimumTTL:       b.bfdNumber(o, "spec.minimumTtl", s.MinimumTTL, DefaultBFDMinimumTTL, 1, 254),
		}
		if len(b.errs) == nerr {
			b.cfg.BFDProfiles = append(b.cfg.BFDProfiles, p)
		}
	}
}

// bfdInterval checks a BFD interval in milliseconds (10 to 60000, as MetalLB's CRD).
func (b *builder) bfdInterval(o object, field string, ms *uint32, def time.Duration) time.Duration {
	if ms == nil {
		return def
	}
	if *ms < 10 || *ms > 60000 {
		b.reject(o, field, fmt.Sprintf("%d: must be from 10 to 60000 (milliseconds)", *ms))
		return def
	}
	return time.Duration(*ms) * time.Millisecond
}

func (b *builder) bfdNumber(o object, field string, v *uint32, def, lo, hi uint32) uint32 {
	if v == nil {
		return def
	}
	if *v < lo || *v > hi {
		b.reject(o, field, fmt.Sprintf("%d: must be from %d to %d", *v, lo, hi))
		return def
	}
	return *v
}

func (b *builder) buildCommunityAliases(in []v1beta1.Community) {
	for i := range in {
		obj := &in[i]
		o := object{KindCommunity, obj.Namespace, obj.Name, i}
		if o.name == "" {
			b.reject(o, "metadata.name", "missing")
			continue
		}
		for j, alias := range obj.Spec.Communities {
			f := fmt.Sprintf("spec.communities[%d]", j)
			if alias.Name == "" {
				b.reject(o, f+".name", "missing")
				continue
			}
			v, err := ParseCommunity(alias.Value)
			if err != nil {
				b.reject(o, f+".value", fmt.Sprintf("%q: %v", alias.Value, err))
				continue
			}
			origin := fmt.Sprintf("Community %s %s", qualified(o.namespace, o.name), f)
			if prev, dup := b.aliases[alias.Name]; dup {
				b.reject(o, f+".name", fmt.Sprintf("%q: alias already defined by %s", alias.Name, prev.origin))
				continue
			}
			b.aliases[alias.Name] = aliasDef{value: v, origin: origin}
		}
	}
}

// poolRange is one parsed entry of a pool's spec.addresses, for the overlap check.
type poolRange struct {
	AddressRange
	pool  object
	field string
	text  string
}

func (b *builder) buildPools(in []v1beta1.IPAddressPool) {
	seen := map[string]string{}
	var all []poolRange
	for i := range in {
		obj := &in[i]
		o := object{KindIPAddressPool, obj.Namespace, obj.Name, i}
		if o.name != "" {
			b.poolNames[o.name] = true
		}
		if !b.checkName(o, seen) {
			continue
		}
		nerr := len(b.errs)
		s := &obj.Spec
		p := &Pool{
			Name:          obj.Name,
			Labels:        copyLabels(obj.Labels),
			AutoAssign:    s.AutoAssign == nil || *s.AutoAssign,
			AvoidBuggyIPs: s.AvoidBuggyIPs,
		}
		if len(s.Addresses) == 0 {
			b.reject(o, "spec.addresses", "no addresses: a pool needs at least one CIDR or range")
		}
		for j, text := range s.Addresses {
			f := fmt.Sprintf("spec.addresses[%d]", j)
			r, err := ParseAddressRange(text)
			if err != nil {
				b.reject(o, f, fmt.Sprintf("%q: %v", text, err))
				continue
			}
			p.Ranges = append(p.Ranges, r)
			all = append(all, poolRange{AddressRange: r, pool: o, field: f, text: text})
		}
		sort.Slice(p.Ranges, func(i, j int) bool { return p.Ranges[i].First.Less(p.Ranges[j].First) })
		if sa := s.ServiceAllocation; sa != nil {
			p.Allocation = &ServiceAllocation{
				Priority:           sa.Priority,
				NamespaceSelectors: b.selectors(o, "spec.serviceAllocation.namespaceSelectors", sa.NamespaceSelectors),
				ServiceSelectors:   b.selectors(o, "spec.serviceAllocation.serviceSelectors", sa.ServiceSelectors),
			}
			for j, ns := range sa.Namespaces {
				if ns == "" {
					b.reject(o, fmt.Sprintf("spec.serviceAllocation.namespaces[%d]", j), "empty namespace name")
					continue
				}
				p.Allocation.Namespaces = append(p.Allocation.Namespaces, ns)
			}
		}
		if len(b.errs) == nerr {
			b.pools[p.Name] = p
			b.cfg.Pools = append(b.cfg.Pools, p)
		}
	}
	b.checkOverlaps(all)
}

// checkOverlaps rejects address ranges that overlap, within one pool or across pools: an
// address must belong to exactly one pool. Ranges are swept in address order, remembering the
// range that reaches furthest; a range starting at or before that end overlaps it.
func (b *builder) checkOverlaps(all []poolRange) {
	sort.SliceStable(all, func(i, j int) bool { return all[i].First.Less(all[j].First) })
	reach := -1 // index in all of the range with the highest Last so far, in the current family
	for i := range all {
		cur := &all[i]
		if reach >= 0 && all[reach].First.BitLen() == cur.First.BitLen() && cur.First.Compare(all[reach].Last) <= 0 {
			prev := &all[reach]
			where := fmt.Sprintf("%s of IPAddressPool %q", prev.field, prev.pool.name)
			if prev.pool == cur.pool {
				where = prev.field + " of the same pool"
			}
			b.reject(cur.pool, cur.field, fmt.Sprintf("%q: overlaps %q (%s)", cur.text, prev.text, where))
			if cur.Last.Compare(prev.Last) <= 0 {
				continue
			}
		}
		if reach < 0 || all[reach].First.BitLen() != cur.First.BitLen() || cur.Last.Compare(all[reach].Last) > 0 {
			reach = i
		}
	}
}

func copyLabels(in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func (b *builder) buildPeers(in []v1beta2.BGPPeer, secrets []corev1.Secret) {
	seen := map[string]string{}
	type sessionKey struct {
		target, vrf, nodes string
		port               uint16
	}
	sessions := map[sessionKey]string{}
	localASN := map[string]*Peer{} // by VRF: the first peer, whose myASN the others must share
	for i := range in {
		obj := &in[i]
		o := object{KindBGPPeer, obj.Namespace, obj.Name, i}
		if o.name != "" {
			b.peerNames[o.name] = true
		}
		if !b.checkName(o, seen) {
			continue
		}
		nerr := len(b.errs)
		p := b.buildPeer(o, &obj.Spec, secrets)
		if len(b.errs) != nerr {
			continue
		}

		if first, ok := localASN[p.VRF]; ok && first.MyASN != p.MyASN {
			b.reject(o, "spec.myASN", fmt.Sprintf("%d differs from myASN %d of BGPPeer %q: all peers in a VRF must share one local ASN", p.MyASN, first.MyASN, first.Name))
			continue
		} else if !ok {
			localASN[p.VRF] = p
		}

		key := sessionKey{vrf: p.VRF, port: p.Port, nodes: selectorsKey(p.NodeSelectors)}
		if p.Addr.IsValid() {
			key.target = p.Addr.String()
		} else {
			key.target = "interface " + p.Interface
		}
		if first, dup := sessions[key]; dup {
			b.reject(o, "spec.peerAddress", fmt.Sprintf("same session as BGPPeer %q (same address or interface, port, VRF and node selectors)", first))
			continue
		}
		sessions[key] = p.Name
		b.cfg.Peers = append(b.cfg.Peers, p)
	}
}

func selectorsKey(sels []labels.Selector) string {
	keys := make([]string, len(sels))
	for i, s := range sels {
		keys[i] = s.String()
	}
	sort.Strings(keys)
	return strings.Join(keys, ";")
}

func (b *builder) buildPeer(o object, s *v1beta2.BGPPeerSpec, secrets []corev1.Secret) *Peer {
	p := &Peer{
		Name:                   o.name,
		MyASN:                  s.MyASN,
		ASN:                    s.ASN,
		Port:                   s.Port,
		BFDProfile:             s.BFDProfile,
		EBGPMultiHop:           s.EBGPMultiHop,
		EnableGracefulRestart:  s.EnableGracefulRestart,
		DisableMP:              s.DisableMP,
		DualStackAddressFamily: s.DualStackAddressFamily,
		VRF:                    s.VRFName,
		Interface:              s.Interface,
		Password:               s.Password,
		HoldTime:               DefaultHoldTime,
		KeepaliveTime:          DefaultKeepaliveTime,
		ConnectTime:            DefaultConnectTime,
	}

	if s.MyASN == 0 {
		b.reject(o, "spec.myASN", "missing: the local ASN is required")
	}
	switch {
	case s.ASN != 0 && s.DynamicASN != "":
		b.reject(o, "spec.peerASN", fmt.Sprintf("%d: peerASN and dynamicASN %q are mutually exclusive; set exactly one", s.ASN, s.DynamicASN))
	case s.ASN == 0 && s.DynamicASN == "":
		b.reject(o, "spec.peerASN", "missing: set peerASN or dynamicASN")
	case s.DynamicASN != "":
		switch mode := DynamicASN(s.DynamicASN); mode {
		case DynamicASNInternal, DynamicASNExternal:
			p.DynamicASN = mode
		default:
			b.reject(o, "spec.dynamicASN", fmt.Sprintf("%q: must be %q or %q", s.DynamicASN, DynamicASNInternal, DynamicASNExternal))
		}
	}

	switch {
	case s.Address != "" && s.Interface != "":
		b.reject(o, "spec.peerAddress", fmt.Sprintf("%q: peerAddress and interface %q are mutually exclusive; set exactly one", s.Address, s.Interface))
	case s.Address == "" && s.Interface == "":
		b.reject(o, "spec.peerAddress", "missing: set peerAddress or interface")
	case s.Address != "":
		a, err := parseAddr(s.Address)
		if err != nil {
			b.reject(o, "spec.peerAddress", err.Error())
		}
		p.Addr = a
	}
	if s.SrcAddress != "" {
		a, err := parseAddr(s.SrcAddress)
		switch {
		case err != nil:
			b.reject(o, "spec.sourceAddress", err.Error())
		case p.Addr.IsValid() && a.Is4() != p.Addr.Is4():
			b.reject(o, "spec.sourceAddress", fmt.Sprintf("%q: not of the family of peerAddress %s", s.SrcAddress, p.Addr))
		}
		p.SrcAddr = a
	}
	if s.RouterID != "" {
		a, err := netip.ParseAddr(s.RouterID)
		if err != nil || !a.Is4() {
			b.reject(o, "spec.routerID", fmt.Sprintf("%q: a router ID is written as an IPv4 address", s.RouterID))
		}
		p.RouterID = a
	}
	switch {
	case s.Port == 0:
		p.Port = DefaultPeerPort
	case s.Port > maxPeerPort:
		b.reject(o, "spec.peerPort", fmt.Sprintf("%d: must be from 1 to %d", s.Port, maxPeerPort))
	}

	b.peerTimers(o, s, p)

	if p.EBGPMultiHop && s.MyASN != 0 && (s.ASN != 0 || p.DynamicASN != DynamicASNNone) && p.IBGP() {
		b.reject(o, "spec.ebgpMultiHop", "set on an iBGP session (the peer's ASN is myASN); eBGP multihop applies to eBGP only")
	}

	if ref := s.PasswordSecret; ref.Name != "" || ref.Namespace != "" {
		switch {
		case s.Password != "":
			b.reject(o, "spec.passwordSecret", "password and passwordSecret are mutually exclusive; set at most one")
		case ref.Name == "":
			b.reject(o, "spec.passwordSecret.name", "missing")
		default:
			ns := ref.Namespace
			if ns == "" {
				ns = o.namespace
			}
			p.PasswordSecret = &SecretRef{Namespace: ns, Name: ref.Name}
			b.checkPasswordSecret(o, p.PasswordSecret, secrets)
		}
	}

	p.NodeSelectors = b.selectors(o, "spec.nodeSelectors", s.NodeSelectors)

	if s.BFDProfile != "" && !b.bfdNames[s.BFDProfile] {
		b.warn(o, "spec.bfdProfile", fmt.Sprintf("%q: no BFDProfile has this name; the session runs without BFD until one is created", s.BFDProfile))
	}
	return p
}

// peerTimers checks and defaults the hold, keepalive and connect timers.
func (b *builder) peerTimers(o object, s *v1beta2.BGPPeerSpec, p *Peer) {
	if s.HoldTime != nil {
		d := s.HoldTime.Duration
		switch {
		case d < 0:
			b.reject(o, "spec.holdTime", fmt.Sprintf("%s: must not be negative", d))
		case d > 0 && d < minHoldTime:
			b.reject(o, "spec.holdTime", fmt.Sprintf("%s: must be 0 (no keepalives) or at least %s (RFC 4271)", d, minHoldTime))
		case d > maxHoldTime:
			b.reject(o, "spec.holdTime", fmt.Sprintf("%s: must be at most %s (RFC 4271)", d, maxHoldTime))
		}
		p.HoldTime = d
		p.KeepaliveTime = d / 3
	}
	if s.KeepaliveTime != nil {
		d := s.KeepaliveTime.Duration
		switch {
		case s.HoldTime == nil:
			b.reject(o, "spec.keepaliveTime", fmt.Sprintf("%s: set without holdTime; set holdTime too, above the keepalive time", d))
		case d < 0:
			b.reject(o, "spec.keepaliveTime", fmt.Sprintf("%s: must not be negative", d))
		case d >= p.HoldTime && !(d == 0 && p.HoldTime == 0):
			b.reject(o, "spec.keepaliveTime", fmt.Sprintf("%s: must be lower than holdTime %s", d, p.HoldTime))
		}
		p.KeepaliveTime = d
	}
	if s.ConnectTime != nil {
		d := s.ConnectTime.Duration
		switch {
		case d < minConnectTime || d > maxConnectTime:
			b.reject(o, "spec.connectTime", fmt.Sprintf("%s: must be from %s to %s", d, minConnectTime, maxConnectTime))
		case d%time.Second != 0:
			b.reject(o, "spec.connectTime", fmt.Sprintf("%s: must be a whole number of seconds", d))
		}
		p.ConnectTime = d
	}
}

// checkPasswordSecret checks a referenced Secret that is among the loaded objects.
func (b *builder) checkPasswordSecret(o object, ref *SecretRef, secrets []corev1.Secret) {
	for i := range secrets {
		sec := &secrets[i]
		if sec.Name != ref.Name || (sec.Namespace != "" && sec.Namespace != ref.Namespace) {
			continue
		}
		if sec.Type != passwordSecretType {
			b.reject(o, "spec.passwordSecret", fmt.Sprintf("Secret %s is of type %q; want %q", qualified(ref.Namespace, ref.Name), sec.Type, passwordSecretType))
		}
		_, inData := sec.Data[passwordSecretKey]
		_, inString := sec.StringData[passwordSecretKey]
		if !inData && !inString {
			b.reject(o, "spec.passwordSecret", fmt.Sprintf("Secret %s has no key %q", qualified(ref.Namespace, ref.Name), passwordSecretKey))
		}
		return
	}
}

// advertisedPools resolves an advertisement's ipAddressPools and ipAddressPoolSelectors to
// pool names, sorted. With both empty, the advertisement covers every pool.
func (b *builder) advertisedPools(o object, names []string, sels []metav1.LabelSelector) []string {
	selectors := b.selectors(o, "spec.ipAddressPoolSelectors", sels)
	if len(names) == 0 && len(sels) == 0 {
		out := make([]string, 0, len(b.pools))
		for name := range b.pools {
			out = append(out, name)
		}
		sort.Strings(out)
		return out
	}
	set := map[string]bool{}
	for i, name := range names {
		f := fmt.Sprintf("spec.ipAddressPools[%d]", i)
		switch {
		case name == "":
			b.reject(o, f, "empty pool name")
		case set[name]:
			b.reject(o, f, fmt.Sprintf("%q: listed twice", name))
		case !b.poolNames[name]:
			b.warn(o, f, fmt.Sprintf("%q: no IPAddressPool has this name; nothing is advertised for it", name))
		}
		if b.pools[name] != nil {
			set[name] = true
		}
	}
	for _, sel := range selectors {
		for name, p := range b.pools {
			if sel.Matches(labels.Set(p.Labels)) {
				set[name] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for name := range set {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func (b *builder) buildL2Advertisements(in []v1beta1.L2Advertisement) {
	seen := map[string]string{}
	for i := range in {
		obj := &in[i]
		o := object{KindL2Advertisement, obj.Namespace, obj.Name, i}
		if !b.checkName(o, seen) {
			continue
		}
		nerr := len(b.errs)
		s := &obj.Spec
		adv := &L2Advertisement{
			Name:          obj.Name,
			Pools:         b.advertisedPools(o, s.IPAddressPools, s.IPAddressPoolSelectors),
			NodeSelectors: b.selectors(o, "spec.nodeSelectors", s.NodeSelectors),
		}
		for j, ifname := range s.Interfaces {
			f := fmt.Sprintf("spec.interfaces[%d]", j)
			switch {
			case ifname == "":
				b.reject(o, f, "empty interface name")
			case slices.Contains(adv.Interfaces, ifname):
				b.reject(o, f, fmt.Sprintf("%q: listed twice", ifname))
			default:
				adv.Interfaces = append(adv.Interfaces, ifname)
			}
		}
		if len(b.errs) == nerr {
			b.cfg.L2Advertisements = append(b.cfg.L2Advertisements, adv)
		}
	}
}

func (b *builder) buildBGPAdvertisements(in []v1beta1.BGPAdvertisement) {
	seen := map[string]string{}
	for i := range in {
		obj := &in[i]
		o := object{KindBGPAdvertisement, obj.Namespace, obj.Name, i}
		if !b.checkName(o, seen) {
			continue
		}
		nerr := len(b.errs)
		s := &obj.Spec
		adv := &BGPAdvertisement{
			Name:                obj.Name,
			Pools:               b.advertisedPools(o, s.IPAddressPools, s.IPAddressPoolSelectors),
			AggregationLength:   DefaultAggregationLength,
			AggregationLengthV6: DefaultAggregationLengthV6,
			LocalPref:           s.LocalPref,
			NodeSelectors:       b.selectors(o, "spec.nodeSelectors", s.NodeSelectors),
		}
		if s.AggregationLength != nil {
			adv.AggregationLength = int(*s.AggregationLength)
			if adv.AggregationLength < 1 || adv.AggregationLength > 32 {
				b.reject(o, "spec.aggregationLength", fmt.Sprintf("%d: must be from 1 to 32 for IPv4", adv.AggregationLength))
			}
		}
		if s.AggregationLengthV6 != nil {
			adv.AggregationLengthV6 = int(*s.AggregationLengthV6)
			if adv.AggregationLengthV6 < 1 || adv.AggregationLengthV6 > 128 {
				b.reject(o, "spec.aggregationLengthV6", fmt.Sprintf("%d: must be from 1 to 128 for IPv6", adv.AggregationLengthV6))
			}
		}
		if len(b.errs) == nerr {
			b.checkAggregation(o, adv)
		}
		adv.Communities = b.resolveCommunities(o, s.Communities)
		for j, peer := range s.Peers {
			f := fmt.Sprintf("spec.peers[%d]", j)
			switch {
			case peer == "":
				b.reject(o, f, "empty peer name")
			case slices.Contains(adv.Peers, peer):
				b.reject(o, f, fmt.Sprintf("%q: listed twice", peer))
			default:
				if !b.peerNames[peer] {
					b.warn(o, f, fmt.Sprintf("%q: no BGPPeer has this name; nothing is advertised to it", peer))
				}
				adv.Peers = append(adv.Peers, peer)
			}
		}
		sort.Strings(adv.Peers)
		if len(b.errs) != nerr {
			continue
		}
		if b.checkLocalPref(o, adv) {
			b.cfg.BGPAdvertisements = append(b.cfg.BGPAdvertisements, adv)
		}
	}
}

// checkAggregation rejects an aggregation length shorter than the prefix length of a CIDR in
// an advertised pool: the aggregated route would attract traffic for addresses outside the
// pool. Ranges written "a-b" are checked as the CIDRs that make them up.
func (b *builder) checkAggregation(o object, adv *BGPAdvertisement) {
	for _, name := range adv.Pools {
		for _, r := range b.pools[name].Ranges {
			length, field := adv.AggregationLength, "spec.aggregationLength"
			if r.Family() == IPv6 {
				length, field = adv.AggregationLengthV6, "spec.aggregationLengthV6"
			}
			for _, prefix := range r.Prefixes() {
				if length < prefix.Bits() {
					b.reject(o, field, fmt.Sprintf("%d: shorter than prefix %s of IPAddressPool %q; the aggregated route would cover addresses outside the pool", length, prefix, name))
					return
				}
			}
		}
	}
}

// resolveCommunities turns community values and aliases into sorted, distinct values.
func (b *builder) resolveCommunities(o object, in []string) []Community {
	var out []Community
	seen := map[string]int{}
	for i, text := range in {
		f := fmt.Sprintf("spec.communities[%d]", i)
		if j, dup := seen[text]; dup {
			b.reject(o, f, fmt.Sprintf("%q: duplicate of spec.communities[%d]", text, j))
			continue
		}
		seen[text] = i
		c, err := b.community(text)
		if err != nil {
			b.reject(o, f, fmt.Sprintf("%q: %v", text, err))
			continue
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

func (b *builder) community(text string) (Community, error) {
	if def, ok := b.aliases[text]; ok {
		return def.value, nil
	}
	if !strings.Contains(text, ":") {
		return Community{}, fmt.Errorf("unknown community alias: no Community object defines it")
	}
	c, err := ParseCommunity(text)
	if err != nil {
		return Community{}, fmt.Errorf("malformed community: %w", err)
	}
	return c, nil
}

// checkLocalPref rejects adv when it gives a pool a different LOCAL_PREF than an earlier
// advertisement that sends the same pool to at least one of the same peers: the route would
// carry two contradictory preferences. Node selectors are not compared: whether two selector
// lists can match a common node depends on the nodes, which a configuration does not know, so
// the check errs on the side of rejecting.
func (b *builder) checkLocalPref(o object, adv *BGPAdvertisement) bool {
	if adv.LocalPref == 0 {
		return true
	}
	for _, prev := range b.cfg.BGPAdvertisements {
		if prev.LocalPref == 0 || prev.LocalPref == adv.LocalPref || !peersOverlap(prev.Peers, adv.Peers) {
			continue
		}
		for _, pool := range adv.Pools {
			if slices.Contains(prev.Pools, pool) {
				b.reject(o, "spec.localPref", fmt.Sprintf("%d: conflicts with localPref %d of BGPAdvertisement %q for IPAddressPool %q and the same peers", adv.LocalPref, prev.LocalPref, prev.Name, pool))
				return false
			}
		}
	}
	return true
}

// peersOverlap reports whether two advertisements' peer lists share a peer; an empty list
// means every peer.
func peersOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, p := range a {
		if slices.Contains(b, p) {
			return true
		}
	}
	return false
}
