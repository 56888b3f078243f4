package rawsock

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/switchyard-lb/switchyard/netio"
)

// maxMD5KeyLen is TCP_MD5SIG_MAXKEYLEN, the longest key Linux accepts.
const maxMD5KeyLen = 80

// DialTCP connects from local (its address may be invalid to let the kernel choose, its port 0)
// to remote on kernel TCP. opts.TTL, opts.MinTTL and opts.MD5Key are set on the socket before
// the SYN is sent.
func (n *Node) DialTCP(ctx context.Context, local, remote netip.AddrPort, opts netio.TCPOptions) (net.Conn, error) {
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	if !remote.Addr().IsValid() {
		return nil, errors.New("rawsock: dial TCP: no remote address")
	}
	if remote.Port() == 0 {
		return nil, fmt.Errorf("rawsock: dial TCP %s: remote port 0", remote)
	}
	if local.Addr().IsValid() && local.Addr().Is4() != remote.Addr().Is4() {
		return nil, fmt.Errorf("rawsock: dial TCP %s: local address %s is of another IP family", remote, local.Addr())
	}
	if err := checkTCPOptions(opts); err != nil {
		return nil, fmt.Errorf("rawsock: dial TCP %s: %w", remote, err)
	}
	var md5 map[netip.Addr]string
	if opts.MD5Key != "" {
		md5 = map[netip.Addr]string{remote.Addr(): opts.MD5Key}
	}
	network, family := "tcp6", unix.AF_INET6
	if remote.Addr().Is4() {
		network, family = "tcp4", unix.AF_INET
	}
	d := net.Dialer{Control: socketOptions(family, opts.TTL, opts.MinTTL, md5)}
	if local.Addr().IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(local)
	}
	var conn net.Conn
	err := n.inNetNS(func() error {
		var err error
		conn, err = d.DialContext(ctx, network, remote.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rawsock: dial TCP %s: %w", remote, err)
	}
	return conn, nil
}

// ListenTCP listens on local with opts.TTL and opts.MinTTL, which accepted connections inherit,
// and a TCP-MD5 key for each peer in opts.MD5Peers: the kernel then drops every segment from
// such a peer that is not signed with its key. opts.MD5Key is ignored.
func (n *Node) ListenTCP(local netip.AddrPort, opts netio.TCPOptions) (net.Listener, error) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	if !local.Addr().IsValid() {
		return nil, errors.New("rawsock: listen TCP: no local address (0.0.0.0 or :: listen on all)")
	}
	opts.MD5Key = ""
	if err := checkTCPOptions(opts); err != nil {
		return nil, fmt.Errorf("rawsock: listen TCP %s: %w", local, err)
	}
	network, family := "tcp6", unix.AF_INET6
	if local.Addr().Is4() {
		network, family = "tcp4", unix.AF_INET
	}
	md5 := make(map[netip.Addr]string, len(opts.MD5Peers))
	for peer, key := range opts.MD5Peers {
		peer = peer.Unmap()
		if peer.Is4() != local.Addr().Is4() {
			return nil, fmt.Errorf("rawsock: listen TCP %s: MD5Peers: peer %s is of another IP family than the listener", local, peer)
		}
		md5[peer] = key
	}
	lc := net.ListenConfig{Control: socketOptions(family, opts.TTL, opts.MinTTL, md5)}
	var l net.Listener
	err := n.inNetNS(func() error {
		var err error
		l, err = lc.Listen(context.Background(), network, local.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rawsock: listen TCP %s: %w", local, err)
	}
	return l, nil
}

func checkTCPOptions(opts netio.TCPOptions) error {
	if opts.TTL < 0 || opts.TTL > 255 {
		return fmt.Errorf("TCPOptions.TTL %d is outside 0..255", opts.TTL)
	}
	if opts.MinTTL < 0 || opts.MinTTL > 255 {
		return fmt.Errorf("TCPOptions.MinTTL %d is outside 0..255", opts.MinTTL)
	}
	if len(opts.MD5Key) > maxMD5KeyLen {
		return fmt.Errorf("TCPOptions.MD5Key is %d bytes long, at most %d are allowed", len(opts.MD5Key), maxMD5KeyLen)
	}
	for _, peer := range slices.SortedFunc(maps.Keys(opts.MD5Peers), netip.Addr.Compare) {
		key := opts.MD5Peers[peer]
		if !peer.IsValid() {
			return errors.New("TCPOptions.MD5Peers: invalid peer address")
		}
		if key == "" {
			return fmt.Errorf("TCPOptions.MD5Peers[%s]: empty key", peer)
		}
		if len(key) > maxMD5KeyLen {
			return fmt.Errorf("TCPOptions.MD5Peers[%s]: key is %d bytes long, at most %d are allowed", peer, len(key), maxMD5KeyLen)
		}
	}
	return nil
}

// socketOptions returns a net.Dialer/net.ListenConfig Control function that sets the TTL (hop
// limit), the minimum TTL accepted (GTSM) and the TCP-MD5 keys on a new socket of family.
func socketOptions(family, ttl, minTTL int, md5 map[netip.Addr]string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var err error
		cerr := c.Control(func(fd uintptr) {
			err = setSocketOptions(int(fd), family, ttl, minTTL, md5)
		})
		return errors.Join(cerr, err)
	}
}

func setSocketOptions(fd, family, ttl, minTTL int, md5 map[netip.Addr]string) error {
	level, ttlOpt, minTTLOpt := unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, unix.IPV6_MINHOPCOUNT
	if family == unix.AF_INET {
		level, ttlOpt, minTTLOpt = unix.IPPROTO_IP, unix.IP_TTL, unix.IP_MINTTL
	}
	if ttl != 0 {
		if err := unix.SetsockoptInt(fd, level, ttlOpt, ttl); err != nil {
			return fmt.Errorf("set TTL %d: %w", ttl, err)
		}
	}
	if minTTL != 0 {
		if err := unix.SetsockoptInt(fd, level, minTTLOpt, minTTL); err != nil {
			return fmt.Errorf("set minimum TTL %d: %w", minTTL, err)
		}
	}
	for _, peer := range slices.SortedFunc(maps.Keys(md5), netip.Addr.Compare) {
		sig := md5Sig(family, peer, md5[peer])
		if err := unix.SetsockoptTCPMD5Sig(fd, unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig); err != nil {
			if errors.Is(err, unix.ENOPROTOOPT) {
				return fmt.Errorf("TCP-MD5 key for %s: kernel without TCP-MD5 support: %w", peer, netio.ErrUnsupported)
			}
			return fmt.Errorf("TCP-MD5 key for %s: %w", peer, err)
		}
	}
	return nil
}

// md5Sig builds the struct tcp_md5sig that installs key for peer on a socket of family. The
// peer's address is a struct sockaddr_in or sockaddr_in6 (port 0) inside a sockaddr_storage;
// an IPv4 peer of an IPv6 socket is written as an IPv4-mapped address, which the kernel files
// under IPv4.
func md5Sig(family int, peer netip.Addr, key string) unix.TCPMD5Sig {
	var sig unix.TCPMD5Sig
	sig.Addr.Family = uint16(family)
	if family == unix.AF_INET {
		a := peer.As4()
		// sockaddr_in: port (2 bytes), then the address.
		copy(sig.Addr.Data[2:6], a[:])
	} else {
		a := peer.As16()
		// sockaddr_in6: port (2), flow info (4), then the address.
		copy(sig.Addr.Data[6:22], a[:])
	}
	sig.Keylen = uint16(len(key))
	copy(sig.Key[:], key)
	return sig
}
