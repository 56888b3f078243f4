// Package vclock is the simulator's virtual clock: the only source of time inside a simulation.
//
// A Clock holds a heap of pending callbacks ordered by (deadline, sequence number). The
// sequence number is taken when a callback is scheduled, so callbacks with equal deadlines run in
// the order they were scheduled, whatever goroutine scheduled them. Time never moves by itself:
// the simulation driver asks for the next deadline (Next), moves the clock there (AdvanceTo) and
// runs due callbacks one at a time (RunOne), settling the network between them. Callbacks are
// never run inline, not even with a zero or negative delay: they are queued at the current
// instant, which keeps the order of events independent of call stacks.
//
// The same Clock is handed to every speaker (as a clock.Clock, through Group) and to every gVisor
// stack (as a tcpip.Clock, through Group.TCPIP). A Group is a set of timers that can be cancelled
// at once: powering a simulated node off cancels every timer its stack and its speaker had armed.
package vclock

import (
	"container/heap"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-lb/switchyard/core/clock"
	"gvisor.dev/gvisor/pkg/tcpip"
)

// Epoch is the virtual time at which every simulation starts. A fixed, recognisable instant
// keeps traces and pcaps identical across runs and machines.
var Epoch = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

// Clock is a virtual clock. Its methods are safe for concurrent use: gVisor's TCP goroutines
// arm timers while the driver runs others.
type Clock struct {
	// elapsed is the time since Epoch in nanoseconds. It is written under mu but read without
	// it: Now is on every hot path (switch learning, gVisor timestamps).
	elapsed atomic.Int64

	mu      sync.Mutex
	seq     uint64
	pending timerHeap
}

// New returns a clock that reads Epoch.
func New() *Clock {
	return &Clock{}
}

// Now returns the current virtual time.
func (c *Clock) Now() time.Time {
	return Epoch.Add(c.Since())
}

// Since returns the virtual time elapsed since Epoch.
func (c *Clock) Since() time.Duration {
	return time.Duration(c.elapsed.Load())
}

// AfterFunc schedules f to run d after now on the driver. It implements clock.Clock.
func (c *Clock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return c.schedule(nil, d, f)
}

// Next reports the deadline of the earliest pending callback.
func (c *Clock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return time.Time{}, false
	}
	return Epoch.Add(c.pending[0].when), true
}

// AdvanceTo moves the clock forward to t. It never moves backwards and runs nothing.
func (c *Clock) AdvanceTo(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := t.Sub(Epoch); d > c.Since() {
		c.elapsed.Store(int64(d))
	}
}

// RunOne runs the earliest callback whose deadline is not after now, and reports whether there
// was one. The callback runs without the clock's lock held, so it may schedule more.
func (c *Clock) RunOne() bool {
	c.mu.Lock()
	if len(c.pending) == 0 || c.pending[0].when > c.Since() {
		c.mu.Unlock()
		return false
	}
	t := heap.Pop(&c.pending).(*Timer)
	if t.group != nil {
		delete(t.group.live, t)
	}
	f := t.f
	c.mu.Unlock()
	f()
	return true
}

// Pending returns the number of scheduled callbacks.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

func (c *Clock) schedule(g *Group, d time.Duration, f func()) *Timer {
	t := &Timer{clock: c, group: g, f: f, index: -1}
	c.mu.Lock()
	defer c.mu.Unlock()
	if g != nil {
		if g.stopped {
			return t // a dead group's timers never fire
		}
		g.live[t] = struct{}{}
	}
	c.pushLocked(t, d)
	return t
}

// pushLocked gives t a new deadline and sequence number and puts it on the heap.
func (c *Clock) pushLocked(t *Timer, d time.Duration) {
	if d < 0 {
		d = 0
	}
	t.when = c.Since() + d
	c.seq++
	t.seq = c.seq
	heap.Push(&c.pending, t)
}

// Timer is a callback scheduled on a Clock. It implements clock.Timer.
type Timer struct {
	clock *Clock
	group *Group
	f     func()
	when  time.Duration // deadline, since Epoch
	seq   uint64
	index int // position in the heap; -1 when not pending
}

// Stop cancels the callback and reports whether it was still pending.
func (t *Timer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.group != nil {
		delete(t.group.live, t)
	}
	if t.index < 0 {
		return false
	}
	heap.Remove(&c.pending, t.index)
	t.index = -1
	return true
}

// Reset reschedules the callback to run d after now and reports whether it was still pending.
// A timer of a stopped Group stays silent.
func (t *Timer) Reset(d time.Duration) bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	wasPending := t.index >= 0
	if wasPending {
		heap.Remove(&c.pending, t.index)
		t.index = -1
	}
	if t.group != nil {
		if t.group.stopped {
			return wasPending
		}
		t.group.live[t] = struct{}{}
	}
	c.pushLocked(t, d)
	return wasPending
}

// Group is a view of a Clock whose timers can all be cancelled at once with Stop. Each
// simulated host (its gVisor stack and the speaker running on it) gets its own Group.
type Group struct {
	clock   *Clock
	stopped bool
	live    map[*Timer]struct{}
}

// Group returns a new, running timer group on c.
func (c *Clock) Group() *Group {
	return &Group{clock: c, live: make(map[*Timer]struct{})}
}

// Now returns the clock's current time.
func (g *Group) Now() time.Time { return g.clock.Now() }

// AfterFunc schedules f in this group. It implements clock.Clock.
func (g *Group) AfterFunc(d time.Duration, f func()) clock.Timer {
	return g.clock.schedule(g, d, f)
}

// Stop cancels every pending timer of the group; timers armed or reset later never fire.
func (g *Group) Stop() {
	c := g.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	g.stopped = true
	for t := range g.live {
		if t.index >= 0 {
			heap.Remove(&c.pending, t.index)
			t.index = -1
		}
	}
	clear(g.live)
}

// TCPIP returns the group as a gVisor clock.
func (g *Group) TCPIP() tcpip.Clock { return tcpipClock{g} }

// tcpipClock adapts a Group to gVisor's tcpip.Clock, whose Timer.Reset returns nothing.
type tcpipClock struct{ g *Group }

func (c tcpipClock) Now() time.Time { return c.g.Now() }

// NowMonotonic counts from Epoch, so monotonic readings are also identical across runs.
func (c tcpipClock) NowMonotonic() tcpip.MonotonicTime {
	var m tcpip.MonotonicTime
	return m.Add(c.g.Now().Sub(Epoch))
}

func (c tcpipClock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	return tcpipTimer{c.g.clock.schedule(c.g, d, f)}
}

type tcpipTimer struct{ t *Timer }

func (t tcpipTimer) Stop() bool            { return t.t.Stop() }
func (t tcpipTimer) Reset(d time.Duration) { t.t.Reset(d) }

// timerHeap orders timers by deadline, then by the sequence number taken when they were armed.
type timerHeap []*Timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].when != h[j].when {
		return h[i].when < h[j].when
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*Timer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
