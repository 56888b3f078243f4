package bgp

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-lb/switchyard/core/bgp/internal/fakeclock"
)

func TestRetryDelay(t *testing.T) {
	tests := []struct {
		failures    int
		connectTime time.Duration
		jitter      float64
		want        time.Duration
	}{
		{1, 120 * time.Second, 0, time.Second},
		{2, 120 * time.Second, 0, 2 * time.Second},
		{3, 120 * time.Second, 0, 4 * time.Second},
		{7, 120 * time.Second, 0, 64 * time.Second},
		{8, 120 * time.Second, 0, 120 * time.Second},
		{50, 120 * time.Second, 0, 120 * time.Second},
		{3, 3 * time.Second, 0, 3 * time.Second},
		{1, 500 * time.Millisecond, 0, 500 * time.Millisecond},
		{1, 0, 0, time.Second},       // default connectTime 120 s
		{9, 0, 0, 120 * time.Second}, // ... caps the backoff
		{1, 120 * time.Second, 1, 750 * time.Millisecond},
		{3, 120 * time.Second, 0.5, 3500 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := retryDelay(tt.failures, tt.connectTime, tt.jitter); got != tt.want {
			t.Errorf("retryDelay(%d, %v, %v) = %v, want %v", tt.failures, tt.connectTime, tt.jitter, got, tt.want)
		}
	}
}

// dialTimes runs a session whose dials all fail and returns the virtual times of the first n
// dials, relative to the first.
func dialTimes(t *testing.T, seed uint64, n int) []time.Duration {
	clk := fakeclock.New()
	start := clk.Now()
	var mu sync.Mutex
	var times []time.Duration
	dialed := make(chan struct{}, 1)
	pc := testPeerConfig()
	pc.ConnectTime = 10 * time.Second
	s, err := NewSession(SessionConfig{
		Peer: pc, Clock: clk, Logger: quietLog, Jitter: rand.New(rand.NewPCG(seed, 0)),
		Dial: func(context.Context) (net.Conn, error) {
			mu.Lock()
			times = append(times, clk.Now().Sub(start))
			mu.Unlock()
			dialed <- struct{}{}
			return nil, errors.New("connection refused")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for i := range n {
		<-dialed
		if i == n-1 {
			break
		}
		// Wait until Run sleeps on the clock (the dial's own connectTime timer is stopped by
		// then), then jump to its wake-up.
		var next time.Time
		waitFor(t, func() bool {
			var ok bool
			next, ok = clk.NextDeadline()
			return ok && s.Stats().State == StateIdle
		})
		clk.Advance(next.Sub(clk.Now()))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
	if got := s.Stats().DialFailures; got != uint64(n) {
		t.Errorf("DialFailures = %d, want %d", got, n)
	}
	return times
}

func TestRunBacksOffExponentiallyWithSeededJitter(t *testing.T) {
	times := dialTimes(t, 7, 8)
	// Nominal gaps 1, 2, 4, 8, 10, 10, 10 s (capped at connectTime), each shortened by at most
	// 25%.
	nominal := []time.Duration{1, 2, 4, 8, 10, 10, 10}
	for i, n := range nominal {
		gap := times[i+1] - times[i]
		hi := n * time.Second
		lo := hi - hi/4
		if gap < lo || gap > hi {
			t.Errorf("gap %d = %v, want within [%v, %v]", i, gap, lo, hi)
		}
	}
	// The same seed gives the same sequence; another seed a different one.
	if diff := cmp.Diff(times, dialTimes(t, 7, 8)); diff != "" {
		t.Errorf("same seed, different dial times (-first +second):\n%s", diff)
	}
	if cmp.Equal(times, dialTimes(t, 8, 8)) {
		t.Errorf("different seeds gave identical jitter: %v", times)
	}
}

func TestDialGivesUpAfterConnectTime(t *testing.T) {
	clk := fakeclock.New()
	start := clk.Now()
	pc := testPeerConfig()
	pc.ConnectTime = 5 * time.Second
	gaveUp := make(chan time.Duration, 1)
	s, err := NewSession(SessionConfig{
		Peer: pc, Clock: clk, Logger: quietLog, Jitter: rand.New(rand.NewPCG(1, 1)),
		Dial: func(ctx context.Context) (net.Conn, error) {
			<-ctx.Done() // a peer that never answers
			gaveUp <- clk.Now().Sub(start)
			return nil, ctx.Err()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, func() bool { _, ok := clk.NextDeadline(); return ok })
	clk.Advance(5*time.Second - time.Nanosecond)
	select {
	case d := <-gaveUp:
		t.Fatalf("dial abandoned after %v, before connectTime", d)
	case <-time.After(20 * time.Millisecond):
	}
	clk.Advance(time.Nanosecond)
	if d := <-gaveUp; d != 5*time.Second {
		t.Errorf("dial abandoned after %v, want 5s", d)
	}
	waitFor(t, func() bool { return s.Stats().DialFailures == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
