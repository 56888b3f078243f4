package sim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"time"

	"sigs.k8s.io/yaml"
)

// Topology is a simulated network described as plain data. Scenario files fill it from YAML
// (ParseTopology); tests may build it in Go. Validate checks it; New builds it.
type Topology struct {
	// Segments are the layer-2 broadcast domains, one virtual switch each.
	Segments []Segment `json:"segments"`
	// Nodes are Kubernetes nodes: they run speakers (through netio/netstack) and serve TCP on
	// every VIP their speaker attracts.
	Nodes []Host `json:"nodes,omitempty"`
	// Clients are machines that probe VIPs with ARP/NDP, ping and TCP.
	Clients []Host `json:"clients,omitempty"`
	// Gateways route between the segments their interfaces are on.
	Gateways []Host `json:"gateways,omitempty"`
	// Routers are forwarding hosts on which BGP routers run (through netio/netstack).
	Routers []Host `json:"routers,omitempty"`
}

// Segment is one switch.
type Segment struct {
	// Name identifies the segment.
	Name string `json:"name"`
	// Subnets, when given, are the only prefixes interface addresses on the segment may use.
	Subnets []netip.Prefix `json:"subnets,omitempty"`
	// AgingTime is how long the switch remembers a MAC; 0 means 300 s.
	AgingTime Duration `json:"agingTime,omitempty"`
}

// Host is a node, client, gateway or router.
type Host struct {
	// Name identifies the host; it is unique across all kinds.
	Name string `json:"name"`
	// Interfaces are the host's NICs, indexed from 1 in this order.
	Interfaces []Interface `json:"interfaces"`
	// Routes are static routes; connected subnets are routed automatically.
	Routes []Route `json:"routes,omitempty"`
	// ServePorts are the TCP ports a node serves on every address (default 80). Nodes only.
	ServePorts []uint16 `json:"servePorts,omitempty"`
}

// Interface is one NIC and the link that cables it to a segment.
type Interface struct {
	// Name is the interface name, e.g. "eth0".
	Name string `json:"name"`
	// Segment is the name of the segment the interface is on.
	Segment string `json:"segment"`
	// MAC is the hardware address; when empty, one is derived from host and interface names.
	MAC string `json:"mac,omitempty"`
	// Addrs are the interface's addresses with prefix length, IPv4 and/or IPv6.
	Addrs []netip.Prefix `json:"addrs,omitempty"`
	// Link is the initial impairment of the cable.
	Link Link `json:"link,omitempty"`
}

// Link describes how a cable mistreats frames; the zero value is a perfect cable.
//
// A perfect cable also has no latency, so a whole exchange happens at one virtual instant. Give
// links a LAN-like delay (tens of microseconds) where time-derived values matter, e.g. many TCP
// connections in a row: gVisor's initial sequence numbers advance with the clock.
type Link struct {
	// Loss is the probability that a frame is lost, per crossing.
	Loss float64 `json:"loss,omitempty"`
	// Duplicate is the probability that a frame is delivered twice.
	Duplicate float64 `json:"duplicate,omitempty"`
	// Delay is added to every frame, per crossing.
	Delay Duration `json:"delay,omitempty"`
}

// Route is a static route through a gateway on a connected subnet.
type Route struct {
	Dst netip.Prefix `json:"dst"`
	Via netip.Addr   `json:"via"`
}

// Duration is a time.Duration written as "1.5s" in YAML and JSON.
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string such as "250ms".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"250ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// ParseTopology reads a topology from YAML (or JSON), rejecting unknown fields, and validates it.
func ParseTopology(data []byte) (Topology, error) {
	var t Topology
	if err := yaml.UnmarshalStrict(data, &t); err != nil {
		return Topology{}, fmt.Errorf("topology: %w", err)
	}
	if err := t.Validate(); err != nil {
		return Topology{}, err
	}
	return t, nil
}

// hostKind says what role a host plays.
type hostKind uint8

const (
	kindNode hostKind = iota + 1
	kindClient
	kindGateway
	kindRouter
)

func (k hostKind) String() string {
	return [...]string{"", "nodes", "clients", "gateways", "routers"}[k]
}

type hostRef struct {
	kind  hostKind
	index int
	spec  *Host
}

func (t *Topology) hosts() []hostRef {
	var out []hostRef
	add := func(k hostKind, hs []Host) {
		for i := range hs {
			out = append(out, hostRef{kind: k, index: i, spec: &hs[i]})
		}
	}
	add(kindNode, t.Nodes)
	add(kindClient, t.Clients)
	add(kindGateway, t.Gateways)
	add(kindRouter, t.Routers)
	return out
}

// Validate reports the first problem in t, naming the object and field.
func (t *Topology) Validate() error {
	segments := make(map[string]*Segment)
	if len(t.Segments) == 0 {
		return fmt.Errorf("topology: segments: at least one segment is required")
	}
	for i := range t.Segments {
		s := &t.Segments[i]
		where := fmt.Sprintf("topology: segments[%d]", i)
		if s.Name == "" {
			return fmt.Errorf("%s: name is empty", where)
		}
		if segments[s.Name] != nil {
			return fmt.Errorf("%s (%s): name is used by another segment", where, s.Name)
		}
		if s.AgingTime.Duration < 0 {
			return fmt.Errorf("%s (%s): agingTime %v is negative", where, s.Name, s.AgingTime)
		}
		for j, p := range s.Subnets {
			if !p.IsValid() {
				return fmt.Errorf("%s (%s): subnets[%d] is not a prefix", where, s.Name, j)
			}
		}
		segments[s.Name] = s
	}
	names := make(map[string]string)
	macs := make(map[string]string)
	addrs := make(map[netip.Addr]string)
	for _, r := range t.hosts() {
		h := r.spec
		where := fmt.Sprintf("topology: %s[%d]", r.kind, r.index)
		if h.Name == "" {
			return fmt.Errorf("%s: name is empty", where)
		}
		where += " (" + h.Name + ")"
		if prev, dup := names[h.Name]; dup {
			return fmt.Errorf("%s: name is already used by %s", where, prev)
		}
		names[h.Name] = where
		if len(h.Interfaces) == 0 {
			return fmt.Errorf("%s: interfaces: at least one interface is required", where)
		}
		if r.kind == kindGateway && len(h.Interfaces) < 2 {
			return fmt.Errorf("%s: interfaces: a gateway needs two interfaces, has %d", where, len(h.Interfaces))
		}
		if r.kind != kindNode && len(h.ServePorts) > 0 {
			return fmt.Errorf("%s: servePorts: only nodes serve", where)
		}
		ifnames := make(map[string]bool)
		for j := range h.Interfaces {
			ifc := &h.Interfaces[j]
			iw := fmt.Sprintf("%s: interfaces[%d]", where, j)
			if ifc.Name == "" {
				return fmt.Errorf("%s: name is empty", iw)
			}
			if ifnames[ifc.Name] {
				return fmt.Errorf("%s (%s): name is used by another interface of the host", iw, ifc.Name)
			}
			ifnames[ifc.Name] = true
			seg := segments[ifc.Segment]
			if seg == nil {
				return fmt.Errorf("%s (%s): segment %q is not defined", iw, ifc.Name, ifc.Segment)
			}
			mac, err := ifc.hardwareAddr(h.Name)
			if err != nil {
				return fmt.Errorf("%s (%s): mac: %w", iw, ifc.Name, err)
			}
			if prev, dup := macs[mac.String()]; dup {
				return fmt.Errorf("%s (%s): mac %s is already used by %s", iw, ifc.Name, mac, prev)
			}
			macs[mac.String()] = h.Name + "/" + ifc.Name
			for k, p := range ifc.Addrs {
				if !p.IsValid() {
					return fmt.Errorf("%s (%s): addrs[%d] is not an address with prefix length", iw, ifc.Name, k)
				}
				a := p.Addr()
				if a.Zone() != "" || a.IsMulticast() || a.IsUnspecified() || a.IsLinkLocalUnicast() || a.Is4In6() {
					return fmt.Errorf("%s (%s): addrs[%d] %s must be a global unicast address", iw, ifc.Name, k, p)
				}
				if prev, dup := addrs[a]; dup {
					return fmt.Errorf("%s (%s): addrs[%d] %s is already used by %s", iw, ifc.Name, k, a, prev)
				}
				addrs[a] = h.Name + "/" + ifc.Name
				if len(seg.Subnets) > 0 && !anyContains(seg.Subnets, a) {
					return fmt.Errorf("%s (%s): addrs[%d] %s is outside the subnets of segment %s", iw, ifc.Name, k, a, seg.Name)
				}
			}
			if err := ifc.Link.impairment().Validate(); err != nil {
				return fmt.Errorf("%s (%s): link: %w", iw, ifc.Name, err)
			}
		}
		for j, rt := range h.Routes {
			if !rt.Dst.IsValid() || !rt.Via.IsValid() {
				return fmt.Errorf("%s: routes[%d]: dst and via are required", where, j)
			}
			if rt.Dst.Addr().Is4() != rt.Via.Is4() {
				return fmt.Errorf("%s: routes[%d]: dst %s and via %s are of different families", where, j, rt.Dst, rt.Via)
			}
			if !h.connected(rt.Via) {
				return fmt.Errorf("%s: routes[%d]: via %s is on no subnet of the host's interfaces", where, j, rt.Via)
			}
		}
	}
	return nil
}

func anyContains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (h *Host) connected(a netip.Addr) bool {
	for _, ifc := range h.Interfaces {
		for _, p := range ifc.Addrs {
			if p.Masked().Contains(a) {
				return true
			}
		}
	}
	return false
}

// hardwareAddr returns the configured MAC, or one derived from the host and interface names:
// a locally administered unicast address (02:…) from a hash, identical on every run.
func (ifc *Interface) hardwareAddr(host string) (net.HardwareAddr, error) {
	if ifc.MAC != "" {
		mac, err := net.ParseMAC(ifc.MAC)
		if err != nil {
			return nil, err
		}
		if len(mac) != 6 || mac[0]&1 != 0 {
			return nil, fmt.Errorf("%s is not a unicast Ethernet address", ifc.MAC)
		}
		return mac, nil
	}
	f := fnv.New64a()
	f.Write([]byte(host + "/" + ifc.Name))
	sum := f.Sum64()
	return net.HardwareAddr{0x02, byte(sum >> 32), byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)}, nil
}
