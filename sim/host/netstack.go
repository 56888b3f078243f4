package host

import (
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/switchyard-lb/switchyard/core/clock"
	"github.com/switchyard-lb/switchyard/netio/netstack"
)

// The simulated machine as netio/netstack sees it. netstack defines the small interfaces it
// needs and stays below the simulator; a Host implements them through netstackHost, and each
// NIC implements netstack.NIC itself.

var (
	_ netstack.Host = netstackHost{}
	_ netstack.NIC  = (*NIC)(nil)
)

// Netstack returns the host's view for netstack.New.
func (h *Host) Netstack() netstack.Host { return netstackHost{h} }

// FromNode returns the Host behind a netstack.Node built on Host.Netstack, and false for a
// node built on anything else.
func FromNode(node *netstack.Node) (*Host, bool) {
	v, ok := node.Host().(netstackHost)
	return v.h, ok
}

// netstackHost adapts a Host to netstack.Host: netstack wants the clock as a clock.Clock and
// the interfaces as netstack.NICs.
type netstackHost struct{ h *Host }

func (v netstackHost) Name() string        { return v.h.Name() }
func (v netstackHost) Clock() clock.Clock  { return v.h.Clock() }
func (v netstackHost) PoweredOff() bool    { return v.h.Closed() }
func (v netstackHost) Stack() *stack.Stack { return v.h.Stack() }
func (v netstackHost) NICs() []netstack.NIC {
	out := make([]netstack.NIC, len(v.h.nics))
	for i, n := range v.h.nics {
		out[i] = n
	}
	return out
}
