package netstack_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/netio"
	"github.com/switchyard-lb/switchyard/sim"
)

func TestMain(m *testing.M) {
	runtime.GOMAXPROCS(1)
	os.Exit(m.Run())
}

func twoNodes(t *testing.T) (*sim.Network, netio.Node, netio.Node) {
	t.Helper()
	topo := sim.Topology{
		Segments: []sim.Segment{{Name: "lan"}},
		Nodes: []sim.Host{
			{Name: "a", Interfaces: []sim.Interface{{Name: "eth0", Segment: "lan", MAC: "02:00:00:00:00:0a",
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fd00::1/64")}}}},
			{Name: "b", Interfaces: []sim.Interface{{Name: "eth0", Segment: "lan", MAC: "02:00:00:00:00:0b",
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/24")}}}},
		},
	}
	n, err := sim.New(topo, sim.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	a, err := n.NetIO("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.NetIO("b")
	if err != nil {
		t.Fatal(err)
	}
	return n, a, b
}

func TestInterfacesAndLinks(t *testing.T) {
	n, a, _ := twoNodes(t)
	ifs, err := a.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	want := netio.Interface{
		Index: 1, Name: "eth0", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x0a}, Up: true,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fd00::1/64"),
			netip.MustParsePrefix("fe80::ff:fe00:a/64")},
	}
	if len(ifs) != 1 || ifs[0].Index != want.Index || ifs[0].Name != want.Name || ifs[0].MAC.String() != want.MAC.String() ||
		ifs[0].Up != want.Up || !slices.Equal(ifs[0].Addrs, want.Addrs) {
		t.Fatalf("Interfaces() = %+v, want [%+v]", ifs, want)
	}

	var seen []bool
	stop := a.WatchLinks(func(i netio.Interface) { seen = append(seen, i.Up) })
	if err := n.SetLink("a", "eth0", false); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 0 {
		t.Fatal("watcher called inline")
	}
	n.RunFor(time.Millisecond)
	if err := n.SetLink("a", "eth0", true); err != nil {
		t.Fatal(err)
	}
	n.RunFor(time.Millisecond)
	stop()
	if err := n.SetLink("a", "eth0", false); err != nil {
		t.Fatal(err)
	}
	n.RunFor(time.Millisecond)
	if want := []bool{false, true}; !slices.Equal(seen, want) {
		t.Errorf("watcher saw %v, want %v", seen, want)
	}
}

func frame(dst net.HardwareAddr, src net.HardwareAddr, etype uint16) []byte {
	f := make([]byte, 60)
	copy(f, dst)
	copy(f[6:], src)
	f[12], f[13] = byte(etype>>8), byte(etype)
	return f
}

func TestPortFilters(t *testing.T) {
	n, a, b := twoNodes(t)
	var got []string
	pa, err := a.OpenPort("eth0", netio.PortConfig{
		EtherTypes: []uint16{netio.EtherTypeHeartbeat, netio.EtherTypeIPv6},
		Handler:    func(f netio.Frame) { got = append(got, net.HardwareAddr(f.Data[0:6]).String()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.OpenPort("eth0", netio.PortConfig{EtherTypes: []uint16{netio.EtherTypeARP}, Handler: func(netio.Frame) {}})
	if err != nil {
		t.Fatal(err)
	}
	srcB := net.HardwareAddr{2, 0, 0, 0, 0, 0x0b}
	group := netip.MustParseAddr("ff02::1:ff00:200")
	groupMAC := net.HardwareAddr{0x33, 0x33, 0xff, 0, 2, 0}
	send := func(dst net.HardwareAddr, etype uint16) {
		t.Helper()
		if err := pb.Send(frame(dst, srcB, etype)); err != nil {
			t.Fatal(err)
		}
		n.RunFor(time.Millisecond)
	}
	send(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, netio.EtherTypeHeartbeat) // delivered
	send(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, netio.EtherTypeARP)       // not selected
	send(groupMAC, netio.EtherTypeIPv6)                                                  // not joined
	if err := pa.JoinGroup(group); err != nil {
		t.Fatal(err)
	}
	if err := pa.JoinGroup(group); err != nil {
		t.Fatal(err)
	}
	send(groupMAC, netio.EtherTypeIPv6) // joined twice
	if err := pa.LeaveGroup(group); err != nil {
		t.Fatal(err)
	}
	send(groupMAC, netio.EtherTypeIPv6) // still joined once
	if err := pa.LeaveGroup(group); err != nil {
		t.Fatal(err)
	}
	send(groupMAC, netio.EtherTypeIPv6)                                    // left
	send(net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 1}, netio.EtherTypeIPv6) // own solicited-node group
	if err := pa.LeaveGroup(group); err == nil {
		t.Error("LeaveGroup of a group not joined succeeded")
	}
	if err := pa.Close(); err != nil {
		t.Fatal(err)
	}
	send(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, netio.EtherTypeHeartbeat) // closed
	want := []string{"ff:ff:ff:ff:ff:ff", "33:33:ff:00:02:00", "33:33:ff:00:02:00", "33:33:ff:00:00:01"}
	if !slices.Equal(got, want) {
		t.Errorf("port a received %q, want %q", got, want)
	}
	if err := pa.Send(frame(srcB, srcB, netio.EtherTypeHeartbeat)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close = %v, want net.ErrClosed", err)
	}
	if err := pb.Send(make([]byte, 10)); err == nil {
		t.Error("Send of a 10-byte frame succeeded")
	}
	if _, err := a.OpenPort("eth9", netio.PortConfig{EtherTypes: []uint16{1}, Handler: func(netio.Frame) {}}); err == nil {
		t.Error("OpenPort on a missing interface succeeded")
	}
}

// TestTCP runs a dial, a listener and a read with a virtual deadline on goroutines of their
// own, which the driver waits for while it runs the network.
func TestTCP(t *testing.T) {
	n, a, b := twoNodes(t)
	ln, err := b.ListenTCP(netip.MustParseAddrPort("0.0.0.0:179"), netio.TCPOptions{TTL: 255})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		line string
		err  error
	}
	served := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- result{err: err}
			return
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			_, err = c.Write([]byte("pong from " + c.LocalAddr().String() + "\n"))
		}
		served <- result{line: line, err: err}
	}()
	dialed := make(chan result, 1)
	timedOut := make(chan error, 1)
	go func() {
		c, err := a.DialTCP(context.Background(), netip.MustParseAddrPort("10.0.0.1:0"), netip.MustParseAddrPort("10.0.0.2:179"), netio.TCPOptions{TTL: 1})
		if err != nil {
			dialed <- result{err: err}
			return
		}
		if _, err := c.Write([]byte("ping\n")); err != nil {
			dialed <- result{err: err}
			return
		}
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		dialed <- result{line: line, err: err}
		// Nothing more comes: a read with a virtual deadline 2 s ahead must time out then.
		if err := c.SetReadDeadline(a.Clock().Now().Add(2 * time.Second)); err != nil {
			timedOut <- err
			return
		}
		_, err = r.ReadByte()
		timedOut <- err
	}()
	n.RunFor(100 * time.Millisecond)
	for i, want := range []string{"ping\n", "pong from 10.0.0.2:179\n"} {
		select {
		case r := <-[]chan result{served, dialed}[i]:
			if r.err != nil || r.line != want {
				t.Fatalf("got %q, %v; want %q", r.line, r.err, want)
			}
		default:
			t.Fatal("no result after 100 ms of virtual time")
		}
	}
	select {
	case err := <-timedOut:
		t.Fatalf("read returned %v before its virtual deadline", err)
	default:
	}
	n.RunFor(2 * time.Second)
	select {
	case err := <-timedOut:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("read after the deadline = %v, want a timeout", err)
		}
	default:
		t.Error("read did not time out at its virtual deadline")
	}

	if _, err := a.DialTCP(context.Background(), netip.AddrPort{}, netip.MustParseAddrPort("10.0.0.2:179"), netio.TCPOptions{MD5Key: "k"}); !errors.Is(err, netio.ErrUnsupported) {
		t.Errorf("DialTCP with MD5 = %v, want ErrUnsupported", err)
	}
	if _, err := b.ListenTCP(netip.MustParseAddrPort("0.0.0.0:180"), netio.TCPOptions{MD5Peers: map[netip.Addr]string{netip.MustParseAddr("10.0.0.1"): "k"}}); !errors.Is(err, netio.ErrUnsupported) {
		t.Errorf("ListenTCP with MD5 peers = %v, want ErrUnsupported", err)
	}
}

// TestPowerOffBreaksConnections: a reader blocked on a connection of a node that powers off
// gets an error, and the dead node refuses new work.
func TestPowerOffBreaksConnections(t *testing.T) {
	n, a, b := twoNodes(t)
	ln, err := b.ListenTCP(netip.MustParseAddrPort("10.0.0.2:179"), netio.TCPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			_, _ = c.Write([]byte("hello\n"))
		}
	}()
	readErr := make(chan error, 1)
	go func() {
		c, err := a.DialTCP(context.Background(), netip.AddrPort{}, netip.MustParseAddrPort("10.0.0.2:179"), netio.TCPOptions{})
		if err != nil {
			readErr <- err
			return
		}
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			readErr <- err
			return
		}
		_, err = r.ReadByte() // blocks until the node dies
		readErr <- err
	}()
	n.RunFor(100 * time.Millisecond)
	select {
	case err := <-readErr:
		t.Fatalf("reader ended early: %v", err)
	default:
	}
	if err := n.PowerOff("a"); err != nil {
		t.Fatal(err)
	}
	n.RunFor(time.Millisecond)
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("read on a powered-off node returned no error")
		}
	default:
		t.Error("reader still blocked after power-off")
	}
	if _, err := a.Interfaces(); err == nil {
		t.Error("Interfaces on a powered-off node succeeded")
	}
	if _, err := a.DialTCP(context.Background(), netip.AddrPort{}, netip.MustParseAddrPort("10.0.0.2:179"), netio.TCPOptions{}); err == nil {
		t.Error("DialTCP on a powered-off node succeeded")
	}
}
