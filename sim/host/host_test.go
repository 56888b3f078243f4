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

	"github.com/switchyard-lb/switchyard/netio/netstack"
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

// The netstack view is the same machine: FromNode finds the Host again, and the view follows
// the host's power state and interfaces.
func TestNetstackView(t *testing.T) {
	clk := vclock.New()
	sw := l2switch.New("sw", clk, 1, nil)
	p, err := sw.AddPort("h-eth0", nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Name: "h", Seed: 1, Clock: clk.Group()}, []NICConfig{{Name: "eth0",
		MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Port: p, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	view := h.Netstack()
	if got, ok := FromNode(netstack.New(view)); !ok || got != h {
		t.Errorf("FromNode = %p, %v; want %p, true", got, ok, h)
	}
	if got, ok := FromNode(netstack.New(struct{ netstack.Host }{view})); ok {
		t.Errorf("FromNode of another netstack.Host = %p, true; want false", got)
	}
	if nics := view.NICs(); len(nics) != 1 || nics[0] != netstack.NIC(h.NIC("eth0")) || !nics[0].LinkUp() {
		t.Errorf("view NICs = %v, want eth0 with its link up", nics)
	}
	if view.Name() != "h" || view.Stack() != h.Stack() || view.PoweredOff() {
		t.Errorf("view: name %q, same stack %v, powered off %v", view.Name(), view.Stack() == h.Stack(), view.PoweredOff())
	}
	h.Close()
	if !view.PoweredOff() {
		t.Error("view is not powered off after Close")
	}
	if err := h.NIC("eth0").SendRaw(make([]byte, 60)); err != netstack.ErrPoweredOff || ErrPoweredOff != netstack.ErrPoweredOff {
		t.Errorf("SendRaw after Close = %v, want netstack.ErrPoweredOff", err)
	}
}
