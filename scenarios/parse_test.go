package scenarios

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// base is a valid scenario that the malformed cases below break in one place each.
const base = `
name: t
duration: 2s
topology:
  segments: [{name: lan}]
  nodes:
    - {name: node-a, interfaces: [{name: eth0, segment: lan, addrs: [10.0.0.11/24]}]}
  clients:
    - {name: client, interfaces: [{name: eth0, segment: lan, addrs: [10.0.0.100/24]}]}
config: |
  apiVersion: metallb.io/v1beta1
  kind: IPAddressPool
  metadata: {name: p, namespace: metallb-system}
  spec: {addresses: [10.0.0.200/30]}
services:
  - name: web
clients:
  - {client: client, service: default/web}
events:
  - {at: 1s, crash: {node: node-a}}
expect:
  - maxOutage: {max: 500ms}
`

func TestParseRejectsMalformedScenarios(t *testing.T) {
	tests := []struct {
		name, from, to, want string
	}{
		{"unknown top-level field", "name: t", "name: t\nseeds: 3",
			`decoding scenario: unknown field "seeds"`},
		{"unknown nested field", "{at: 1s, crash: {node: node-a}}", "{at: 1s, crash: {nodes: node-a}}",
			`decoding scenario: unknown field "events[0].crash.nodes"`},
		{"wrong type", "  - name: web", "  - name: [web]",
			"decoding scenario: json: cannot unmarshal array into Go struct field ServiceSpec.services.name of type string"},
		{"no duration", "duration: 2s", "duration: 0s", `duration: must be positive, e.g. "3s"`},
		{"event without action", "{at: 1s, crash: {node: node-a}}", "{at: 1s}",
			"events[0]: exactly one action is required (crash, powerOn, stop, start, isolate, heal, linkDown, linkUp, impair, endpoints, restartRouter), found 0"},
		{"event with two actions", "{at: 1s, crash: {node: node-a}}", "{at: 1s, crash: {node: node-a}, heal: {segment: lan}}",
			"events[0]: exactly one action is required (crash, powerOn, stop, start, isolate, heal, linkDown, linkUp, impair, endpoints, restartRouter), found 2"},
		{"unknown node", "crash: {node: node-a}", "crash: {node: node-x}",
			`events[0].crash.node: "node-x" is not in topology.nodes`},
		{"unknown service", "crash: {node: node-a}", "crash: {ownerOf: default/api}",
			`events[0].crash.ownerOf: service "default/api" is not defined in services (write namespace/name)`},
		{"event after the end", "{at: 1s,", "{at: 3s,",
			"events[0].at: 3s is outside the scenario's duration 2s"},
		{"client not in topology", "{client: client, service", "{client: laptop, service",
			`clients[0].client: "laptop" is not in topology.clients`},
		{"expectation names no event", "maxOutage: {max: 500ms}", "maxOutage: {event: reboot, max: 500ms}",
			`expect[0].maxOutage.event: no event is named "reboot"`},
		{"bad policy", "  - name: web", "  - name: web\n    externalTrafficPolicy: Nearest",
			`services[0].externalTrafficPolicy: "Nearest" is not Cluster or Local`},
		{"topology problem", "segment: lan, addrs: [10.0.0.11/24]", "segment: wan, addrs: [10.0.0.11/24]",
			`topology: nodes[0] (node-a): interfaces[0] (eth0): segment "wan" is not defined`},
	}
	if _, err := Parse([]byte(base)); err != nil {
		t.Fatalf("the base scenario is invalid: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.from) {
				t.Fatalf("base has no %q", tt.from)
			}
			_, err := Parse([]byte(strings.Replace(base, tt.from, tt.to, 1)))
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v\nwant    %s", err, tt.want)
			}
		})
	}
}

func TestParseFileNamesTheFile(t *testing.T) {
	path := t.TempDir() + "/bad.yaml"
	if err := os.WriteFile(path, []byte("duration: 1s\nfoo: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(path)
	if want := path + `: decoding scenario: unknown field "foo"`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

// FuzzParse: any input is either a scenario or an error, never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(bgpBase))
	for _, name := range []string{"failover.yaml", "split-subnet.yaml", "bgp-node-failure.yaml", "bgp-peer-restart.yaml"} {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := Parse(data)
		if err == nil && sc.Duration.Duration <= 0 {
			t.Fatalf("accepted a scenario without a positive duration")
		}
	})
}

// TestConfigFilesAndNodeLabels runs the L2 example manifests from a file: its
// L2Advertisement keeps control-plane nodes out, through nodeLabels.
func TestConfigFilesAndNodeLabels(t *testing.T) {
	example, err := filepath.Abs("examples/l2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	scenario := `
duration: 7s
topology:
  segments: [{name: office}]
  nodes:
    - {name: cp, interfaces: [{name: eth0, segment: office, addrs: [192.168.1.10/24, "2001:db8:1::10/64"]}]}
    - {name: w1, interfaces: [{name: eth0, segment: office, addrs: [192.168.1.11/24, "2001:db8:1::11/64"]}]}
    - {name: w2, interfaces: [{name: eth0, segment: office, addrs: [192.168.1.12/24, "2001:db8:1::12/64"]}]}
  clients:
    - {name: laptop, interfaces: [{name: eth0, segment: office, addrs: [192.168.1.100/24, "2001:db8:1::100/64"]}]}
nodeLabels:
  cp: {node-role.kubernetes.io/control-plane: ""}
configFiles: [` + example + `]
services:
  - {name: web, namespace: shop, ipFamilyPolicy: PreferDualStack}
clients:
  - {client: laptop, service: shop/web, start: 500ms, interval: 50ms, timeout: 2s}
events:
  - {at: 5050ms, name: crash, crash: {ownerOf: shop/web}}
expect:
  - sameOwner: {service: shop/web}
  - maxOutage: {event: crash, max: 500ms}
  - clientEndsOnOwner: {client: laptop}
`
	path := filepath.Join(t.TempDir(), "office.yaml")
	if err := os.WriteFile(path, []byte(scenario), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(sc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	if err := res.WriteReport(&report); err != nil {
		t.Fatal(err)
	}
	if !res.Passed() {
		t.Fatalf("expectations failed:\n%s", report.String())
	}
	owners := 0
	for _, e := range res.Timeline {
		if strings.HasPrefix(e.What, "owns ") {
			owners++
			if e.Who == "cp" {
				t.Errorf("the control-plane node claimed a VIP: %s", e.What)
			}
		}
	}
	if owners != 4 {
		t.Errorf("%d ownership claims, want 4 (two VIPs, before and after the crash):\n%s", owners, report.String())
	}
}
