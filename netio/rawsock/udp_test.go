package rawsock

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchyard-lb/switchyard/netio"
)

// TestUDPReportsTTL sends datagrams between the lab's hosts with several TTLs (hop limits) and
// checks that the receiver learns each one from the kernel (IP_RECVTTL, IPV6_RECVHOPLIMIT), in
// both families, on sockets of the two families bound to one port.
func TestUDPReportsTTL(t *testing.T) {
	h := newTwoHosts(t)
	rx4, err := h.nodeA.ListenUDP(netip.MustParseAddrPort("0.0.0.0:3784"), netio.UDPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rx4.Close()
	rx6, err := h.nodeA.ListenUDP(netip.MustParseAddrPort("[::]:3784"), netio.UDPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rx6.Close()
	tests := []struct {
		local, remote string
		ttl, wantTTL  int
	}{
		{"10.77.0.2:49152", "10.77.0.1:3784", 255, 255},
		{"10.77.0.2:49153", "10.77.0.1:3784", 1, 1},
		{"[fd00:77::2]:49152", "[fd00:77::1]:3784", 255, 255},
		{"[fd00:77::2]:49153", "[fd00:77::1]:3784", 17, 17},
	}
	for _, tt := range tests {
		local, remote := netip.MustParseAddrPort(tt.local), netip.MustParseAddrPort(tt.remote)
		tx, err := h.nodeB.ListenUDP(local, netio.UDPOptions{TTL: tt.ttl})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.WriteTo([]byte("bfd"), remote); err != nil {
			t.Fatal(err)
		}
		rx := rx4
		if remote.Addr().Is6() {
			rx = rx6
		}
		type result struct {
			n   int
			dg  netio.Datagram
			err error
		}
		done := make(chan result, 1)
		go func() {
			buf := make([]byte, 16)
			n, dg, err := rx.ReadFrom(buf)
			done <- result{n, dg, err}
		}()
		select {
		case r := <-done:
			if r.err != nil || r.n != 3 || r.dg.From != local || r.dg.TTL != tt.wantTTL {
				t.Errorf("%s → %s with TTL %d: received %d bytes %+v, %v; want 3 bytes from %s with TTL %d",
					local, remote, tt.ttl, r.n, r.dg, r.err, local, tt.wantTTL)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s → %s: nothing received", local, remote)
		}
		tx.Close()
	}
	// Close wakes a blocked reader with ErrClosed.
	done := make(chan error, 1)
	go func() {
		_, _, err := rx4.ReadFrom(make([]byte, 16))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	rx4.Close()
	select {
	case err := <-done:
		if !errors.Is(err, netio.ErrClosed) {
			t.Errorf("ReadFrom after Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake ReadFrom")
	}
}

func TestUDPErrors(t *testing.T) {
	h := newTwoHosts(t)
	for _, tt := range []struct {
		local string
		opts  netio.UDPOptions
		want  string
	}{
		{"10.77.0.2:1", netio.UDPOptions{TTL: 300}, "UDPOptions.TTL 300 is outside 0..255"},
		{"", netio.UDPOptions{}, "no local address"},
		{"192.0.2.1:1", netio.UDPOptions{}, "cannot assign requested address"},
	} {
		local, _ := netip.ParseAddrPort(tt.local)
		if _, err := h.nodeB.ListenUDP(local, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ListenUDP(%q, %+v) = %v, want an error containing %q", tt.local, tt.opts, err, tt.want)
		}
	}
	c, err := h.nodeB.ListenUDP(netip.MustParseAddrPort("10.77.0.2:0"), netio.UDPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.WriteTo([]byte("x"), netip.MustParseAddrPort("[fd00:77::1]:1")) == nil {
		t.Error("WriteTo an IPv6 address from an IPv4 socket succeeded")
	}
	c.Close()
	if err := c.WriteTo([]byte("x"), netip.MustParseAddrPort("10.77.0.1:1")); !errors.Is(err, netio.ErrClosed) {
		t.Errorf("WriteTo after Close = %v, want ErrClosed", err)
	}
}

// FuzzReceivedTTL: whatever control messages the kernel hands back, reading the TTL from them
// never panics, and a TTL found is one a 4-byte field can hold.
func FuzzReceivedTTL(f *testing.F) {
	ttl := unix.UnixRights() // an SCM_RIGHTS message with no descriptors: not a TTL
	f.Add(ttl)
	for _, m := range []struct{ level, typ int32 }{{unix.IPPROTO_IP, unix.IP_TTL}, {unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT}} {
		b := make([]byte, unix.CmsgSpace(4))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = m.level, m.typ
		h.SetLen(unix.CmsgLen(4))
		binary.NativeEndian.PutUint32(b[unix.CmsgLen(0):], 255)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, oob []byte) {
		if got, err := receivedTTL(oob); err == nil && (got < 0 || got > 1<<32-1) {
			t.Fatalf("TTL %d", got)
		}
	})
}

func TestReceivedTTL(t *testing.T) {
	mk := func(level, typ int32, val uint32, dataLen int) []byte {
		b := make([]byte, unix.CmsgSpace(dataLen))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(dataLen))
		if dataLen >= 4 {
			binary.NativeEndian.PutUint32(b[unix.CmsgLen(0):], val)
		}
		return b
	}
	tests := []struct {
		name    string
		oob     []byte
		want    int
		wantErr string
	}{
		{"IPv4 TTL", mk(unix.IPPROTO_IP, unix.IP_TTL, 255, 4), 255, ""},
		{"IPv6 hop limit", mk(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, 64, 4), 64, ""},
		{"after another message", append(unix.UnixRights(), mk(unix.IPPROTO_IP, unix.IP_TTL, 1, 4)...), 1, ""},
		{"no TTL", unix.UnixRights(), 0, "the kernel reported no TTL"},
		{"short TTL message", mk(unix.IPPROTO_IP, unix.IP_TTL, 0, 2), 0, "TTL control message of 2 bytes"},
		{"shorter than a header", []byte{1, 2, 3}, 0, "the kernel reported no TTL"},
		{"header longer than the buffer", append(mk(unix.IPPROTO_IP, unix.IP_TTL, 0, 4)[:4:4], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, "control messages"},
	}
	for _, tt := range tests {
		got, err := receivedTTL(tt.oob)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: receivedTTL = %d, %v; want error %q", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: receivedTTL = %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
}
