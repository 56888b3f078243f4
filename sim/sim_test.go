package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-lb/switchyard/netio"
)

// TestMain gives the simulations one P (see the package documentation). Fuzz workers keep
// their Ps: the fuzz targets here do not simulate, and the fuzzing engine crawls on one P.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f == nil || f.Value.String() != "true" {
		runtime.GOMAXPROCS(1)
	}
	os.Exit(m.Run())
}

var (
	vip  = netip.MustParseAddr("10.0.0.200")
	vip6 = netip.MustParseAddr("fd00::200")
)

// lanTopology is one segment with two nodes and a client, dual-stack.
func lanTopology() Topology {
	return Topology{
		Segments: []Segment{{Name: "lan", Subnets: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64")}}},
		Nodes: []Host{
			{Name: "node-a", Interfaces: []Interface{{Name: "eth0", Segment: "lan", Addrs: []netip.Prefix{
				netip.MustParsePrefix("10.0.0.11/24"), netip.MustParsePrefix("fd00::11/64")}}}},
			{Name: "node-b", Interfaces: []Interface{{Name: "eth0", Segment: "lan", Addrs: []netip.Prefix{
				netip.MustParsePrefix("10.0.0.12/24"), netip.MustParsePrefix("fd00::12/64")}}}},
		},
		Clients: []Host{
			{Name: "client", Interfaces: []Interface{{Name: "eth0", Segment: "lan", Addrs: []netip.Prefix{
				netip.MustParsePrefix("10.0.0.100/24"), netip.MustParsePrefix("fd00::100/64")}}}},
		},
	}
}

// announcer is a minimal stand-in for an L2 speaker, driven through netio only: while
// active it answers ARP requests for its VIP and can send a gratuitous ARP.
type announcer struct {
	t      *testing.T
	node   netio.Node
	port   netio.Port
	mac    net.HardwareAddr
	ip     netip.Addr
	active bool
}

func newAnnouncer(t *testing.T, n *Network, node string, ip netip.Addr) *announcer {
	t.Helper()
	nio, err := n.NetIO(node)
	if err != nil {
		t.Fatal(err)
	}
	ifs, err := nio.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	a := &announcer{t: t, node: nio, mac: ifs[0].MAC, ip: ip}
	a.port, err = nio.OpenPort("eth0", netio.PortConfig{EtherTypes: []uint16{netio.EtherTypeARP}, Handler: a.handle})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *announcer) handle(f netio.Frame) {
	arp := header.ARP(f.Data[header.EthernetMinimumSize:])
	if !a.active || !arp.IsValid() || arp.Op() != header.ARPRequest ||
		netip.AddrFrom4([4]byte(arp.ProtocolAddressTarget())) != a.ip {
		return
	}
	_ = a.port.Send(arpFrame(header.ARPReply, a.mac, a.ip, net.HardwareAddr(arp.HardwareAddressSender()),
		netip.AddrFrom4([4]byte(arp.ProtocolAddressSender()))))
}

// garp sends a gratuitous ARP request (sender IP == target IP), as speakers do on takeover.
func (a *announcer) garp() {
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if err := a.port.Send(arpFrame(header.ARPRequest, a.mac, a.ip, bcast, a.ip)); err != nil {
		a.t.Errorf("garp: %v", err)
	}
}

func arpFrame(op header.ARPOp, srcMAC net.HardwareAddr, srcIP netip.Addr, dstMAC net.HardwareAddr, dstIP netip.Addr) []byte {
	f := make([]byte, header.EthernetMinimumSize+header.ARPSize)
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(srcMAC), DstAddr: tcpip.LinkAddress(dstMAC), Type: header.ARPProtocolNumber})
	p := header.ARP(f[header.EthernetMinimumSize:])
	p.SetIPv4OverEthernet()
	p.SetOp(op)
	copy(p.HardwareAddressSender(), srcMAC)
	copy(p.ProtocolAddressSender(), srcIP.AsSlice())
	if op == header.ARPReply {
		copy(p.HardwareAddressTarget(), dstMAC)
	}
	copy(p.ProtocolAddressTarget(), dstIP.AsSlice())
	return f
}

// failoverRun is the determinism scenario: a client connects to a VIP every 100 ms; node-a
// serves it, crashes at 1 s, node-b takes over at 1.3 s with a gratuitous ARP; the client's
// link loses 5% of frames from 1.5 s; node-b is cut off from the client from 2 s to 2.5 s.
type failoverRun struct {
	trace, pcap bytes.Buffer
	attempts    []Attempt
	served      []Served
	stalls      uint64
}

func runFailover(t *testing.T, seed uint64) *failoverRun {
	t.Helper()
	topo := lanTopology()
	var r failoverRun
	n, err := New(topo, Options{Seed: seed, Trace: &r.trace})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.CaptureSegment("lan", &r.pcap); err != nil {
		t.Fatal(err)
	}
	a := newAnnouncer(t, n, "node-a", vip)
	b := newAnnouncer(t, n, "node-b", vip)
	a.active = true
	c, err := n.Client("client")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartProbe(Probe{Kind: ProbeTCP, Target: netip.AddrPortFrom(vip, 80), Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	n.At(time.Second, "crash node-a", func() {
		if err := n.PowerOff("node-a"); err != nil {
			t.Error(err)
		}
	})
	n.At(1300*time.Millisecond, "node-b takes over", func() { b.active = true; b.garp() })
	n.At(1500*time.Millisecond, "lossy client link", func() {
		if err := n.SetImpairment("client", "eth0", Link{Loss: 0.05}); err != nil {
			t.Error(err)
		}
	})
	n.At(2*time.Second, "partition", func() {
		if err := n.Partition("lan", []string{"node-b"}); err != nil {
			t.Error(err)
		}
	})
	n.At(2500*time.Millisecond, "heal", func() {
		if err := n.Heal("lan"); err != nil {
			t.Error(err)
		}
	})
	n.RunFor(3 * time.Second)
	c.StopProbes()
	n.RunFor(time.Second)
	if err := n.Flush(); err != nil {
		t.Fatal(err)
	}
	r.attempts = c.Attempts()
	r.served = n.Served()
	r.stalls = n.Stalls()
	return &r
}

func TestFailoverIsDeterministic(t *testing.T) {
	first := runFailover(t, 1)
	second := runFailover(t, 1)
	if first.stalls != 0 {
		t.Errorf("driver stalled %d times", first.stalls)
	}
	if !bytes.Equal(first.trace.Bytes(), second.trace.Bytes()) {
		t.Errorf("traces of two runs with seed 1 differ (%d and %d bytes)", first.trace.Len(), second.trace.Len())
	}
	if !bytes.Equal(first.pcap.Bytes(), second.pcap.Bytes()) {
		t.Errorf("pcaps of two runs with seed 1 differ (%d and %d bytes)", first.pcap.Len(), second.pcap.Len())
	}
	other := runFailover(t, 2)
	if bytes.Equal(first.trace.Bytes(), other.trace.Bytes()) {
		t.Errorf("seeds 1 and 2 gave identical traces on a lossy link")
	}

	// The scenario itself: node-a serves until it crashes, node-b after the gratuitous ARP,
	// and the client's cache switches MAC on the GARP (Linux behaviour) instead of waiting.
	if len(first.attempts) != 31 {
		t.Fatalf("got %d attempts, want 31 (one per 100 ms from 0 s to 3 s inclusive)", len(first.attempts))
	}
	for _, at := range first.attempts {
		switch {
		case at.Start < time.Second && (at.Outcome != OutcomeOK || at.Node != "node-a"):
			t.Errorf("attempt at %v: %s served by %q before the crash, want ok by node-a", at.Start, at.Outcome, at.Node)
		case at.Start >= time.Second && at.Start < 1300*time.Millisecond && at.Outcome != OutcomeTimeout:
			t.Errorf("attempt at %v: %s during the outage, want timeout", at.Start, at.Outcome)
		case at.Start >= 2*time.Second && at.Start < 2300*time.Millisecond && at.Outcome != OutcomeTimeout:
			t.Errorf("attempt at %v: %s during the partition, want timeout", at.Start, at.Outcome)
		case at.Start >= 1300*time.Millisecond && at.Outcome == OutcomeOK && at.Node != "node-b" && at.Node != "":
			// (a lost FIN or greeting segment leaves Node empty on a lossy link)
			t.Errorf("attempt at %v served by %q after takeover, want node-b", at.Start, at.Node)
		}
	}
	outages := Outages(first.attempts)
	if want := (Outage{From: time.Second, To: 1300 * time.Millisecond, Failed: 3}); len(outages) == 0 || outages[0] != want {
		t.Errorf("first outage = %+v, want %+v (crash at 1 s, takeover at 1.3 s)", outages, want)
	}
	firstB := -1
	for i, at := range first.attempts {
		if at.Node == "node-b" {
			firstB = i
			break
		}
	}
	if firstB < 0 || first.attempts[firstB].Start > 1400*time.Millisecond {
		t.Errorf("node-b first served attempt %d, want the attempt at 1.3s or 1.4s: %+v", firstB, first.attempts)
	}
}

// TestDeterministicAcrossProcesses runs the failover scenario in two fresh test processes and
// compares digests of trace and pcap with this process's run: per-process randomness (map
// seeds, addresses) must not leak into the output either.
func TestDeterministicAcrossProcesses(t *testing.T) {
	digest := func(r *failoverRun) string {
		h := sha256.New()
		h.Write(r.trace.Bytes())
		h.Write(r.pcap.Bytes())
		return hex.EncodeToString(h.Sum(nil))
	}
	if os.Getenv("SIM_DIGEST_CHILD") == "1" {
		fmt.Printf("digest=%s\n", digest(runFailover(t, 1)))
		return
	}
	want := digest(runFailover(t, 1))
	for i := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDeterministicAcrossProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SIM_DIGEST_CHILD=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, out)
		}
		_, got, ok := strings.Cut(string(out), "digest=")
		if !ok {
			t.Fatalf("child %d printed no digest:\n%s", i, out)
		}
		if got = strings.TrimSpace(strings.SplitN(got, "\n", 2)[0]); got != want {
			t.Errorf("child %d digest %s, want %s", i, got, want)
		}
	}
}
