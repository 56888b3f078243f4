package bgp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/switchyard-lb/switchyard/core/clock"
	"github.com/switchyard-lb/switchyard/core/config"
)

// gobgpLogger keeps gobgp's own logging out of test output unless a test fails.
type gobgpLogger struct{ t *testing.T }

func (l gobgpLogger) log(level, msg string, f gobgplog.Fields) {
	l.t.Logf("gobgp %s: %s %v", level, msg, f)
}
func (l gobgpLogger) Panic(msg string, f gobgplog.Fields) { l.log("panic", msg, f) }
func (l gobgpLogger) Fatal(msg string, f gobgplog.Fields) { l.log("fatal", msg, f) }
func (l gobgpLogger) Error(msg string, f gobgplog.Fields) { l.log("error", msg, f) }
func (l gobgpLogger) Warn(msg string, f gobgplog.Fields)  { l.log("warn", msg, f) }
func (l gobgpLogger) Info(msg string, f gobgplog.Fields)  {}
func (l gobgpLogger) Debug(msg string, f gobgplog.Fields) {}
func (l gobgpLogger) SetLevel(gobgplog.LogLevel)          {}
func (l gobgpLogger) GetLevel() gobgplog.LogLevel         { return gobgplog.InfoLevel }

// freePort returns a TCP port free on addr right now.
func freePort(t *testing.T, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startGoBGP runs a gobgp router on 127.0.0.1 in AS asn with a passive neighbor 127.0.0.2 in AS
// peerASN carrying IPv4 and IPv6 unicast.
func startGoBGP(t *testing.T, asn, peerASN uint32) (*server.BgpServer, int) {
	t.Helper()
	port := freePort(t, "127.0.0.1")
	s := server.NewBgpServer(server.LoggerOption(gobgpLogger{t}))
	go s.Serve()
	ctx := context.Background()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: "10.0.0.254", ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	var afiSafis []*api.AfiSafi
	for _, afi := range []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6} {
		afiSafis = append(afiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{
			Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}, Enabled: true}})
	}
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.2", PeerAsn: peerASN},
		Transport: &api.Transport{PassiveMode: true},
		// Accept our reconnect 1 s after a reset instead of the default 30 s.
		Timers:   &api.Timers{Config: &api.TimersConfig{IdleHoldTimeAfterReset: 1}},
		AfiSafis: afiSafis,
	}}); err != nil {
		t.Fatal(err)
	}
	return s, port
}

// learned returns what gobgp's global RIB holds for a family, one line per path.
func learned(t *testing.T, s *server.BgpServer, afi api.Family_Afi) []string {
	t.Helper()
	var out []string
	err := s.ListPath(context.Background(), &api.ListPathRequest{
		TableType: api.TableType_GLOBAL, Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST},
	}, func(d *api.Destination) {
		for _, p := range d.Paths {
			parts := []string{d.Prefix}
			for _, a := range p.Pattrs {
				attr, err := apiutil.UnmarshalAttribute(a)
				if err != nil {
					t.Errorf("decoding attribute: %v", err)
					continue
				}
				switch attr := attr.(type) {
				case *bgp.PathAttributeNextHop:
					parts = append(parts, "nh="+attr.Value.String())
				case *bgp.PathAttributeMpReachNLRI:
					parts = append(parts, "nh="+attr.Nexthop.String())
				case *bgp.PathAttributeAsPath:
					parts = append(parts, "aspath=["+prefixList(attr.Value)+"]")
				case *bgp.PathAttributeLocalPref:
					parts = append(parts, fmt.Sprintf("localpref=%d", attr.Value))
				case *bgp.PathAttributeCommunities:
					var cs []string
					for _, c := range attr.Value {
						cs = append(cs, fmt.Sprintf("%d:%d", c>>16, c&0xffff))
					}
					parts = append(parts, "communities="+strings.Join(cs, ","))
				case *bgp.PathAttributeLargeCommunities:
					parts = append(parts, "large="+prefixList(attr.Values))
				}
			}
			slices.Sort(parts[1:]) // gobgp reorders attributes; compare them as a set
			out = append(out, strings.Join(parts, " "))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// eventually polls learned until it equals want.
func eventually(t *testing.T, s *server.BgpServer, afi api.Family_Afi, want []string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		if got = learned(t, s, afi); cmp.Equal(want, got) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("gobgp RIB (afi %v) (-want +got):\n%s", afi, cmp.Diff(want, got))
}

// TestInteropWithGoBGP runs a Session against gobgp's BgpServer on loopback: gobgp must learn
// IPv4 and IPv6 routes with the right next hops, AS_PATH, communities and (iBGP only)
// LOCAL_PREF, and drop them when they are withdrawn and when the session is shut down.
func TestInteropWithGoBGP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gobgp servers on loopback")
	}
	tests := []struct {
		name           string
		routerASN      uint32
		wantV4, wantV6 []string
	}{
		{
			name:      "eBGP",
			routerASN: 64513,
			wantV4: []string{
				"198.51.100.1/32 aspath=[64512] communities=64512:100,65535:65281 large=64512:7:9 nh=127.0.0.2",
				"198.51.100.8/29 aspath=[64512] nh=127.0.0.2",
			},
			wantV6: []string{"2001:db8:1::1/128 aspath=[64512] communities=64512:100,65535:65281 large=64512:7:9 nh=2001:db8::2"},
		},
		{
			name:      "iBGP",
			routerASN: 64512,
			wantV4: []string{
				"198.51.100.1/32 aspath=[] communities=64512:100,65535:65281 large=64512:7:9 localpref=300 nh=127.0.0.2",
				"198.51.100.8/29 aspath=[] nh=127.0.0.2",
			},
			wantV6: []string{"2001:db8:1::1/128 aspath=[] communities=64512:100,65535:65281 large=64512:7:9 localpref=300 nh=2001:db8::2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			router, port := startGoBGP(t, tt.routerASN, 64512)
			peer := &config.Peer{
				Name: "gobgp", MyASN: 64512, ASN: tt.routerASN,
				Addr: netip.MustParseAddr("127.0.0.1"), Port: uint16(port), SrcAddr: netip.MustParseAddr("127.0.0.2"),
				RouterID: netip.MustParseAddr("10.0.0.2"), HoldTime: 90 * time.Second, KeepaliveTime: 30 * time.Second,
				ConnectTime: time.Second, EnableGracefulRestart: true,
			}
			tr := TransportFor(peer)
			sess, err := NewSession(SessionConfig{
				Peer: peer, Clock: clock.Wall{}, Logger: quietLog, Jitter: rand.New(rand.NewPCG(1, 1)),
				NextHopV6: netip.MustParseAddr("2001:db8::2"),
				Dial: func(ctx context.Context) (net.Conn, error) {
					d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(tr.Local)}
					return d.DialContext(ctx, "tcp", tr.Remote.String())
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			attrs := Attributes{LocalPref: 300, Communities: []config.Community{
				stdCommunity(64512, 100), stdCommunity(65535, 65281), {Large: true, GlobalAdmin: 64512, Local1: 7, Local2: 9}}}
			sess.Update(Diff{Announce: []Route{
				{Prefix: netip.MustParsePrefix("198.51.100.1/32"), Attrs: attrs},
				{Prefix: netip.MustParsePrefix("198.51.100.8/29")},
				{Prefix: netip.MustParsePrefix("2001:db8:1::1/128"), Attrs: attrs},
			}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- sess.Run(ctx) }()
			defer func() {
				cancel()
				<-done
			}()

			eventually(t, router, api.Family_AFI_IP, tt.wantV4)
			eventually(t, router, api.Family_AFI_IP6, tt.wantV6)

			// The router resets the session: ours must come back by itself, with its routes.
			if err := router.ResetPeer(context.Background(), &api.ResetPeerRequest{Address: "127.0.0.2"}); err != nil {
				t.Fatal(err)
			}
			waitForReal(t, 20*time.Second, func() bool { return sess.Stats().Ups == 2 })
			eventually(t, router, api.Family_AFI_IP, tt.wantV4)
			eventually(t, router, api.Family_AFI_IP6, tt.wantV6)

			sess.Update(Diff{Withdraw: []netip.Prefix{netip.MustParsePrefix("198.51.100.8/29"), netip.MustParsePrefix("2001:db8:1::1/128")}})
			eventually(t, router, api.Family_AFI_IP, tt.wantV4[:1])
			eventually(t, router, api.Family_AFI_IP6, nil)

			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			done <- nil
			eventually(t, router, api.Family_AFI_IP, nil)
			if st := sess.Stats(); st.Ups != 2 || st.Downs != 2 || st.Malformed != 0 || st.NotificationsSent != 1 || st.NotificationsReceived != 1 {
				t.Errorf("stats: %+v", st)
			}
		})
	}
}

func waitForReal(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached within %v", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
