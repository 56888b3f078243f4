package vclock

import (
	"slices"
	"testing"
	"time"
)

// runAll drives c like the simulation driver: run what is due, then jump to the next deadline.
func runAll(c *Clock) {
	for {
		for c.RunOne() {
		}
		next, ok := c.Next()
		if !ok {
			return
		}
		c.AdvanceTo(next)
	}
}

func TestOrder(t *testing.T) {
	c := New()
	var got []string
	at := func(name string) func() {
		return func() { got = append(got, name+"@"+c.Since().String()) }
	}
	c.AfterFunc(2*time.Second, at("b"))
	c.AfterFunc(time.Second, at("a"))
	c.AfterFunc(2*time.Second, at("c")) // same deadline as b, armed later: runs after b
	c.AfterFunc(-time.Second, at("now1"))
	c.AfterFunc(0, func() {
		got = append(got, "now2@"+c.Since().String())
		c.AfterFunc(0, at("nested")) // queued behind everything due now, never inline
	})
	c.AfterFunc(0, at("now3"))
	runAll(c)
	want := []string{"now1@0s", "now2@0s", "now3@0s", "nested@0s", "a@1s", "b@2s", "c@2s"}
	if !slices.Equal(got, want) {
		t.Errorf("order = %q, want %q", got, want)
	}
}

func TestStopReset(t *testing.T) {
	c := New()
	var got []string
	t1 := c.AfterFunc(time.Second, func() { got = append(got, "t1@"+c.Since().String()) })
	t2 := c.AfterFunc(time.Second, func() { got = append(got, "t2@"+c.Since().String()) })
	if !t2.Stop() {
		t.Error("Stop of a pending timer reported false")
	}
	if t2.Stop() {
		t.Error("second Stop reported true")
	}
	if !t1.Reset(3 * time.Second) {
		t.Error("Reset of a pending timer reported false")
	}
	runAll(c)
	if t1.Reset(time.Second) {
		t.Error("Reset of a fired timer reported true")
	}
	runAll(c)
	want := []string{"t1@3s", "t1@4s"}
	if !slices.Equal(got, want) {
		t.Errorf("fired %q, want %q", got, want)
	}
}

func TestGroupStop(t *testing.T) {
	c := New()
	g := c.Group()
	var got []string
	c.AfterFunc(time.Second, func() { got = append(got, "clock") })
	g.AfterFunc(time.Second, func() { got = append(got, "group") })
	tt := g.TCPIP().AfterFunc(2*time.Second, func() { got = append(got, "tcpip") })
	g.Stop()
	tt.Reset(time.Second)                                      // a dead group's timers stay silent
	g.AfterFunc(0, func() { got = append(got, "after stop") }) // and new ones never fire
	runAll(c)
	if want := []string{"clock"}; !slices.Equal(got, want) {
		t.Errorf("fired %q, want %q", got, want)
	}
	if c.Pending() != 0 {
		t.Errorf("%d timers pending after the run", c.Pending())
	}
}

func TestMonotonic(t *testing.T) {
	c := New()
	g := c.Group().TCPIP()
	m0 := g.NowMonotonic()
	c.AdvanceTo(Epoch.Add(1500 * time.Millisecond))
	c.AdvanceTo(Epoch) // never backwards
	if d := g.NowMonotonic().Sub(m0); d != 1500*time.Millisecond {
		t.Errorf("monotonic advanced %v, want 1.5s", d)
	}
	if !g.Now().Equal(Epoch.Add(1500 * time.Millisecond)) {
		t.Errorf("Now = %v", g.Now())
	}
}
