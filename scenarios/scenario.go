// Package scenarios describes simulated networks as data and runs Switchyard's speakers on
// them: a scenario file holds a topology (segments, nodes, clients, gateways, routers), the
// metallb.io configuration, the Services, timed events (crashes, graceful stops, partitions,
// link failures, packet loss, endpoint moves, router restarts), client probes and the
// expectations to check.
//
// Run builds the network with package sim, gives every node a speaker (core/speaker through
// netio/attach on the simulated netio backend) and, when the configuration has BGPPeers, the
// BGP runtime (netio/attach.BGP); routers listed in bgpRouters run sim/bgprouter. It assigns
// the Services' addresses with core/ipam, plays the events in virtual time and returns a
// Result: a timeline, the outage clients saw after each failover, and a verdict per
// expectation (VIP owners for layer 2; routes, next-hop removal times and flow spread for
// BGP). A run is a pure function of the scenario and its seed: the trace and pcap of two runs
// are byte-identical.
//
// `switchyard sim run FILE` is the command-line front end; `go test ./scenarios/...` runs every
// scenario file in this directory. The file format is documented in README.md.
package scenarios

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/switchyard-lb/switchyard/core/speaker"
	"github.com/switchyard-lb/switchyard/sim"
)

// Duration is a time.Duration written as "250ms".
type Duration = sim.Duration

// Scenario is one scenario file.
type Scenario struct {
	// Name identifies the scenario in reports; the file name without extension by default.
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	// Seed seeds every random choice of the simulation (packet loss above all); default 1.
	Seed uint64 `json:"seed,omitempty"`
	// Duration is how much virtual time the scenario runs.
	Duration Duration `json:"duration"`
	// Topology is the simulated network (package sim's Topology).
	Topology sim.Topology `json:"topology"`
	// NodeLabels are Kubernetes labels of the nodes, matched by L2Advertisement nodeSelectors.
	NodeLabels map[string]map[string]string `json:"nodeLabels,omitempty"`
	// BGPRouters run simulated BGP routers on hosts of topology.routers. Nodes run BGP
	// sessions when the configuration has BGPPeers.
	BGPRouters []BGPRouterSpec `json:"bgpRouters,omitempty"`
	// Speaker tunes the speakers; the zero value is Switchyard's defaults.
	Speaker SpeakerSettings `json:"speaker,omitempty"`
	// Config holds metallb.io manifests inline: one YAML string (documents separated by
	// "---") or a list of objects.
	Config Manifests `json:"config,omitempty"`
	// ConfigFiles are manifest files, relative to the scenario file.
	ConfigFiles []string `json:"configFiles,omitempty"`
	// Services are the LoadBalancer Services; their addresses come from the pools as the
	// controller would assign them.
	Services []ServiceSpec `json:"services,omitempty"`
	// Clients are repeating probes from client hosts.
	Clients []ClientProbe `json:"clients,omitempty"`
	// Events happen at given virtual times.
	Events []Event `json:"events,omitempty"`
	// Expect lists what must hold; a run fails when one does not.
	Expect []Expectation `json:"expect,omitempty"`

	// dir is the directory configFiles are relative to.
	dir string
}

// SpeakerSettings tune the speakers of a scenario. Zero fields keep the defaults.
type SpeakerSettings struct {
	// HeartbeatInterval is the liveness heartbeat interval (default 100ms).
	HeartbeatInterval Duration `json:"heartbeatInterval,omitempty"`
	// Multiplier is how many intervals of silence make a peer dead (default 3).
	Multiplier int `json:"multiplier,omitempty"`
	// MaxMultiplier caps the detection time on lossy segments (default 10).
	MaxMultiplier int `json:"maxMultiplier,omitempty"`
}

// Manifests are metallb.io manifests given inline as YAML text or as a list of objects.
type Manifests struct {
	YAML string
}

// UnmarshalJSON accepts a string of YAML documents or a list of objects.
func (m *Manifests) UnmarshalJSON(b []byte) error {
	var text string
	if err := json.Unmarshal(b, &text); err == nil {
		m.YAML = text
		return nil
	}
	var docs []json.RawMessage
	if err := json.Unmarshal(b, &docs); err != nil {
		return errors.New("config must be a YAML string or a list of manifests")
	}
	parts := make([]string, len(docs))
	for i, d := range docs {
		parts[i] = string(d) // JSON is YAML
	}
	m.YAML = strings.Join(parts, "\n---\n")
	return nil
}

// MarshalJSON writes the manifests as a string.
func (m Manifests) MarshalJSON() ([]byte, error) { return json.Marshal(m.YAML) }

// ServiceSpec is a LoadBalancer Service.
type ServiceSpec struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"` // default "default"
	// IPFamilyPolicy is SingleStack (default), PreferDualStack or RequireDualStack.
	IPFamilyPolicy string `json:"ipFamilyPolicy,omitempty"`
	// IPFamilies are "IPv4" and/or "IPv6", primary first; default IPv4, or both for a dual-stack
	// policy.
	IPFamilies []string `json:"ipFamilies,omitempty"`
	// LoadBalancerIPs requests addresses (metallb.io/loadBalancerIPs).
	LoadBalancerIPs []netip.Addr `json:"loadBalancerIPs,omitempty"`
	// Pool requests a pool (metallb.io/address-pool).
	Pool string `json:"pool,omitempty"`
	// ExternalTrafficPolicy is Cluster (default) or Local.
	ExternalTrafficPolicy string `json:"externalTrafficPolicy,omitempty"`
	// Endpoints are the Service's endpoints by node.
	Endpoints []EndpointSpec `json:"endpoints,omitempty"`
}

// Key returns "namespace/name".
func (s *ServiceSpec) Key() speaker.ServiceKey {
	return speaker.ServiceKey{Namespace: s.Namespace, Name: s.Name}
}

// EndpointSpec is one endpoint: the node its pod runs on, ready unless said otherwise.
type EndpointSpec struct {
	Node  string `json:"node"`
	Ready *bool  `json:"ready,omitempty"`
}

// ClientProbe makes a client probe a Service's VIPs (each of them) or one address repeatedly.
type ClientProbe struct {
	Client string `json:"client"`
	// Service is "namespace/name"; Target is an address. Exactly one is required.
	Service string     `json:"service,omitempty"`
	Target  netip.Addr `json:"target,omitempty"`
	// Kind is tcp (default: connect and read the serving node's name), ping or resolve.
	Kind sim.ProbeKind `json:"kind,omitempty"`
	// Port is the TCP port (default 80).
	Port uint16 `json:"port,omitempty"`
	// Interval between attempts (default 50ms); Timeout of one attempt (default 1s).
	Interval Duration `json:"interval,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
	// Start is when the first attempt is made (default 0).
	Start Duration `json:"start,omitempty"`
}

// NodeRef names a node directly or as the current owner of a Service's VIPs.
type NodeRef struct {
	Node    string `json:"node,omitempty"`
	OwnerOf string `json:"ownerOf,omitempty"`
}

func (r NodeRef) String() string {
	if r.OwnerOf != "" {
		return "owner of " + r.OwnerOf
	}
	return r.Node
}

// Event is one thing that happens at a virtual time. Exactly one action is set.
type Event struct {
	At Duration `json:"at"`
	// Name labels the event in reports and expectations; derived from the action by default.
	Name string `json:"name,omitempty"`
	// Measure says whether clients' outage after this event is measured and reported. The
	// default is true for crash, stop, isolate, linkDown and endpoints, false otherwise.
	Measure *bool `json:"measure,omitempty"`

	// Crash powers a node off at once: no leave heartbeat, every timer gone.
	Crash *NodeRef `json:"crash,omitempty"`
	// PowerOn boots a crashed node and starts its speaker.
	PowerOn *NodeRef `json:"powerOn,omitempty"`
	// Stop stops a node's speaker gracefully (leave heartbeats); the node keeps running.
	Stop *NodeRef `json:"stop,omitempty"`
	// Start starts a stopped node's speaker again.
	Start *NodeRef `json:"start,omitempty"`
	// Isolate partitions a segment: the node is cut off from every other port of it.
	Isolate *IsolateSpec `json:"isolate,omitempty"`
	// Heal removes a segment's partition.
	Heal *SegmentRef `json:"heal,omitempty"`
	// LinkDown and LinkUp cut and restore a host interface's cable.
	LinkDown *LinkRef `json:"linkDown,omitempty"`
	LinkUp   *LinkRef `json:"linkUp,omitempty"`
	// Impair sets random loss, duplication and delay on a host interface's cable.
	Impair *ImpairSpec `json:"impair,omitempty"`
	// Endpoints replaces a Service's endpoints, as when its pods move.
	Endpoints *EndpointsChange `json:"endpoints,omitempty"`
	// RestartRouter powers a BGP router off and boots it again.
	RestartRouter *RouterRestart `json:"restartRouter,omitempty"`
}

// IsolateSpec cuts one node off from the rest of a segment.
type IsolateSpec struct {
	Segment string `json:"segment"`
	NodeRef `json:",inline"`
}

// SegmentRef names a segment.
type SegmentRef struct {
	Segment string `json:"segment"`
}

// LinkRef names a host interface. Host may be any host of the topology, or ownerOf a Service.
type LinkRef struct {
	NodeRef   `json:",inline"`
	Host      string `json:"host,omitempty"`
	Interface string `json:"interface"`
}

// ImpairSpec sets a host interface's impairment.
type ImpairSpec struct {
	LinkRef `json:",inline"`
	sim.Link
}

// EndpointsChange replaces a Service's endpoints.
type EndpointsChange struct {
	Service   string         `json:"service"`
	Endpoints []EndpointSpec `json:"endpoints"`
}

// Expectation is one check of a run. Exactly one field is set.
type Expectation struct {
	// MaxOutage bounds the outage clients observe after a measured event (or after every
	// measured event when Event is empty).
	MaxOutage *OutageExpectation `json:"maxOutage,omitempty"`
	// Owner says which node owns a Service's VIPs at a time ("none" for no node).
	Owner *OwnerExpectation `json:"owner,omitempty"`
	// NoFailover says the Service's owner never changes once elected.
	NoFailover *ServiceRef `json:"noFailover,omitempty"`
	// SplitBrain bounds, after each heal event, how long two nodes own a VIP of the Service.
	SplitBrain *SplitBrainExpectation `json:"splitBrain,omitempty"`
	// OwnersInSubnet says every node that ever owns the Service's VIPs has an address in
	// Subnet.
	OwnersInSubnet *SubnetExpectation `json:"ownersInSubnet,omitempty"`
	// SameOwner says all VIPs of the Service always have the same owners.
	SameOwner *ServiceRef `json:"sameOwner,omitempty"`
	// ClientEndsOnOwner says the client's last successful attempt on each probed VIP was
	// served by that VIP's owner at the end of the run.
	ClientEndsOnOwner *ClientRef `json:"clientEndsOnOwner,omitempty"`

	// NextHops checks a BGP router's route to each of the Service's VIPs at a time.
	NextHops *NextHopsExpectation `json:"nextHops,omitempty"`
	// FlowSpread checks how many client connections each node served.
	FlowSpread *FlowSpreadExpectation `json:"flowSpread,omitempty"`
	// NextHopRemoved bounds how soon after an event a router stops routing to a node.
	NextHopRemoved *NextHopRemovedExpectation `json:"nextHopRemoved,omitempty"`
	// Readvertised says a restarted router gets every route back.
	Readvertised *ReadvertisedExpectation `json:"readvertised,omitempty"`
}

// OutageExpectation bounds client-observed outage.
type OutageExpectation struct {
	Event string   `json:"event,omitempty"`
	Max   Duration `json:"max"`
}

// OwnerExpectation checks the owner at a time.
type OwnerExpectation struct {
	Service string   `json:"service"`
	At      Duration `json:"at"`
	Node    string   `json:"node"`
}

// ServiceRef names a Service.
type ServiceRef struct {
	Service string `json:"service"`
}

// SplitBrainExpectation bounds dual ownership after a heal.
type SplitBrainExpectation struct {
	Service string   `json:"service"`
	Max     Duration `json:"max"`
}

// SubnetExpectation checks owners' subnets.
type SubnetExpectation struct {
	Service string       `json:"service"`
	Subnet  netip.Prefix `json:"subnet"`
}

// ClientRef names a client.
type ClientRef struct {
	Client string `json:"client"`
}

// ParseFile reads and validates a scenario file.
func ParseFile(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sc, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sc.dir = filepath.Dir(path)
	if sc.Name == "" {
		sc.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return sc, nil
}

// Parse decodes a scenario from YAML, rejecting unknown fields by their path, and validates it.
func Parse(data []byte) (*Scenario, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	sc := &Scenario{}
	strict, err := kjson.UnmarshalStrict(j, sc, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("decoding scenario: %w", err)
	}
	if len(strict) > 0 {
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("decoding scenario: %s", strings.Join(msgs, "; "))
	}
	if err := sc.validate(); err != nil {
		return nil, err
	}
	return sc, nil
}

// validate applies defaults and reports the first problem, naming its field.
func (sc *Scenario) validate() error {
	if sc.Seed == 0 {
		sc.Seed = 1
	}
	if sc.Duration.Duration <= 0 {
		return errors.New("duration: must be positive, e.g. \"3s\"")
	}
	if err := sc.Topology.Validate(); err != nil {
		return err
	}
	nodes := map[string]bool{}
	for _, n := range sc.Topology.Nodes {
		nodes[n.Name] = true
	}
	hosts := map[string]bool{}
	for _, hs := range [][]sim.Host{sc.Topology.Nodes, sc.Topology.Clients, sc.Topology.Gateways, sc.Topology.Routers} {
		for _, h := range hs {
			hosts[h.Name] = true
		}
	}
	clients := map[string]bool{}
	for _, c := range sc.Topology.Clients {
		clients[c.Name] = true
	}
	segments := map[string]bool{}
	for _, s := range sc.Topology.Segments {
		segments[s.Name] = true
	}
	for name := range sc.NodeLabels {
		if !nodes[name] {
			return fmt.Errorf("nodeLabels.%s: no such node in topology.nodes", name)
		}
	}
	routers, err := sc.validateBGP()
	if err != nil {
		return err
	}
	if s := sc.Speaker; s.HeartbeatInterval.Duration < 0 || s.Multiplier < 0 || s.MaxMultiplier < 0 {
		return errors.New("speaker: settings must not be negative")
	}
	if sc.Config.YAML == "" && len(sc.ConfigFiles) == 0 {
		return errors.New("config: metallb.io manifests are required (config or configFiles)")
	}
	services := map[string]*ServiceSpec{}
	for i := range sc.Services {
		s := &sc.Services[i]
		where := fmt.Sprintf("services[%d]", i)
		if s.Name == "" {
			return fmt.Errorf("%s.name: is required", where)
		}
		if s.Namespace == "" {
			s.Namespace = "default"
		}
		key := s.Key().String()
		if services[key] != nil {
			return fmt.Errorf("%s.name: %s is defined twice", where, key)
		}
		services[key] = s
		switch s.IPFamilyPolicy {
		case "":
			s.IPFamilyPolicy = "SingleStack"
		case "SingleStack", "PreferDualStack", "RequireDualStack":
		default:
			return fmt.Errorf("%s.ipFamilyPolicy: %q is not SingleStack, PreferDualStack or RequireDualStack", where, s.IPFamilyPolicy)
		}
		if len(s.IPFamilies) == 0 {
			s.IPFamilies = []string{"IPv4"}
			if s.IPFamilyPolicy != "SingleStack" {
				s.IPFamilies = []string{"IPv4", "IPv6"}
			}
		}
		for j, f := range s.IPFamilies {
			if f != "IPv4" && f != "IPv6" {
				return fmt.Errorf("%s.ipFamilies[%d]: %q is not IPv4 or IPv6", where, j, f)
			}
		}
		switch s.ExternalTrafficPolicy {
		case "":
			s.ExternalTrafficPolicy = "Cluster"
		case "Cluster", "Local":
		default:
			return fmt.Errorf("%s.externalTrafficPolicy: %q is not Cluster or Local", where, s.ExternalTrafficPolicy)
		}
		if err := checkEndpoints(where+".endpoints", s.Endpoints, nodes); err != nil {
			return err
		}
	}
	checkService := func(field, key string) error {
		if services[key] == nil {
			return fmt.Errorf("%s: service %q is not defined in services (write namespace/name)", field, key)
		}
		return nil
	}
	checkNode := func(field string, r NodeRef) error {
		switch {
		case (r.Node == "") == (r.OwnerOf == ""):
			return fmt.Errorf("%s: exactly one of node and ownerOf is required", field)
		case r.Node != "" && !nodes[r.Node]:
			return fmt.Errorf("%s.node: %q is not in topology.nodes", field, r.Node)
		case r.OwnerOf != "":
			return checkService(field+".ownerOf", r.OwnerOf)
		}
		return nil
	}
	for i := range sc.Clients {
		c := &sc.Clients[i]
		where := fmt.Sprintf("clients[%d]", i)
		if !clients[c.Client] {
			return fmt.Errorf("%s.client: %q is not in topology.clients", where, c.Client)
		}
		if (c.Service == "") == !c.Target.IsValid() {
			return fmt.Errorf("%s: exactly one of service and target is required", where)
		}
		if c.Service != "" {
			if err := checkService(where+".service", c.Service); err != nil {
				return err
			}
		}
		switch c.Kind {
		case "":
			c.Kind = sim.ProbeTCP
		case sim.ProbeTCP, sim.ProbePing, sim.ProbeResolve:
		default:
			return fmt.Errorf("%s.kind: %q is not tcp, ping or resolve", where, c.Kind)
		}
		if c.Port == 0 {
			c.Port = 80
		}
		if c.Interval.Duration == 0 {
			c.Interval.Duration = 50 * time.Millisecond
		}
		if c.Timeout.Duration == 0 {
			c.Timeout.Duration = time.Second
		}
		if c.Interval.Duration < 0 || c.Timeout.Duration < 0 || c.Start.Duration < 0 {
			return fmt.Errorf("%s: interval, timeout and start must not be negative", where)
		}
	}
	names := map[string]bool{}
	for i := range sc.Events {
		e := &sc.Events[i]
		where := fmt.Sprintf("events[%d]", i)
		if e.At.Duration < 0 || e.At.Duration > sc.Duration.Duration {
			return fmt.Errorf("%s.at: %v is outside the scenario's duration %v", where, e.At, sc.Duration)
		}
		if i > 0 && e.At.Duration < sc.Events[i-1].At.Duration {
			return fmt.Errorf("%s.at: %v is before the previous event's %v; list events in time order", where, e.At, sc.Events[i-1].At)
		}
		action, measured, err := e.check(where, checkNode, checkService, segments, hosts, nodes, routers)
		if err != nil {
			return err
		}
		if e.Name == "" {
			e.Name = action
		}
		if names[e.Name] {
			return fmt.Errorf("%s.name: %q is used by an earlier event; name events to tell them apart", where, e.Name)
		}
		names[e.Name] = true
		if e.Measure == nil {
			e.Measure = &measured
		}
	}
	for i := range sc.Expect {
		where := fmt.Sprintf("expect[%d]", i)
		x := &sc.Expect[i]
		set := 0
		var err error
		if x.MaxOutage != nil {
			set++
			switch {
			case x.MaxOutage.Max.Duration <= 0:
				err = fmt.Errorf("%s.maxOutage.max: must be positive", where)
			case x.MaxOutage.Event != "" && !names[x.MaxOutage.Event]:
				err = fmt.Errorf("%s.maxOutage.event: no event is named %q", where, x.MaxOutage.Event)
			}
		}
		if x.Owner != nil {
			set++
			if err == nil {
				err = checkService(where+".owner.service", x.Owner.Service)
			}
			if err == nil && x.Owner.Node != "none" && !nodes[x.Owner.Node] {
				err = fmt.Errorf("%s.owner.node: %q is not in topology.nodes (or \"none\")", where, x.Owner.Node)
			}
		}
		if x.NoFailover != nil {
			set++
			if err == nil {
				err = checkService(where+".noFailover.service", x.NoFailover.Service)
			}
		}
		if x.SplitBrain != nil {
			set++
			if err == nil {
				err = checkService(where+".splitBrain.service", x.SplitBrain.Service)
			}
		}
		if x.OwnersInSubnet != nil {
			set++
			if err == nil {
				err = checkService(where+".ownersInSubnet.service", x.OwnersInSubnet.Service)
			}
			if err == nil && !x.OwnersInSubnet.Subnet.IsValid() {
				err = fmt.Errorf("%s.ownersInSubnet.subnet: a prefix such as 10.0.0.0/24 is required", where)
			}
		}
		if x.SameOwner != nil {
			set++
			if err == nil {
				err = checkService(where+".sameOwner.service", x.SameOwner.Service)
			}
		}
		if x.ClientEndsOnOwner != nil {
			set++
			if err == nil && !clients[x.ClientEndsOnOwner.Client] {
				err = fmt.Errorf("%s.clientEndsOnOwner.client: %q is not in topology.clients", where, x.ClientEndsOnOwner.Client)
			}
		}
		n, bgpErr := sc.checkBGPExpectation(where, x, routers, nodes, names, checkService)
		set += n
		if err == nil {
			err = bgpErr
		}
		if set != 1 {
			return fmt.Errorf("%s: exactly one expectation per entry is required, found %d", where, set)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// check validates an event's action and returns its default name and whether it is measured
// by default.
func (e *Event) check(where string, checkNode func(string, NodeRef) error, checkService func(string, string) error,
	segments, hosts, nodes, routers map[string]bool) (string, bool, error) {
	type action struct {
		key     string
		set     bool
		measure bool
		check   func() error
		name    func() string
	}
	link := func(field string, l *LinkRef) error {
		if l.Host != "" {
			if l.Node != "" || l.OwnerOf != "" {
				return fmt.Errorf("%s: give host, node or ownerOf, not several", field)
			}
			if !hosts[l.Host] {
				return fmt.Errorf("%s.host: %q is not a host of the topology", field, l.Host)
			}
		} else if err := checkNode(field, l.NodeRef); err != nil {
			return err
		}
		if l.Interface == "" {
			return fmt.Errorf("%s.interface: is required", field)
		}
		return nil
	}
	linkName := func(verb string, l *LinkRef) string {
		h := l.Host
		if h == "" {
			h = l.NodeRef.String()
		}
		return verb + " " + h + "/" + l.Interface
	}
	actions := []action{
		{"crash", e.Crash != nil, true, func() error { return checkNode(where+".crash", *e.Crash) }, func() string { return "crash " + e.Crash.String() }},
		{"powerOn", e.PowerOn != nil, false, func() error { return checkNode(where+".powerOn", *e.PowerOn) }, func() string { return "power on " + e.PowerOn.String() }},
		{"stop", e.Stop != nil, true, func() error { return checkNode(where+".stop", *e.Stop) }, func() string { return "stop speaker on " + e.Stop.String() }},
		{"start", e.Start != nil, false, func() error { return checkNode(where+".start", *e.Start) }, func() string { return "start speaker on " + e.Start.String() }},
		{"isolate", e.Isolate != nil, true, func() error {
			if !segments[e.Isolate.Segment] {
				return fmt.Errorf("%s.isolate.segment: %q is not in topology.segments", where, e.Isolate.Segment)
			}
			return checkNode(where+".isolate", e.Isolate.NodeRef)
		}, func() string { return "isolate " + e.Isolate.NodeRef.String() + " on " + e.Isolate.Segment }},
		{"heal", e.Heal != nil, false, func() error {
			if !segments[e.Heal.Segment] {
				return fmt.Errorf("%s.heal.segment: %q is not in topology.segments", where, e.Heal.Segment)
			}
			return nil
		}, func() string { return "heal " + e.Heal.Segment }},
		{"linkDown", e.LinkDown != nil, true, func() error { return link(where+".linkDown", e.LinkDown) }, func() string { return linkName("link down", e.LinkDown) }},
		{"linkUp", e.LinkUp != nil, false, func() error { return link(where+".linkUp", e.LinkUp) }, func() string { return linkName("link up", e.LinkUp) }},
		{"impair", e.Impair != nil, false, func() error {
			if err := link(where+".impair", &e.Impair.LinkRef); err != nil {
				return err
			}
			l := e.Impair.Link
			if l.Loss < 0 || l.Loss > 1 || l.Duplicate < 0 || l.Duplicate > 1 || l.Delay.Duration < 0 {
				return fmt.Errorf("%s.impair: loss and duplicate must be in 0..1, delay not negative", where)
			}
			return nil
		}, func() string { return linkName("impair", &e.Impair.LinkRef) }},
		{"endpoints", e.Endpoints != nil, true, func() error {
			if err := checkService(where+".endpoints.service", e.Endpoints.Service); err != nil {
				return err
			}
			return checkEndpoints(where+".endpoints.endpoints", e.Endpoints.Endpoints, nodes)
		}, func() string { return "move endpoints of " + e.Endpoints.Service }},
		{"restartRouter", e.RestartRouter != nil, false, func() error {
			if !routers[e.RestartRouter.Router] {
				return fmt.Errorf("%s.restartRouter.router: %q is not in bgpRouters", where, e.RestartRouter.Router)
			}
			if e.RestartRouter.DownFor.Duration <= 0 {
				return fmt.Errorf("%s.restartRouter.downFor: must be positive", where)
			}
			return nil
		}, func() string { return "restart router " + e.RestartRouter.Router }},
	}
	var chosen []action
	for _, a := range actions {
		if a.set {
			chosen = append(chosen, a)
		}
	}
	if len(chosen) != 1 {
		keys := make([]string, len(actions))
		for i, a := range actions {
			keys[i] = a.key
		}
		return "", false, fmt.Errorf("%s: exactly one action is required (%s), found %d", where, strings.Join(keys, ", "), len(chosen))
	}
	if err := chosen[0].check(); err != nil {
		return "", false, err
	}
	return chosen[0].name(), chosen[0].measure, nil
}

func checkEndpoints(field string, eps []EndpointSpec, nodes map[string]bool) error {
	seen := map[string]bool{}
	for i, ep := range eps {
		if !nodes[ep.Node] {
			return fmt.Errorf("%s[%d].node: %q is not in topology.nodes", field, i, ep.Node)
		}
		if seen[ep.Node] {
			return fmt.Errorf("%s[%d].node: %q is listed twice", field, i, ep.Node)
		}
		seen[ep.Node] = true
	}
	return nil
}
