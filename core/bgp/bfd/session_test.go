package bfd

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/core/bgp/internal/fakeclock"
	"github.com/switchyard-lb/switchyard/core/config"
)

// change is one state change a session reported, at virtual time at.
type change struct {
	at    time.Duration
	state State
	diag  Diag
}

// end is one side of a simulated link.
type end struct {
	s       *Session
	changes []change
	// lastRx is the virtual time of the last packet delivered to this end.
	lastRx time.Duration
	sent   []ControlPacket
}

// pair is two sessions joined by a link the test can cut per direction. Packets arrive at the
// same virtual instant they are sent, through a zero-delay clock callback.
type pair struct {
	t        *testing.T
	clk      *fakeclock.Clock
	start    time.Time
	a, b     *end
	mu       sync.Mutex
	cutToA   bool
	cutToB   bool
	deliverT int // TTL delivered packets carry
}

func newPair(t *testing.T, cfgA, cfgB Config) *pair {
	p := &pair{t: t, clk: fakeclock.New(), a: &end{}, b: &end{}, deliverT: 255}
	p.start = p.clk.Now()
	mk := func(cfg Config, self, other *end, cut *bool, seed uint64) *Session {
		s, err := NewSession(cfg, p.clk, rand.New(rand.NewPCG(seed, seed)),
			func(b []byte) {
				var pkt ControlPacket
				if err := pkt.UnmarshalBinary(b); err != nil {
					t.Errorf("session sent an undecodable packet: %v", err)
				}
				p.mu.Lock()
				self.sent = append(self.sent, pkt)
				dropped := *cut
				p.mu.Unlock()
				if dropped {
					return
				}
				p.clk.AfterFunc(0, func() {
					other.lastRx = p.now()
					other.s.Receive(b, p.deliverT)
				})
			},
			func(st State, d Diag) { self.changes = append(self.changes, change{p.now(), st, d}) })
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	p.a.s = mk(cfgA, p.a, p.b, &p.cutToB, 1)
	p.b.s = mk(cfgB, p.b, p.a, &p.cutToA, 2)
	return p
}

func (p *pair) now() time.Duration { return p.clk.Now().Sub(p.start) }

func fastConfig(discr uint32) Config {
	return Config{LocalDiscriminator: discr, DesiredMinTxInterval: 300 * time.Millisecond,
		RequiredMinRxInterval: 300 * time.Millisecond, DetectMultiplier: 3, MinTTL: 255}
}

func TestSessionsComeUpAndDetectFailureExactly(t *testing.T) {
	p := newPair(t, fastConfig(1), fastConfig(2))
	p.a.s.Start()
	p.b.s.Start()
	p.clk.Advance(3 * time.Second)
	for name, e := range map[string]*end{"a": p.a, "b": p.b} {
		if st := e.s.Stats().State; st != StateUp {
			t.Fatalf("%s: state %v after 3 s, want Up; changes %+v", name, st, e.changes)
		}
	}
	// Entering Up started a Poll Sequence to the fast rate, which the peer answered.
	sawPoll, sawFinal := false, false
	for _, pkt := range p.a.sent {
		sawPoll = sawPoll || pkt.Poll
	}
	for _, pkt := range p.b.sent {
		sawFinal = sawFinal || pkt.Final
	}
	if !sawPoll || !sawFinal {
		t.Errorf("poll sequence: a sent P %v, b sent F %v", sawPoll, sawFinal)
	}
	if last := p.a.sent[len(p.a.sent)-1]; last.DesiredMinTxInterval != 300*time.Millisecond || last.Poll {
		t.Errorf("a's last packet after poll: %+v", last)
	}
	// Steady state: a sends every 225–300 ms.
	before := len(p.a.sent)
	p.clk.Advance(3 * time.Second)
	if n := len(p.a.sent) - before; n < 10 || n > 14 {
		t.Errorf("a sent %d packets in 3 s at a 300 ms interval with 0-25%% jitter", n)
	}

	// Cut b→a. a must go down exactly 3 × 300 ms after the last packet it got.
	p.mu.Lock()
	p.cutToA = true
	p.mu.Unlock()
	p.clk.Advance(2 * time.Second)
	last := p.a.changes[len(p.a.changes)-1]
	if want := (change{p.a.lastRx + 900*time.Millisecond, StateDown, DiagControlDetectionTimeExpired}); last != want {
		t.Errorf("a's last change %+v, want %+v", last, want)
	}
	// a tells b at once; b goes down at the same instant, naming the neighbour as the cause
	// (and then to Init, since it still hears a).
	wantB := []change{{last.at, StateDown, DiagNeighborSignaledSessionDown}}
	gotB := p.b.changes[len(p.b.changes)-2:]
	if gotB[0] != wantB[0] || gotB[1].state != StateInit {
		t.Errorf("b's last changes %+v, want %+v then Init", gotB, wantB[0])
	}
	if st := p.a.s.Stats(); st.Ups != 1 || st.Downs != 1 || st.LocalDiag != DiagControlDetectionTimeExpired {
		t.Errorf("a stats %+v", st)
	}
}

func TestPassiveSessionWaitsForPeer(t *testing.T) {
	passive := fastConfig(2)
	passive.Passive = true
	p := newPair(t, fastConfig(1), passive)
	p.b.s.Start()
	p.clk.Advance(5 * time.Second)
	if n := p.b.s.Stats().Sent; n != 0 {
		t.Fatalf("passive session sent %d packets before hearing from its peer", n)
	}
	p.a.s.Start()
	p.clk.Advance(3 * time.Second)
	if a, b := p.a.s.Stats().State, p.b.s.Stats().State; a != StateUp || b != StateUp {
		t.Fatalf("states a=%v b=%v, want Up", a, b)
	}
}

func TestLowTTLIsDropped(t *testing.T) {
	p := newPair(t, fastConfig(1), fastConfig(2))
	p.deliverT = 254 // forwarded once: not single hop
	p.a.s.Start()
	p.b.s.Start()
	p.clk.Advance(5 * time.Second)
	st := p.a.s.Stats()
	if st.State != StateDown || st.Received != 0 || st.LowTTL == 0 {
		t.Errorf("stats %+v, want Down with every packet dropped for TTL", st)
	}
}

// feed hands one packet to s with TTL 255.
func feed(t *testing.T, s *Session, pkt ControlPacket) {
	t.Helper()
	b, err := pkt.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	s.Receive(b, 255)
}

func TestReceptionRules(t *testing.T) {
	clk := fakeclock.New()
	var sent []ControlPacket
	var changes []State
	s, err := NewSession(fastConfig(10), clk, rand.New(rand.NewPCG(1, 1)),
		func(b []byte) {
			var p ControlPacket
			if err := p.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, p)
		},
		func(st State, _ Diag) { changes = append(changes, st) })
	if err != nil {
		t.Fatal(err)
	}
	peer := ControlPacket{State: StateDown, DetectMult: 5, MyDiscriminator: 77,
		DesiredMinTxInterval: 500 * time.Millisecond, RequiredMinRxInterval: 100 * time.Millisecond}

	// Another session's packet is ignored.
	wrong := peer
	wrong.YourDiscriminator = 11
	feed(t, s, wrong)
	if st := s.Stats(); st.WrongDiscriminator != 1 || st.Received != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Authenticated packets are refused and counted.
	auth := []byte{0x20, 0x44, 3, 26, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2}
	s.Receive(auth, 255)
	s.Receive([]byte{1, 2, 3}, 255)
	if st := s.Stats(); st.AuthRejected != 1 || st.Malformed != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Down + peer Down → Init; the detection time is the peer's multiplier times the slower
	// of our receive interval (300 ms) and its transmit interval (500 ms).
	feed(t, s, peer)
	if st := s.Stats().State; st != StateInit {
		t.Fatalf("state %v, want Init", st)
	}
	if d := s.DetectionTime(); d != 2500*time.Millisecond {
		t.Errorf("detection time %v, want 2.5s", d)
	}
	// A Poll is answered at once with Final, carrying the peer's discriminator.
	poll := peer
	poll.State, poll.Poll, poll.YourDiscriminator = StateInit, true, 10
	n := len(sent)
	feed(t, s, poll)
	if len(sent) != n+2 {
		t.Fatalf("sent %d packets on Init→Up with a Poll, want 2 (state change and Final)", len(sent)-n)
	}
	if f := sent[len(sent)-1]; !f.Final || f.Poll || f.YourDiscriminator != 77 || f.State != StateUp {
		t.Errorf("answer to poll: %+v", f)
	}
	// The peer going AdminDown takes the session down with diagnostic 3.
	admin := peer
	admin.State, admin.YourDiscriminator = StateAdminDown, 10
	feed(t, s, admin)
	if st := s.Stats(); st.State != StateDown || st.LocalDiag != DiagNeighborSignaledSessionDown {
		t.Errorf("after peer AdminDown: %+v", st)
	}
	want := []State{StateInit, StateUp, StateDown}
	if len(changes) != len(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Errorf("changes %v, want %v", changes, want)
		}
	}
	// Silence for the detection time forgets the peer's discriminator.
	clk.Advance(4 * time.Second)
	if last := sent[len(sent)-1]; last.YourDiscriminator != 0 {
		t.Errorf("after detection time, packets still carry your discriminator %d", last.YourDiscriminator)
	}
}

func TestConfigFromProfile(t *testing.T) {
	prof := &config.BFDProfile{Name: "fast", ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 200 * time.Millisecond,
		DetectMultiplier: 4, PassiveMode: true, MinimumTTL: 250}
	single, err := ConfigFromProfile(prof, 9, false)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{LocalDiscriminator: 9, DesiredMinTxInterval: 200 * time.Millisecond, RequiredMinRxInterval: 100 * time.Millisecond,
		DetectMultiplier: 4, Passive: true, MinTTL: 255}
	if single != want {
		t.Errorf("single hop: %+v, want %+v", single, want)
	}
	multi, err := ConfigFromProfile(prof, 9, true)
	if err != nil {
		t.Fatal(err)
	}
	if multi.MinTTL != 250 {
		t.Errorf("multihop MinTTL %d, want 250", multi.MinTTL)
	}
	bad := *prof
	bad.DetectMultiplier = 300
	if _, err := ConfigFromProfile(&bad, 9, false); err == nil {
		t.Error("detect multiplier 300 accepted")
	}
	if _, err := ConfigFromProfile(prof, 0, false); err == nil {
		t.Error("discriminator 0 accepted")
	}
}

// TestFasterPeerRxRearmsTransmit replays FRR's start: its Init packet asks for packets no faster
// than 1 s (the slow rate of a session that is not Up), and once Up it polls with 100 ms. The
// session must send its next packet within 100 ms of that poll, not when the timer armed for the
// 1 s interval runs out: FRR's detection time is 300 ms by then.
func TestFasterPeerRxRearmsTransmit(t *testing.T) {
	clk := fakeclock.New()
	start := clk.Now()
	var sentAt []time.Duration
	cfg := Config{LocalDiscriminator: 1, DesiredMinTxInterval: 100 * time.Millisecond,
		RequiredMinRxInterval: 100 * time.Millisecond, DetectMultiplier: 3, MinTTL: 255}
	s, err := NewSession(cfg, clk, rand.New(rand.NewPCG(1, 1)),
		func([]byte) { sentAt = append(sentAt, clk.Now().Sub(start)) }, func(State, Diag) {})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	receive := func(p ControlPacket) {
		t.Helper()
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		s.Receive(b, 255)
	}
	receive(ControlPacket{State: StateInit, DetectMult: 3, MyDiscriminator: 7, YourDiscriminator: 1,
		DesiredMinTxInterval: time.Second, RequiredMinRxInterval: time.Second})
	if st := s.Stats().State; st != StateUp {
		t.Fatalf("state %v after the peer's Init, want Up", st)
	}
	clk.Advance(time.Millisecond)
	receive(ControlPacket{State: StateUp, Poll: true, DetectMult: 3, MyDiscriminator: 7, YourDiscriminator: 1,
		DesiredMinTxInterval: 100 * time.Millisecond, RequiredMinRxInterval: 100 * time.Millisecond})
	pollAnswered := len(sentAt)
	clk.Advance(100 * time.Millisecond)
	if len(sentAt) <= pollAnswered {
		t.Fatalf("packets sent at %v: none within 100ms after the peer lowered its receive interval at 1ms", sentAt)
	}
	if got := sentAt[pollAnswered]; got > 101*time.Millisecond || got < 76*time.Millisecond {
		t.Errorf("first periodic packet after the poll at %v, want within 75-100ms of it (jitter)", got)
	}
}
