package scenarios

import (
	"strings"
	"testing"
)

// bgpBase is a valid BGP scenario that the malformed cases below break in one place each.
const bgpBase = `
name: b
duration: 5s
topology:
  segments: [{name: rack}]
  routers:
    - {name: tor, interfaces: [{name: eth0, segment: rack, addrs: [10.10.0.1/24]}]}
  nodes:
    - {name: node-1, interfaces: [{name: eth0, segment: rack, addrs: [10.10.0.11/24]}]}
bgpRouters:
  - {host: tor, asn: 64512, neighbors: [10.10.0.0/24]}
config: |
  apiVersion: metallb.io/v1beta1
  kind: IPAddressPool
  metadata: {name: p, namespace: metallb-system}
  spec: {addresses: [203.0.113.0/24]}
services:
  - {name: web, endpoints: [{node: node-1}]}
events:
  - {at: 1s, name: crash, crash: {node: node-1}}
  - {at: 2s, name: restart, restartRouter: {router: tor, downFor: 1s}}
expect:
  - nextHops: {service: default/web, at: 1s, count: 1}
  - flowSpread: {service: default/web, to: 1s, min: 1}
  - nextHopRemoved: {service: default/web, event: crash, max: 350ms}
  - readvertised: {event: restart, within: 5s}
`

func TestParseRejectsMalformedBGPScenarios(t *testing.T) {
	tests := []struct {
		name, from, to, want string
	}{
		{"unknown router field", "{host: tor, asn: 64512,", "{host: tor, as: 64512,",
			`decoding scenario: unknown field "bgpRouters[0].as"`},
		{"router not a router host", "{host: tor,", "{host: node-1,",
			`bgpRouters[0].host: "node-1" is not in topology.routers`},
		{"router without ASN", "asn: 64512, ", "",
			"bgpRouters[0].asn: is required"},
		{"router without neighbours", "neighbors: [10.10.0.0/24]", "neighbors: []",
			"bgpRouters[0].neighbors: at least one range is required"},
		{"short hold time", "neighbors: [10.10.0.0/24]}", "neighbors: [10.10.0.0/24], holdTime: 1s}",
			"bgpRouters[0].holdTime: 1s is below 3s"},
		{"restart of an unknown router", "restartRouter: {router: tor,", "restartRouter: {router: spine,",
			`events[1].restartRouter.router: "spine" is not in bgpRouters`},
		{"restart without downtime", "downFor: 1s", "downFor: 0s",
			"events[1].restartRouter.downFor: must be positive"},
		{"next hops with count and nodes", "at: 1s, count: 1}", "at: 1s, count: 1, nodes: [node-1]}",
			"expect[0].nextHops: exactly one of count and nodes is required"},
		{"next hops of an unknown node", "at: 1s, count: 1}", "at: 1s, nodes: [node-9]}",
			`expect[0].nextHops.nodes[0]: "node-9" is not in topology.nodes`},
		{"next hops of an unknown router", "nextHops: {service", "nextHops: {router: spine, service",
			`expect[0].nextHops.router: "spine" is not in bgpRouters (give router when there are several)`},
		{"flow spread backwards", "to: 1s, min: 1}", "from: 2s, to: 1s, min: 1}",
			"expect[1].flowSpread.to: must be after from"},
		{"flow spread without minimum", "to: 1s, min: 1}", "to: 1s, min: 0}",
			"expect[1].flowSpread.min: must be at least 1"},
		{"removal after a router event needs a node", "event: crash, max: 350ms}", "event: restart, max: 350ms}",
			"expect[2].nextHopRemoved.node: is required unless the event crashes a named node"},
		{"removal bounds inverted", "event: crash, max: 350ms}", "event: crash, min: 1s, max: 350ms}",
			"expect[2].nextHopRemoved: max must be positive and min within 0..max"},
		{"readvertised after a crash", "readvertised: {event: restart,", "readvertised: {event: crash,",
			`expect[3].readvertised.event: "crash" is not a restartRouter event`},
		{"readvertised without bound", "within: 5s}", "within: 0s}",
			"expect[3].readvertised.within: must be positive"},
	}
	if _, err := Parse([]byte(bgpBase)); err != nil {
		t.Fatalf("the base scenario is invalid: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(bgpBase, tt.from) {
				t.Fatalf("base has no %q", tt.from)
			}
			_, err := Parse([]byte(strings.Replace(bgpBase, tt.from, tt.to, 1)))
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v\nwant    %s", err, tt.want)
			}
		})
	}
}

// A single router is the default router of the BGP expectations, and a crash names the node
// whose next hop must go.
func TestParseBGPDefaults(t *testing.T) {
	sc, err := Parse([]byte(bgpBase))
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.Expect[0].NextHops.Router; got != "tor" {
		t.Errorf("nextHops.router = %q, want tor", got)
	}
	if got := sc.Expect[2].NextHopRemoved.Node; got != "node-1" {
		t.Errorf("nextHopRemoved.node = %q, want node-1", got)
	}
	if got := *sc.Events[1].Measure; got {
		t.Errorf("restartRouter is measured by default, want not")
	}
}

// A router's BFD profile is looked up in the loaded configuration when the run starts.
func TestRunRejectsUnknownRouterBFDProfile(t *testing.T) {
	sc, err := Parse([]byte(strings.Replace(bgpBase, "neighbors: [10.10.0.0/24]}", "neighbors: [10.10.0.0/24], bfdProfile: slow}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(sc, Options{})
	if want := `bgpRouters[0].bfdProfile: the configuration has no BFDProfile "slow"`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}
