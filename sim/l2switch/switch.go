// Package l2switch is the simulator's Ethernet switch: one broadcast domain with learning,
// aging, flooding, per-port links that can go down, partitions, and seeded link impairments.
//
// Forwarding follows a learning bridge (IEEE 802.1D, Linux bridge defaults):
//
//   - The source MAC of every frame is learned on its ingress port; an entry ages out when its
//     MAC has not been seen for the aging time (300 s by default).
//   - A frame to a learned unicast MAC goes to that one port only, never anywhere else, even
//     when the port is down or cut off by a partition (then it is dropped). Hosts in the
//     simulator do not filter by destination MAC, so flooding known unicast would be visible.
//   - Broadcast, multicast and unknown unicast are flooded to every other port in the order the
//     ports were created, which makes delivery order deterministic.
//   - A port whose link goes down forgets the MACs learned on it.
//
// A frame crosses two links: from the sending host to the switch and from the switch to each
// receiving host. Each link may lose, duplicate and delay frames; the decisions come from an RNG
// per port seeded from the switch seed and the port name, so one link's traffic never shifts
// another link's losses.
//
// Frames entering the switch are queued; the simulation driver forwards them one at a time with
// Step. Receivers are called on the driver's goroutine and may send from inside the call: the
// frame is queued behind the ones already in flight.
package l2switch

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/switchyard-lb/switchyard/core/clock"
	"github.com/switchyard-lb/switchyard/sim/trace"
)

// DefaultAgingTime is the Linux bridge's default ageing_time.
const DefaultAgingTime = 300 * time.Second

// MinFrameSize is the shortest Ethernet frame on the wire without its FCS; shorter frames are
// padded with zeros, as a NIC does.
const MinFrameSize = 60

// MaxFrameSize is the longest frame accepted: a 1500-byte payload, the header and one VLAN tag.
const MaxFrameSize = 1518

// Receiver is called with each frame the switch delivers to a port. frame is only valid during
// the call.
type Receiver func(frame []byte)

// Direction says which way a tapped frame crossed a port's link.
type Direction uint8

const (
	// In is a frame the port's host sent into the switch.
	In Direction = iota + 1
	// Out is a frame the switch delivered to the port's host.
	Out
)

// Tap observes frames on the switch (captures use it). frame is only valid during the call.
type Tap func(p *Port, dir Direction, frame []byte)

// Impairment describes how one link mistreats frames. The zero value is a perfect link.
type Impairment struct {
	// Loss is the probability in [0, 1] that a frame crossing the link is lost.
	Loss float64
	// Duplicate is the probability in [0, 1] that a frame is delivered twice.
	Duplicate float64
	// Delay is added to every frame crossing the link.
	Delay time.Duration
}

// Validate reports an impairment that is out of range.
func (im Impairment) Validate() error {
	switch {
	case im.Loss < 0 || im.Loss > 1:
		return fmt.Errorf("loss %v is not a probability in [0, 1]", im.Loss)
	case im.Duplicate < 0 || im.Duplicate > 1:
		return fmt.Errorf("duplicate %v is not a probability in [0, 1]", im.Duplicate)
	case im.Delay < 0:
		return fmt.Errorf("delay %v is negative", im.Delay)
	}
	return nil
}

// Stats counts what the switch did with frames.
type Stats struct {
	Received    uint64 // frames accepted from ports into the switch
	Forwarded   uint64 // frames sent to the single port of a known unicast MAC
	Flooded     uint64 // frames flooded (broadcast, multicast, unknown unicast)
	Delivered   uint64 // copies handed to receivers
	Duplicated  uint64 // extra copies made by link duplication
	DropLink    uint64 // copies dropped because a link was down
	DropCut     uint64 // copies dropped by a partition
	DropLoss    uint64 // copies lost on a lossy link
	DropFilter  uint64 // frames whose destination was learned on their ingress port
	DropInvalid uint64 // frames too short or too long
}

// Switch is a simulated learning switch.
type Switch struct {
	name      string
	component string // trace component, "switch/<name>"
	clock     clock.Clock
	trace     *trace.Trace
	seed      uint64

	mu     sync.Mutex
	ports  []*Port
	byName map[string]*Port
	macs   map[mac]*macEntry
	aging  time.Duration
	queue  []queued // FIFO of frames waiting to be forwarded
	head   int
	free   [][]byte // recycled frame buffers
	taps   []Tap
	stats  Stats
}

type mac [6]byte

func (m mac) String() string { return net.HardwareAddr(m[:]).String() }

type macEntry struct {
	port *Port
	seen time.Time
}

type queued struct {
	port  *Port
	frame []byte
}

// New returns an empty switch. seed drives the link impairments; tr may be nil.
func New(name string, clk clock.Clock, seed uint64, tr *trace.Trace) *Switch {
	return &Switch{
		name:      name,
		component: "switch/" + name,
		clock:     clk,
		trace:     tr,
		seed:      seed,
		byName:    make(map[string]*Port),
		macs:      make(map[mac]*macEntry),
		aging:     DefaultAgingTime,
	}
}

// Name returns the switch's name.
func (s *Switch) Name() string { return s.name }

// SetAgingTime sets how long a learned MAC stays without being seen. d must be positive.
func (s *Switch) SetAgingTime(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("switch %s: aging time %v must be positive", s.name, d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aging = d
	return nil
}

// AddPort adds a port whose link is up and perfect. Port names are unique per switch.
func (s *Switch) AddPort(name string, recv Receiver) (*Port, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.byName[name]; dup {
		return nil, fmt.Errorf("switch %s: port %q already exists", s.name, name)
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	p := &Port{
		sw:    s,
		index: len(s.ports),
		name:  name,
		recv:  recv,
		up:    true,
		rng:   rand.New(rand.NewPCG(s.seed, h.Sum64())),
	}
	s.ports = append(s.ports, p)
	s.byName[name] = p
	return p, nil
}

// Port returns the port with the given name, or nil.
func (s *Switch) Port(name string) *Port {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byName[name]
}

// Ports returns the ports in creation (flooding) order.
func (s *Switch) Ports() []*Port {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ports)
}

// AddTap registers a frame observer.
func (s *Switch) AddTap(t Tap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taps = append(s.taps, t)
}

// Stats returns the switch's counters.
func (s *Switch) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Partition splits the ports into groups that cannot reach each other. Ports named in no group
// form one more group together. A later call replaces the partition.
func (s *Switch) Partition(groups [][]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	group := make(map[*Port]int)
	for i, g := range groups {
		for _, name := range g {
			p := s.byName[name]
			if p == nil {
				return fmt.Errorf("switch %s: partition group %d: no port %q", s.name, i, name)
			}
			if prev, ok := group[p]; ok {
				return fmt.Errorf("switch %s: partition: port %q is in groups %d and %d", s.name, name, prev-1, i)
			}
			group[p] = i + 1
		}
	}
	for _, p := range s.ports {
		p.group = group[p]
	}
	s.trace.Emit(s.component, "partition", slog.Any("groups", groupsString(groups)))
	return nil
}

// Heal removes any partition.
func (s *Switch) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.ports {
		p.group = 0
	}
	s.trace.Emit(s.component, "heal")
}

func groupsString(groups [][]string) string {
	b := []byte{}
	for i, g := range groups {
		if i > 0 {
			b = append(b, " | "...)
		}
		for j, n := range g {
			if j > 0 {
				b = append(b, ' ')
			}
			b = append(b, n...)
		}
	}
	return string(b)
}

// Port is one port of a Switch and the link to the host behind it.
type Port struct {
	sw    *Switch
	index int
	name  string

	// Guarded by sw.mu.
	recv  Receiver
	up    bool
	group int
	link  Impairment
	rng   *rand.Rand
}

// Name returns the port's name.
func (p *Port) Name() string { return p.name }

// Index returns the port's position in flooding order.
func (p *Port) Index() int { return p.index }

// Switch returns the port's switch.
func (p *Port) Switch() *Switch { return p.sw }

// SetReceiver replaces the function frames are delivered to; nil discards them.
func (p *Port) SetReceiver(r Receiver) {
	p.sw.mu.Lock()
	defer p.sw.mu.Unlock()
	p.recv = r
}

// Up reports whether the port's link is up.
func (p *Port) Up() bool {
	p.sw.mu.Lock()
	defer p.sw.mu.Unlock()
	return p.up
}

// SetUp brings the link up or down. Taking it down flushes the MACs learned on the port, as a
// bridge does on carrier loss.
func (p *Port) SetUp(up bool) {
	s := p.sw
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.up == up {
		return
	}
	p.up = up
	if !up {
		for m, e := range s.macs {
			if e.port == p {
				delete(s.macs, m)
			}
		}
	}
	s.trace.Emit(s.component, "link", slog.String("port", p.name), slog.Bool("up", up))
}

// SetImpairment sets how the port's link treats frames in both directions.
func (p *Port) SetImpairment(im Impairment) error {
	if err := im.Validate(); err != nil {
		return fmt.Errorf("switch %s port %s: %w", p.sw.name, p.name, err)
	}
	s := p.sw
	s.mu.Lock()
	defer s.mu.Unlock()
	p.link = im
	s.trace.Emit(s.component, "impair", slog.String("port", p.name),
		slog.Float64("loss", im.Loss), slog.Float64("duplicate", im.Duplicate), slog.Duration("delay", im.Delay))
	return nil
}

// Send puts a frame from the port's host onto its link. The frame is copied (and padded to
// MinFrameSize), so the caller may reuse it. Frames on a down link vanish, as on a real cable.
func (p *Port) Send(frame []byte) {
	s := p.sw
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(frame) < 14 || len(frame) > MaxFrameSize {
		s.stats.DropInvalid++
		return
	}
	if !p.up {
		s.stats.DropLink++
		s.traceDrop(p, frame, "link-down")
		return
	}
	copies, delay := s.impairLocked(p, frame)
	for range copies {
		buf := s.bufferLocked(frame)
		if delay > 0 {
			s.clock.AfterFunc(delay, func() { s.enqueue(p, buf) })
			continue
		}
		s.queue = append(s.queue, queued{port: p, frame: buf})
	}
}

func (s *Switch) enqueue(p *Port, buf []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, queued{port: p, frame: buf})
}

// impairLocked decides how many copies of a frame cross p's link (0, 1 or 2) and how late.
func (s *Switch) impairLocked(p *Port, frame []byte) (copies int, delay time.Duration) {
	im := p.link
	if im.Loss > 0 && p.rng.Float64() < im.Loss {
		s.stats.DropLoss++
		s.traceDrop(p, frame, "loss")
		return 0, 0
	}
	copies = 1
	if im.Duplicate > 0 && p.rng.Float64() < im.Duplicate {
		s.stats.Duplicated++
		copies = 2
	}
	return copies, im.Delay
}

// bufferLocked copies frame into a recycled buffer, padding it to the minimum frame size.
func (s *Switch) bufferLocked(frame []byte) []byte {
	var buf []byte
	if n := len(s.free); n > 0 {
		buf = s.free[n-1][:0]
		s.free = s.free[:n-1]
	} else {
		buf = make([]byte, 0, MaxFrameSize)
	}
	buf = append(buf, frame...)
	for len(buf) < MinFrameSize {
		buf = append(buf, 0)
	}
	return buf
}

// Pending reports the number of frames waiting to be forwarded.
func (s *Switch) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) - s.head
}

// Step forwards the oldest queued frame to its egress ports and reports whether there was one.
func (s *Switch) Step() bool {
	s.mu.Lock()
	if s.head == len(s.queue) {
		s.mu.Unlock()
		return false
	}
	q := s.queue[s.head]
	s.queue[s.head] = queued{}
	s.head++
	if s.head == len(s.queue) {
		s.queue, s.head = s.queue[:0], 0
	}
	in, frame := q.port, q.frame
	s.stats.Received++
	for _, t := range s.taps {
		t(in, In, frame)
	}

	var dst, src mac
	copy(dst[:], frame[0:6])
	copy(src[:], frame[6:12])
	now := s.clock.Now()
	if src[0]&1 == 0 {
		s.learnLocked(src, in, now)
	}

	var single *Port
	if dst[0]&1 == 0 { // unicast
		if e, ok := s.macs[dst]; ok {
			if now.Sub(e.seen) < s.aging {
				single = e.port
			} else {
				delete(s.macs, dst)
				s.trace.Emit(s.component, "mac-aged", slog.String("mac", dst.String()), slog.String("port", e.port.name))
			}
		}
	}

	if single != nil {
		if single == in {
			s.stats.DropFilter++
			s.traceDrop(in, frame, "same-port")
			s.recycleLocked(frame)
			s.mu.Unlock()
			return true
		}
		s.stats.Forwarded++
		s.traceFrame("forward", in, frame)
		s.egressLocked(in, single, frame)
	} else {
		s.stats.Flooded++
		s.traceFrame("flood", in, frame)
		for _, p := range s.ports {
			if p != in {
				s.egressLocked(in, p, frame)
			}
		}
	}
	s.recycleLocked(frame)
	s.mu.Unlock()
	return true
}

// egressLocked carries frame from in across out's link to out's host. It drops s.mu while the
// receiver runs, so receivers may Send.
func (s *Switch) egressLocked(in, out *Port, frame []byte) {
	switch {
	case !out.up:
		s.stats.DropLink++
		s.traceDrop(out, frame, "link-down")
		return
	case in.group != out.group:
		s.stats.DropCut++
		s.traceDrop(out, frame, "partition")
		return
	}
	copies, delay := s.impairLocked(out, frame)
	for range copies {
		if delay > 0 {
			late := s.bufferLocked(frame)
			s.clock.AfterFunc(delay, func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				if out.up {
					s.deliverLocked(out, late)
				} else {
					s.stats.DropLink++
					s.traceDrop(out, late, "link-down")
				}
				s.recycleLocked(late)
			})
			continue
		}
		s.deliverLocked(out, frame)
	}
}

func (s *Switch) deliverLocked(out *Port, frame []byte) {
	s.stats.Delivered++
	for _, t := range s.taps {
		t(out, Out, frame)
	}
	recv := out.recv
	if recv == nil {
		return
	}
	s.mu.Unlock()
	recv(frame)
	s.mu.Lock()
}

func (s *Switch) recycleLocked(frame []byte) {
	if len(s.free) < 1024 {
		s.free = append(s.free, frame[:0])
	}
}

// learnLocked records that src was seen on port in. Entries are updated in place: learning
// runs for every frame, and most frames come from a MAC already learned on the same port.
func (s *Switch) learnLocked(src mac, in *Port, now time.Time) {
	e, ok := s.macs[src]
	switch {
	case !ok:
		s.macs[src] = &macEntry{port: in, seen: now}
		if s.trace.Enabled() {
			s.trace.Emit(s.component, "mac-learn", slog.String("mac", src.String()), slog.String("port", in.name))
		}
	case e.port != in:
		s.trace.Emit(s.component, "mac-move", slog.String("mac", src.String()),
			slog.String("from", e.port.name), slog.String("to", in.name))
		e.port, e.seen = in, now
	default:
		e.seen = now
	}
}

// Lookup returns the port a MAC is learned on, if the entry has not aged out.
func (s *Switch) Lookup(hw net.HardwareAddr) (*Port, bool) {
	var m mac
	copy(m[:], hw)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.macs[m]
	if !ok || s.clock.Now().Sub(e.seen) >= s.aging {
		return nil, false
	}
	return e.port, true
}

func (s *Switch) traceFrame(event string, in *Port, frame []byte) {
	if !s.trace.Enabled() {
		return
	}
	s.trace.Emit(s.component, event,
		slog.String("in", in.name),
		slog.String("src", net.HardwareAddr(frame[6:12]).String()),
		slog.String("dst", net.HardwareAddr(frame[0:6]).String()),
		slog.String("type", etherTypeString(frame)),
		slog.Int("len", len(frame)))
}

func (s *Switch) traceDrop(p *Port, frame []byte, reason string) {
	if !s.trace.Enabled() {
		return
	}
	s.trace.Emit(s.component, "drop",
		slog.String("port", p.name),
		slog.String("reason", reason),
		slog.String("src", net.HardwareAddr(frame[6:12]).String()),
		slog.String("dst", net.HardwareAddr(frame[0:6]).String()),
		slog.String("type", etherTypeString(frame)))
}

func etherTypeString(frame []byte) string {
	t := binary.BigEndian.Uint16(frame[12:14])
	switch t {
	case 0x0800:
		return "ipv4"
	case 0x0806:
		return "arp"
	case 0x86dd:
		return "ipv6"
	case 0x88b5:
		return "heartbeat"
	}
	return fmt.Sprintf("0x%04x", t)
}
