package sim

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func synAck(t testing.TB, from, to string, dport uint16) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(from), DstIP: net.ParseIP(to)}
	tcp := &layers.TCP{SrcPort: 80, DstPort: layers.TCPPort(dport), SYN: true, ACK: true, Window: 1000}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseAnswer(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	tests := []struct {
		name  string
		frame []byte
		want  answer
		ok    bool
	}{
		{"ARP reply", arpFrame(header.ARPReply, mac, vip, net.HardwareAddr{2, 0, 0, 0, 0, 1}, netip.MustParseAddr("10.0.0.100")),
			answer{kind: ProbeResolve, from: vip, mac: mac.String()}, true},
		{"ARP request is no answer", arpFrame(header.ARPRequest, mac, vip, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, vip), answer{}, false},
		{"SYN-ACK", synAck(t, "10.0.0.200", "10.0.0.100", 40000), answer{kind: ProbeTCP, from: vip, port: 40000}, true},
		{"neighbour advertisement", (&announcer6{mac: mac, ip: vip6}).advert(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, netip.MustParseAddr("ff02::1"), false),
			answer{kind: ProbeResolve, from: vip6, mac: mac.String()}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseAnswer(tt.frame)
			if ok != tt.ok || got != tt.want {
				t.Errorf("parseAnswer = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseAnswer: clients parse every frame that reaches them; no frame may panic them.
func FuzzParseAnswer(f *testing.F) {
	f.Add(synAck(f, "10.0.0.200", "10.0.0.100", 40000))
	f.Add(arpFrame(header.ARPReply, net.HardwareAddr{2, 0, 0, 0, 0, 2}, vip, net.HardwareAddr{2, 0, 0, 0, 0, 1}, vip))
	f.Add((&announcer6{mac: net.HardwareAddr{2, 0, 0, 0, 0, 2}, ip: vip6}).advert(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, netip.MustParseAddr("ff02::1"), false))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 {
			return // the switch never delivers less than a header (it pads to 60 bytes)
		}
		parseAnswer(frame)
	})
}

func TestOutages(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	at := func(start, end int, o Outcome) Attempt { return Attempt{Start: ms(start), End: ms(end), Outcome: o} }
	tests := []struct {
		name     string
		attempts []Attempt
		want     []Outage
	}{
		{"none", []Attempt{at(0, 1, OutcomeOK), at(100, 101, OutcomeOK)}, nil},
		{"one outage, finished out of order", []Attempt{
			at(0, 1, OutcomeOK), at(200, 201, OutcomeOK), at(100, 400, OutcomeTimeout), at(300, 301, OutcomeOK)},
			[]Outage{{From: ms(100), To: ms(200), Failed: 1}}},
		{"two outages, the last unresolved", []Attempt{
			at(0, 300, OutcomeTimeout), at(100, 400, OutcomeRefused), at(200, 201, OutcomeOK), at(300, 600, OutcomeTimeout)},
			[]Outage{{From: 0, To: ms(200), Failed: 2}, {From: ms(300), To: ms(600), Failed: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Outages(tt.attempts); !slices.Equal(got, tt.want) {
				t.Errorf("Outages = %+v, want %+v", got, tt.want)
			}
		})
	}
}
