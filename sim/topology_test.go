package sim

import (
	"testing"
)

func TestTopologyValidate(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{{
		name: "valid",
		yaml: `
segments: [{name: lan, subnets: [10.0.0.0/24]}]
nodes: [{name: a, interfaces: [{name: eth0, segment: lan, addrs: [10.0.0.1/24]}]}]
clients: [{name: c, interfaces: [{name: eth0, segment: lan, addrs: [10.0.0.2/24], link: {loss: 0.1, delay: 2ms}}]}]`,
	}, {
		name: "unknown segment",
		yaml: `
segments: [{name: lan}]
nodes: [{name: a, interfaces: [{name: eth0, segment: wan}]}]`,
		want: `topology: nodes[0] (a): interfaces[0] (eth0): segment "wan" is not defined`,
	}, {
		name: "duplicate host name",
		yaml: `
segments: [{name: lan}]
nodes: [{name: a, interfaces: [{name: eth0, segment: lan}]}]
clients: [{name: a, interfaces: [{name: eth0, segment: lan}]}]`,
		want: `topology: clients[0] (a): name is already used by topology: nodes[0] (a)`,
	}, {
		name: "address outside segment subnets",
		yaml: `
segments: [{name: lan, subnets: [10.0.0.0/24]}]
nodes: [{name: a, interfaces: [{name: eth0, segment: lan, addrs: [10.1.0.1/24]}]}]`,
		want: `topology: nodes[0] (a): interfaces[0] (eth0): addrs[0] 10.1.0.1 is outside the subnets of segment lan`,
	}, {
		name: "gateway with one interface",
		yaml: `
segments: [{name: lan}]
gateways: [{name: gw, interfaces: [{name: eth0, segment: lan}]}]`,
		want: `topology: gateways[0] (gw): interfaces: a gateway needs two interfaces, has 1`,
	}, {
		name: "bad loss",
		yaml: `
segments: [{name: lan}]
clients: [{name: c, interfaces: [{name: eth0, segment: lan, link: {loss: 2}}]}]`,
		want: `topology: clients[0] (c): interfaces[0] (eth0): link: loss 2 is not a probability in [0, 1]`,
	}, {
		name: "route via unconnected gateway",
		yaml: `
segments: [{name: lan}]
clients: [{name: c, interfaces: [{name: eth0, segment: lan, addrs: [10.0.0.2/24]}], routes: [{dst: 0.0.0.0/0, via: 10.9.0.1}]}]`,
		want: `topology: clients[0] (c): routes[0]: via 10.9.0.1 is on no subnet of the host's interfaces`,
	}, {
		name: "multicast MAC",
		yaml: `
segments: [{name: lan}]
clients: [{name: c, interfaces: [{name: eth0, segment: lan, mac: "01:00:5e:00:00:01"}]}]`,
		want: `topology: clients[0] (c): interfaces[0] (eth0): mac: 01:00:5e:00:00:01 is not a unicast Ethernet address`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTopology([]byte(tt.yaml))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("ParseTopology error = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseTopology(f *testing.F) {
	f.Add([]byte("segments: [{name: lan}]\nnodes: [{name: a, interfaces: [{name: eth0, segment: lan, addrs: [10.0.0.1/24]}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		topo, err := ParseTopology(data)
		if err != nil {
			return
		}
		if err := topo.Validate(); err != nil {
			t.Fatalf("ParseTopology accepted a topology that Validate rejects: %v", err)
		}
	})
}
