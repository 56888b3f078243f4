package speaker

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/core/liveness"
)

// FuzzHandleFrame feeds arbitrary frames to the owner of an IPv4 and an IPv6 VIP: it must
// never panic, must answer only from its own MAC on the interface the frame came in on, and a
// frame that is not an authentic heartbeat must not change what it owns.
func FuzzHandleFrame(f *testing.F) {
	client := net.HardwareAddr{0x02, 0xcc, 0, 0, 0, 1}
	f.Add(arpRequest(client, netip.MustParseAddr("10.0.0.100"), vip4))
	hb := liveness.Heartbeat{Type: liveness.TypeLeave, NodeName: "node-a", Incarnation: 1, Sequence: 99, Interval: 100 * time.Millisecond}
	leave, _ := hb.MarshalFrame(macOf("node-a"), []byte("k"))
	f.Add(leave)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x86, 0xdd})
	f.Fuzz(func(t *testing.T, frame []byte) {
		l := newLAN(t, "node-a", "node-b")
		l.setServices([]Service{web("10.0.0.200", "fd00::200")})
		l.runUntil(time.Second)
		sp := l.speakers["node-b"]
		owned := sp.Owned()
		if len(owned) != 2 {
			t.Fatalf("node-b owns %v before the frame, want both VIPs", owned)
		}
		out := sp.HandleFrame("eth0", frame, l.now)
		for _, tx := range out.Frames {
			if tx.Interface != "eth0" || len(tx.Frame) < 14 || !bytes.Equal(tx.Frame[6:12], macOf("node-b")) {
				t.Fatalf("answer on %s from %x, want eth0 from node-b's MAC", tx.Interface, tx.Frame)
			}
		}
		if _, _, err := liveness.ParseFrame(frame, []byte("k")); err != nil {
			if got := sp.Owned(); len(got) != 2 || len(out.Events) != 0 {
				t.Fatalf("a frame that is no heartbeat changed ownership to %v, events %v", got, out.Events)
			}
		}
	})
}
