package bgp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/switchyard-lb/switchyard/core/config"
)

// asTrans is the 2-octet placeholder ASN (RFC 6793) sent in OPEN and AS_PATH when the real ASN
// does not fit in 2 octets.
const asTrans = 23456

// maxRestartTime is the largest graceful restart time the 12-bit field can carry (RFC 4724 §3).
const maxRestartTime = 4095

// openParams is what this side puts in its OPEN.
type openParams struct {
	myASN    uint32
	holdTime time.Duration
	routerID netip.Addr
	// ipv4 and ipv6 are the address families offered with the multiprotocol capability.
	ipv4, ipv6      bool
	gracefulRestart bool
}

// negotiated is what the two OPENs agreed on.
type negotiated struct {
	peerASN uint32
	peerID  netip.Addr
	// ibgp is true when both sides are in the same AS.
	ibgp bool
	// as4 is true when the peer supports 4-octet AS numbers.
	as4 bool
	// holdTime is the smaller of the two hold times; 0 means no hold timer and no keepalives.
	holdTime time.Duration
	// ipv4 and ipv6 are the families both sides can carry.
	ipv4, ipv6 bool
	// routeRefresh is true when the peer announced the route refresh capability.
	routeRefresh bool
}

func (p openParams) message() *bgp.BGPMessage {
	var caps []bgp.ParameterCapabilityInterface
	var grTuples []*bgp.CapGracefulRestartTuple
	for _, f := range []struct {
		on bool
		rf bgp.RouteFamily
	}{{p.ipv4, bgp.RF_IPv4_UC}, {p.ipv6, bgp.RF_IPv6_UC}} {
		if f.on {
			caps = append(caps, bgp.NewCapMultiProtocol(f.rf))
			// Forwarding state is preserved across a speaker restart: the Service's data
			// path (kube-proxy, the node's routes) does not depend on the BGP process.
			grTuples = append(grTuples, bgp.NewCapGracefulRestartTuple(f.rf, true))
		}
	}
	caps = append(caps, bgp.NewCapRouteRefresh(), bgp.NewCapFourOctetASNumber(p.myASN))
	if p.gracefulRestart {
		restart := min(uint16(p.holdTime/time.Second), maxRestartTime)
		caps = append(caps, bgp.NewCapGracefulRestart(false, false, restart, grTuples))
	}
	as2 := uint16(asTrans)
	if p.myASN <= 0xffff {
		as2 = uint16(p.myASN)
	}
	hold := uint16(min(p.holdTime/time.Second, 0xffff))
	return bgp.NewBGPOpenMessage(as2, hold, p.routerID.String(),
		[]bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
}

// checkOpen validates the peer's OPEN against this side's parameters and the peer's
// configuration (RFC 4271 §6.2) and returns what was agreed.
func checkOpen(o *bgp.BGPOpen, mine openParams, peer *config.Peer) (negotiated, *notification) {
	var n negotiated
	if o.Version != 4 {
		return n, &notification{code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR,
			subcode: bgp.BGP_ERROR_SUB_UNSUPPORTED_VERSION_NUMBER, data: []byte{0, 4},
			reason: fmt.Sprintf("peer speaks BGP version %d, only 4 is supported", o.Version)}
	}
	n.peerASN = uint32(o.MyAS)
	var peerV4, peerV6, sawMP bool
	for _, p := range o.OptParams {
		capParam, ok := p.(*bgp.OptionParameterCapability)
		if !ok {
			return n, &notification{code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR,
				subcode: bgp.BGP_ERROR_SUB_UNSUPPORTED_OPTIONAL_PARAMETER,
				reason:  "OPEN carries an optional parameter other than capabilities"}
		}
		for _, c := range capParam.Capability {
			switch c := c.(type) {
			case *bgp.CapFourOctetASNumber:
				n.as4 = true
				n.peerASN = c.CapValue
			case *bgp.CapMultiProtocol:
				sawMP = true
				peerV4 = peerV4 || c.CapValue == bgp.RF_IPv4_UC
				peerV6 = peerV6 || c.CapValue == bgp.RF_IPv6_UC
			case *bgp.CapRouteRefresh:
				n.routeRefresh = true
			}
		}
	}
	if !sawMP {
		// A speaker without the multiprotocol capability carries IPv4 unicast (RFC 4760 §8).
		peerV4 = true
	}
	n.ipv4, n.ipv6 = mine.ipv4 && peerV4, mine.ipv6 && peerV6

	badAS := func(why string) *notification {
		return &notification{code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, subcode: bgp.BGP_ERROR_SUB_BAD_PEER_AS,
			data: binary.BigEndian.AppendUint16(nil, o.MyAS), reason: why}
	}
	switch {
	case peer.ASN != 0 && n.peerASN != peer.ASN:
		return n, badAS(fmt.Sprintf("peer AS %d, configured %d", n.peerASN, peer.ASN))
	case peer.DynamicASN == config.DynamicASNInternal && n.peerASN != mine.myASN:
		return n, badAS(fmt.Sprintf("peer AS %d is not our AS %d (dynamicASN internal)", n.peerASN, mine.myASN))
	case peer.DynamicASN == config.DynamicASNExternal && n.peerASN == mine.myASN:
		return n, badAS(fmt.Sprintf("peer AS %d is our own AS (dynamicASN external)", n.peerASN))
	}
	n.ibgp = n.peerASN == mine.myASN

	if o.HoldTime == 1 || o.HoldTime == 2 {
		return n, &notification{code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR,
			subcode: bgp.BGP_ERROR_SUB_UNACCEPTABLE_HOLD_TIME,
			reason:  fmt.Sprintf("hold time %d s is neither 0 nor at least 3 s", o.HoldTime)}
	}
	n.holdTime = min(mine.holdTime, time.Duration(o.HoldTime)*time.Second)

	id, ok := netip.AddrFromSlice(o.ID.To4())
	if !ok || id.IsUnspecified() || (n.ibgp && id == mine.routerID) {
		return n, &notification{code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR,
			subcode: bgp.BGP_ERROR_SUB_BAD_BGP_IDENTIFIER,
			reason:  fmt.Sprintf("BGP identifier %v is zero or, on iBGP, equal to ours", o.ID)}
	}
	n.peerID = id
	return n, nil
}
