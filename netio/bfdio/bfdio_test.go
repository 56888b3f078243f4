package bfdio_test

import (
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/core/bgp/bfd"
	"github.com/switchyard-lb/switchyard/core/clock"
	"github.com/switchyard-lb/switchyard/core/config"
	"github.com/switchyard-lb/switchyard/netio"
	"github.com/switchyard-lb/switchyard/netio/bfdio"
	"github.com/switchyard-lb/switchyard/sim"
)

func TestMain(m *testing.M) {
	runtime.GOMAXPROCS(1)
	os.Exit(m.Run())
}

var (
	addrA = netip.MustParseAddr("10.0.0.1")
	addrB = netip.MustParseAddr("10.0.0.2")
	quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
	fast  = &config.BFDProfile{Name: "fast", ReceiveInterval: 100 * time.Millisecond,
		TransmitInterval: 100 * time.Millisecond, DetectMultiplier: 3}
)

func twoNodes(t *testing.T) *sim.Network {
	t.Helper()
	n, err := sim.New(sim.Topology{
		Segments: []sim.Segment{{Name: "lan"}},
		Nodes: []sim.Host{
			{Name: "a", Interfaces: []sim.Interface{{Name: "eth0", Segment: "lan", Addrs: []netip.Prefix{netip.PrefixFrom(addrA, 24)}}}},
			{Name: "b", Interfaces: []sim.Interface{{Name: "eth0", Segment: "lan", Addrs: []netip.Prefix{netip.PrefixFrom(addrB, 24)}}}},
		},
	}, sim.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// change is a state change and when it happened.
type change struct {
	at    time.Duration
	state bfd.State
}

type side struct {
	d *bfdio.Driver
	s *bfdio.Session
	// mu guards changes: the driver's reader goroutine appends, the test reads. The simulator
	// runs them one after the other, but the race detector cannot know that.
	mu      sync.Mutex
	changes []change
}

func (sd *side) lastChange() change {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return sd.changes[len(sd.changes)-1]
}

func start(t *testing.T, n *sim.Network, node string, self, peer netip.Addr, seed uint64) *side {
	t.Helper()
	nio, err := n.NetIO(node)
	if err != nil {
		t.Fatal(err)
	}
	d, err := bfdio.New(nio, bfdio.Options{Jitter: rand.New(rand.NewPCG(seed, seed)), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	sd := &side{d: d}
	sd.s, err = d.Add(bfdio.SessionConfig{Peer: peer, Local: self, Profile: fast,
		OnChange: func(st bfd.State, _ bfd.Diag) {
			sd.mu.Lock()
			sd.changes = append(sd.changes, change{n.Elapsed(), st})
			sd.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	return sd
}

// TestSessionsOverSimulatedUDP: two nodes' sessions come up over UDP port 3784, and when the
// link fails each side declares the other down after the 300 ms detection time.
func TestSessionsOverSimulatedUDP(t *testing.T) {
	n := twoNodes(t)
	a := start(t, n, "a", addrA, addrB, 1)
	b := start(t, n, "b", addrB, addrA, 2)
	n.RunFor(3 * time.Second)
	for name, sd := range map[string]*side{"a": a, "b": b} {
		st := sd.s.Stats()
		if st.State != bfd.StateUp || st.LowTTL != 0 || st.Malformed != 0 || st.WrongDiscriminator != 0 {
			t.Fatalf("%s: stats %+v, want Up without dropped packets", name, st)
		}
	}
	if a.s.LocalDiscriminator() != 1 || a.s.Peer() != addrB {
		t.Errorf("a: discriminator %d, peer %v; want 1, %v", a.s.LocalDiscriminator(), a.s.Peer(), addrB)
	}
	cut := n.Elapsed()
	if err := n.SetLink("b", "eth0", false); err != nil {
		t.Fatal(err)
	}
	n.RunFor(time.Second)
	last := a.lastChange()
	if last.state != bfd.StateDown {
		t.Fatalf("a's last change %v, want Down", last)
	}
	// The last packet from b came up to one (jittered) interval before the cut.
	if d := last.at - cut; d <= 200*time.Millisecond || d > 300*time.Millisecond {
		t.Errorf("a declared b down %v after the cut, want within (200ms, 300ms]", d)
	}
	if got := a.d.Stats(); got != (bfdio.Stats{}) {
		t.Errorf("driver stats %+v, want none unmatched", got)
	}
}

// TestDemultiplexing: packets for an unknown discriminator, from an unknown peer, or too
// short are counted by the driver; packets with a TTL below 255 reach the session and are
// dropped there (RFC 5881 §5).
func TestDemultiplexing(t *testing.T) {
	n := twoNodes(t)
	a := start(t, n, "a", addrA, addrB, 1)
	nioB, _ := n.NetIO("b")
	send := func(ttl int, p bfd.ControlPacket) {
		t.Helper()
		c, err := nioB.ListenUDP(netip.AddrPortFrom(addrB, 0), netio.UDPOptions{TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.WriteTo(b, netip.AddrPortFrom(addrA, bfdio.ControlPort)); err != nil {
			t.Fatal(err)
		}
		n.RunFor(time.Millisecond)
	}
	down := bfd.ControlPacket{State: bfd.StateDown, DetectMult: 3, MyDiscriminator: 9,
		DesiredMinTxInterval: time.Second, RequiredMinRxInterval: time.Second}
	send(64, down)
	if st := a.s.Stats(); st.LowTTL != 1 || st.State != bfd.StateDown {
		t.Errorf("after a TTL-64 packet: %+v, want LowTTL 1 and still Down", st)
	}
	unknown := down
	unknown.YourDiscriminator = 77
	send(255, unknown)
	if got := a.d.Stats(); got.Unmatched != 1 {
		t.Errorf("after a packet for discriminator 77: driver stats %+v, want Unmatched 1", got)
	}
	send(255, down)
	if st := a.s.Stats(); st.State != bfd.StateInit || st.Received != 1 {
		t.Errorf("after a good packet: %+v, want Init with 1 received", st)
	}
	// A packet too short to carry discriminators.
	c, _ := nioB.ListenUDP(netip.AddrPortFrom(addrB, 0), netio.UDPOptions{TTL: 255})
	c.WriteTo([]byte{0x20, 0x40}, netip.AddrPortFrom(addrA, bfdio.ControlPort))
	c.Close()
	n.RunFor(time.Millisecond)
	if got := a.d.Stats(); got.Short != 1 {
		t.Errorf("after a 2-byte packet: driver stats %+v, want Short 1", got)
	}
}

func TestAddErrors(t *testing.T) {
	n := twoNodes(t)
	nio, _ := n.NetIO("a")
	d, err := bfdio.New(nio, bfdio.Options{Jitter: rand.New(rand.NewPCG(1, 1)), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	onChange := func(bfd.State, bfd.Diag) {}
	if _, err := d.Add(bfdio.SessionConfig{Peer: addrB, Profile: fast, OnChange: onChange}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cfg  bfdio.SessionConfig
		want string
	}{
		{bfdio.SessionConfig{Peer: addrB, Profile: fast, OnChange: onChange}, "a session with 10.0.0.2 exists already"},
		{bfdio.SessionConfig{Profile: fast, OnChange: onChange}, "without a peer address"},
		{bfdio.SessionConfig{Peer: addrA, OnChange: onChange}, "no BFD profile"},
		{bfdio.SessionConfig{Peer: addrA, Profile: fast}, "OnChange is required"},
		{bfdio.SessionConfig{Peer: addrA, Local: netip.MustParseAddr("fd00::1"), Profile: fast, OnChange: onChange}, "another IP family"},
		{bfdio.SessionConfig{Peer: addrA, Profile: &config.BFDProfile{Name: "zero", TransmitInterval: time.Second}, OnChange: onChange}, "detect multiplier must not be 0"},
	} {
		if _, err := d.Add(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Add(%+v) = %v, want an error containing %q", tt.cfg, err, tt.want)
		}
	}
	d.Close()
	if _, err := d.Add(bfdio.SessionConfig{Peer: addrA, Profile: fast, OnChange: onChange}); err == nil {
		t.Error("Add after Close succeeded")
	}
	if _, err := bfdio.New(noUDP{}, bfdio.Options{Jitter: rand.New(rand.NewPCG(1, 1))}); !errors.Is(err, netio.ErrUnsupported) {
		t.Errorf("New on a node without UDP = %v, want ErrUnsupported", err)
	}
}

// noUDP is a netio.Node without the optional UDP interface.
type noUDP struct{ netio.Node }

func (noUDP) Clock() clock.Clock { return clock.Wall{} }

// TestPassiveWaitsForPeer: a passive session (BFDProfile passiveMode) sends nothing until its
// peer speaks, then comes up like any other.
func TestPassiveWaitsForPeer(t *testing.T) {
	n := twoNodes(t)
	nio, _ := n.NetIO("a")
	d, err := bfdio.New(nio, bfdio.Options{Jitter: rand.New(rand.NewPCG(1, 1)), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	passive := *fast
	passive.PassiveMode = true
	a, err := d.Add(bfdio.SessionConfig{Peer: addrB, Local: addrA, Profile: &passive, OnChange: func(bfd.State, bfd.Diag) {}})
	if err != nil {
		t.Fatal(err)
	}
	n.RunFor(5 * time.Second)
	if st := a.Stats(); st.Sent != 0 || st.State != bfd.StateDown {
		t.Fatalf("passive session alone: %+v, want nothing sent and Down", st)
	}
	b := start(t, n, "b", addrB, addrA, 2)
	n.RunFor(3 * time.Second)
	if sa, sb := a.Stats(), b.s.Stats(); sa.State != bfd.StateUp || sb.State != bfd.StateUp || sa.Sent == 0 {
		t.Errorf("after the peer started: passive %+v, active %+v; want both Up", sa, sb)
	}
}

// TestCloseTellsThePeer: closing a session sends AdminDown, so the peer goes Down at once with
// diagnostic Neighbor Signaled Session Down instead of after its detection time.
func TestCloseTellsThePeer(t *testing.T) {
	n := twoNodes(t)
	a := start(t, n, "a", addrA, addrB, 1)
	b := start(t, n, "b", addrB, addrA, 2)
	n.RunFor(3 * time.Second)
	if st := b.s.Stats().State; st != bfd.StateUp {
		t.Fatalf("b is %v, want Up", st)
	}
	closedAt := n.Elapsed()
	a.s.Close()
	n.RunFor(time.Millisecond)
	if got, last := b.s.Stats(), b.lastChange(); got.State != bfd.StateDown ||
		got.LocalDiag != bfd.DiagNeighborSignaledSessionDown || last.at != closedAt {
		t.Errorf("b after a closed: %+v, last change %+v; want Down (diag 3) at %v", got, last, closedAt)
	}
}
