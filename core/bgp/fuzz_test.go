package bgp

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// recorder is an actions implementation that records what the FSM asks for.
type recorder struct {
	t      testing.TB
	sent   []*bgp.BGPMessage
	closed bool
	armed  [numTimers]time.Duration
}

func (r *recorder) send(b []byte, msgType uint8) {
	if r.closed {
		r.t.Fatalf("message type %d sent after close", msgType)
	}
	m, err := bgp.ParseBGPMessage(b)
	if err != nil {
		r.t.Fatalf("FSM sent a message gobgp cannot decode (type %d): %v", msgType, err)
	}
	r.sent = append(r.sent, m)
}
func (r *recorder) arm(t timerKind, d time.Duration) { r.armed[t] = d }
func (r *recorder) close(error)                      { r.closed = true }

// newTestFSM returns an FSM on a fresh connection, with one route to announce.
func newTestFSM(tb testing.TB) (*fsm, *recorder) {
	rec := &recorder{t: tb}
	rib := newRIBOut()
	rib.apply(Diff{Announce: []Route{{Prefix: netip.MustParsePrefix("198.51.100.1/32")}}})
	f := &fsm{peer: testPeerConfig(), rib: rib, stats: &Stats{}, out: rec, log: quietLog,
		open: openParams{myASN: 64512, holdTime: 90 * time.Second, ipv4: true, ipv6: true}, keepalive: 30 * time.Second}
	f.connected(netip.MustParseAddrPort("192.0.2.10:40000"))
	return f, rec
}

// feed runs the bytes of a peer's stream through the framer into the FSM.
func feed(f *fsm, stream []byte) {
	r := bytes.NewReader(stream)
	for f.state != StateIdle {
		hdr, body, err := readMessage(r)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			// The stream ended mid-message: that is the connection closing, not a fault.
			return
		}
		f.received(hdr, body, err)
		if err != nil {
			return
		}
	}
}

func mustSerialize(tb testing.TB, msgs ...*bgp.BGPMessage) []byte {
	var out []byte
	for _, m := range msgs {
		b, err := m.Serialize()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// FuzzSessionInput feeds arbitrary bytes from the peer into a session, either answering its OPEN
// or after the session is established. The session must never panic, must only send messages
// gobgp can decode, and whenever it resets it must have sent a NOTIFICATION last (unless the
// peer's own NOTIFICATION ended it).
func FuzzSessionInput(f *testing.F) {
	handshake := mustSerialize(f, peerOpen(64513, 90, bgp.RF_IPv4_UC, bgp.RF_IPv6_UC), bgp.NewBGPKeepAliveMessage())
	f.Add(false, handshake)
	f.Add(true, mustSerialize(f, bgp.NewBGPKeepAliveMessage(), bgp.NewEndOfRib(bgp.RF_IPv6_UC)))
	f.Add(true, mustSerialize(f, bgp.NewBGPRouteRefreshMessage(1, 0, 1)))
	f.Add(true, mustSerialize(f, bgp.NewBGPUpdateMessage(nil, []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(0), bgp.NewPathAttributeNextHop("192.0.2.1"),
		bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(2, []uint32{64513})}),
		bgp.NewPathAttributeCommunities([]uint32{1}),
	}, []*bgp.IPAddrPrefix{bgp.NewIPAddrPrefix(24, "203.0.113.0")})))
	f.Add(true, mustSerialize(f, bgp.NewBGPNotificationMessage(6, 2, nil)))
	f.Add(false, append(hdrBytes(19, 9), 1, 2, 3))
	f.Fuzz(func(t *testing.T, established bool, stream []byte) {
		fsm, rec := newTestFSM(t)
		if established {
			feed(fsm, handshake)
			if fsm.state != StateEstablished {
				t.Fatalf("handshake left state %v", fsm.state)
			}
		}
		feed(fsm, stream)
		if fsm.state != StateIdle {
			if rec.closed {
				t.Fatalf("closed but state %v", fsm.state)
			}
			return
		}
		if !rec.closed {
			t.Fatal("state Idle without closing the connection")
		}
		if fsm.stats.NotificationsReceived > 0 {
			return
		}
		last := rec.sent[len(rec.sent)-1]
		if _, ok := last.Body.(*bgp.BGPNotification); !ok {
			t.Fatalf("session reset without a NOTIFICATION; last sent: %s", describe(last))
		}
	})
}
