package config

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/labels"
)

// Config is one validated, resolved configuration: everything the controller and the speakers
// act on. It is immutable once Load returns it; a new configuration is a new Config.
//
// Slices are sorted by name so that iterating a Config is deterministic.
type Config struct {
	Pools             []*Pool
	L2Advertisements  []*L2Advertisement
	BGPAdvertisements []*BGPAdvertisement
	Peers             []*Peer
	BFDProfiles       []*BFDProfile
}

// Pool is an IPAddressPool with its addresses parsed.
type Pool struct {
	// Name is the IPAddressPool's name (pools are cluster-unique by name; the namespace is the
	// one Switchyard runs in).
	Name string
	// Labels are the IPAddressPool's labels, matched by ipAddressPoolSelectors.
	Labels map[string]string
	// Ranges are the pool's addresses, sorted by First, not overlapping, each within one
	// family. A CIDR "10.0.0.0/24" and a range "10.0.0.0-10.0.0.255" give the same Range.
	Ranges []AddressRange
	// AutoAssign is false when Services get addresses from this pool only on request.
	AutoAssign bool
	// AvoidBuggyIPs skips addresses ending in .0 or .255 (IPv4 only), which some old
	// networking equipment drops.
	AvoidBuggyIPs bool
	// Allocation restricts which Services the pool serves; nil means any Service.
	Allocation *ServiceAllocation
}

// AddressRange is an inclusive range of addresses of one family.
type AddressRange struct {
	First, Last netip.Addr
	// CIDR is the prefix the range was written as, or the zero Prefix when it was written as
	// "a-b". BGP aggregation checks use it.
	CIDR netip.Prefix
}

// Contains reports whether a is inside the range.
func (r AddressRange) Contains(a netip.Addr) bool {
	return a.BitLen() == r.First.BitLen() && r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// ServiceAllocation is an IPAddressPool's serviceAllocation: which Services the pool serves and
// with what priority.
type ServiceAllocation struct {
	// Priority orders pools that match a Service: lower numbers first, 0 (unset) last.
	Priority int
	// Namespaces lists namespaces whose Services the pool serves.
	Namespaces []string
	// NamespaceSelectors match the labels of a Service's namespace.
	NamespaceSelectors []labels.Selector
	// ServiceSelectors match a Service's labels.
	ServiceSelectors []labels.Selector
}

// L2Advertisement says which pools are announced by layer 2, from which nodes and interfaces.
type L2Advertisement struct {
	Name string
	// Pools are the names of the pools this advertisement covers (ipAddressPools plus the pools
	// matched by ipAddressPoolSelectors; all pools when both are empty), sorted.
	Pools []string
	// NodeSelectors restrict the announcing nodes; empty means every node.
	NodeSelectors []labels.Selector
	// Interfaces restricts the interfaces answering ARP/NDP; empty means every interface.
	Interfaces []string
}

// BGPAdvertisement says how pools are announced to BGP peers.
type BGPAdvertisement struct {
	Name string
	// Pools as in L2Advertisement.Pools.
	Pools []string
	// AggregationLength and AggregationLengthV6 are the prefix lengths advertised for IPv4 and
	// IPv6 addresses (defaults 32 and 128).
	AggregationLength   int
	AggregationLengthV6 int
	// LocalPref is the LOCAL_PREF attribute for iBGP peers; 0 means not set.
	LocalPref uint32
	// Communities are the resolved communities (aliases replaced by their values), sorted.
	Communities []Community
	// NodeSelectors restrict the advertising nodes; empty means every node.
	NodeSelectors []labels.Selector
	// Peers restricts the peers (by BGPPeer name); empty means every peer.
	Peers []string
}

// Community is one BGP community: standard (RFC 1997, "a:b") or large (RFC 8092,
// "large:a:b:c").
type Community struct {
	// Large is true for a large community.
	Large bool
	// Standard holds a standard community as (a<<16 | b).
	Standard uint32
	// GlobalAdmin, Local1 and Local2 hold a large community.
	GlobalAdmin, Local1, Local2 uint32
}

// DynamicASN is BGPPeer.dynamicASN: the peer's ASN is learned from its OPEN.
type DynamicASN string

// Dynamic ASN modes.
const (
	DynamicASNNone     DynamicASN = ""
	DynamicASNInternal DynamicASN = "internal"
	DynamicASNExternal DynamicASN = "external"
)

// SecretRef names a Kubernetes Secret holding a BGP password under the key "password".
type SecretRef struct {
	Namespace, Name string
}

// Peer is a BGPPeer.
type Peer struct {
	Name       string
	MyASN      uint32
	ASN        uint32 // 0 when DynamicASN is set
	DynamicASN DynamicASN
	Addr       netip.Addr
	Port       uint16 // default 179
	SrcAddr    netip.Addr
	RouterID   netip.Addr
	// HoldTime, KeepaliveTime and ConnectTime are the session timers (defaults 90 s, 30 s,
	// and 120 s for the connect retry).
	HoldTime      time.Duration
	KeepaliveTime time.Duration
	ConnectTime   time.Duration
	EBGPMultiHop  bool
	// Password is the TCP-MD5 key given inline; PasswordSecret names a Secret holding it.
	// At most one is set.
	Password       string
	PasswordSecret *SecretRef
	NodeSelectors  []labels.Selector
	// BFDProfile names the BFD profile; empty means no BFD.
	BFDProfile            string
	EnableGracefulRestart bool
	DisableMP             bool
	// DualStackAddressFamily enables both address families on the session.
	DualStackAddressFamily bool
	VRF                    string
	Interface              string
}

// BFDProfile is a BFDProfile with MetalLB's defaults applied.
type BFDProfile struct {
	Name             string
	ReceiveInterval  time.Duration // default 300 ms
	TransmitInterval time.Duration // default 300 ms
	DetectMultiplier uint32        // default 3
	EchoInterval     time.Duration // default 50 ms
	EchoMode         bool
	PassiveMode      bool
	MinimumTTL       uint32 // default 254
}

// Family is an IP address family.
type Family int

// Address families, numbered as in "IPv4" and "IPv6".
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// FamilyOf returns the family of a valid address.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// Family is the range's address family.
func (r AddressRange) Family() Family { return FamilyOf(r.First) }

// String gives the range as it would be written in a pool: the CIDR when there is one,
// "first-last" otherwise.
func (r AddressRange) String() string {
	if r.CIDR.IsValid() {
		return r.CIDR.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// Prefixes splits the range into the fewest CIDR prefixes that cover exactly its addresses,
// in address order. A range written as a CIDR gives that CIDR back.
func (r AddressRange) Prefixes() []netip.Prefix {
	if r.CIDR.IsValid() {
		return []netip.Prefix{r.CIDR}
	}
	var out []netip.Prefix
	start := r.First
	for start.IsValid() && start.Compare(r.Last) <= 0 {
		// The largest block starting at start that is aligned and ends by r.Last.
		p := netip.PrefixFrom(start, start.BitLen())
		for bits := 0; bits <= start.BitLen(); bits++ {
			cand := netip.PrefixFrom(start, bits)
			if cand.Masked().Addr() == start && lastAddr(cand).Compare(r.Last) <= 0 {
				p = cand
				break
			}
		}
		out = append(out, p)
		start = lastAddr(p).Next() // invalid after the family's last address, which ends the loop
	}
	return out
}

// Contains reports whether a is one of the pool's addresses.
func (p *Pool) Contains(a netip.Addr) bool {
	for _, r := range p.Ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// HasFamily reports whether the pool has addresses of family f.
func (p *Pool) HasFamily(f Family) bool {
	for _, r := range p.Ranges {
		if r.Family() == f {
			return true
		}
	}
	return false
}

// Pool returns the pool with the given name, or nil.
func (c *Config) Pool(name string) *Pool {
	i := sort.Search(len(c.Pools), func(i int) bool { return c.Pools[i].Name >= name })
	if i < len(c.Pools) && c.Pools[i].Name == name {
		return c.Pools[i]
	}
	return nil
}

// PoolFor returns the pool that holds address a, or nil. Pools never overlap, so there is at
// most one.
func (c *Config) PoolFor(a netip.Addr) *Pool {
	for _, p := range c.Pools {
		if p.Contains(a) {
			return p
		}
	}
	return nil
}

// Peer returns the BGP peer with the given name, or nil.
func (c *Config) Peer(name string) *Peer {
	i := sort.Search(len(c.Peers), func(i int) bool { return c.Peers[i].Name >= name })
	if i < len(c.Peers) && c.Peers[i].Name == name {
		return c.Peers[i]
	}
	return nil
}

// BFDProfile returns the BFD profile with the given name, or nil.
func (c *Config) BFDProfile(name string) *BFDProfile {
	i := sort.Search(len(c.BFDProfiles), func(i int) bool { return c.BFDProfiles[i].Name >= name })
	if i < len(c.BFDProfiles) && c.BFDProfiles[i].Name == name {
		return c.BFDProfiles[i]
	}
	return nil
}

// IBGP reports whether the session is internal BGP: the peer's ASN is ours, or dynamicASN is
// "internal".
func (p *Peer) IBGP() bool {
	if p.DynamicASN != DynamicASNNone {
		return p.DynamicASN == DynamicASNInternal
	}
	return p.ASN == p.MyASN
}

// String formats the community as it is written in a BGPAdvertisement: "a:b" or
// "large:a:b:c".
func (c Community) String() string {
	if c.Large {
		return fmt.Sprintf("large:%d:%d:%d", c.GlobalAdmin, c.Local1, c.Local2)
	}
	return fmt.Sprintf("%d:%d", c.Standard>>16, c.Standard&0xffff)
}

// Less orders standard communities before large ones, each by value.
func (c Community) Less(o Community) bool {
	if c.Large != o.Large {
		return !c.Large
	}
	if !c.Large {
		return c.Standard < o.Standard
	}
	if c.GlobalAdmin != o.GlobalAdmin {
		return c.GlobalAdmin < o.GlobalAdmin
	}
	if c.Local1 != o.Local1 {
		return c.Local1 < o.Local1
	}
	return c.Local2 < o.Local2
}
