package bfd

import (
	"testing"
	"time"
)

// TestAdminDown: the side taken down tells its peer at once; the peer goes Down with diagnostic
// Neighbor Signaled Session Down, and the first side stays AdminDown whatever it receives.
func TestAdminDown(t *testing.T) {
	p := newPair(t, fastConfig(1), fastConfig(2))
	p.a.s.Start()
	p.b.s.Start()
	p.clk.Advance(3 * time.Second)
	if a, b := p.a.s.Stats().State, p.b.s.Stats().State; a != StateUp || b != StateUp {
		t.Fatalf("states %v/%v, want Up/Up", a, b)
	}
	at := p.now()
	p.a.s.AdminDown()
	p.clk.Advance(0)
	if got := p.a.s.Stats(); got.State != StateAdminDown || got.LocalDiag != DiagAdministrativelyDown {
		t.Errorf("a: %v diag %v, want AdminDown diag %v", got.State, got.LocalDiag, DiagAdministrativelyDown)
	}
	last := p.b.changes[len(p.b.changes)-1]
	if last != (change{at, StateDown, DiagNeighborSignaledSessionDown}) {
		t.Errorf("b's last change %+v, want Down at %v with diag %v", last, at, DiagNeighborSignaledSessionDown)
	}
	p.clk.Advance(5 * time.Second)
	if got := p.a.s.Stats().State; got != StateAdminDown {
		t.Errorf("a went %v after hearing from b, want AdminDown", got)
	}
	if got := p.b.s.Stats().State; got != StateDown {
		t.Errorf("b went %v while a is AdminDown, want Down", got)
	}
	// Twice is once.
	sent := p.a.s.Stats().Sent
	p.a.s.AdminDown()
	if got := p.a.s.Stats().Sent; got != sent {
		t.Errorf("a second AdminDown sent %d more packets", got-sent)
	}
}
