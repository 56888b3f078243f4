package bgp

import (
	"net/netip"
	"slices"

	"github.com/switchyard-lb/switchyard/core/config"
)

// Attributes are the path attributes Switchyard chooses per route. The rest (ORIGIN, AS_PATH,
// NEXT_HOP) follow from the session: ORIGIN is always IGP, AS_PATH is empty on iBGP and [myASN]
// on eBGP, and the next hop is the session's local address of the route's family.
type Attributes struct {
	// LocalPref is the LOCAL_PREF attribute; 0 means none. It is only sent on iBGP sessions
	// (RFC 4271 §5.1.5 forbids it towards external peers).
	LocalPref uint32
	// Communities are standard and large communities, sorted by compareCommunity and without
	// duplicates.
	Communities []config.Community
}

// Equal reports whether a and b describe the same attributes.
func (a Attributes) Equal(b Attributes) bool {
	return a.LocalPref == b.LocalPref && slices.Equal(a.Communities, b.Communities)
}

// Route is one prefix to announce with its attributes.
type Route struct {
	Prefix netip.Prefix
	Attrs  Attributes
}

// Diff is a change to one peer's table: routes to announce (new, or with changed attributes)
// and prefixes to withdraw.
type Diff struct {
	Announce []Route
	Withdraw []netip.Prefix
}

// Empty reports whether the diff changes nothing.
func (d Diff) Empty() bool { return len(d.Announce) == 0 && len(d.Withdraw) == 0 }

// compareCommunity orders standard communities before large ones, each numerically.
func compareCommunity(a, b config.Community) int {
	switch {
	case a.Large != b.Large:
		if !a.Large {
			return -1
		}
		return 1
	case !a.Large:
		return cmpUint32(a.Standard, b.Standard)
	case a.GlobalAdmin != b.GlobalAdmin:
		return cmpUint32(a.GlobalAdmin, b.GlobalAdmin)
	case a.Local1 != b.Local1:
		return cmpUint32(a.Local1, b.Local1)
	default:
		return cmpUint32(a.Local2, b.Local2)
	}
}

func cmpUint32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// mergeAttributes combines the attributes several BGPAdvertisements give the same prefix for
// the same peer: the union of their communities and the highest LOCAL_PREF, so that no
// advertisement's intent is silently dropped.
func mergeAttributes(all []Attributes) Attributes {
	if len(all) == 1 {
		return all[0]
	}
	var out Attributes
	for _, a := range all {
		out.LocalPref = max(out.LocalPref, a.LocalPref)
		out.Communities = append(out.Communities, a.Communities...)
	}
	slices.SortFunc(out.Communities, compareCommunity)
	out.Communities = slices.Compact(out.Communities)
	return out
}
