package rawsock

import (
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/internal/netnslab"
	"github.com/switchyard-lb/switchyard/netio"
)

// BenchmarkVethFrames sends 64-byte heartbeat frames from a port in one namespace to a port in
// another over a veth pair and reports the rates: frames/s sent, frames/s delivered to the
// receiving handler, and the fraction the receiving socket dropped.
func BenchmarkVethFrames(b *testing.B) {
	lab := netnslab.New(b)
	na, nb := lab.Namespace("a"), lab.Namespace("b")
	lab.Veth(na, "eth0", nb, "eth0")
	sender, err := New(Options{NetNS: na.Path()})
	if err != nil {
		b.Fatal(err)
	}
	defer sender.Close()
	receiver, err := New(Options{NetNS: nb.Path()})
	if err != nil {
		b.Fatal(err)
	}
	defer receiver.Close()

	var delivered atomic.Uint64
	rx, err := receiver.OpenPort("eth0", netio.PortConfig{EtherTypes: []uint16{netio.EtherTypeHeartbeat}, Handler: func(netio.Frame) { delivered.Add(1) }})
	if err != nil {
		b.Fatal(err)
	}
	tx, err := sender.OpenPort("eth0", netio.PortConfig{EtherTypes: []uint16{netio.EtherTypeHeartbeat}, Handler: func(netio.Frame) {}})
	if err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, 64)
	copy(frame, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:], net.HardwareAddr{0x02, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(frame[12:], netio.EtherTypeHeartbeat)

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		// A full queue is an error, not a wait: retry, as a sender that must not lose the
		// frame would.
		for tx.Send(frame) != nil {
		}
	}
	sendTime := time.Since(start)
	b.StopTimer()

	rxPort := rx.(*Port)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		st := rxPort.Stats()
		if st.FramesReceived+st.KernelDrops >= uint64(b.N) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	st := rxPort.Stats()
	b.ReportMetric(float64(b.N)/sendTime.Seconds(), "sent-frames/s")
	b.ReportMetric(float64(delivered.Load())/elapsed.Seconds(), "delivered-frames/s")
	b.ReportMetric(float64(st.KernelDrops)/float64(b.N), "dropped/frame")
}

// BenchmarkSend measures the cost of Port.Send alone, into a veth whose far end nobody reads.
func BenchmarkSend(b *testing.B) {
	netnslab.RequireRoot(b)
	lab := netnslab.New(b)
	na, nb := lab.Namespace("a"), lab.Namespace("b")
	lab.Veth(na, "eth0", nb, "eth0")
	n, err := New(Options{NetNS: na.Path()})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	p, err := n.OpenPort("eth0", netio.PortConfig{EtherTypes: []uint16{netio.EtherTypeHeartbeat}, Handler: func(netio.Frame) {}})
	if err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, 42) // padded to 60 by Send, like an ARP reply
	copy(frame, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	binary.BigEndian.PutUint16(frame[12:], netio.EtherTypeARP)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for p.Send(frame) != nil {
		}
	}
}
