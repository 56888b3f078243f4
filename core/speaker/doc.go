// Package speaker is the layer-2 speaker of one node as a pure state machine: it composes the
// configuration (which pools are announced by layer 2, from which nodes and interfaces), the
// Services with their VIPs and endpoints, the cluster's nodes, the node's interfaces, the
// data-path liveness of the other speakers (core/liveness) and the ARP/NDP responder (core/l2),
// and decides which VIPs this node owns.
//
// It does no I/O, keeps no clock and starts no goroutine. Inputs are method calls that take the
// current time: SetConfig, SetServices, SetEndpoints, SetNodes, SetInterfaces, HandleFrame and
// Tick. Each returns an Output: frames to send, IPv6 multicast groups to join or leave, and
// events for logs and timelines. NextDeadline says when Tick is due. netio/attach runs a
// Speaker on a netio.Node; tests drive it directly.
//
// # Election
//
// Every speaker computes the owner of every Service on its own, from the same inputs, with no
// coordination, by core/election: the VIPs of a Service (the IPv4 and IPv6 addresses of a
// dual-stack Service) are one group and move together, and the owner is the best-ranked
// candidate. A node is a candidate when an L2Advertisement covering the Service's pool selects
// it, when it has a ready endpoint if the Service's externalTrafficPolicy is Local, and when it
// is live on a segment carrying each VIP: for this node, an interface that is up, past its hold
// (below), and has an address on the VIP's subnet; for a peer, heard on such an interface of
// ours. An election runs only when one of these inputs changes.
//
// # Liveness and the hand-over rules
//
// A peer counts as alive on a segment while core/liveness says it is, or while it has been
// heard within the detection time and half an interval more (3.5 heartbeat intervals by
// default; the half interval keeps a heartbeat that arrives just on time from racing the
// detector's timeout, which on a real network would be jitter). The second rule makes a
// peer count at its first heartbeat rather than after the detector's Rise heartbeats, so that
// when a partition heals the lower-ranked of two owners yields as soon as it hears the other:
// the window in which two nodes answer for one VIP is at most one heartbeat interval.
//
// A speaker that starts does not claim anything on a segment until it has sent Multiplier+1
// heartbeats there (the hold), so that it has heard every live peer before its first decision.
// Peers apply the same rule to a speaker that starts while they run: they count it only once
// its heartbeat sequence number shows it has left its hold, so a restarted node takes over its
// VIPs at the very instant the old owner lets go, neither earlier (split brain) nor later (an
// outage).
//
// When this node's own link comes back up, it presumes the peers it had before the link went
// down are still there until their next heartbeats arrive (1.5 intervals), so it claims back
// only the VIPs it ranks first for instead of every VIP of the segment.
//
// When a peer that had been lost comes back (a partition healed, a link came up) the owner
// re-announces its VIPs with a gratuitous ARP / unsolicited NA burst, since neighbours on the
// other side may have learnt another owner's MAC meanwhile.
//
// # Invalid input
//
// Each input is validated before anything changes: an invalid configuration, Service list,
// endpoint list, node list or interface list is rejected with an error naming the object, the
// field and the reason, and the speaker keeps announcing its last valid state.
package speaker
