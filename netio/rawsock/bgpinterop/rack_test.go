package bgpinterop

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/core/bgp"
	"github.com/switchyard-lb/switchyard/core/bgp/bfd"
	"github.com/switchyard-lb/switchyard/core/config"
	"github.com/switchyard-lb/switchyard/internal/netnslab"
	"github.com/switchyard-lb/switchyard/netio"
	"github.com/switchyard-lb/switchyard/netio/bfdio"
	"github.com/switchyard-lb/switchyard/netio/rawsock"
)

// The rack: the router at .1, node i at .11+i, on 10.77.0.0/24 and fd00:77::/64. The router is
// AS 64512 and the nodes peer with it over iBGP (LOCAL_PREF is an iBGP attribute).
const (
	routerASN = 64512
	subnet4   = "10.77.0.0/24"
)

var (
	routerAddr  = netip.MustParseAddr("10.77.0.1")
	routerAddr6 = netip.MustParseAddr("fd00:77::1")
	vip4        = netip.MustParsePrefix("10.77.100.1/32")
	vip6        = netip.MustParsePrefix("2001:db8:77::1/128")
	// wantAttrs are the attributes every announced route carries.
	wantAttrs = bgp.Attributes{LocalPref: 200, Communities: []config.Community{
		{Standard: 64512<<16 | 100},
		{Large: true, GlobalAdmin: 64512, Local1: 1, Local2: 2},
	}}
)

func nodeAddr(i int) netip.Addr  { return netip.AddrFrom4([4]byte{10, 77, 0, byte(11 + i)}) }
func nodeAddr6(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("fd00:77::%d", 11+i)) }

// rack is the namespaces of one test.
type rack struct {
	t      testing.TB
	lab    *netnslab.Lab
	sw     *netnslab.Switch
	router *netnslab.Namespace
	nodes  []*netnslab.Namespace
	// cables are the switch ports of the nodes, to cut.
	cables []string
}

func newRack(t testing.TB, nodes int) *rack {
	t.Helper()
	lab := netnslab.New(t)
	r := &rack{t: t, lab: lab, sw: lab.Switch("sw"), router: lab.Namespace("router")}
	r.sw.Attach(r.router, "eth0")
	r.router.AddAddr("eth0", routerAddr.String()+"/24")
	r.router.AddAddr("eth0", routerAddr6.String()+"/64")
	for i := range nodes {
		ns := lab.Namespace(fmt.Sprintf("node%d", i+1))
		r.cables = append(r.cables, r.sw.Attach(ns, "eth0"))
		ns.AddAddr("eth0", nodeAddr(i).String()+"/24")
		ns.AddAddr("eth0", nodeAddr6(i).String()+"/64")
		r.nodes = append(r.nodes, ns)
	}
	return r
}

// workDir makes a directory for a router's configuration and sockets that the daemons' user
// can use (t.TempDir's are private to root), removed after the test.
func (r *rack) workDir(owner string) string {
	r.t.Helper()
	dir, err := os.MkdirTemp("", "bgpinterop-")
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		r.t.Fatal(err)
	}
	if owner != "" {
		chownTo(r.t, dir, owner)
	}
	return dir
}

func chownTo(t testing.TB, path, owner string) {
	t.Helper()
	u, err := user.Lookup(owner)
	if err != nil {
		t.Fatalf("user %s: %v", owner, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, dir, name, content, owner string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if owner != "" {
		chownTo(t, p, owner)
	}
	return p
}

// speaker is core/bgp's session (and optionally a BFD session) on the rawsock backend inside a
// node namespace, as the speaker runs it on a real node.
type speaker struct {
	node   *rawsock.Node
	sess   *bgp.Session
	bfd    *bfdio.Driver
	bfdS   *bfdio.Session
	cancel context.CancelFunc
	done   chan struct{}
}

// quiet discards the sessions' logs; set BGPINTEROP_LOG=1 to see them.
var quiet = func() *slog.Logger {
	if os.Getenv("BGPINTEROP_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}()

// startSpeaker runs an iBGP session from node i to the router's IPv4 address that announces
// routes, with BFD when profile is not nil.
func (r *rack) startSpeaker(i int, routes []bgp.Route, profile *config.BFDProfile) *speaker {
	r.t.Helper()
	return r.startSpeakerWith(i, speakerConfig{routes: routes, bfd: profile})
}

// speakerConfig varies a speaker's session.
type speakerConfig struct {
	routes []bgp.Route
	bfd    *config.BFDProfile
	// myASN is the node's AS; 0 means the router's (iBGP).
	myASN uint32
	// router is the address to peer with; invalid means the router's IPv4 address.
	router netip.Addr
}

func (r *rack) startSpeakerWith(i int, sc speakerConfig) *speaker {
	r.t.Helper()
	routes, profile := sc.routes, sc.bfd
	if sc.myASN == 0 {
		sc.myASN = routerASN
	}
	if !sc.router.IsValid() {
		sc.router = routerAddr
	}
	local := nodeAddr(i)
	if sc.router.Is6() {
		local = nodeAddr6(i)
	}
	node, err := rawsock.New(rawsock.Options{NetNS: r.nodes[i].Path(), Logger: quiet})
	if err != nil {
		r.t.Fatal(err)
	}
	peer := &config.Peer{Name: "router", MyASN: sc.myASN, ASN: routerASN, Addr: sc.router,
		RouterID: nodeAddr(i), HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second,
		ConnectTime: 2 * time.Second}
	tr := bgp.TransportFor(peer)
	sess, err := bgp.NewSession(bgp.SessionConfig{
		Peer: peer, Clock: node.Clock(), Logger: quiet,
		Jitter:    rand.New(rand.NewPCG(uint64(i), 1)),
		NextHopV4: nodeAddr(i), NextHopV6: nodeAddr6(i),
		Dial: func(ctx context.Context) (net.Conn, error) {
			return node.DialTCP(ctx, netip.AddrPortFrom(local, 0), tr.Remote, netio.TCPOptions{TTL: tr.TTL})
		},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	sess.Update(bgp.Diff{Announce: routes})
	s := &speaker{node: node, sess: sess, done: make(chan struct{})}
	if profile != nil {
		s.bfd, err = bfdio.New(node, bfdio.Options{Jitter: rand.New(rand.NewPCG(uint64(i), 2)), Logger: quiet})
		if err != nil {
			r.t.Fatal(err)
		}
		s.bfdS, err = s.bfd.Add(bfdio.SessionConfig{Peer: sc.router, Local: local, Profile: profile,
			OnChange: func(st bfd.State, _ bfd.Diag) {
				if st == bfd.StateDown {
					sess.BFDDown()
				}
			}})
		if err != nil {
			r.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		sess.Run(ctx)
	}()
	r.t.Cleanup(s.stop)
	return s
}

// stop ends the session with a Cease NOTIFICATION, as a speaker does when it shuts down.
func (s *speaker) stop() {
	s.cancel()
	<-s.done
	if s.bfd != nil {
		s.bfd.Close()
	}
	s.node.Close()
}

// announced are the routes every speaker announces: one IPv4 and one IPv6 VIP.
func announced() []bgp.Route {
	return []bgp.Route{{Prefix: vip4, Attrs: wantAttrs}, {Prefix: vip6, Attrs: wantAttrs}}
}

// eventually polls check every interval until it reports done, failing the test with its last
// message after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, timeout, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kernelNextHops returns the next hops of the router namespace's kernel route to prefix,
// sorted as `ip route` prints them, and the raw output.
func (r *rack) kernelNextHops(prefix netip.Prefix) ([]string, string) {
	family := "-4"
	if prefix.Addr().Is6() {
		family = "-6"
	}
	out, err := r.router.IP(family, "route", "show", prefix.String())
	if err != nil {
		return nil, err.Error()
	}
	var hops []string
	fields := strings.Fields(out)
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "via" {
			hops = append(hops, fields[i+1])
		}
	}
	return hops, out
}

// expectKernelRoute waits until the router's kernel routes prefix over exactly want (in any
// order); want empty means no route.
func (r *rack) expectKernelRoute(prefix netip.Prefix, want []netip.Addr, timeout time.Duration) {
	r.t.Helper()
	eventually(r.t, timeout, fmt.Sprintf("kernel route %s via %v", prefix, want), func() (bool, string) {
		hops, out := r.kernelNextHops(prefix)
		if len(hops) != len(want) {
			return false, fmt.Sprintf("ip route: %q", out)
		}
		for _, w := range want {
			found := false
			for _, h := range hops {
				found = found || h == w.String()
			}
			if !found {
				return false, fmt.Sprintf("ip route: %q", out)
			}
		}
		r.t.Logf("router kernel: ip route show %s: %q", prefix, out)
		return true, ""
	})
}

func nodes4(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = nodeAddr(i)
	}
	return out
}

func nodes6(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = nodeAddr6(i)
	}
	return out
}
