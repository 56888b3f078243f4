// Package clock defines the only source of time that Switchyard's logic may use.
//
// Nothing under core/ calls time.Now or starts a timer of its own: it is handed a Clock. In
// production that is the wall clock (Wall); in the simulator it is one virtual clock shared by
// every speaker, switch and gVisor stack, which is what makes a simulated run a pure function of
// its scenario and seed.
package clock

import "time"

// Clock tells the time and schedules callbacks.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f once, d after now, unless the returned Timer is stopped first.
	// f never runs inline inside AfterFunc, even when d <= 0. Callbacks whose deadlines are
	// equal run in the order they were scheduled.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a callback scheduled by Clock.AfterFunc.
type Timer interface {
	// Stop cancels the callback. It reports whether the call stopped it before it ran.
	Stop() bool
	// Reset reschedules the callback to run d after now. It reports whether the timer was
	// still pending.
	Reset(d time.Duration) bool
}

// Wall is the real clock, for production.
type Wall struct{}

// Now returns time.Now().
func (Wall) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (Wall) AfterFunc(d time.Duration, f func()) Timer { return wallTimer{time.AfterFunc(d, f)} }

type wallTimer struct{ t *time.Timer }

func (w wallTimer) Stop() bool                 { return w.t.Stop() }
func (w wallTimer) Reset(d time.Duration) bool { return w.t.Reset(d) }
