package rawsock

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-lb/switchyard/netio"
)

// How long a connection attempt the kernel silently drops (wrong TTL, wrong MD5 key) is given
// before the test calls it refused. A good one completes in well under a millisecond on a veth,
// but gets far longer, so a loaded machine does not fail the test.
const (
	droppedDialTimeout = 1500 * time.Millisecond
	goodDialTimeout    = 15 * time.Second
)

// serve accepts connections on l and echoes one line back on each, until l is closed.
func serve(t *testing.T, l net.Listener) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				n, _ := c.Read(buf)
				c.Write(buf[:n])
			}()
		}
	}()
}

// dial connects, exchanges a message and reports the socket's TTL/hop limit; err is the dial's
// or the exchange's error.
func dial(n *Node, local, remote netip.AddrPort, opts netio.TCPOptions, timeout time.Duration) (ttl int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := n.DialTCP(ctx, local, remote, opts)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("OPEN")); err != nil {
		return 0, err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		return 0, err
	}
	if string(buf) != "OPEN" {
		return 0, errors.New("echo mismatch: " + string(buf))
	}
	return socketTTL(c)
}

// isTimeout reports whether a dial failed by running out of time: the context's deadline or
// the socket deadline the dialer derives from it, whichever fired first.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func socketTTL(c net.Conn) (int, error) {
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return 0, err
	}
	level, opt := unix.IPPROTO_IP, unix.IP_TTL
	if netip.MustParseAddrPort(c.LocalAddr().String()).Addr().Is6() {
		level, opt = unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS
	}
	var ttl int
	var gerr error
	err = raw.Control(func(fd uintptr) { ttl, gerr = unix.GetsockoptInt(int(fd), level, opt) })
	return ttl, errors.Join(err, gerr)
}

func TestTCPTTLAndMinTTL(t *testing.T) {
	h := newTwoHosts(t)
	for _, fam := range []struct {
		name       string
		local, srv netip.Addr
	}{
		{"IPv4", ipA, ipB},
		{"IPv6", ip6A, ip6B},
	} {
		t.Run(fam.name, func(t *testing.T) {
			// GTSM: b accepts only packets that arrive with TTL 255, i.e. sent with 255 by a
			// directly connected peer.
			l, err := h.nodeB.ListenTCP(netip.AddrPortFrom(fam.srv, 1790), netio.TCPOptions{MinTTL: 255, TTL: 255})
			if err != nil {
				t.Fatal(err)
			}
			serve(t, l)
			remote := netip.AddrPortFrom(fam.srv, 1790)
			local := netip.AddrPortFrom(fam.local, 0)

			ttl, err := dial(h.nodeA, local, remote, netio.TCPOptions{TTL: 255}, goodDialTimeout)
			if err != nil {
				t.Fatalf("dial with TTL 255: %v", err)
			}
			if ttl != 255 {
				t.Errorf("dialed socket's TTL = %d, want 255", ttl)
			}
			if _, err := dial(h.nodeA, local, remote, netio.TCPOptions{TTL: 254}, droppedDialTimeout); !isTimeout(err) {
				t.Errorf("dial with TTL 254 to a MinTTL 255 listener: %v, want the SYN dropped (timeout)", err)
			}
			// The listener's MinTTL guards b; a's own MinTTL guards a against b's replies,
			// which b sends with TTL 255, so a MinTTL of 255 there is met.
			if _, err := dial(h.nodeA, local, remote, netio.TCPOptions{TTL: 255, MinTTL: 255}, goodDialTimeout); err != nil {
				t.Errorf("dial with TTL 255 and MinTTL 255: %v", err)
			}
		})
	}
}

func TestTCPMinTTLOnDialer(t *testing.T) {
	h := newTwoHosts(t)
	// b answers with TTL 64, so a dialer that demands 255 never sees the SYN-ACK.
	l, err := h.nodeB.ListenTCP(netip.AddrPortFrom(ipB, 1791), netio.TCPOptions{TTL: 64})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l)
	remote := netip.AddrPortFrom(ipB, 1791)
	if _, err := dial(h.nodeA, netip.AddrPort{}, remote, netio.TCPOptions{MinTTL: 255}, droppedDialTimeout); !isTimeout(err) {
		t.Errorf("dial with MinTTL 255 to a peer sending TTL 64: %v, want a timeout", err)
	}
	if _, err := dial(h.nodeA, netip.AddrPort{}, remote, netio.TCPOptions{MinTTL: 64}, goodDialTimeout); err != nil {
		t.Errorf("dial with MinTTL 64 to a peer sending TTL 64: %v", err)
	}
}

func TestTCPMD5(t *testing.T) {
	h := newTwoHosts(t)
	for _, fam := range []struct {
		name                 string
		keyed, unkeyed, serv netip.Addr
	}{
		{"IPv4", ipA, ipA2, ipB},
		{"IPv6", ip6A, ip6A2, ip6B},
	} {
		t.Run(fam.name, func(t *testing.T) {
			l, err := h.nodeB.ListenTCP(netip.AddrPortFrom(fam.serv, 1792), netio.TCPOptions{
				MD5Peers: map[netip.Addr]string{fam.keyed: "s3cret"},
			})
			if err != nil {
				t.Fatal(err)
			}
			serve(t, l)
			remote := netip.AddrPortFrom(fam.serv, 1792)
			tests := []struct {
				name    string
				from    netip.Addr
				key     string
				wantErr bool
			}{
				{"listed peer, right key", fam.keyed, "s3cret", false},
				{"listed peer, wrong key", fam.keyed, "wrong", true},
				{"listed peer, no key", fam.keyed, "", true},
				{"unlisted peer, no key", fam.unkeyed, "", false},
				{"unlisted peer, a key", fam.unkeyed, "s3cret", true},
			}
			for _, tt := range tests {
				// In parallel: each refused case waits out its timeout.
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					timeout := goodDialTimeout
					if tt.wantErr {
						timeout = droppedDialTimeout
					}
					_, err := dial(h.nodeA, netip.AddrPortFrom(tt.from, 0), remote, netio.TCPOptions{MD5Key: tt.key}, timeout)
					if tt.wantErr && !isTimeout(err) {
						t.Errorf("dial error %v, want the kernel to drop the segments (timeout)", err)
					}
					if !tt.wantErr && err != nil {
						t.Errorf("dial error %v, want success", err)
					}
				})
			}
		})
	}
}

func TestTCPBadInput(t *testing.T) {
	n, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ap := netip.MustParseAddrPort
	long := strings.Repeat("k", 81)
	dialTests := []struct {
		name          string
		local, remote netip.AddrPort
		opts          netio.TCPOptions
		wantErr       string
	}{
		{"no remote", ap("127.0.0.1:0"), netip.AddrPort{}, netio.TCPOptions{}, "rawsock: dial TCP: no remote address"},
		{"remote port 0", ap("127.0.0.1:0"), ap("127.0.0.1:0"), netio.TCPOptions{}, "rawsock: dial TCP 127.0.0.1:0: remote port 0"},
		{"family mismatch", ap("127.0.0.1:0"), ap("[::1]:179"), netio.TCPOptions{}, "rawsock: dial TCP [::1]:179: local address 127.0.0.1 is of another IP family"},
		{"TTL too big", netip.AddrPort{}, ap("127.0.0.1:179"), netio.TCPOptions{TTL: 256}, "rawsock: dial TCP 127.0.0.1:179: TCPOptions.TTL 256 is outside 0..255"},
		{"negative MinTTL", netip.AddrPort{}, ap("127.0.0.1:179"), netio.TCPOptions{MinTTL: -1}, "rawsock: dial TCP 127.0.0.1:179: TCPOptions.MinTTL -1 is outside 0..255"},
		{"key too long", netip.AddrPort{}, ap("127.0.0.1:179"), netio.TCPOptions{MD5Key: long}, "rawsock: dial TCP 127.0.0.1:179: TCPOptions.MD5Key is 81 bytes long, at most 80 are allowed"},
	}
	for _, tt := range dialTests {
		c, err := n.DialTCP(context.Background(), tt.local, tt.remote, tt.opts)
		if err == nil {
			c.Close()
		}
		if err == nil || err.Error() != tt.wantErr {
			t.Errorf("%s: DialTCP error %v, want %q", tt.name, err, tt.wantErr)
		}
	}
	listenTests := []struct {
		name    string
		local   netip.AddrPort
		opts    netio.TCPOptions
		wantErr string
	}{
		{"no address", netip.AddrPort{}, netio.TCPOptions{}, "rawsock: listen TCP: no local address (0.0.0.0 or :: listen on all)"},
		{"empty peer key", ap("127.0.0.1:0"), netio.TCPOptions{MD5Peers: map[netip.Addr]string{netip.MustParseAddr("127.0.0.2"): ""}}, "rawsock: listen TCP 127.0.0.1:0: TCPOptions.MD5Peers[127.0.0.2]: empty key"},
		{"peer key too long", ap("127.0.0.1:0"), netio.TCPOptions{MD5Peers: map[netip.Addr]string{netip.MustParseAddr("127.0.0.2"): long}}, "rawsock: listen TCP 127.0.0.1:0: TCPOptions.MD5Peers[127.0.0.2]: key is 81 bytes long, at most 80 are allowed"},
		{"peer of other family", ap("127.0.0.1:0"), netio.TCPOptions{MD5Peers: map[netip.Addr]string{netip.MustParseAddr("::2"): "k"}}, "rawsock: listen TCP 127.0.0.1:0: MD5Peers: peer ::2 is of another IP family than the listener"},
		{"invalid peer", ap("127.0.0.1:0"), netio.TCPOptions{MD5Peers: map[netip.Addr]string{{}: "k"}}, "rawsock: listen TCP 127.0.0.1:0: TCPOptions.MD5Peers: invalid peer address"},
	}
	for _, tt := range listenTests {
		l, err := n.ListenTCP(tt.local, tt.opts)
		if err == nil {
			l.Close()
		}
		if err == nil || err.Error() != tt.wantErr {
			t.Errorf("%s: ListenTCP error %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestMD5Sig(t *testing.T) {
	tests := []struct {
		name     string
		family   int
		peer     string
		wantData []byte // the first bytes of the sockaddr after the family
	}{
		{"IPv4", unix.AF_INET, "192.0.2.7", []byte{0, 0, 192, 0, 2, 7, 0}},
		{"IPv6", unix.AF_INET6, "2001:db8::7", []byte{0, 0, 0, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0}},
		{"IPv4 peer of an IPv6 socket", unix.AF_INET6, "192.0.2.7", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7, 0}},
	}
	for _, tt := range tests {
		sig := md5Sig(tt.family, netip.MustParseAddr(tt.peer), "key!")
		if int(sig.Addr.Family) != tt.family {
			t.Errorf("%s: family %d, want %d", tt.name, sig.Addr.Family, tt.family)
		}
		if got := sig.Addr.Data[:len(tt.wantData)]; string(got) != string(tt.wantData) {
			t.Errorf("%s: sockaddr data % x, want % x", tt.name, got, tt.wantData)
		}
		if sig.Keylen != 4 || string(sig.Key[:5]) != "key!\x00" {
			t.Errorf("%s: key %q (len %d), want \"key!\"", tt.name, sig.Key[:5], sig.Keylen)
		}
	}
}
