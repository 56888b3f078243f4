package l2

import (
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// benchResponder owns 1024 IPv4 VIPs on eth0 besides the test VIPs, so lookups are not trivially
// small.
func benchResponder(b *testing.B) *Responder {
	r := newTestResponder(b)
	for i := range 1024 {
		a := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		if _, err := r.Own(a, []string{"eth0"}, t0); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

// BenchmarkARPAnswer measures the ARP fast path: a broadcast request for an owned VIP answered
// into the reusable buffer.
func BenchmarkARPAnswer(b *testing.B) {
	r := benchResponder(b)
	frame := arpFrame(b, ethernet.Broadcast, arp.OperationRequest, macClient, client4, net.HardwareAddr{0, 0, 0, 0, 0, 0}, vip4)
	b.ReportAllocs()
	for b.Loop() {
		if r.HandleFrame("eth0", frame) == nil {
			b.Fatal("no reply")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "answers/s")
}

// BenchmarkARPIgnore measures dropping a request for an address we do not own, the common case
// on a busy segment.
func BenchmarkARPIgnore(b *testing.B) {
	r := benchResponder(b)
	frame := arpFrame(b, ethernet.Broadcast, arp.OperationRequest, macClient, client4, net.HardwareAddr{0, 0, 0, 0, 0, 0}, netip.MustParseAddr("192.0.2.250"))
	b.ReportAllocs()
	for b.Loop() {
		if r.HandleFrame("eth0", frame) != nil {
			b.Fatal("replied")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkNDPAnswer measures answering a multicast neighbour solicitation.
func BenchmarkNDPAnswer(b *testing.B) {
	r := benchResponder(b)
	group := solicitedNode(vip6)
	frame := nsFrame(b, macClient, mcastHW(group), client6, group, vip6, macClient, 255)
	b.ReportAllocs()
	for b.Loop() {
		if r.HandleFrame("eth0", frame) == nil {
			b.Fatal("no reply")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "answers/s")
}
