package rawsock

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/internal/netnslab"
	"github.com/switchyard-lb/switchyard/netio"
)

// linkEvents collects WatchLinks calls.
type linkEvents chan netio.Interface

func (e linkEvents) next(t *testing.T, what string, match func(netio.Interface) bool) netio.Interface {
	t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case ifi := <-e:
			if match(ifi) {
				return ifi
			}
		case <-deadline:
			t.Fatalf("no link event: %s", what)
			return netio.Interface{}
		}
	}
}

func TestWatchLinks(t *testing.T) {
	lab := netnslab.New(t)
	a, b := lab.Namespace("a"), lab.Namespace("b")
	lab.Veth(a, "eth0", b, "eth0")
	node, mac := openNode(t, a)

	events := make(linkEvents, 100)
	stop := node.WatchLinks(func(ifi netio.Interface) { events <- ifi })
	defer stop()
	isEth0 := func(ifi netio.Interface) bool { return ifi.Name == "eth0" }

	a.MustIP("link", "set", "eth0", "down")
	down := events.next(t, "eth0 down", func(ifi netio.Interface) bool { return isEth0(ifi) && !ifi.Up })
	if !slices.Equal(down.MAC, mac) {
		t.Errorf("after link down: %+v, want eth0 with MAC %s", down, mac)
	}

	a.MustIP("link", "set", "eth0", "up")
	events.next(t, "eth0 up", func(ifi netio.Interface) bool { return isEth0(ifi) && ifi.Up })

	// Losing carrier (the far end goes down) is down too, though eth0 is still set up.
	b.MustIP("link", "set", "eth0", "down")
	events.next(t, "eth0 without carrier", func(ifi netio.Interface) bool { return isEth0(ifi) && !ifi.Up })
	b.MustIP("link", "set", "eth0", "up")
	events.next(t, "eth0 with carrier", func(ifi netio.Interface) bool { return isEth0(ifi) && ifi.Up })

	a.AddAddr("eth0", "10.77.9.1/24")
	want := netip.MustParsePrefix("10.77.9.1/24")
	events.next(t, "address added", func(ifi netio.Interface) bool { return isEth0(ifi) && slices.Contains(ifi.Addrs, want) })
	a.MustIP("addr", "del", "10.77.9.1/24", "dev", "eth0")
	events.next(t, "address removed", func(ifi netio.Interface) bool { return isEth0(ifi) && !slices.Contains(ifi.Addrs, want) })

	newMAC := net.HardwareAddr{0x02, 0x77, 0, 0, 0, 1}
	a.MustIP("link", "set", "eth0", "address", newMAC.String())
	events.next(t, "MAC changed", func(ifi netio.Interface) bool { return isEth0(ifi) && slices.Equal(ifi.MAC, newMAC) })

	// Deleting the link reports it once as down with no addresses.
	a.MustIP("link", "del", "eth0")
	gone := events.next(t, "eth0 deleted", func(ifi netio.Interface) bool { return isEth0(ifi) && !ifi.Up && len(ifi.Addrs) == 0 })
	if gone.Index == 0 {
		t.Errorf("deleted interface reported without its index: %+v", gone)
	}

	// After stop returns, nothing more is reported.
	stop()
	for len(events) > 0 {
		<-events
	}
	lab.Veth(a, "eth1", b, "eth1")
	time.Sleep(300 * time.Millisecond)
	if len(events) > 0 {
		t.Errorf("event after stop: %+v", <-events)
	}
}

// TestWatchLinksReportsOnlyChanges checks that rtnetlink notifications that change nothing the
// speaker sees (here: a change of the interface's MTU) are not reported.
func TestWatchLinksReportsOnlyChanges(t *testing.T) {
	lab := netnslab.New(t)
	a, b := lab.Namespace("a"), lab.Namespace("b")
	lab.Veth(a, "eth0", b, "eth0")
	node, _ := openNode(t, a)
	// The kernel adds eth0's link-local address shortly after the link comes up; that is a
	// change, so wait for it to be done before watching.
	eventually(t, 3*time.Second, func() string {
		ifs, err := node.Interfaces()
		if err != nil {
			return err.Error()
		}
		for _, ifi := range ifs {
			if ifi.Name == "eth0" && slices.ContainsFunc(ifi.Addrs, func(p netip.Prefix) bool { return p.Addr().IsLinkLocalUnicast() }) {
				return ""
			}
		}
		return "eth0 has no link-local address"
	})
	events := make(linkEvents, 100)
	stop := node.WatchLinks(func(ifi netio.Interface) { events <- ifi })
	defer stop()

	a.MustIP("link", "set", "eth0", "mtu", "1400")
	a.MustIP("link", "set", "eth0", "down") // a real change, as a marker after the MTU change
	first := events.next(t, "eth0 down", func(netio.Interface) bool { return true })
	if first.Name != "eth0" || first.Up {
		t.Errorf("first event %+v, want eth0 down (the MTU change must not be reported)", first)
	}
}
