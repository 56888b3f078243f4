package bgpinterop

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/internal/netnslab"
)

// birdConfig accepts the rack's nodes as dynamic iBGP neighbours and exports every route to the
// kernel, merging equal paths into one multipath route. Next hops are on the shared subnet, so
// they are taken as they are (gateway direct) instead of being resolved recursively.
func birdConfig() string {
	return fmt.Sprintf(`router id %s;
protocol device {}
protocol kernel kernel4 {
	ipv4 { export all; };
	merge paths on limit 16;
}
protocol kernel kernel6 {
	ipv6 { export all; };
	merge paths on limit 16;
}
protocol bgp nodes {
	local %s as %d;
	neighbor range %s internal;
	direct;
	dynamic name "node";
	ipv4 { import all; export none; gateway direct; };
	ipv6 { import all; export none; gateway direct; };
}
`, routerAddr, routerAddr, routerASN, subnet4)
}

// bird is BIRD 2 in the router namespace.
type bird struct {
	r   *rack
	ctl string
}

func (r *rack) startBIRD() *bird {
	r.t.Helper()
	netnslab.RequireBinary(r.t, "bird", "birdc")
	dir := r.workDir("")
	conf := writeFile(r.t, dir, "bird.conf", birdConfig(), "")
	ctl := filepath.Join(dir, "bird.ctl")
	// -f: stay in the foreground, so the lab owns the process.
	p := r.router.Start("bird", "-f", "-c", conf, "-s", ctl, "-P", filepath.Join(dir, "bird.pid"))
	waitForFile(r.t, ctl, p)
	return &bird{r: r, ctl: ctl}
}

func (b *bird) birdc(args ...string) (string, error) {
	return b.r.router.Run("birdc", append([]string{"-s", b.ctl}, args...)...)
}

var birdVia = regexp.MustCompile(`via (\S+) on`)

// expectRoutes waits until BIRD has one route to prefix per next hop in want, each with the
// announced LOCAL_PREF, community and large community.
func (b *bird) expectRoutes(prefix netip.Prefix, want []netip.Addr) {
	b.r.t.Helper()
	eventually(b.r.t, 30*time.Second, fmt.Sprintf("BIRD routes to %s via %v", prefix, want), func() (bool, string) {
		out, err := b.birdc("show", "route", prefix.String(), "all")
		if err != nil {
			return false, err.Error()
		}
		if n := strings.Count(out, "BGP.local_pref: 200"); n != len(want) {
			return false, out
		}
		if strings.Count(out, "BGP.community: (64512,100)") != len(want) ||
			strings.Count(out, "BGP.large_community: (64512, 1, 2)") != len(want) {
			return false, "communities: " + out
		}
		vias := birdVia.FindAllStringSubmatch(out, -1)
		for _, w := range want {
			found := false
			for _, v := range vias {
				found = found || v[1] == w.String()
			}
			if !found {
				return false, "next hops: " + out
			}
		}
		return len(vias) == len(want), out
	})
}

// TestBIRD: two nodes announce an IPv4 and an IPv6 VIP to BIRD, which learns them with the
// communities and LOCAL_PREF and exports one ECMP route per VIP to the kernel; the routes shrink
// and vanish as the speakers stop.
func TestBIRD(t *testing.T) {
	r := newRack(t, 2)
	b := r.startBIRD()
	s1 := r.startSpeaker(0, announced(), nil)
	s2 := r.startSpeaker(1, announced(), nil)

	b.expectRoutes(vip4, nodes4(2))
	b.expectRoutes(vip6, nodes6(2))
	r.expectKernelRoute(vip4, nodes4(2), 10*time.Second)
	r.expectKernelRoute(vip6, nodes6(2), 10*time.Second)

	s1.stop()
	b.expectRoutes(vip4, nodes4(2)[1:])
	r.expectKernelRoute(vip4, nodes4(2)[1:], 10*time.Second)
	r.expectKernelRoute(vip6, nodes6(2)[1:], 10*time.Second)

	s2.stop()
	r.expectKernelRoute(vip4, nil, 10*time.Second)
	r.expectKernelRoute(vip6, nil, 10*time.Second)
}
