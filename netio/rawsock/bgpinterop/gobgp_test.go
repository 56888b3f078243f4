package bgpinterop

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/internal/netnslab"
)

// gobgpdConfig accepts the rack's nodes as dynamic iBGP neighbours with both unicast families
// and keeps every equal path (use-multiple-paths).
//
// gobgpd has no kernel routes of its own; it installs them through FRR's zebra. Debian's gobgpd
// 3.10 cannot talk to Debian's zebra 8.4, though: its ZAPI decoder panics on zebra's first
// interface message (interfaceUpdateBody, any software-name from frr8 to frr8.2). So the
// gobgpd test checks gobgpd's RIB only; FRR and BIRD prove the kernel ECMP routes.
func gobgpdConfig() string {
	return fmt.Sprintf(`[global.config]
  as = %d
  router-id = "%s"
[global.use-multiple-paths.config]
  enabled = true

[[peer-groups]]
  [peer-groups.config]
    peer-group-name = "nodes"
    peer-as = %d
  [[peer-groups.afi-safis]]
    [peer-groups.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[peer-groups.afi-safis]]
    [peer-groups.afi-safis.config]
      afi-safi-name = "ipv6-unicast"

[[dynamic-neighbors]]
  [dynamic-neighbors.config]
    prefix = "%s"
    peer-group = "nodes"
`, routerASN, routerAddr, routerASN, subnet4)
}

// gobgpd is gobgpd in the router namespace.
type gobgpd struct {
	r      *rack
	target string
}

func (r *rack) startGoBGP() *gobgpd {
	r.t.Helper()
	netnslab.RequireBinary(r.t, "gobgpd", "gobgp")
	dir := r.workDir("")
	conf := writeFile(r.t, dir, "gobgpd.toml", gobgpdConfig(), "")
	sock := filepath.Join(dir, "gobgpd.sock")
	p := r.router.Start("gobgpd", "-f", conf, "-p", "--pprof-disable", "--api-hosts", "unix://"+sock)
	waitForFile(r.t, sock, p)
	return &gobgpd{r: r, target: "unix://" + sock}
}

// gobgpPath is one path of `gobgp global rib -j`, with the attributes the test checks.
type gobgpPath struct {
	NeighborIP string            `json:"neighbor-ip"`
	Attrs      []json.RawMessage `json:"attrs"`
}

// gobgpAttr holds the fields of the attributes the test reads (by attribute type: 3 NEXT_HOP,
// 5 LOCAL_PREF, 8 COMMUNITIES, 14 MP_REACH_NLRI, 32 LARGE_COMMUNITY).
type gobgpAttr struct {
	Type        int             `json:"type"`
	Nexthop     string          `json:"nexthop"`
	Value       json.RawMessage `json:"value"`
	Communities []uint32        `json:"communities"`
}

// summary is what a path says about next hop, LOCAL_PREF and communities.
type gobgpSummary struct {
	nextHop   string
	localPref uint32
	community []uint32
	large     string
}

func summarize(p gobgpPath) (gobgpSummary, error) {
	var s gobgpSummary
	for _, raw := range p.Attrs {
		var a gobgpAttr
		if err := json.Unmarshal(raw, &a); err != nil {
			return s, err
		}
		switch a.Type {
		case 3, 14:
			s.nextHop = a.Nexthop
		case 5:
			if err := json.Unmarshal(a.Value, &s.localPref); err != nil {
				return s, err
			}
		case 8:
			s.community = a.Communities
		case 32:
			s.large = string(a.Value)
		}
	}
	return s, nil
}

// expectPaths waits until gobgpd has one path to prefix per next hop in want, each with the
// announced attributes.
func (g *gobgpd) expectPaths(prefix netip.Prefix, want []netip.Addr) {
	g.r.t.Helper()
	family := "ipv4"
	if prefix.Addr().Is6() {
		family = "ipv6"
	}
	eventually(g.r.t, 40*time.Second, fmt.Sprintf("gobgpd paths to %s via %v", prefix, want), func() (bool, string) {
		out, err := g.r.router.Run("gobgp", "--target", g.target, "global", "rib", "-a", family, "-j")
		if err != nil {
			return false, err.Error()
		}
		var rib map[string][]gobgpPath
		if err := json.Unmarshal([]byte(out), &rib); err != nil {
			return false, fmt.Sprintf("%v in %q", err, out)
		}
		paths := rib[prefix.String()]
		if len(paths) != len(want) {
			return false, out
		}
		var hops []string
		for _, p := range paths {
			s, err := summarize(p)
			if err != nil {
				return false, err.Error()
			}
			if s.localPref != 200 || !slices.Equal(s.community, []uint32{64512<<16 | 100}) ||
				s.large != `[{"ASN":64512,"LocalData1":1,"LocalData2":2}]` {
				return false, fmt.Sprintf("attributes %+v in %s", s, out)
			}
			hops = append(hops, s.nextHop)
		}
		for _, w := range want {
			if !slices.Contains(hops, w.String()) {
				return false, "next hops: " + out
			}
		}
		return true, ""
	})
}

// TestGoBGP: two nodes announce an IPv4 and an IPv6 VIP to gobgpd, which learns both paths to
// each with the communities and LOCAL_PREF; the paths go as the speakers stop.
func TestGoBGP(t *testing.T) {
	r := newRack(t, 2)
	g := r.startGoBGP()
	s1 := r.startSpeaker(0, announced(), nil)
	s2 := r.startSpeaker(1, announced(), nil)

	g.expectPaths(vip4, nodes4(2))
	g.expectPaths(vip6, nodes6(2))

	s1.stop()
	g.expectPaths(vip4, nodes4(2)[1:])
	g.expectPaths(vip6, nodes6(2)[1:])

	s2.stop()
	g.expectPaths(vip4, nil)
	g.expectPaths(vip6, nil)
}
