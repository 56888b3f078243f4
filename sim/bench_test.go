package sim

import (
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// tenNodes is a segment with ten nodes and one client.
func tenNodes() Topology {
	topo := Topology{Segments: []Segment{{Name: "lan"}}}
	for i := range 10 {
		topo.Nodes = append(topo.Nodes, Host{Name: fmt.Sprintf("node-%d", i), Interfaces: []Interface{{
			Name: "eth0", Segment: "lan", Addrs: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.0.0.%d/24", 10+i))}}}})
	}
	topo.Clients = []Host{{Name: "client", Interfaces: []Interface{{
		Name: "eth0", Segment: "lan", Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.100/24")}}}}}
	return topo
}

// BenchmarkIdleMinute advances an idle 10-node network by 60 s of virtual time.
func BenchmarkIdleMinute(b *testing.B) {
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		n, err := New(tenNodes(), Options{Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c0 := cpuTime(b)
		n.RunFor(time.Minute)
		cpu += cpuTime(b) - c0
		if n.Elapsed() != time.Minute {
			b.Fatalf("clock advanced %v, want 1m", n.Elapsed())
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "wall-ms/virtual-minute")
	b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu-ms/virtual-minute")
}

// BenchmarkThousandConnections has a client open 1,000 TCP connections to a node, one after
// the other, each read to the node's greeting. The client's cable has a 20 µs delay: on a
// zero-delay network every connection happens at the same virtual instant, and gVisor's
// clock-based ISNs would then repeat when an ephemeral port is reused while the node still holds
// it in TIME-WAIT (which drops a SYN whose sequence number is not newer).
func BenchmarkThousandConnections(b *testing.B) {
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		topo := tenNodes()
		topo.Clients[0].Interfaces[0].Link.Delay = Duration{20 * time.Microsecond}
		n, err := New(topo, Options{Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		c, _ := n.Client("client")
		b.StartTimer()
		c0 := cpuTime(b)
		ok, finished := 0, 0
		var next func(Attempt)
		next = func(a Attempt) {
			finished++
			if a.Outcome == OutcomeOK && a.Node == "node-0" {
				ok++
			}
			if finished < 1000 {
				if err := c.ConnectTCP(netip.MustParseAddrPort("10.0.0.10:80"), 5*time.Second, next); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := c.ConnectTCP(netip.MustParseAddrPort("10.0.0.10:80"), 5*time.Second, next); err != nil {
			b.Fatal(err)
		}
		n.RunFor(time.Minute)
		cpu += cpuTime(b) - c0
		if got := len(c.Attempts()); got != 1000 {
			b.Fatalf("%d attempts finished, want 1000", got)
		}
		if ok != 1000 {
			b.Fatalf("%d of 1000 connections served by node-0", ok)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "wall-ms/1000-conns")
	b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu-ms/1000-conns")
}

// cpuTime returns the process's user+system CPU time, for figures that do not depend on how
// busy the machine is.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
