package bgpinterop

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/core/bgp"
)

// tenThousand are 10,000 host routes 10.200.0.0–10.200.39.15 with the usual attributes.
func tenThousand() []bgp.Route {
	routes := make([]bgp.Route, 10_000)
	for i := range routes {
		a := netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)})
		routes[i] = bgp.Route{Prefix: netip.PrefixFrom(a, 32), Attrs: wantAttrs}
	}
	return routes
}

// received returns how many prefixes FRR accepted from peer, -1 when the peer is not listed.
func (f *frr) received(peer netip.Addr) (int, string) {
	out, err := f.vtysh("show bgp ipv4 unicast summary json")
	if err != nil {
		return -1, err.Error()
	}
	var v struct {
		Peers map[string]struct {
			State  string `json:"state"`
			PfxRcd int    `json:"pfxRcd"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return -1, fmt.Sprintf("%v in %q", err, out)
	}
	p, ok := v.Peers[peer.String()]
	if !ok {
		return -1, out
	}
	return p.PfxRcd, out
}

// BenchmarkFRR10kPrefixes measures how long a speaker takes from starting its session to FRR
// having accepted all of 10,000 announced prefixes (goal: at most 2 s). FRR is polled every
// 20 ms, so the figure is at most that much late.
func BenchmarkFRR10kPrefixes(b *testing.B) {
	r := newRack(b, 1)
	f := r.startFRR(nil)
	routes := tenThousand()
	var total time.Duration
	for range b.N {
		start := time.Now()
		s := r.startSpeaker(0, routes, nil)
		for {
			n, out := f.received(nodeAddr(0))
			if n == len(routes) {
				break
			}
			if time.Since(start) > 60*time.Second {
				b.Fatalf("FRR has %d of %d prefixes after 60s: %s", n, len(routes), out)
			}
			time.Sleep(20 * time.Millisecond)
		}
		total += time.Since(start)
		b.StopTimer()
		s.stop()
		eventually(b, 30*time.Second, "FRR forgets the speaker", func() (bool, string) {
			n, out := f.received(nodeAddr(0))
			return n <= 0, out
		})
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/10k-prefixes")
}
