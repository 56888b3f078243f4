package scenarios

import (
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/sim"
)

// BenchmarkFailoverScenario runs failover.yaml (three nodes, six virtual seconds, a crash and
// the takeover) without trace or pcap. Goal: 200 ms of wall time per run.
func BenchmarkFailoverScenario(b *testing.B) {
	sc, err := ParseFile("failover.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		res, err := Run(sc, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if !res.Passed() {
			b.Fatalf("failover failed: %v", res.Failures())
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "wall-ms/run")
	b.ReportMetric((cpuTime(b)-cpu0).Seconds()*1000/float64(b.N), "cpu-ms/run")
}

// largeNetwork is 100 nodes on one segment with 1,000 single-stack Services, a client probing
// the first Service, and the crash of that Service's owner after 30 s.
func largeNetwork(nodes, services int) *Scenario {
	sc := &Scenario{
		Name:     fmt.Sprintf("%d nodes, %d VIPs", nodes, services),
		Seed:     1,
		Duration: sim.Duration{Duration: 60 * time.Second},
		Topology: sim.Topology{Segments: []sim.Segment{{Name: "lan"}}},
		Config: Manifests{YAML: `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: big, namespace: metallb-system}
spec: {addresses: [10.0.100.0-10.0.111.255]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
`},
	}
	for i := range nodes {
		sc.Topology.Nodes = append(sc.Topology.Nodes, sim.Host{Name: fmt.Sprintf("node-%03d", i), Interfaces: []sim.Interface{{
			Name: "eth0", Segment: "lan", Addrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}), 16)}}}})
	}
	sc.Topology.Clients = []sim.Host{{Name: "client", Interfaces: []sim.Interface{{
		Name: "eth0", Segment: "lan", Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.100/16")}}}}}
	for i := range services {
		sc.Services = append(sc.Services, ServiceSpec{Name: fmt.Sprintf("svc-%04d", i)})
	}
	sc.Clients = []ClientProbe{{Client: "client", Service: "default/svc-0000", Start: sim.Duration{Duration: time.Second},
		Interval: sim.Duration{Duration: 100 * time.Millisecond}, Timeout: sim.Duration{Duration: 2 * time.Second}}}
	sc.Events = []Event{{At: sim.Duration{Duration: 30 * time.Second}, Name: "crash", Crash: &NodeRef{OwnerOf: "default/svc-0000"}}}
	sc.Expect = []Expectation{{MaxOutage: &OutageExpectation{Event: "crash", Max: sim.Duration{Duration: 500 * time.Millisecond}}}}
	return sc
}

// BenchmarkLargeNetwork runs 100 nodes and 1,000 VIPs for 60 virtual seconds with one node
// crash. Goal: 5 s of wall time per run.
func BenchmarkLargeNetwork(b *testing.B) {
	sc := largeNetwork(100, 1000)
	if err := sc.validate(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		res, err := Run(sc, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if !res.Passed() {
			b.Fatalf("%s failed: %v", sc.Name, res.Failures())
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "wall-s/run")
	b.ReportMetric((cpuTime(b)-cpu0).Seconds()/float64(b.N), "cpu-s/run")
}

// cpuTime returns the process's user+system CPU time: on a busy machine the wall time says
// more about the neighbours than about the code.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
