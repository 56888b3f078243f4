package config

import (
	"net/netip"
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
	VRF                   string
	Interface             string
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
