package rawsock

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// runFilter executes a port filter on a frame as the kernel would, with the frame's packet type
// and VLAN metadata given separately (they are not in the frame). x/net/bpf's VM cannot do this:
// it knows no extensions but the length. It returns the number of bytes the filter keeps.
func runFilter(t testing.TB, raw []bpf.RawInstruction, frame []byte, pktType uint32, vlanTagged bool) uint32 {
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("filter does not disassemble: %v", prog)
	}
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		switch ins := prog[pc].(type) {
		case bpf.LoadExtension:
			switch ins.Num {
			case bpf.ExtType:
				a = pktType
			case bpf.ExtVLANTagPresent:
				a = 0
				if vlanTagged {
					a = 1
				}
			default:
				t.Fatalf("pc %d: unexpected extension %v", pc, ins.Num)
			}
		case bpf.LoadAbsolute:
			if ins.Size != 2 || int(ins.Off)+2 > len(frame) {
				return 0 // the kernel aborts the program: drop
			}
			a = uint32(binary.BigEndian.Uint16(frame[ins.Off:]))
		case bpf.JumpIf:
			var taken bool
			switch ins.Cond {
			case bpf.JumpEqual:
				taken = a == ins.Val
			case bpf.JumpNotEqual:
				taken = a != ins.Val
			default:
				t.Fatalf("pc %d: unexpected condition %v", pc, ins.Cond)
			}
			if taken {
				pc += int(ins.SkipTrue)
			} else {
				pc += int(ins.SkipFalse)
			}
		case bpf.RetConstant:
			return ins.Val
		default:
			t.Fatalf("pc %d: unexpected instruction %#v", pc, ins)
		}
	}
	t.Fatal("filter ran off its end")
	return 0
}

// wantAccept is the filter's specification.
func wantAccept(etherTypes []uint16, frame []byte, pktType uint32, vlanTagged bool) bool {
	return pktType != unix.PACKET_OUTGOING && !vlanTagged && len(frame) >= ethHeaderLen &&
		slices.Contains(etherTypes, binary.BigEndian.Uint16(frame[12:14]))
}

func frameOfType(etherType uint16) []byte {
	f := make([]byte, 60)
	binary.BigEndian.PutUint16(f[12:], etherType)
	return f
}

func TestPortFilterProgram(t *testing.T) {
	types := []uint16{0x88b5, 0x0806, 0x86dd, 0x0806} // unsorted, with a duplicate
	raw, err := portFilter(types)
	if err != nil {
		t.Fatal(err)
	}
	// Five checks, one comparison per distinct EtherType, drop and accept.
	if len(raw) != 5+3+2 {
		t.Errorf("program has %d instructions, want 10", len(raw))
	}
	tests := []struct {
		name       string
		frame      []byte
		pktType    uint32
		vlanTagged bool
		want       uint32
	}{
		{"ARP to us", frameOfType(0x0806), unix.PACKET_HOST, false, 0xffffffff},
		{"IPv6 multicast", frameOfType(0x86dd), unix.PACKET_MULTICAST, false, 0xffffffff},
		{"heartbeat broadcast", frameOfType(0x88b5), unix.PACKET_BROADCAST, false, 0xffffffff},
		{"ARP to another host (promiscuous)", frameOfType(0x0806), unix.PACKET_OTHERHOST, false, 0xffffffff},
		{"IPv4", frameOfType(0x0800), unix.PACKET_HOST, false, 0},
		{"our own ARP going out", frameOfType(0x0806), unix.PACKET_OUTGOING, false, 0},
		{"ARP of a VLAN", frameOfType(0x0806), unix.PACKET_BROADCAST, true, 0},
		{"too short for an EtherType", frameOfType(0x0806)[:13], unix.PACKET_HOST, false, 0},
	}
	for _, tt := range tests {
		if got := runFilter(t, raw, tt.frame, tt.pktType, tt.vlanTagged); got != tt.want {
			t.Errorf("%s: filter keeps %#x bytes, want %#x", tt.name, got, tt.want)
		}
	}
}

func TestPortFilterErrors(t *testing.T) {
	many := make([]uint16, 201)
	for i := range many {
		many[i] = 0x9000 + uint16(i)
	}
	tests := []struct {
		name    string
		types   []uint16
		wantErr string
	}{
		{"none", nil, "PortConfig.EtherTypes is empty"},
		{"802.3 length", []uint16{0x0806, 0x05ff}, "PortConfig.EtherTypes: 0x05ff is an 802.3 length, not an EtherType (must be at least 0x0600)"},
		{"too many", many, "PortConfig.EtherTypes has 201 entries, at most 200 are supported"},
	}
	for _, tt := range tests {
		_, err := portFilter(tt.types)
		if err == nil || err.Error() != tt.wantErr {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
		}
	}
	if _, err := portFilter(many[:200]); err != nil {
		t.Errorf("200 EtherTypes: %v", err)
	}
}

// FuzzPortFilter checks the filter's jump arithmetic against its specification for any set of
// EtherTypes and any frame.
func FuzzPortFilter(f *testing.F) {
	f.Add([]byte{0x08, 0x06}, []byte{12: 0x08, 13: 0x06}, uint8(unix.PACKET_BROADCAST), false)
	f.Add([]byte{0x08, 0x06, 0x86, 0xdd, 0x88, 0xb5}, []byte{12: 0x86, 13: 0xdd, 20: 58}, uint8(unix.PACKET_MULTICAST), false)
	f.Add([]byte{0x88, 0xb5}, []byte{12: 0x88, 13: 0xb5}, uint8(unix.PACKET_OUTGOING), false)
	f.Add([]byte{0x08, 0x06}, []byte{12: 0x08, 13: 0x06}, uint8(unix.PACKET_HOST), true)
	f.Fuzz(func(t *testing.T, typeBytes, frame []byte, pktType uint8, vlanTagged bool) {
		var types []uint16
		for i := 0; i+1 < len(typeBytes); i += 2 {
			types = append(types, binary.BigEndian.Uint16(typeBytes[i:]))
		}
		raw, err := portFilter(types)
		if err != nil {
			return // bad input is rejected, tested in TestPortFilterErrors
		}
		got := runFilter(t, raw, frame, uint32(pktType), vlanTagged) != 0
		if want := wantAccept(types, frame, uint32(pktType), vlanTagged); got != want {
			t.Fatalf("types %04x, frame % x, pkttype %d, vlan %v: accept %v, want %v", types, frame, pktType, vlanTagged, got, want)
		}
	})
}

func TestPrefixOf(t *testing.T) {
	tests := []struct {
		ipn    *net.IPNet
		want   string
		wantOK bool
	}{
		{&net.IPNet{IP: net.IPv4(10, 77, 0, 1).To4(), Mask: net.CIDRMask(24, 32)}, "10.77.0.1/24", true},
		{&net.IPNet{IP: net.IPv4(10, 77, 0, 1), Mask: net.CIDRMask(24, 32)}, "10.77.0.1/24", true},
		{&net.IPNet{IP: net.IPv4(10, 77, 0, 1), Mask: net.CIDRMask(120, 128)}, "10.77.0.1/24", true},
		{&net.IPNet{IP: net.ParseIP("fd00:77::1"), Mask: net.CIDRMask(64, 128)}, "fd00:77::1/64", true},
		{&net.IPNet{IP: net.ParseIP("fd00:77::1"), Mask: net.IPMask{0xff, 0, 0xff}}, "", false},
		{&net.IPNet{IP: net.IP{1, 2, 3}, Mask: net.CIDRMask(24, 32)}, "", false},
		{nil, "", false},
	}
	for _, tt := range tests {
		got, ok := prefixOf(tt.ipn)
		if ok != tt.wantOK || (ok && got != netip.MustParsePrefix(tt.want)) {
			t.Errorf("prefixOf(%v) = %v, %v; want %s, %v", tt.ipn, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestNewOptionErrors(t *testing.T) {
	tests := []struct {
		opts    Options
		wantErr string
	}{
		{Options{FrameBufferSize: 59}, "rawsock: Options.FrameBufferSize 59 is smaller than an Ethernet frame (60 bytes)"},
		{Options{FrameBufferSize: -1}, "rawsock: Options.FrameBufferSize -1 is smaller than an Ethernet frame (60 bytes)"},
		{Options{LinkWatchBufferSize: -1}, "rawsock: Options.LinkWatchBufferSize -1 is negative"},
		{Options{NetNS: "/nonexistent/netns"}, `rawsock: Options.NetNS "/nonexistent/netns": no such file or directory`},
	}
	for _, tt := range tests {
		n, err := New(tt.opts)
		if err == nil {
			n.Close()
		}
		if err == nil || err.Error() != tt.wantErr {
			t.Errorf("New(%+v) error = %v, want %q", tt.opts, err, tt.wantErr)
		}
	}
}
