// Package fakeclock is a manual clock.Clock for tests of core/bgp and core/bgp/bfd: time moves
// only when the test says so, and timers fire in deadline order on the test's goroutine, so
// tests can assert protocol timing to the nanosecond.
package fakeclock

import (
	"sort"
	"sync"
	"time"

	"github.com/switchyard-lb/switchyard/core/clock"
)

// Clock is a manual clock: time moves only in Advance, which runs due callbacks in deadline
// order (ties in scheduling order) on the caller's goroutine.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*timer
}

type timer struct {
	c        *Clock
	deadline time.Time
	seq      uint64
	f        func()
	pending  bool
}

var _ clock.Clock = (*Clock)(nil)

// New returns a clock standing at 2026-01-01T00:00:00Z.
func New() *Clock {
	return &Clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// Now returns the current virtual time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f to run on the goroutine that advances the clock past now+d.
func (c *Clock) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, f: f}
	c.schedule(t, d)
	return t
}

func (c *Clock) schedule(t *timer, d time.Duration) {
	c.seq++
	t.deadline, t.seq, t.pending = c.now.Add(max(d, 0)), c.seq, true
	for _, other := range c.timers {
		if other == t {
			return
		}
	}
	c.timers = append(c.timers, t)
}

// Stop cancels the timer.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.pending
	t.pending = false
	return was
}

// Reset reschedules the timer d after now.
func (t *timer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.pending
	t.c.schedule(t, d)
	return was
}

// next pops the earliest pending timer due at or before limit.
func (c *Clock) next(limit time.Time) *timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	live := c.timers[:0]
	for _, t := range c.timers {
		if t.pending {
			live = append(live, t)
		}
	}
	c.timers = live
	sort.Slice(c.timers, func(i, j int) bool {
		a, b := c.timers[i], c.timers[j]
		if !a.deadline.Equal(b.deadline) {
			return a.deadline.Before(b.deadline)
		}
		return a.seq < b.seq
	})
	if len(c.timers) == 0 || c.timers[0].deadline.After(limit) {
		return nil
	}
	t := c.timers[0]
	c.timers = c.timers[1:]
	t.pending = false
	c.now = t.deadline
	return t
}

// Advance moves time forward by d, running every callback that falls due.
func (c *Clock) Advance(d time.Duration) {
	limit := c.Now().Add(d)
	for t := c.next(limit); t != nil; t = c.next(limit) {
		t.f()
	}
	c.mu.Lock()
	c.now = limit
	c.mu.Unlock()
}

// NextDeadline returns the earliest pending deadline, if any.
func (c *Clock) NextDeadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best *timer
	for _, t := range c.timers {
		if t.pending && (best == nil || t.deadline.Before(best.deadline)) {
			best = t
		}
	}
	if best == nil {
		return time.Time{}, false
	}
	return best.deadline, true
}
