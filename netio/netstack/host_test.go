package netstack_test

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/switchyard-lb/switchyard/core/clock"
	"github.com/switchyard-lb/switchyard/netio"
	"github.com/switchyard-lb/switchyard/netio/netstack"
)

// fakeHost is a netstack.Host without a simulator: it shows that the raw-frame side of a Node
// needs nothing but the Host and NIC interfaces.
type fakeHost struct {
	off  bool
	nics []netstack.NIC
}

func (h *fakeHost) Name() string         { return "fake" }
func (h *fakeHost) Clock() clock.Clock   { return clock.Wall{} }
func (h *fakeHost) PoweredOff() bool     { return h.off }
func (h *fakeHost) Stack() *stack.Stack  { return nil }
func (h *fakeHost) NICs() []netstack.NIC { return h.nics }

type fakeNIC struct {
	host *fakeHost
	up   bool
	taps []func([]byte)
	sent [][]byte
}

func (n *fakeNIC) ID() tcpip.NICID       { return 3 }
func (n *fakeNIC) Name() string          { return "eth9" }
func (n *fakeNIC) MAC() net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, 9} }
func (n *fakeNIC) Addrs() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")} }
func (n *fakeNIC) LinkUp() bool          { return n.up }
func (n *fakeNIC) AddTap(f func([]byte)) func() {
	n.taps = append(n.taps, f)
	return func() { n.taps = nil }
}
func (n *fakeNIC) SendRaw(frame []byte) error {
	if n.host.off {
		return netstack.ErrPoweredOff
	}
	n.sent = append(n.sent, slices.Clone(frame))
	return nil
}

func TestNodeOnFakeHost(t *testing.T) {
	h := &fakeHost{}
	nic := &fakeNIC{host: h, up: true}
	h.nics = []netstack.NIC{nic}
	node := netstack.New(h)

	ifs, err := node.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	want := netio.Interface{Index: 3, Name: "eth9", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 9},
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")}, Up: true}
	if len(ifs) != 1 || ifs[0].Index != want.Index || ifs[0].Name != want.Name ||
		ifs[0].MAC.String() != want.MAC.String() || !slices.Equal(ifs[0].Addrs, want.Addrs) || ifs[0].Up != want.Up {
		t.Fatalf("Interfaces() = %+v, want [%+v]", ifs, want)
	}
	if _, err := node.OpenPort("eth0", netio.PortConfig{EtherTypes: []uint16{netio.EtherTypeARP}, Handler: func(netio.Frame) {}}); err == nil {
		t.Error("OpenPort on a missing interface succeeded")
	}

	var got [][]byte
	p, err := node.OpenPort("eth9", netio.PortConfig{EtherTypes: []uint16{netio.EtherTypeARP},
		Handler: func(f netio.Frame) { got = append(got, slices.Clone(f.Data)) }})
	if err != nil {
		t.Fatal(err)
	}
	arp := append(make([]byte, 12), 0x08, 0x06, 1, 2, 3)
	ipv4 := append(make([]byte, 12), 0x08, 0x00, 1, 2, 3)
	for _, tap := range nic.taps {
		tap(ipv4)
		tap(arp)
	}
	if len(got) != 1 || !slices.Equal(got[0], arp) {
		t.Errorf("port received %x, want only the ARP frame %x", got, arp)
	}
	if err := p.Send(arp); err != nil {
		t.Fatal(err)
	}
	if len(nic.sent) != 1 || !slices.Equal(nic.sent[0], arp) {
		t.Errorf("NIC sent %x, want %x", nic.sent, arp)
	}

	// A stopped NIC link shows in the interface state; a powered-off host fails everything.
	nic.up = false
	if ifs, _ := node.Interfaces(); ifs[0].Up {
		t.Error("interface is up while its link is down")
	}
	h.off = true
	if err := p.Send(arp); !errors.Is(err, netstack.ErrPoweredOff) {
		t.Errorf("Send on a powered-off host: %v, want ErrPoweredOff", err)
	}
	if _, err := node.Interfaces(); !errors.Is(err, netstack.ErrPoweredOff) {
		t.Errorf("Interfaces on a powered-off host: %v, want ErrPoweredOff", err)
	}
	if _, err := node.DialTCP(t.Context(), netip.AddrPort{}, netip.MustParseAddrPort("10.9.0.2:80"), netio.TCPOptions{}); !errors.Is(err, netstack.ErrPoweredOff) {
		t.Errorf("DialTCP on a powered-off host: %v, want ErrPoweredOff", err)
	}
}
