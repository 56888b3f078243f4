package liveness

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net"
	"time"
)

// EtherTypeHeartbeat is the EtherType of heartbeat frames: IEEE 802's "local experimental
// EtherType 1", which no registered protocol uses and no router forwards.
const EtherTypeHeartbeat uint16 = 0x88b5

// HeartbeatVersion is the only heartbeat layout version this package speaks.
const HeartbeatVersion = 1

// MaxNodeNameLen is the longest node name a heartbeat carries: a Kubernetes node name is a DNS
// subdomain of at most 253 characters.
const MaxNodeNameLen = 253

// Sizes of the heartbeat layout; see Heartbeat.
const (
	heartbeatFixedLen = 24 // version .. interval
	macLen            = sha256.Size
	ethernetHeaderLen = 14
	minHeartbeatLen   = heartbeatFixedLen + 1 + macLen
	maxHeartbeatLen   = heartbeatFixedLen + MaxNodeNameLen + macLen
)

// MessageType says what a heartbeat announces.
type MessageType uint8

// Heartbeat message types.
const (
	// TypeHello says "I am alive on this segment"; it is sent every interval.
	TypeHello MessageType = 1
	// TypeLeave says "I am shutting down gracefully; stop counting on me now". Receivers mark the
	// sender dead at once instead of waiting for the detection time.
	TypeLeave MessageType = 2
)

func (t MessageType) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeLeave:
		return "leave"
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Errors returned by Heartbeat.Unmarshal. Detector counts each of them separately.
var (
	// ErrMalformed means the bytes are not a heartbeat of a version and layout we understand.
	ErrMalformed = errors.New("liveness: malformed heartbeat")
	// ErrBadMAC means the heartbeat is well formed but its HMAC does not verify with our key:
	// it was forged, corrupted, or sent by a speaker configured with another secret.
	ErrBadMAC = errors.New("liveness: heartbeat authentication failed")
)

// Heartbeat is one liveness message, the payload of an Ethernet frame of EtherType
// EtherTypeHeartbeat. All integers are big endian:
//
//	offset  size  field
//	     0     1  version (1)
//	     1     1  type (1 hello, 2 leave)
//	     2     1  node name length N (1..253)
//	     3     1  reserved, sent as 0, ignored on receipt
//	     4     8  incarnation
//	    12     8  sequence
//	    20     4  advertised interval, in microseconds
//	    24     N  node name (UTF-8, as Kubernetes spells it)
//	  24+N    32  HMAC-SHA256(secret, bytes 0 .. 24+N)
//
// The incarnation identifies one run of a speaker and grows every time a speaker starts (the
// speaker derives it from the wall clock at start, for example); the sequence starts at 1 in each
// incarnation and grows by one per heartbeat sent on an interface. A receiver keeps the highest
// (incarnation, sequence) it accepted from each node on each interface and drops anything not
// above it, so a recorded heartbeat cannot be replayed to fake a dead speaker's life.
//
// The full 32-byte HMAC is sent rather than a truncated one: a heartbeat is at most 309 bytes
// (323 with its Ethernet header, for the longest node name) and is sent ten times a second per
// interface, so the 16 bytes truncation would save buy nothing, while the full tag needs no
// argument about how much truncation is safe (RFC 2104 §5).
//
// The HMAC authenticates the speaker, not the segment: someone attached to two segments could
// relay heartbeats between them, but such a party could as well bridge the segments outright, so
// a segment identifier in the message would not add protection.
type Heartbeat struct {
	Type        MessageType
	NodeName    string
	Incarnation uint64
	Sequence    uint64
	// Interval is the sender's heartbeat interval, so receivers can judge the sender by its own
	// pace. It is carried with microsecond precision.
	Interval time.Duration
}

// MarshaledLen returns the length of h's wire form.
func (h *Heartbeat) MarshaledLen() int {
	return heartbeatFixedLen + len(h.NodeName) + macLen
}

// Marshal returns h's wire form, authenticated with key.
func (h *Heartbeat) Marshal(key []byte) ([]byte, error) {
	return h.Append(make([]byte, 0, h.MarshaledLen()), key)
}

// Append appends h's wire form, authenticated with key, to b.
func (h *Heartbeat) Append(b, key []byte) ([]byte, error) {
	if h.Type != TypeHello && h.Type != TypeLeave {
		return nil, fmt.Errorf("liveness: heartbeat type %d is not hello or leave", uint8(h.Type))
	}
	if n := len(h.NodeName); n == 0 || n > MaxNodeNameLen {
		return nil, fmt.Errorf("liveness: heartbeat node name %q has length %d, want 1..%d", h.NodeName, n, MaxNodeNameLen)
	}
	us := h.Interval.Microseconds()
	if us < 0 || us > int64(^uint32(0)) {
		return nil, fmt.Errorf("liveness: heartbeat interval %v is outside 0..%v", h.Interval, time.Duration(^uint32(0))*time.Microsecond)
	}
	return h.appendUnchecked(b, newAuthenticator(key)), nil
}

// appendUnchecked is Append for a heartbeat whose fields are known to be valid.
func (h *Heartbeat) appendUnchecked(b []byte, auth *authenticator) []byte {
	start := len(b)
	b = append(b, HeartbeatVersion, byte(h.Type), byte(len(h.NodeName)), 0)
	b = binary.BigEndian.AppendUint64(b, h.Incarnation)
	b = binary.BigEndian.AppendUint64(b, h.Sequence)
	b = binary.BigEndian.AppendUint32(b, uint32(h.Interval.Microseconds()))
	b = append(b, h.NodeName...)
	return auth.appendMAC(b, b[start:])
}

// Unmarshal parses and authenticates the wire form in b, which must be exactly one heartbeat
// (Ethernet padding already removed, see ParseFrame). It returns an error wrapping ErrMalformed
// or ErrBadMAC; h is only changed on success.
func (h *Heartbeat) Unmarshal(b, key []byte) error {
	w, err := parseWire(b, newAuthenticator(key))
	if err != nil {
		return err
	}
	*h = w.heartbeat()
	return nil
}

// wireHeartbeat is a heartbeat checked and authenticated in place: name aliases the received
// bytes, so a receiver that only looks the sender up allocates nothing per frame.
type wireHeartbeat struct {
	typ         MessageType
	incarnation uint64
	sequence    uint64
	interval    time.Duration
	name        []byte
}

func (w *wireHeartbeat) heartbeat() Heartbeat {
	return Heartbeat{
		Type:        w.typ,
		NodeName:    string(w.name),
		Incarnation: w.incarnation,
		Sequence:    w.sequence,
		Interval:    w.interval,
	}
}

// parseWire is Unmarshal without copying the node name out of b.
func parseWire(b []byte, auth *authenticator) (wireHeartbeat, error) {
	if len(b) < minHeartbeatLen {
		return wireHeartbeat{}, fmt.Errorf("%w: %d bytes, need at least %d", ErrMalformed, len(b), minHeartbeatLen)
	}
	if b[0] != HeartbeatVersion {
		return wireHeartbeat{}, fmt.Errorf("%w: version %d, want %d", ErrMalformed, b[0], HeartbeatVersion)
	}
	t := MessageType(b[1])
	if t != TypeHello && t != TypeLeave {
		return wireHeartbeat{}, fmt.Errorf("%w: unknown type %d", ErrMalformed, b[1])
	}
	nameLen := int(b[2])
	if nameLen == 0 || nameLen > MaxNodeNameLen {
		return wireHeartbeat{}, fmt.Errorf("%w: node name length %d, want 1..%d", ErrMalformed, nameLen, MaxNodeNameLen)
	}
	body := heartbeatFixedLen + nameLen
	if len(b) != body+macLen {
		return wireHeartbeat{}, fmt.Errorf("%w: %d bytes, node name length %d needs %d", ErrMalformed, len(b), nameLen, body+macLen)
	}
	if !auth.verify(b[:body], b[body:]) {
		return wireHeartbeat{}, ErrBadMAC
	}
	return wireHeartbeat{
		typ:         t,
		incarnation: binary.BigEndian.Uint64(b[4:12]),
		sequence:    binary.BigEndian.Uint64(b[12:20]),
		interval:    time.Duration(binary.BigEndian.Uint32(b[20:24])) * time.Microsecond,
		name:        b[heartbeatFixedLen:body],
	}, nil
}

// authenticator computes and checks heartbeat MACs with one keyed HMAC that is reset for each
// message: the key's inner and outer pads are hashed once, not once per frame, and nothing is
// allocated per message. It is not safe for concurrent use.
type authenticator struct {
	mac hash.Hash
	sum [macLen]byte // scratch for verify; a stack buffer would escape through hash.Hash
}

func newAuthenticator(key []byte) *authenticator {
	return &authenticator{mac: hmac.New(sha256.New, key)}
}

// appendMAC appends HMAC-SHA256(key, msg) to b. msg may alias b.
func (a *authenticator) appendMAC(b, msg []byte) []byte {
	a.mac.Reset()
	a.mac.Write(msg)
	return a.mac.Sum(b)
}

// verify reports, in constant time, whether tag is msg's MAC.
func (a *authenticator) verify(msg, tag []byte) bool {
	return hmac.Equal(a.appendMAC(a.sum[:0], msg), tag)
}

// broadcast is the Ethernet broadcast address. Heartbeats are broadcast so that every speaker on
// the segment hears them without any multicast configuration on switches or NICs.
var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// MarshalFrame returns a whole Ethernet frame carrying h: broadcast destination, source src,
// EtherType EtherTypeHeartbeat. The backend pads it to the minimum frame size if needed.
func (h *Heartbeat) MarshalFrame(src net.HardwareAddr, key []byte) ([]byte, error) {
	if len(src) != 6 {
		return nil, fmt.Errorf("liveness: source hardware address %v is not 6 bytes", src)
	}
	return h.Append(h.ethernetHeader(src), key)
}

func (h *Heartbeat) ethernetHeader(src net.HardwareAddr) []byte {
	b := make([]byte, 0, ethernetHeaderLen+h.MarshaledLen())
	b = append(b, broadcast...)
	b = append(b, src...)
	return binary.BigEndian.AppendUint16(b, EtherTypeHeartbeat)
}

// ParseFrame extracts a heartbeat from a whole Ethernet frame and authenticates it. It returns
// the frame's source hardware address (aliasing frame) along with the heartbeat. Frames of
// another EtherType or too short wrap ErrMalformed. Trailing Ethernet padding is allowed: the
// heartbeat's own length field says where it ends.
func ParseFrame(frame, key []byte) (Heartbeat, net.HardwareAddr, error) {
	payload, err := framePayload(frame)
	if err != nil {
		return Heartbeat{}, nil, err
	}
	w, err := parseWire(payload, newAuthenticator(key))
	if err != nil {
		return Heartbeat{}, nil, err
	}
	return w.heartbeat(), net.HardwareAddr(frame[6:12]), nil
}

// framePayload returns the heartbeat carried by an Ethernet frame, without the frame's padding.
func framePayload(frame []byte) ([]byte, error) {
	if len(frame) < ethernetHeaderLen+minHeartbeatLen {
		return nil, fmt.Errorf("%w: frame of %d bytes is too short", ErrMalformed, len(frame))
	}
	if et := binary.BigEndian.Uint16(frame[12:14]); et != EtherTypeHeartbeat {
		return nil, fmt.Errorf("%w: EtherType %#04x, want %#04x", ErrMalformed, et, EtherTypeHeartbeat)
	}
	payload := frame[ethernetHeaderLen:]
	end := heartbeatFixedLen + int(payload[2]) + macLen
	if payload[2] != 0 && end <= len(payload) {
		payload = payload[:end]
	}
	return payload, nil
}
