package netstack_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/netio"
)

type received struct {
	payload string
	dg      netio.Datagram
	err     error
}

// readAll reads datagrams from c on a goroutine of its own (ReadFrom blocks) until an error.
func readAll(c netio.UDPConn) <-chan received {
	out := make(chan received, 16)
	go func() {
		buf := make([]byte, 64)
		for {
			n, dg, err := c.ReadFrom(buf)
			out <- received{string(buf[:n]), dg, err}
			if err != nil {
				return
			}
		}
	}()
	return out
}

// TestUDPReportsTTL: datagrams arrive with their sender and the TTL they were sent with, which
// BFD's single-hop check (TTL 255) depends on.
func TestUDPReportsTTL(t *testing.T) {
	n, a, b := twoNodes(t)
	rx, err := a.(netio.UDPNode).ListenUDP(netip.MustParseAddrPort("0.0.0.0:3784"), netio.UDPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(rx)
	tests := []struct {
		name    string
		local   string
		ttl     int
		payload string
		wantTTL int
	}{
		{"GTSM", "10.0.0.2:49152", 255, "hello", 255},
		{"explicit TTL", "10.0.0.2:49153", 7, "seven", 7},
		{"system default", "10.0.0.2:49154", 0, "default", 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := b.(netio.UDPNode).ListenUDP(netip.MustParseAddrPort(tt.local), netio.UDPOptions{TTL: tt.ttl})
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Close()
			if got := tx.LocalAddr(); got != netip.MustParseAddrPort(tt.local) {
				t.Errorf("LocalAddr() = %v, want %s", got, tt.local)
			}
			if err := tx.WriteTo([]byte(tt.payload), netip.MustParseAddrPort("10.0.0.1:3784")); err != nil {
				t.Fatal(err)
			}
			n.RunFor(time.Millisecond)
			select {
			case r := <-got:
				want := received{tt.payload, netio.Datagram{From: netip.MustParseAddrPort(tt.local),
					To: netip.IPv4Unspecified(), TTL: tt.wantTTL}, nil}
				if r != want {
					t.Errorf("received %+v, want %+v", r, want)
				}
			default:
				t.Fatal("nothing received")
			}
		})
	}
	rx.Close()
	n.RunFor(time.Millisecond)
	if r := <-got; !errors.Is(r.err, netio.ErrClosed) {
		t.Errorf("ReadFrom after Close: %v, want ErrClosed", r.err)
	}
}

func TestUDPErrors(t *testing.T) {
	_, a, _ := twoNodes(t)
	u := a.(netio.UDPNode)
	for _, tt := range []struct {
		local string
		opts  netio.UDPOptions
		want  string
	}{
		{"10.0.0.1:1", netio.UDPOptions{TTL: 256}, "UDPOptions.TTL 256 is outside 0..255"},
		{"10.0.0.1:1", netio.UDPOptions{TTL: -1}, "UDPOptions.TTL -1 is outside 0..255"},
		{"", netio.UDPOptions{}, "no local address"},
	} {
		local, _ := netip.ParseAddrPort(tt.local)
		if _, err := u.ListenUDP(local, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ListenUDP(%s, %+v) = %v, want an error containing %q", tt.local, tt.opts, err, tt.want)
		}
	}
	c, err := u.ListenUDP(netip.MustParseAddrPort("10.0.0.1:0"), netio.UDPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.LocalAddr().Port() == 0 {
		t.Errorf("port 0 was not replaced by a free port: %v", c.LocalAddr())
	}
	if err := c.WriteTo([]byte("x"), netip.MustParseAddrPort("[fd00::2]:1")); err == nil || !strings.Contains(err.Error(), "another IP family") {
		t.Errorf("WriteTo across families = %v, want an IP family error", err)
	}
	c.Close()
	if err := c.WriteTo([]byte("x"), netip.MustParseAddrPort("10.0.0.2:1")); !errors.Is(err, netio.ErrClosed) {
		t.Errorf("WriteTo after Close = %v, want ErrClosed", err)
	}
}
