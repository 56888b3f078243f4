// Package bfd implements Bidirectional Forwarding Detection (RFC 5880) for single-hop IP
// sessions (RFC 5881) in asynchronous mode: the control packet codec and the session state
// machine. A BGP peer with a bfdProfile gets one BFD session; when it goes down, the BGP
// session is torn down at once instead of waiting for the BGP hold timer.
//
// Like everything in core/, the package does no I/O of its own. A Session reads time from an
// injected clock.Clock, hands encoded packets to a send function, and is fed received packets
// with Receive. The UDP driver that connects it to the network lives with the packet I/O
// backends and must:
//
//   - send from a UDP source port in 49152–65535 to destination port 3784 (RFC 5881 §4) with
//     IP TTL / hop limit 255 (§5);
//   - receive on port 3784 and report each packet's received TTL or hop limit (IP_RECVTTL,
//     IPV6_RECVHOPLIMIT): single-hop sessions drop packets whose TTL is below 255, which proves
//     they were not forwarded by a router (the Generalized TTL Security Mechanism);
//   - hand a packet to the session whose local discriminator equals its Your Discriminator
//     field, or, while that field is 0, to the session for the packet's source address
//     (PeekDiscriminators reads both without a full decode).
//
// Not implemented: the echo function (a profile's echoMode and echoInterval are ignored and
// Required Min Echo RX Interval is sent as 0, which tells the peer not to echo), demand mode,
// and authentication (packets with the A bit are counted and dropped).
package bfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// State is a BFD session state as carried in the Sta field (RFC 5880 §4.1).
type State uint8

// Session states.
const (
	StateAdminDown State = 0
	StateDown      State = 1
	StateInit      State = 2
	StateUp        State = 3
)

func (s State) String() string {
	switch s {
	case StateAdminDown:
		return "AdminDown"
	case StateDown:
		return "Down"
	case StateInit:
		return "Init"
	case StateUp:
		return "Up"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Diag is a diagnostic code saying why a session last left Up (RFC 5880 §4.1).
type Diag uint8

// Diagnostic codes.
const (
	DiagNone                        Diag = 0
	DiagControlDetectionTimeExpired Diag = 1
	DiagEchoFunctionFailed          Diag = 2
	DiagNeighborSignaledSessionDown Diag = 3
	DiagForwardingPlaneReset        Diag = 4
	DiagPathDown                    Diag = 5
	DiagConcatenatedPathDown        Diag = 6
	DiagAdministrativelyDown        Diag = 7
	DiagReverseConcatenatedPathDown Diag = 8
)

// ControlPacketLen is the length of a control packet without authentication section.
const ControlPacketLen = 24

// version is the only BFD protocol version.
const version = 1

// Flag bits in the second octet.
const (
	flagPoll       = 1 << 5
	flagFinal      = 1 << 4
	flagCPI        = 1 << 3
	flagAuth       = 1 << 2
	flagDemand     = 1 << 1
	flagMultipoint = 1 << 0
)

// Errors returned by UnmarshalBinary and MarshalBinary.
var (
	ErrShort           = errors.New("bfd: packet shorter than its length field or than 24 octets")
	ErrVersion         = errors.New("bfd: unsupported version")
	ErrAuthUnsupported = errors.New("bfd: authentication is not supported")
	ErrInvalid         = errors.New("bfd: invalid control packet")
)

// ControlPacket is a BFD control packet (RFC 5880 §4.1) without authentication.
type ControlPacket struct {
	// Diag says why the sender's session last went down.
	Diag Diag
	// State is the sender's session state.
	State State
	// Poll asks the receiver to confirm a parameter change with Final.
	Poll bool
	// Final answers a Poll.
	Final bool
	// ControlPlaneIndependent says BFD runs without the control plane (C bit).
	ControlPlaneIndependent bool
	// Demand asks the receiver to stop sending periodic packets (demand mode).
	Demand bool
	// DetectMult is the sender's detection time multiplier; never 0.
	DetectMult uint8
	// MyDiscriminator is the sender's non-zero session identifier.
	MyDiscriminator uint32
	// YourDiscriminator echoes the receiver's discriminator, or 0 while it is unknown.
	YourDiscriminator uint32
	// DesiredMinTxInterval, RequiredMinRxInterval and RequiredMinEchoRxInterval are carried
	// in microseconds.
	DesiredMinTxInterval      time.Duration
	RequiredMinRxInterval     time.Duration
	RequiredMinEchoRxInterval time.Duration
}

// validate applies the checks of RFC 5880 §6.8.6 that concern the packet alone.
func (p *ControlPacket) validate() error {
	switch {
	case p.State > StateUp:
		return fmt.Errorf("%w: state %d", ErrInvalid, p.State)
	case p.Diag > 31:
		return fmt.Errorf("%w: diagnostic %d does not fit in 5 bits", ErrInvalid, p.Diag)
	case p.DetectMult == 0:
		return fmt.Errorf("%w: detect multiplier is 0", ErrInvalid)
	case p.MyDiscriminator == 0:
		return fmt.Errorf("%w: my discriminator is 0", ErrInvalid)
	case p.YourDiscriminator == 0 && p.State != StateDown && p.State != StateAdminDown:
		return fmt.Errorf("%w: your discriminator is 0 in state %v", ErrInvalid, p.State)
	case p.Poll && p.Final:
		return fmt.Errorf("%w: both poll and final set", ErrInvalid)
	}
	for _, d := range []time.Duration{p.DesiredMinTxInterval, p.RequiredMinRxInterval, p.RequiredMinEchoRxInterval} {
		if d < 0 || d%time.Microsecond != 0 || d/time.Microsecond > math.MaxUint32 {
			return fmt.Errorf("%w: interval %v is not a whole number of microseconds in 32 bits", ErrInvalid, d)
		}
	}
	return nil
}

// MarshalBinary encodes the packet.
func (p *ControlPacket) MarshalBinary() ([]byte, error) {
	return p.AppendBinary(make([]byte, 0, ControlPacketLen))
}

// AppendBinary appends the encoded packet to b.
func (p *ControlPacket) AppendBinary(b []byte) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	var flags byte
	for _, f := range []struct {
		on  bool
		bit byte
	}{{p.Poll, flagPoll}, {p.Final, flagFinal}, {p.ControlPlaneIndependent, flagCPI}, {p.Demand, flagDemand}} {
		if f.on {
			flags |= f.bit
		}
	}
	b = append(b, version<<5|byte(p.Diag), byte(p.State)<<6|flags, p.DetectMult, ControlPacketLen)
	b = binary.BigEndian.AppendUint32(b, p.MyDiscriminator)
	b = binary.BigEndian.AppendUint32(b, p.YourDiscriminator)
	b = binary.BigEndian.AppendUint32(b, uint32(p.DesiredMinTxInterval/time.Microsecond))
	b = binary.BigEndian.AppendUint32(b, uint32(p.RequiredMinRxInterval/time.Microsecond))
	b = binary.BigEndian.AppendUint32(b, uint32(p.RequiredMinEchoRxInterval/time.Microsecond))
	return b, nil
}

// UnmarshalBinary decodes a packet and applies the validity checks of RFC 5880 §6.8.6 that
// depend on the packet alone. Octets past the length field are ignored.
func (p *ControlPacket) UnmarshalBinary(b []byte) error {
	if len(b) < ControlPacketLen {
		return ErrShort
	}
	if v := b[0] >> 5; v != version {
		return fmt.Errorf("%w %d", ErrVersion, v)
	}
	if b[1]&flagAuth != 0 {
		return ErrAuthUnsupported
	}
	if length := int(b[3]); length < ControlPacketLen || length > len(b) {
		if length < ControlPacketLen {
			return fmt.Errorf("%w: length field %d", ErrInvalid, length)
		}
		return ErrShort
	}
	if b[1]&flagMultipoint != 0 {
		return fmt.Errorf("%w: multipoint bit set", ErrInvalid)
	}
	*p = ControlPacket{
		Diag:                      Diag(b[0] & 0x1f),
		State:                     State(b[1] >> 6),
		Poll:                      b[1]&flagPoll != 0,
		Final:                     b[1]&flagFinal != 0,
		ControlPlaneIndependent:   b[1]&flagCPI != 0,
		Demand:                    b[1]&flagDemand != 0,
		DetectMult:                b[2],
		MyDiscriminator:           binary.BigEndian.Uint32(b[4:8]),
		YourDiscriminator:         binary.BigEndian.Uint32(b[8:12]),
		DesiredMinTxInterval:      time.Duration(binary.BigEndian.Uint32(b[12:16])) * time.Microsecond,
		RequiredMinRxInterval:     time.Duration(binary.BigEndian.Uint32(b[16:20])) * time.Microsecond,
		RequiredMinEchoRxInterval: time.Duration(binary.BigEndian.Uint32(b[20:24])) * time.Microsecond,
	}
	return p.validate()
}

// PeekDiscriminators returns the My and Your Discriminator fields of an encoded packet without
// decoding it, for demultiplexing to sessions; ok is false when b is too short.
func PeekDiscriminators(b []byte) (my, your uint32, ok bool) {
	if len(b) < ControlPacketLen {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(b[4:8]), binary.BigEndian.Uint32(b[8:12]), true
}
