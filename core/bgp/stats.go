package bgp

import "github.com/osrg/gobgp/v3/pkg/packet/bgp"

// State is a BGP session state (RFC 4271 §8.2.2). Switchyard always opens the connection
// itself, so the Active state (waiting for the peer to connect) does not occur.
type State uint8

// Session states.
const (
	// StateIdle: no connection, waiting to dial (connect retry backoff runs here).
	StateIdle State = iota
	// StateConnect: dialing.
	StateConnect
	// StateOpenSent: connected, our OPEN sent, waiting for the peer's.
	StateOpenSent
	// StateOpenConfirm: OPENs exchanged, waiting for the peer's KEEPALIVE.
	StateOpenConfirm
	// StateEstablished: routes flow.
	StateEstablished
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "Idle"
	case StateConnect:
		return "Connect"
	case StateOpenSent:
		return "OpenSent"
	case StateOpenConfirm:
		return "OpenConfirm"
	case StateEstablished:
		return "Established"
	}
	return "Unknown"
}

// MessageCounts counts BGP messages by type.
type MessageCounts struct {
	Open, Update, Notification, Keepalive, RouteRefresh uint64
}

func (c *MessageCounts) add(msgType uint8) {
	switch msgType {
	case bgp.BGP_MSG_OPEN:
		c.Open++
	case bgp.BGP_MSG_UPDATE:
		c.Update++
	case bgp.BGP_MSG_NOTIFICATION:
		c.Notification++
	case bgp.BGP_MSG_KEEPALIVE:
		c.Keepalive++
	case bgp.BGP_MSG_ROUTE_REFRESH:
		c.RouteRefresh++
	}
}

// Stats are a session's counters since it was created.
type Stats struct {
	// State is the session's state now.
	State State
	// In and Out count well-formed messages received and all messages sent, by type.
	In, Out MessageCounts
	// Malformed counts received messages that failed framing or decoding.
	Malformed uint64
	// NotificationsSent and NotificationsReceived count NOTIFICATION messages.
	NotificationsSent, NotificationsReceived uint64
	// Ups and Downs count transitions into and out of Established.
	Ups, Downs uint64
	// DialFailures counts failed connection attempts.
	DialFailures uint64
	// UnsendableRoutes counts route announcements skipped because the session has no next hop
	// of the route's family or the peer does not carry that family.
	UnsendableRoutes uint64
}
