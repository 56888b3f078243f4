package host

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"

	"github.com/switchyard-lb/switchyard/sim/l2switch"
	"github.com/switchyard-lb/switchyard/sim/trace"
	"github.com/switchyard-lb/switchyard/sim/vclock"
)

// At power-off gVisor drops the neighbour caches in map order; the trace must list the dropped
// entries in one fixed order (interface, then IPv4 before IPv6, then address) on every run.
func TestCloseTracesNeighbourFlushInOrder(t *testing.T) {
	const want = `{"t":0.000000000,"c":"host/h","e":"neigh-remove","if":"eth0","ip":"10.0.0.2","mac":"02:00:00:00:00:02","state":"Static"}
{"t":0.000000000,"c":"host/h","e":"neigh-remove","if":"eth0","ip":"10.0.0.9","mac":"02:00:00:00:00:09","state":"Static"}
{"t":0.000000000,"c":"host/h","e":"neigh-remove","if":"eth0","ip":"fd00::3","mac":"02:00:00:00:00:03","state":"Static"}
{"t":0.000000000,"c":"host/h","e":"neigh-remove","if":"eth1","ip":"10.1.0.5","mac":"02:00:00:00:01:05","state":"Static"}
{"t":0.000000000,"c":"host/h","e":"neigh-remove","if":"eth1","ip":"fd01::1","mac":"02:00:00:00:01:01","state":"Static"}
`
	for run := range 20 {
		var out bytes.Buffer
		tr := trace.New(&out, func() time.Duration { return 0 })
		clk := vclock.New()
		sw := l2switch.New("sw", clk, 1, nil)
		p0, err := sw.AddPort("h-eth0", nil)
		if err != nil {
			t.Fatal(err)
		}
		p1, err := sw.AddPort("h-eth1", nil)
		if err != nil {
			t.Fatal(err)
		}
		h, err := New(Config{Name: "h", Seed: 1, Clock: clk.Group()}, []NICConfig{
			{Name: "eth0", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Port: p0,
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fd00::1/64")}},
			{Name: "eth1", MAC: net.HardwareAddr{2, 0, 0, 0, 1, 0}, Port: p1,
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24"), netip.MustParsePrefix("fd01::2/64")}},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Entries added in an order unlike the expected one; the trace is attached afterwards so
		// that only the removals are recorded.
		for _, n := range []struct {
			nic  tcpip.NICID
			addr string
			mac  string
		}{
			{2, "fd01::1", "\x02\x00\x00\x00\x01\x01"},
			{1, "fd00::3", "\x02\x00\x00\x00\x00\x03"},
			{1, "10.0.0.9", "\x02\x00\x00\x00\x00\x09"},
			{2, "10.1.0.5", "\x02\x00\x00\x00\x01\x05"},
			{1, "10.0.0.2", "\x02\x00\x00\x00\x00\x02"},
		} {
			a := netip.MustParseAddr(n.addr)
			proto := ipv4.ProtocolNumber
			if a.Is6() {
				proto = ipv6.ProtocolNumber
			}
			if err := h.stack.AddStaticNeighbor(n.nic, proto, tcpip.AddrFromSlice(a.AsSlice()), tcpip.LinkAddress(n.mac)); err != nil {
				t.Fatalf("add neighbour %s: %s", n.addr, err)
			}
		}
		h.cfg.Trace = tr
		h.Close()
		if err := tr.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); got != want {
			t.Fatalf("run %d: power-off trace\n%s\nwant\n%s", run, got, want)
		}
		if !h.Closed() || strings.Contains(out.String(), "neigh-add") {
			t.Fatalf("run %d: host not closed or unexpected events", run)
		}
	}
}
