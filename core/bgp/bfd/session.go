package bfd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/switchyard-lb/switchyard/core/clock"
	"github.com/switchyard-lb/switchyard/core/config"
)

// slowTxInterval is the floor of the transmit interval while a session is not Up (RFC 5880
// §6.8.3), so that sessions that are down cost little.
const slowTxInterval = time.Second

// SingleHopTTL is the TTL a single-hop BFD packet must arrive with (RFC 5881 §5).
const SingleHopTTL = 255

// Config are a session's parameters.
type Config struct {
	// LocalDiscriminator identifies the session; non-zero and unique among the node's sessions.
	LocalDiscriminator uint32
	// DesiredMinTxInterval is how often this side would like to send once Up.
	DesiredMinTxInterval time.Duration
	// RequiredMinRxInterval is the fastest rate at which this side accepts packets.
	RequiredMinRxInterval time.Duration
	// DetectMultiplier: the peer declares this side down after this many intervals of silence.
	DetectMultiplier uint8
	// Passive sessions send nothing until the peer has sent something (RFC 5880 §6.1).
	Passive bool
	// MinTTL drops received packets with a lower TTL: 255 for single hop.
	MinTTL uint8
}

// ConfigFromProfile builds a session configuration from a BFDProfile. A single-hop session
// always requires TTL 255 (RFC 5881 §5); the profile's minimumTtl is for multihop sessions.
func ConfigFromProfile(p *config.BFDProfile, localDiscriminator uint32, multihop bool) (Config, error) {
	c := Config{
		LocalDiscriminator:    localDiscriminator,
		DesiredMinTxInterval:  p.TransmitInterval,
		RequiredMinRxInterval: p.ReceiveInterval,
		Passive:               p.PassiveMode,
		MinTTL:                SingleHopTTL,
	}
	if p.DetectMultiplier > 255 {
		return Config{}, fmt.Errorf("bfd profile %s: detectMultiplier %d does not fit in 8 bits", p.Name, p.DetectMultiplier)
	}
	c.DetectMultiplier = uint8(p.DetectMultiplier)
	if multihop {
		if p.MinimumTTL > 255 {
			return Config{}, fmt.Errorf("bfd profile %s: minimumTtl %d is above 255", p.Name, p.MinimumTTL)
		}
		c.MinTTL = uint8(p.MinimumTTL)
	}
	return c, c.validate()
}

func (c Config) validate() error {
	switch {
	case c.LocalDiscriminator == 0:
		return errors.New("bfd: local discriminator must not be 0")
	case c.DetectMultiplier == 0:
		return errors.New("bfd: detect multiplier must not be 0")
	case c.DesiredMinTxInterval < time.Microsecond:
		return fmt.Errorf("bfd: transmit interval %v is below 1µs", c.DesiredMinTxInterval)
	case c.RequiredMinRxInterval < 0:
		return fmt.Errorf("bfd: receive interval %v is negative", c.RequiredMinRxInterval)
	}
	for _, d := range []time.Duration{c.DesiredMinTxInterval, c.RequiredMinRxInterval} {
		if d%time.Microsecond != 0 || d/time.Microsecond > 1<<32-1 {
			return fmt.Errorf("bfd: interval %v is not a whole number of microseconds in 32 bits", d)
		}
	}
	return nil
}

// Stats are a session's counters.
type Stats struct {
	State State
	// LocalDiag is the diagnostic this side sends.
	LocalDiag Diag
	// Sent and Received count control packets; Received counts only accepted ones.
	Sent, Received uint64
	// Malformed counts packets the codec rejected; AuthRejected those with authentication.
	Malformed, AuthRejected uint64
	// LowTTL counts packets dropped for a TTL below MinTTL.
	LowTTL uint64
	// WrongDiscriminator counts packets addressed to another session.
	WrongDiscriminator uint64
	// Ups and Downs count transitions into and out of Up.
	Ups, Downs uint64
	// EncodeErrors counts own packets that could not be encoded (none, if the code is right).
	EncodeErrors uint64
}

// Session is one asynchronous-mode BFD session (RFC 5880 §6). It is safe for concurrent use:
// the UDP driver's reader calls Receive while clock timers fire. The send and state-change
// callbacks run without the session's lock held, so they may call back into it.
type Session struct {
	cfg   Config
	clock clock.Clock
	// send transmits an encoded control packet; it must not block.
	send func([]byte)
	// onChange is told of every state change, with the diagnostic.
	onChange func(State, Diag)
	jitter   *rand.Rand

	mu sync.Mutex
	// The state variables of RFC 5880 §6.8.1.
	state              State
	remoteState        State
	remoteDiscr        uint32
	localDiag          Diag
	desiredMinTx       time.Duration
	remoteMinRx        time.Duration
	remoteDesiredMinTx time.Duration
	remoteDetectMult   uint8
	// pollActive is true while a Poll Sequence waits for the peer's Final.
	pollActive bool
	// transmitting is false only for a passive session that has not heard from its peer.
	transmitting bool
	txTimer      clock.Timer
	detectTimer  clock.Timer
	closed       bool
	stats        Stats
}

// NewSession returns a session in state Down. It starts sending (unless passive) on Start.
// jitter randomizes transmit intervals as §6.8.7 requires; seed it for reproducible runs.
func NewSession(cfg Config, clk clock.Clock, jitter *rand.Rand, send func([]byte), onChange func(State, Diag)) (*Session, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if clk == nil || jitter == nil || send == nil || onChange == nil {
		return nil, errors.New("bfd: clock, jitter, send and onChange are required")
	}
	return &Session{
		cfg: cfg, clock: clk, send: send, onChange: onChange, jitter: jitter,
		state:        StateDown,
		remoteState:  StateDown,
		desiredMinTx: max(cfg.DesiredMinTxInterval, slowTxInterval),
		// "bfd.RemoteMinRxInterval ... MUST be initialized to 1" (µs).
		remoteMinRx:  time.Microsecond,
		transmitting: !cfg.Passive,
	}, nil
}

// effects are the callbacks a locked step decided on, run after unlocking.
type effects struct {
	packets [][]byte
	changes []State
	diag    Diag
}

func (s *Session) run(e *effects) {
	for _, p := range e.packets {
		s.send(p)
	}
	for _, st := range e.changes {
		s.onChange(st, e.diag)
	}
}

// Start begins transmitting (an active session) and waiting for the peer.
func (s *Session) Start() {
	var e effects
	s.mu.Lock()
	if s.transmitting && !s.closed {
		s.transmit(&e, false)
		s.armTx()
	}
	s.mu.Unlock()
	s.run(&e)
}

// Close stops the session's timers. It sends nothing more.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.txTimer != nil {
		s.txTimer.Stop()
	}
	if s.detectTimer != nil {
		s.detectTimer.Stop()
	}
}

// Stats returns a snapshot of the counters.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.State, st.LocalDiag = s.state, s.localDiag
	return st
}

// DetectionTime is how long the peer may stay silent before this side declares the session
// down (RFC 5880 §6.8.4, asynchronous mode): the peer's multiplier times the slower of what
// we accept and what it wants to send.
func (s *Session) DetectionTime() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.detectionTime()
}

func (s *Session) detectionTime() time.Duration {
	return time.Duration(s.remoteDetectMult) * max(s.cfg.RequiredMinRxInterval, s.remoteDesiredMinTx)
}

// Receive processes one received control packet, with the TTL (hop limit) it arrived with.
// It implements the reception procedure of RFC 5880 §6.8.6.
func (s *Session) Receive(b []byte, ttl int) {
	var e effects
	s.mu.Lock()
	s.receive(b, ttl, &e)
	s.mu.Unlock()
	s.run(&e)
}

func (s *Session) receive(b []byte, ttl int, e *effects) {
	if s.closed {
		return
	}
	var p ControlPacket
	if err := p.UnmarshalBinary(b); err != nil {
		if errors.Is(err, ErrAuthUnsupported) {
			s.stats.AuthRejected++
		} else {
			s.stats.Malformed++
		}
		return
	}
	if ttl < int(s.cfg.MinTTL) {
		s.stats.LowTTL++
		return
	}
	if p.YourDiscriminator != 0 && p.YourDiscriminator != s.cfg.LocalDiscriminator {
		s.stats.WrongDiscriminator++
		return
	}
	s.stats.Received++
	s.remoteDiscr = p.MyDiscriminator
	s.remoteState = p.State
	s.remoteDesiredMinTx = p.DesiredMinTxInterval
	s.remoteDetectMult = p.DetectMult
	oldRemoteMinRx := s.remoteMinRx
	s.remoteMinRx = p.RequiredMinRxInterval
	if p.Final && s.pollActive {
		s.pollActive = false
	}
	if s.state == StateAdminDown {
		return
	}

	switch {
	case p.State == StateAdminDown:
		if s.state != StateDown {
			s.setState(StateDown, DiagNeighborSignaledSessionDown, e)
		}
	case s.state == StateDown && p.State == StateDown:
		s.setState(StateInit, DiagNone, e)
	case s.state == StateDown && p.State == StateInit:
		s.setState(StateUp, DiagNone, e)
	case s.state == StateInit && (p.State == StateInit || p.State == StateUp):
		s.setState(StateUp, DiagNone, e)
	case s.state == StateUp && p.State == StateDown:
		s.setState(StateDown, DiagNeighborSignaledSessionDown, e)
	}

	s.armDetect()
	if p.Poll {
		// Answer a Poll at once, whatever the transmit timer says (§6.8.7).
		s.transmit(e, true)
	}
	switch {
	case !s.transmitting:
		// A passive session starts sending once it has heard from the peer.
		s.transmitting = true
		s.transmit(e, false)
		s.armTx()
	case s.remoteMinRx < oldRemoteMinRx || (oldRemoteMinRx == 0 && s.remoteMinRx > 0):
		// The peer accepts packets faster than before (typically it left its slow rate on
		// coming Up, as FRR does), or at all again. The transmit timer still runs on the old,
		// longer interval; left alone, the peer would time us out at its new, shorter
		// detection time before our next packet.
		s.armTx()
	}
}

// setState moves to st. Entering Up switches to the configured fast transmit interval with a
// Poll Sequence (§6.8.3); leaving Up falls back to the slow rate.
func (s *Session) setState(st State, diag Diag, e *effects) {
	if st == s.state {
		return
	}
	prev := s.state
	s.state = st
	if diag != DiagNone || st == StateUp {
		s.localDiag = diag
	}
	switch {
	case st == StateUp:
		s.stats.Ups++
		if s.cfg.DesiredMinTxInterval != s.desiredMinTx {
			s.desiredMinTx = s.cfg.DesiredMinTxInterval
			s.pollActive = true
		}
	case prev == StateUp:
		s.stats.Downs++
		s.desiredMinTx = max(s.cfg.DesiredMinTxInterval, slowTxInterval)
		s.pollActive = false
	}
	e.changes = append(e.changes, st)
	e.diag = s.localDiag
	if st == StateUp || prev == StateUp {
		// Tell the peer of the change now rather than up to an interval later.
		if s.transmitting {
			s.transmit(e, false)
			s.armTx()
		}
	}
}

// transmit queues one control packet; final answers a Poll.
func (s *Session) transmit(e *effects, final bool) {
	p := ControlPacket{
		Diag:                  s.localDiag,
		State:                 s.state,
		Poll:                  s.pollActive && !final,
		Final:                 final,
		DetectMult:            s.cfg.DetectMultiplier,
		MyDiscriminator:       s.cfg.LocalDiscriminator,
		YourDiscriminator:     s.remoteDiscr,
		DesiredMinTxInterval:  s.desiredMinTx,
		RequiredMinRxInterval: s.cfg.RequiredMinRxInterval,
	}
	b, err := p.MarshalBinary()
	if err != nil {
		// Config.validate and the reception checks make every field encodable, so this does
		// not happen; if it ever did, a missed packet is better than a crashed speaker.
		s.stats.EncodeErrors++
		return
	}
	s.stats.Sent++
	e.packets = append(e.packets, b)
}

// txInterval is the jittered interval to the next periodic packet (§6.8.7): the larger of our
// desired and the peer's required interval, reduced by 0–25% (10–25% with multiplier 1).
func (s *Session) txInterval() time.Duration {
	base := max(s.desiredMinTx, s.remoteMinRx)
	u := s.jitter.Float64()
	factor := 1 - 0.25*u
	if s.cfg.DetectMultiplier == 1 {
		factor = 0.75 + 0.15*u
	}
	return time.Duration(float64(base) * factor)
}

func (s *Session) armTx() {
	if s.txTimer != nil {
		s.txTimer.Stop()
		s.txTimer = nil
	}
	if s.closed || !s.transmitting || s.remoteMinRx == 0 {
		// A peer asking for RequiredMinRxInterval 0 wants no periodic packets.
		return
	}
	var self clock.Timer
	self = s.clock.AfterFunc(s.txInterval(), func() {
		var e effects
		s.mu.Lock()
		if s.txTimer == self && !s.closed {
			s.transmit(&e, false)
			s.armTx()
		}
		s.mu.Unlock()
		s.run(&e)
	})
	s.txTimer = self
}

func (s *Session) armDetect() {
	if s.detectTimer != nil {
		s.detectTimer.Stop()
	}
	var self clock.Timer
	self = s.clock.AfterFunc(s.detectionTime(), func() {
		var e effects
		s.mu.Lock()
		if s.detectTimer == self && !s.closed {
			s.detectTimer = nil
			s.detectionExpired(&e)
		}
		s.mu.Unlock()
		s.run(&e)
	})
	s.detectTimer = self
}

// detectionExpired handles silence for the detection time: an Init or Up session goes down,
// and the peer's discriminator is forgotten (§6.8.1, §6.8.4).
func (s *Session) detectionExpired(e *effects) {
	if s.state == StateInit || s.state == StateUp {
		s.setState(StateDown, DiagControlDetectionTimeExpired, e)
	}
	s.remoteDiscr = 0
	s.remoteState = StateDown
}
