// Package l2 is the layer-2 half of a speaker: it answers ARP requests (RFC 826) and IPv6
// neighbour solicitations (RFC 4861) for the VIPs this node owns, and announces those VIPs with
// gratuitous ARP and unsolicited neighbour advertisements so that neighbours and switches learn
// the owner's MAC quickly after a failover and never forget it.
//
// It is a protocol library in the sans-I/O style: frames in, frames out. A Responder is told
// which VIPs it owns on which interfaces (core/election decides that) and is handed every ARP
// and IPv6 frame an interface receives; it returns the replies, the announcements that are due,
// and the solicited-node multicast groups to join or leave. It keeps no clock and starts no
// goroutine: the caller passes the current time in and calls Tick at NextDeadline.
//
// Announcement policy:
//   - takeover: a burst of BurstCount announcements BurstSpacing apart (3 over 200 ms by
//     default), each a gratuitous ARP in reply and in request form for IPv4, or an unsolicited
//     neighbour advertisement with the Override flag for IPv6;
//   - refresh: one announcement every RefreshInterval (30 s by default) while the VIP is owned,
//     so switches' MAC tables do not age out before routers' ARP caches do;
//   - re-announce: a new burst when an interface comes back up or the caller says a partition
//     has healed (Reannounce).
//
// The ARP answer path is the hot one (every host on the segment asks, and an attacker can ask
// a lot): it reads the fixed 28-byte ARP payload in place and writes the reply into a buffer the
// Responder reuses, without allocating.
package l2
