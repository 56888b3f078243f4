package speaker

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/switchyard-lb/switchyard/core/l2"
)

// ServiceKey identifies a Service.
type ServiceKey struct {
	Namespace, Name string
}

func (k ServiceKey) String() string { return k.Namespace + "/" + k.Name }

// ParseServiceKey reads "namespace/name".
func ParseServiceKey(s string) (ServiceKey, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return ServiceKey{}, fmt.Errorf("service %q is not namespace/name", s)
	}
	return ServiceKey{ns, name}, nil
}

// TrafficPolicy is a Service's spec.externalTrafficPolicy.
type TrafficPolicy string

// External traffic policies. The empty policy means Cluster.
const (
	TrafficCluster TrafficPolicy = "Cluster"
	TrafficLocal   TrafficPolicy = "Local"
)

// Service is what the speaker needs to know about a LoadBalancer Service that has addresses.
type Service struct {
	Namespace, Name string
	// VIPs are the Service's load-balancer addresses (status.loadBalancer.ingress), at most
	// one per family. The first one keys the election, so all of them move together.
	VIPs []netip.Addr
	// Pool is the name of the pool the VIPs come from; when empty, the pool holding the first
	// VIP is used.
	Pool string
	// ExternalTrafficPolicy Local restricts the owner to nodes with a ready endpoint.
	ExternalTrafficPolicy TrafficPolicy
}

// Key returns the Service's namespace and name.
func (s *Service) Key() ServiceKey { return ServiceKey{s.Namespace, s.Name} }

// Endpoint is one endpoint of a Service: the node its pod runs on and whether it is ready.
type Endpoint struct {
	Node  string
	Ready bool
}

// Node is a Kubernetes node of the cluster. Only nodes in the last SetNodes call can own VIPs.
type Node struct {
	Name   string
	Labels map[string]string
}

// Interface is one of this node's network interfaces.
type Interface struct {
	Name string
	MAC  net.HardwareAddr
	// Prefixes are the interface's addresses with their prefix length; a VIP is announced on
	// an interface only when one of them contains it.
	Prefixes []netip.Prefix
	// Up is true when the interface is up and has carrier.
	Up bool
}

// Transmit is a frame to send on an interface; the speaker's frames are core/l2's and its own
// heartbeats, so it is core/l2's type.
type Transmit = l2.Transmit

// Group is an IPv6 multicast group membership on an interface (core/l2's type).
type Group = l2.Group

// Output is what the speaker asks its caller to do after an input, and what happened.
// Frames must be sent in order before the next call into the Speaker: they may alias buffers
// the Speaker reuses.
type Output struct {
	Frames []Transmit
	// Joins and Leaves are solicited-node multicast groups to join and leave. Memberships are
	// counted (netio.Port), so they must be applied in order.
	Joins, Leaves []Group
	Events        []Event
}

func (o *Output) empty() bool {
	return len(o.Frames) == 0 && len(o.Joins) == 0 && len(o.Leaves) == 0 && len(o.Events) == 0
}

// EventKind says what an Event reports.
type EventKind string

// Event kinds.
const (
	// EventOwn: this node became the owner of VIP (for Service) on Interfaces, or the set of
	// interfaces changed.
	EventOwn EventKind = "own"
	// EventDisown: this node no longer owns VIP.
	EventDisown EventKind = "disown"
	// EventAnnounce: gratuitous ARP or unsolicited NA frames for VIP went out on Interfaces.
	EventAnnounce EventKind = "announce"
	// EventPeer: Peer became a candidate on Interfaces[0]'s segment (Alive) or stopped being
	// one; Reason says why.
	EventPeer EventKind = "peer"
	// EventHoldEnded: this node has heartbeated long enough on Interfaces[0] to claim VIPs there.
	EventHoldEnded EventKind = "hold-ended"
	// EventStopped: the speaker stopped and sent its leave heartbeats.
	EventStopped EventKind = "stopped"
)

// Event is something the speaker did or learnt, for logs, traces and timelines.
type Event struct {
	Kind       EventKind
	Service    ServiceKey
	VIP        netip.Addr
	Interfaces []string
	Peer       string
	Alive      bool
	Reason     string
}

func (e Event) String() string {
	ifs := strings.Join(e.Interfaces, ",")
	switch e.Kind {
	case EventOwn:
		return fmt.Sprintf("owns %s (%s) on %s", e.VIP, e.Service, ifs)
	case EventDisown:
		return fmt.Sprintf("releases %s (%s): %s", e.VIP, e.Service, e.Reason)
	case EventAnnounce:
		return fmt.Sprintf("announces %s on %s", e.VIP, ifs)
	case EventPeer:
		state := "lost"
		if e.Alive {
			state = "candidate"
		}
		return fmt.Sprintf("peer %s %s on %s (%s)", e.Peer, state, ifs, e.Reason)
	case EventHoldEnded:
		return fmt.Sprintf("hold ended on %s, may claim VIPs there", ifs)
	case EventStopped:
		return "stopped, leave sent"
	}
	return string(e.Kind)
}
