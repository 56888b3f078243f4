package rawsock

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchyard-lb/switchyard/netio"
)

// Bounds of the wait before a lost rtnetlink subscription is opened again.
const (
	minResubscribeDelay = 100 * time.Millisecond
	maxResubscribeDelay = 5 * time.Second
)

// WatchLinks calls f whenever an interface's link state, name, MAC or addresses change. A deleted
// interface is reported once with Up false and no addresses. Calls come from one goroutine per
// watch, one at a time.
//
// rtnetlink only says that something changed, and its notifications are lost when the socket's
// queue overflows. So the watch re-reads the changed interface and reports it only when the
// result differs from what f last saw; when the subscription fails it is opened again and every
// interface compared, so no change is ever missed for good.
//
// stop ends the watch and waits for a running call of f to return; after stop returns f is not
// called again. stop must not be called from inside f.
func (n *Node) WatchLinks(f func(netio.Interface)) (stop func()) {
	w := &linkWatch{node: n, notify: f, done: make(chan struct{}), exited: make(chan struct{})}
	sub, err := w.subscribe()
	if err != nil {
		n.log.Error("rawsock: watch links: subscribe failed, retrying", "err", err)
	}
	// The snapshot is taken after subscribing, so a change between the two is either in the
	// snapshot or still queued (and then found equal to the snapshot).
	w.known = w.snapshot()
	go w.run(sub)
	var once sync.Once
	return func() {
		once.Do(func() {
			close(w.done)
			<-w.exited
		})
	}
}

// linkWatch is one WatchLinks call.
type linkWatch struct {
	node   *Node
	notify func(netio.Interface)
	done   chan struct{} // closed by stop
	exited chan struct{} // closed when run returns

	known map[int]netio.Interface // what notify has last seen (or the snapshot) per index
}

// subscription is one pair of rtnetlink subscriptions; closing unsub closes both sockets, after
// which the library closes both channels.
type subscription struct {
	links chan netlink.LinkUpdate
	addrs chan netlink.AddrUpdate
	unsub chan struct{}
}

func (w *linkWatch) subscribe() (*subscription, error) {
	s := &subscription{
		// Large enough to take a burst while notify runs; a full channel only delays the
		// library's reader, which then lets the kernel queue fill.
		links: make(chan netlink.LinkUpdate, 64),
		addrs: make(chan netlink.AddrUpdate, 64),
		unsub: make(chan struct{}),
	}
	ns := w.node.netNS
	errCallback := func(err error) {
		select {
		case <-s.unsub:
			// Closing the socket makes its reader fail; that is no news.
		default:
			w.node.log.Warn("rawsock: rtnetlink subscription", "err", err)
		}
	}
	err := netlink.LinkSubscribeWithOptions(s.links, s.unsub, netlink.LinkSubscribeOptions{
		Namespace: &ns, ErrorCallback: errCallback, ReceiveBufferSize: w.node.watchBuf,
	})
	if err != nil {
		close(s.unsub)
		return nil, err
	}
	err = netlink.AddrSubscribeWithOptions(s.addrs, s.unsub, netlink.AddrSubscribeOptions{
		Namespace: &ns, ErrorCallback: errCallback, ReceiveBufferSize: w.node.watchBuf,
	})
	if err != nil {
		// No reader was started for addrs, so nobody will close it.
		s.addrs = nil
		s.close()
		return nil, err
	}
	return s, nil
}

// close ends the subscription and drains the channels until the library has closed them, so its
// reader goroutines never block on a send nobody takes. A channel already seen closed is nil.
func (s *subscription) close() {
	close(s.unsub)
	if s.links != nil {
		for range s.links {
		}
	}
	if s.addrs != nil {
		for range s.addrs {
		}
	}
}

// snapshot reads every interface; on error it logs and returns nil, and the next change or
// resubscription reads again.
func (w *linkWatch) snapshot() map[int]netio.Interface {
	ifs, err := w.node.Interfaces()
	if err != nil {
		w.node.log.Warn("rawsock: watch links: read interfaces", "err", err)
		return nil
	}
	m := make(map[int]netio.Interface, len(ifs))
	for _, ifi := range ifs {
		m[ifi.Index] = ifi
	}
	return m
}

func (w *linkWatch) run(sub *subscription) {
	defer close(w.exited)
	delay := minResubscribeDelay
	for {
		if sub == nil {
			select {
			case <-w.done:
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, maxResubscribeDelay)
			var err error
			if sub, err = w.subscribe(); err != nil {
				w.node.log.Warn("rawsock: watch links: subscribe failed, retrying", "err", err, "retry_in", delay)
				continue
			}
			// Anything may have changed while unsubscribed: compare everything.
			w.resync()
		}
		select {
		case <-w.done:
			sub.close()
			return
		case u, ok := <-sub.links:
			if !ok {
				sub.links = nil
				w.lost(&sub)
				continue
			}
			delay = minResubscribeDelay
			w.check(int(u.Index))
		case u, ok := <-sub.addrs:
			if !ok {
				sub.addrs = nil
				w.lost(&sub)
				continue
			}
			delay = minResubscribeDelay
			w.check(u.LinkIndex)
		}
	}
}

// lost handles a subscription whose socket failed (typically ENOBUFS after an overflow): it is
// closed and run opens a new one.
func (w *linkWatch) lost(sub **subscription) {
	w.node.log.Warn("rawsock: watch links: rtnetlink subscription lost, resubscribing")
	(*sub).close()
	*sub = nil
}

// check re-reads interface index and reports it when it changed.
func (w *linkWatch) check(index int) {
	link, err := w.node.nl.LinkByIndex(index)
	if err != nil {
		if !errors.As(err, new(netlink.LinkNotFoundError)) {
			w.node.log.Warn("rawsock: watch links: read link", "index", index, "err", err)
			return
		}
		// Deleted: report it once as down without addresses.
		if old, ok := w.known[index]; ok {
			delete(w.known, index)
			if old.Up || len(old.Addrs) > 0 {
				old.Up, old.Addrs = false, nil
				w.notify(old)
			}
		}
		return
	}
	var addrs []netlink.Addr
	for range dumpAttempts {
		if addrs, err = w.node.nl.AddrList(link, netlink.FAMILY_ALL); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		w.node.log.Warn("rawsock: watch links: read addresses", "interface", link.Attrs().Name, "err", err)
		return
	}
	var prefixes []netip.Prefix
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			prefixes = append(prefixes, p)
		}
	}
	w.report(interfaceOf(link.Attrs(), prefixes))
}

// resync compares every interface with what notify last saw and reports the differences in
// index order.
func (w *linkWatch) resync() {
	now := w.snapshot()
	if now == nil {
		return
	}
	indexes := slices.Sorted(maps.Keys(now))
	for index := range w.known {
		if _, ok := now[index]; !ok {
			indexes = append(indexes, index)
		}
	}
	slices.Sort(indexes)
	for _, index := range indexes {
		if ifi, ok := now[index]; ok {
			w.report(ifi)
		} else {
			w.check(index) // gone: reports the deletion
		}
	}
}

func (w *linkWatch) report(ifi netio.Interface) {
	if w.known == nil {
		w.known = make(map[int]netio.Interface)
	}
	if old, ok := w.known[ifi.Index]; ok && sameInterface(old, ifi) {
		return
	}
	w.known[ifi.Index] = ifi
	w.notify(ifi)
}

func sameInterface(a, b netio.Interface) bool {
	return a.Index == b.Index && a.Name == b.Name && a.Up == b.Up &&
		slices.Equal(a.MAC, b.MAC) && slices.Equal(a.Addrs, b.Addrs)
}
