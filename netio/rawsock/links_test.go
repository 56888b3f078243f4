package rawsock

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/internal/netnslab"
	"github.com/switchyard-lb/switchyard/netio"
)

// linkEvents collects WatchLinks calls.
type linkEvents chan netio.Interface

func (e linkEvents) next(t *testing.T, what string, match func(netio.Interface) bool) netio.Interface {
	t.Helper()
	deadline := time.After(10 * time.Second)
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

// logRecorder is a slog.Handler that keeps the messages it is given.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

func (r *logRecorder) has(msg string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.msgs, msg)
}

// TestWatchLinksSurvivesOverflow overflows the watch's rtnetlink socket with a burst of address
// changes while f is blocked: notifications are lost, the watch resubscribes, and f still ends
// up seeing the final state.
func TestWatchLinksSurvivesOverflow(t *testing.T) {
	lab := netnslab.New(t)
	a, b := lab.Namespace("a"), lab.Namespace("b")
	lab.Veth(a, "eth0", b, "eth0")
	logs := &logRecorder{}
	node, err := New(Options{NetNS: a.Path(), LinkWatchBufferSize: 1, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()

	release := make(chan struct{})
	events := make(linkEvents, 10000)
	stop := node.WatchLinks(func(ifi netio.Interface) {
		<-release
		events <- ifi
	})
	defer stop()

	const burst = 500
	var batch strings.Builder
	for i := range burst {
		fmt.Fprintf(&batch, "addr add 10.78.%d.%d/32 dev eth0\n", i/250, i%250+1)
	}
	if _, err := a.IP("-batch", writeTemp(t, batch.String())); err != nil {
		t.Fatal(err)
	}
	close(release)

	events.next(t, "eth0 with all addresses", func(ifi netio.Interface) bool {
		n := 0
		for _, p := range ifi.Addrs {
			if p.Addr().Is4() && p.Bits() == 32 {
				n++
			}
		}
		return ifi.Name == "eth0" && n == burst
	})
	eventually(t, 3*time.Second, func() string {
		if !logs.has("rawsock: watch links: rtnetlink subscription lost, resubscribing") {
			return "the burst did not overflow the subscription (the test proves nothing)"
		}
		return ""
	})
	// The new subscription works.
	a.MustIP("link", "set", "eth0", "down")
	events.next(t, "eth0 down after resubscribing", func(ifi netio.Interface) bool { return ifi.Name == "eth0" && !ifi.Up })
}

// TestLinkWatchResync checks the comparison a watch makes after resubscribing: every change
// made while it was not subscribed is reported once, a deleted interface as down.
func TestLinkWatchResync(t *testing.T) {
	lab := netnslab.New(t)
	a, b := lab.Namespace("a"), lab.Namespace("b")
	lab.Veth(a, "eth0", b, "eth0")
	lab.Veth(a, "eth1", b, "eth1")
	lab.Veth(a, "eth2", b, "eth2")
	node, _ := openNode(t, a)

	var got []netio.Interface
	w := &linkWatch{node: node, notify: func(ifi netio.Interface) { got = append(got, ifi) }}
	w.known = w.snapshot()
	eth0, eth1 := w.byName(t, "eth0"), w.byName(t, "eth1")

	// Unseen by any subscription: eth0 goes down, eth1 gains an address, eth2 disappears.
	a.MustIP("link", "set", "eth0", "down")
	a.AddAddr("eth1", "10.77.1.1/24")
	a.MustIP("link", "del", "eth2")
	w.resync()

	names := make([]string, 0, len(got))
	for _, ifi := range got {
		names = append(names, fmt.Sprintf("%s up=%v", ifi.Name, ifi.Up))
	}
	if want := []string{"eth0 up=false", "eth1 up=true", "eth2 up=false"}; !slices.Equal(names, want) {
		t.Fatalf("resync reported %q, want %q", names, want)
	}
	if got[0].Index != eth0.Index || !slices.Contains(got[1].Addrs, netip.MustParsePrefix("10.77.1.1/24")) || got[1].Index != eth1.Index || len(got[2].Addrs) != 0 {
		t.Errorf("resync reported %+v", got)
	}

	// A second resync with nothing changed reports nothing.
	got = nil
	w.resync()
	if len(got) != 0 {
		t.Errorf("resync without changes reported %+v", got)
	}
}

func (w *linkWatch) byName(t *testing.T, name string) netio.Interface {
	t.Helper()
	for _, ifi := range w.known {
		if ifi.Name == name {
			return ifi
		}
	}
	t.Fatalf("no %s in snapshot", name)
	return netio.Interface{}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
