package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseAddressRange parses one entry of IPAddressPool.spec.addresses: a CIDR
// ("192.168.10.0/24", "fc00::/124") or an inclusive range "first-last" ("192.168.9.1 -
// 192.168.9.5"; spaces around the dash are allowed). A CIDR with host bits set is masked, as
// MetalLB does. A bare address is rejected: MetalLB requires "/32" or "/128" for one address.
// The error does not repeat the input.
func ParseAddressRange(s string) (AddressRange, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return AddressRange{}, errors.New("empty address")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return AddressRange{}, errors.New(`not a valid CIDR (want "192.168.10.0/24" or "fc00::/124")`)
		}
		p = p.Masked()
		return AddressRange{First: p.Addr(), Last: lastAddr(p), CIDR: p}, nil
	}
	firstText, lastText, ok := strings.Cut(s, "-")
	if !ok {
		return AddressRange{}, errors.New(`neither a CIDR ("192.168.10.0/24") nor a range ("192.168.10.1-192.168.10.9")`)
	}
	first, err := parseAddr(strings.TrimSpace(firstText))
	if err != nil {
		return AddressRange{}, fmt.Errorf("range start: %w", err)
	}
	last, err := parseAddr(strings.TrimSpace(lastText))
	if err != nil {
		return AddressRange{}, fmt.Errorf("range end: %w", err)
	}
	if first.Is4() != last.Is4() {
		return AddressRange{}, fmt.Errorf("start %s and end %s are of different families", first, last)
	}
	if first.Compare(last) > 0 {
		return AddressRange{}, fmt.Errorf("start %s is after end %s", first, last)
	}
	return AddressRange{First: first, Last: last}, nil
}

// parseAddr parses an IPv4 or IPv6 address without a zone.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q has an IPv6 zone, which is not allowed here", s)
	}
	return a, nil
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		setHostBits(b[:], p.Bits())
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	setHostBits(b[:], p.Bits())
	return netip.AddrFrom16(b)
}

// setHostBits sets every bit of b after the first prefixBits.
func setHostBits(b []byte, prefixBits int) {
	for i := range b {
		bitsBefore := i * 8
		switch {
		case prefixBits <= bitsBefore:
			b[i] = 0xff
		case prefixBits < bitsBefore+8:
			b[i] |= 0xff >> (prefixBits - bitsBefore)
		}
	}
}

// ParseCommunity parses a BGP community: standard "a:b" (RFC 1997) with a and b from 0 to
// 65535, or large "large:a:b:c" (RFC 8092) with a, b and c from 0 to 4294967295. Numbers are
// decimal; leading zeros are allowed.
func ParseCommunity(s string) (Community, error) {
	if rest, ok := strings.CutPrefix(s, "large:"); ok {
		parts := strings.Split(rest, ":")
		if len(parts) != 3 {
			return Community{}, errors.New(`a large community has three parts: "large:a:b:c"`)
		}
		var v [3]uint32
		for i, part := range parts {
			n, err := strconv.ParseUint(part, 10, 32)
			if err != nil {
				return Community{}, fmt.Errorf("large community part %q is not a number from 0 to 4294967295", part)
			}
			v[i] = uint32(n)
		}
		return Community{Large: true, GlobalAdmin: v[0], Local1: v[1], Local2: v[2]}, nil
	}
	parts := strings.Split(s, ":")
	if len(parts) != 2 {
		return Community{}, errors.New(`want a standard community "a:b" or a large community "large:a:b:c"`)
	}
	var v [2]uint32
	for i, part := range parts {
		n, err := strconv.ParseUint(part, 10, 16)
		if err != nil {
			return Community{}, fmt.Errorf("standard community part %q is not a number from 0 to 65535", part)
		}
		v[i] = uint32(n)
	}
	return Community{Standard: v[0]<<16 | v[1]}, nil
}
