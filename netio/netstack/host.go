package netstack

import (
	"errors"
	"net"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/switchyard-lb/switchyard/core/clock"
)

// ErrPoweredOff is returned by a Node, its ports and a NIC's SendRaw once the simulated host
// behind them is powered off.
var ErrPoweredOff = errors.New("host is powered off")

// Host is what a Node needs from the simulated machine it runs on. The simulator implements it
// (package sim/host); netstack stays below the simulator and sees only this view.
type Host interface {
	// Name names the host in errors.
	Name() string
	// Clock is the host's virtual clock; its timers stop firing when the host is powered off.
	Clock() clock.Clock
	// PoweredOff reports whether the host has been powered off. It never comes back on: a
	// power cycle builds a new Host.
	PoweredOff() bool
	// Stack is the host's gVisor stack, which carries the Node's TCP and UDP.
	Stack() *stack.Stack
	// NICs returns the host's interfaces in index order.
	NICs() []NIC
}

// NIC is one interface of a Host.
type NIC interface {
	// ID is the interface's gVisor NIC ID, which is also its interface index.
	ID() tcpip.NICID
	// Name is the interface name, e.g. "eth0".
	Name() string
	// MAC is the interface's hardware address.
	MAC() net.HardwareAddr
	// Addrs are the interface's addresses: the configured ones, then the IPv6 link-local one.
	Addrs() []netip.Prefix
	// LinkUp reports whether the cable's link is up.
	LinkUp() bool
	// AddTap calls f with every frame that reaches the interface from the wire, before the
	// interface's filters, on the simulation driver's goroutine, until remove is called.
	AddTap(f func(frame []byte)) (remove func())
	// SendRaw puts a whole Ethernet frame on the wire, bypassing the stack, as an AF_PACKET
	// socket does. It returns ErrPoweredOff once the host is off.
	SendRaw(frame []byte) error
}

// nicNamed returns h's interface named name, or nil.
func nicNamed(h Host, name string) NIC {
	for _, n := range h.NICs() {
		if n.Name() == name {
			return n
		}
	}
	return nil
}
