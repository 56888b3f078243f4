package config

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAddressRange(t *testing.T) {
	a := netip.MustParseAddr
	p := netip.MustParsePrefix
	tests := []struct {
		in      string
		want    AddressRange
		wantErr string
	}{
		{in: "192.168.10.0/24", want: AddressRange{First: a("192.168.10.0"), Last: a("192.168.10.255"), CIDR: p("192.168.10.0/24")}},
		{in: "192.168.10.7/24", want: AddressRange{First: a("192.168.10.0"), Last: a("192.168.10.255"), CIDR: p("192.168.10.0/24")}},
		{in: "10.0.0.1/32", want: AddressRange{First: a("10.0.0.1"), Last: a("10.0.0.1"), CIDR: p("10.0.0.1/32")}},
		{in: "0.0.0.0/0", want: AddressRange{First: a("0.0.0.0"), Last: a("255.255.255.255"), CIDR: p("0.0.0.0/0")}},
		{in: "10.1.2.0/23", want: AddressRange{First: a("10.1.2.0"), Last: a("10.1.3.255"), CIDR: p("10.1.2.0/23")}},
		{in: "fc00:f853:ccd:e799::/124", want: AddressRange{First: a("fc00:f853:ccd:e799::"), Last: a("fc00:f853:ccd:e799::f"), CIDR: p("fc00:f853:ccd:e799::/124")}},
		{in: "2001:db8::/33", want: AddressRange{First: a("2001:db8::"), Last: a("2001:db8:7fff:ffff:ffff:ffff:ffff:ffff"), CIDR: p("2001:db8::/33")}},
		{in: "192.168.9.1-192.168.9.5", want: AddressRange{First: a("192.168.9.1"), Last: a("192.168.9.5")}},
		{in: " 192.168.9.1 - 192.168.9.5 ", want: AddressRange{First: a("192.168.9.1"), Last: a("192.168.9.5")}},
		{in: "10.0.0.1-10.0.0.1", want: AddressRange{First: a("10.0.0.1"), Last: a("10.0.0.1")}},
		{in: "2001:db8::1-2001:db8::ff", want: AddressRange{First: a("2001:db8::1"), Last: a("2001:db8::ff")}},

		{in: "", wantErr: "empty address"},
		{in: "   ", wantErr: "empty address"},
		{in: "10.0.0.1", wantErr: `neither a CIDR ("192.168.10.0/24") nor a range ("192.168.10.1-192.168.10.9")`},
		{in: "10.0.0.0/33", wantErr: `not a valid CIDR (want "192.168.10.0/24" or "fc00::/124")`},
		{in: "10.0.0.300/24", wantErr: `not a valid CIDR (want "192.168.10.0/24" or "fc00::/124")`},
		{in: "fe80::%eth0/64", wantErr: `not a valid CIDR (want "192.168.10.0/24" or "fc00::/124")`},
		{in: "10.0.0.9-10.0.0.1", wantErr: "start 10.0.0.9 is after end 10.0.0.1"},
		{in: "10.0.0.1-2001:db8::1", wantErr: "start 10.0.0.1 and end 2001:db8::1 are of different families"},
		{in: "10.0.0.1-", wantErr: `range end: "" is not an IP address`},
		{in: "x-10.0.0.1", wantErr: `range start: "x" is not an IP address`},
		{in: "10.0.0.1-10.0.0.2-10.0.0.3", wantErr: `range end: "10.0.0.2-10.0.0.3" is not an IP address`},
		{in: "fe80::1%eth0-fe80::2", wantErr: `range start: "fe80::1%eth0" has an IPv6 zone, which is not allowed here`},
	}
	for _, tc := range tests {
		got, err := ParseAddressRange(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseAddressRange(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAddressRange(%q) error = %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y }), cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })); diff != "" {
			t.Errorf("ParseAddressRange(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestAddressRangePrefixes(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"10.0.0.0/24", []string{"10.0.0.0/24"}},
		{"10.0.0.0-10.0.0.255", []string{"10.0.0.0/24"}},
		{"10.0.0.1-10.0.0.6", []string{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"}},
		{"10.0.0.255-10.0.1.0", []string{"10.0.0.255/32", "10.0.1.0/32"}},
		{"255.255.255.254-255.255.255.255", []string{"255.255.255.254/31"}},
		{"0.0.0.0-255.255.255.255", []string{"0.0.0.0/0"}},
		{"2001:db8::-2001:db8::2", []string{"2001:db8::/127", "2001:db8::2/128"}},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"}},
	}
	for _, tc := range tests {
		r, err := ParseAddressRange(tc.in)
		if err != nil {
			t.Fatalf("ParseAddressRange(%q): %v", tc.in, err)
		}
		var got []string
		for _, p := range r.Prefixes() {
			got = append(got, p.String())
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%q.Prefixes() (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestAddressRangeString(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.5/24":             "10.0.0.0/24",
		"10.0.0.1 - 10.0.0.9":     "10.0.0.1-10.0.0.9",
		"2001:DB8::1-2001:db8::2": "2001:db8::1-2001:db8::2",
	} {
		r, err := ParseAddressRange(in)
		if err != nil {
			t.Fatalf("ParseAddressRange(%q): %v", in, err)
		}
		if got := r.String(); got != want {
			t.Errorf("ParseAddressRange(%q).String() = %q, want %q", in, got, want)
		}
	}
}

func TestParseCommunity(t *testing.T) {
	tests := []struct {
		in      string
		want    Community
		wantErr string
	}{
		{in: "65535:65282", want: Community{Standard: 0xffff_ff02}},
		{in: "0:0", want: Community{}},
		{in: "7003:007", want: Community{Standard: 7003<<16 | 7}},
		{in: "large:64500:1:4294967295", want: Community{Large: true, GlobalAdmin: 64500, Local1: 1, Local2: 4294967295}},
		{in: "65536:1", wantErr: `standard community part "65536" is not a number from 0 to 65535`},
		{in: "1:-1", wantErr: `standard community part "-1" is not a number from 0 to 65535`},
		{in: "1:2:3", wantErr: `want a standard community "a:b" or a large community "large:a:b:c"`},
		{in: "no-export", wantErr: `want a standard community "a:b" or a large community "large:a:b:c"`},
		{in: "large:1:2", wantErr: `a large community has three parts: "large:a:b:c"`},
		{in: "large:1:2:4294967296", wantErr: `large community part "4294967296" is not a number from 0 to 4294967295`},
		{in: "large:a:b:c", wantErr: `large community part "a" is not a number from 0 to 4294967295`},
	}
	for _, tc := range tests {
		got, err := ParseCommunity(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseCommunity(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseCommunity(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestCommunityString(t *testing.T) {
	for _, tc := range []struct {
		in   Community
		want string
	}{
		{Community{Standard: 65535<<16 | 65282}, "65535:65282"},
		{Community{Standard: 7003<<16 | 7}, "7003:7"},
		{Community{Large: true, GlobalAdmin: 1, Local1: 2, Local2: 3}, "large:1:2:3"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.in, got, tc.want)
		}
	}
}
