package bgp

import (
	"fmt"
	"net/netip"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// updateBuilder encodes routes into UPDATE messages for one established session.
type updateBuilder struct {
	myASN uint32
	ibgp  bool
	as4   bool
	// ipv4Transport is true when the TCP session runs over IPv4: IPv4 routes then go in the
	// classic NLRI field with NEXT_HOP, otherwise in MP_REACH_NLRI (RFC 4760).
	ipv4Transport bool
	// nextHopV4 and nextHopV6 are the next hops per family; a family without one is not sent.
	nextHopV4, nextHopV6 netip.Addr
}

// nextHop returns the next hop for prefixes of p's family.
func (b *updateBuilder) nextHop(p netip.Prefix) netip.Addr {
	if p.Addr().Is4() {
		return b.nextHopV4
	}
	return b.nextHopV6
}

// announce encodes routes, which must all be of one family and share attrs, into as many
// UPDATE messages as the 4096-octet limit needs.
func (b *updateBuilder) announce(prefixes []netip.Prefix, attrs Attributes) ([][]byte, error) {
	if len(prefixes) == 0 {
		return nil, nil
	}
	v4 := prefixes[0].Addr().Is4()
	nh := b.nextHop(prefixes[0])
	pathAttrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	pathAttrs = append(pathAttrs, b.asPath()...)
	if !v4 || !b.ipv4Transport {
		pathAttrs = append(pathAttrs, bgp.NewPathAttributeMpReachNLRI(nh.String(), nlri(prefixes)))
	} else {
		pathAttrs = append(pathAttrs, bgp.NewPathAttributeNextHop(nh.String()))
	}
	if b.ibgp && attrs.LocalPref != 0 {
		pathAttrs = append(pathAttrs, bgp.NewPathAttributeLocalPref(attrs.LocalPref))
	}
	var std []uint32
	var large []*bgp.LargeCommunity
	for _, c := range attrs.Communities {
		if c.Large {
			large = append(large, bgp.NewLargeCommunity(c.GlobalAdmin, c.Local1, c.Local2))
		} else {
			std = append(std, c.Standard)
		}
	}
	if len(std) > 0 {
		pathAttrs = append(pathAttrs, bgp.NewPathAttributeCommunities(std))
	}
	if len(large) > 0 {
		pathAttrs = append(pathAttrs, bgp.NewPathAttributeLargeCommunities(large))
	}
	var msg *bgp.BGPMessage
	if v4 && b.ipv4Transport {
		msg = bgp.NewBGPUpdateMessage(nil, pathAttrs, ipv4NLRI(prefixes))
	} else {
		msg = bgp.NewBGPUpdateMessage(nil, pathAttrs, nil)
	}
	out, err := msg.Serialize()
	if err == nil {
		return [][]byte{out}, nil
	}
	if len(prefixes) == 1 {
		return nil, fmt.Errorf("encoding UPDATE for %v: %w", prefixes[0], err)
	}
	return b.split(prefixes, func(half []netip.Prefix) ([][]byte, error) { return b.announce(half, attrs) })
}

// withdraw encodes withdrawals of prefixes, all of one family.
func (b *updateBuilder) withdraw(prefixes []netip.Prefix) ([][]byte, error) {
	if len(prefixes) == 0 {
		return nil, nil
	}
	var msg *bgp.BGPMessage
	if prefixes[0].Addr().Is4() && b.ipv4Transport {
		msg = bgp.NewBGPUpdateMessage(ipv4NLRI(prefixes), nil, nil)
	} else {
		msg = bgp.NewBGPUpdateMessage(nil, []bgp.PathAttributeInterface{bgp.NewPathAttributeMpUnreachNLRI(nlri(prefixes))}, nil)
	}
	out, err := msg.Serialize()
	if err == nil {
		return [][]byte{out}, nil
	}
	if len(prefixes) == 1 {
		return nil, fmt.Errorf("encoding withdrawal of %v: %w", prefixes[0], err)
	}
	return b.split(prefixes, b.withdraw)
}

// split encodes the two halves of prefixes separately, for a message that came out too long.
func (b *updateBuilder) split(prefixes []netip.Prefix, encode func([]netip.Prefix) ([][]byte, error)) ([][]byte, error) {
	half := len(prefixes) / 2
	first, err := encode(prefixes[:half])
	if err != nil {
		return nil, err
	}
	second, err := encode(prefixes[half:])
	if err != nil {
		return nil, err
	}
	return append(first, second...), nil
}

// asPath returns AS_PATH (and AS4_PATH towards a 2-octet-only peer): empty on iBGP, the own AS
// on eBGP (RFC 4271 §5.1.2).
func (b *updateBuilder) asPath() []bgp.PathAttributeInterface {
	if b.ibgp {
		return []bgp.PathAttributeInterface{bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{})}
	}
	if b.as4 {
		return []bgp.PathAttributeInterface{bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{
			bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{b.myASN})})}
	}
	if b.myASN <= 0xffff {
		return []bgp.PathAttributeInterface{bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{
			bgp.NewAsPathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint16{uint16(b.myASN)})})}
	}
	// RFC 6793 §4.2.2: a 2-octet speaker sees AS_TRANS, and the real path rides in AS4_PATH.
	return []bgp.PathAttributeInterface{
		bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{
			bgp.NewAsPathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint16{asTrans})}),
		bgp.NewPathAttributeAs4Path([]*bgp.As4PathParam{
			bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{b.myASN})}),
	}
}

func ipv4NLRI(prefixes []netip.Prefix) []*bgp.IPAddrPrefix {
	out := make([]*bgp.IPAddrPrefix, len(prefixes))
	for i, p := range prefixes {
		out[i] = bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String())
	}
	return out
}

func nlri(prefixes []netip.Prefix) []bgp.AddrPrefixInterface {
	out := make([]bgp.AddrPrefixInterface, len(prefixes))
	for i, p := range prefixes {
		if p.Addr().Is4() {
			out[i] = bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String())
		} else {
			out[i] = bgp.NewIPv6AddrPrefix(uint8(p.Bits()), p.Addr().String())
		}
	}
	return out
}
