package ipam

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
)

// u128 is an address of either family as an unsigned 128-bit integer. IPv4 addresses use the
// low 32 bits. Range arithmetic (next address, range size) never mixes families, so the shared
// representation is unambiguous once the family is known.
type u128 struct{ hi, lo uint64 }

func u128From(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// addr converts x back to an address of family f.
func (x u128) addr(f Family) netip.Addr {
	if f == IPv4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(x.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	return netip.AddrFrom16(b)
}

func (x u128) cmp(y u128) int {
	switch {
	case x.hi < y.hi:
		return -1
	case x.hi > y.hi:
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}

func (x u128) less(y u128) bool { return x.cmp(y) < 0 }

// next returns x+1, wrapping at 2^128.
func (x u128) next() u128 {
	lo, carry := bits.Add64(x.lo, 1, 0)
	return u128{hi: x.hi + carry, lo: lo}
}

// sub returns x-y, wrapping.
func (x u128) sub(y u128) u128 {
	lo, borrow := bits.Sub64(x.lo, y.lo, 0)
	return u128{hi: x.hi - y.hi - borrow, lo: lo}
}

// isBuggy reports whether an IPv4 address ends in .0 or .255, which avoidBuggyIPs skips:
// some old CPE firmware takes them for network or broadcast addresses and drops the traffic.
func isBuggy(f Family, x u128) bool {
	if f != IPv4 {
		return false
	}
	last := x.lo & 0xff
	return last == 0 || last == 0xff
}

// rangeCapacity counts the addresses of [first, last] that can be handed out, saturating at
// MaxUint64 (IPv6 ranges may hold up to 2^128 addresses).
func rangeCapacity(f Family, first, last u128, avoidBuggy bool) uint64 {
	span := last.sub(first) // size-1
	if span.hi != 0 || span.lo == ^uint64(0) {
		return ^uint64(0)
	}
	n := span.lo + 1
	if avoidBuggy && f == IPv4 {
		n -= countLastOctet(first.lo, last.lo, 0) + countLastOctet(first.lo, last.lo, 0xff)
	}
	return n
}

// countLastOctet counts the IPv4 addresses in [first, last] whose last octet is octet.
func countLastOctet(first, last, octet uint64) uint64 {
	// upTo counts matching addresses in [0, x].
	upTo := func(x uint64) uint64 {
		if x < octet {
			return 0
		}
		return (x-octet)/256 + 1
	}
	n := upTo(last)
	if first > 0 {
		n -= upTo(first - 1)
	}
	return n
}

func sortU128(xs []u128) { slices.SortFunc(xs, u128.cmp) }
