// Package bgp is the speaker's BGP logic: which prefixes go to which peer (Policy) and the BGP-4
// session that carries them (Session).
//
// The package is pure in the sense of core/: it does no I/O of its own and reads time only from
// an injected clock.Clock. A Session is handed its TCP connections by the caller (a Dial function
// from netio, so the same code runs on kernel TCP and on gVisor TCP in the simulator), and every
// protocol timer is a clock timer, never a net.Conn deadline: gVisor's deadlines run on real time
// and would break the simulator's virtual time.
//
// # Sessions
//
// A Session is a sending-only BGP speaker (RFC 4271). It opens the connection itself, sends an
// OPEN with the capabilities Switchyard needs (multiprotocol IPv4 and IPv6 unicast, RFC 4760;
// route refresh, RFC 2918; 4-octet AS numbers, RFC 6793; graceful restart, RFC 4724, when the
// peer asks for it), keeps the session alive with KEEPALIVEs and a hold timer, announces and
// withdraws its routes with UPDATEs and marks the end of the initial table with End-of-RIB per
// family. Routes the peer sends are parsed (so malformed ones are caught) and dropped.
//
// The protocol logic is a sans-I/O state machine (fsm): events go in (connected, message
// received, timer fired, routes changed, administrative stop) and actions come out (messages to
// write, timers to arm, close the connection). Session is the small driver that runs it over a
// net.Conn and a clock. Every message on the wire is encoded and decoded with gobgp's
// pkg/packet/bgp codec, the same codec the simulated router uses.
//
// Anything wrong coming from the peer — a broken header, an undecodable message, a message the
// current state does not allow, an unacceptable OPEN — resets that session with the NOTIFICATION
// RFC 4271 §6 (and RFC 6608 for FSM errors) prescribes; the speaker never crashes on it.
//
// Deliberately left out, because a speaker that only originates a few host routes does not need
// them: accepting inbound connections (so no collision detection; the router must accept the
// speaker's connection, as MetalLB deployments already require), ADD-PATH, extended next hop
// (RFC 8950: a family without a next hop of its own family is not announced and is counted as
// unsendable), extended messages (RFC 8654), and the RFC 8538 "notification" graceful restart.
// IPv4 routes on an IPv6 session, and IPv6 routes on an IPv4 session, need a next hop of their
// family from SessionConfig or the peer's source address.
//
// # Policy
//
// Policy turns Services, the node, and the BGPAdvertisements and BGPPeers of a configuration
// into a table of routes per peer, and after any change returns only the difference.
//
// BFD lives in the subpackage bfd; a BFD session going down is fed to Session.BFDDown, which
// tears the BGP session down at once.
package bgp
