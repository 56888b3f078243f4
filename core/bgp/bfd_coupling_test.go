package bgp

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/switchyard-lb/switchyard/core/bgp/bfd"
)

// TestBFDDownTearsDownBGPAtDetectionTime wires a BFD session to a BGP session the way the
// speaker does and checks that the BGP session is reset at the very instant BFD detects the
// failure, long before the 90 s hold timer.
func TestBFDDownTearsDownBGPAtDetectionTime(t *testing.T) {
	h := startServe(t, testPeerConfig())
	h.establish(peerOpen(64513, 90, bgp.RF_IPv4_UC))
	h.peer.expect() // EOR

	var downAt time.Time
	b, err := bfd.NewSession(bfd.Config{LocalDiscriminator: 1, DesiredMinTxInterval: 300 * time.Millisecond,
		RequiredMinRxInterval: 300 * time.Millisecond, DetectMultiplier: 3, MinTTL: 255},
		h.clock, rand.New(rand.NewPCG(3, 3)), func([]byte) {},
		func(st bfd.State, _ bfd.Diag) {
			if st == bfd.StateDown {
				downAt = h.clock.Now()
				h.sess.BFDDown()
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	b.Start()
	// The router's BFD says Init: this side goes Up.
	pkt := bfd.ControlPacket{State: bfd.StateInit, DetectMult: 3, MyDiscriminator: 42, YourDiscriminator: 1,
		DesiredMinTxInterval: 300 * time.Millisecond, RequiredMinRxInterval: 300 * time.Millisecond}
	raw, err := pkt.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b.Receive(raw, 255)
	if st := b.Stats().State; st != bfd.StateUp {
		t.Fatalf("BFD state %v, want Up", st)
	}
	lastRx := h.clock.Now()
	// Then the router falls silent.
	h.clock.Advance(900*time.Millisecond - time.Nanosecond)
	if h.sess.Stats().State != StateEstablished {
		t.Fatal("BGP session reset before the BFD detection time")
	}
	h.clock.Advance(time.Nanosecond)
	if got, want := describe(h.peer.expect()), "NOTIFICATION 6/10 data="; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	h.peer.expectClosed()
	if got := downAt.Sub(lastRx); got != 900*time.Millisecond {
		t.Errorf("BGP torn down %v after the last BFD packet, want 900ms", got)
	}
}
