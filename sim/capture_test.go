package sim

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestCaptureReadsBack captures a ping and a TCP connection and reads the pcapng back with
// tshark (or tcpdump) when installed, else with pcapgo. Under CI=true a tool must be present.
func TestCaptureReadsBack(t *testing.T) {
	var seg, iface bytes.Buffer
	n, err := New(lanTopology(), Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.CaptureSegment("lan", &seg); err != nil {
		t.Fatal(err)
	}
	if _, err := n.CaptureInterface("client", "eth0", &iface); err != nil {
		t.Fatal(err)
	}
	c, _ := n.Client("client")
	if err := c.Ping(netip.MustParseAddr("10.0.0.11"), time.Second, nil); err != nil {
		t.Fatal(err)
	}
	n.RunFor(100 * time.Millisecond)
	if err := c.ConnectTCP(netip.MustParseAddrPort("10.0.0.12:80"), time.Second, nil); err != nil {
		t.Fatal(err)
	}
	n.RunFor(time.Second)
	if err := n.Flush(); err != nil {
		t.Fatal(err)
	}
	got := c.Attempts()
	if len(got) != 2 || got[0].Outcome != OutcomeOK || got[1].Outcome != OutcomeOK || got[1].Node != "node-b" {
		t.Fatalf("attempts = %+v, want an ok ping and an ok TCP connect served by node-b", got)
	}

	// What the client's wire carried, in order (pcapgo, always).
	wantIface := []string{
		"ARP request 10.0.0.100>10.0.0.11", "ARP reply 10.0.0.11>10.0.0.100",
		"ICMPv4 10.0.0.100>10.0.0.11", "ICMPv4 10.0.0.11>10.0.0.100",
		"ARP request 10.0.0.100>10.0.0.12", "ARP reply 10.0.0.12>10.0.0.100",
		"TCP 10.0.0.100>10.0.0.12 SYN", "TCP 10.0.0.12>10.0.0.100 SYN ACK",
	}
	if summary := summarize(t, iface.Bytes()); !slices8Equal(summary[:min(len(summary), len(wantIface))], wantIface) {
		t.Errorf("client capture starts with\n%s\nwant\n%s", strings.Join(summary, "\n"), strings.Join(wantIface, "\n"))
	}

	tool := ""
	for _, name := range []string{"tshark", "tcpdump"} {
		if p, err := exec.LookPath(name); err == nil {
			tool = p
			break
		}
	}
	if tool == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("neither tshark nor tcpdump is installed (make lab-deps); required under CI=true")
		}
		t.Skip("neither tshark nor tcpdump is installed; the pcapgo read-back above passed")
	}
	path := filepath.Join(t.TempDir(), "lan.pcapng")
	if err := os.WriteFile(path, seg.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if filepath.Base(tool) == "tshark" {
		cmd = exec.Command(tool, "-r", path, "-T", "fields", "-e", "frame.interface_name", "-e", "_ws.col.Protocol", "-Y", "tcp.flags.syn==1")
	} else {
		cmd = exec.Command(tool, "-nr", path, "tcp[tcpflags] & tcp-syn != 0")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, stderr.Bytes())
	}
	text := string(out)
	if filepath.Base(tool) == "tshark" {
		want := "lan:client/eth0\tTCP\nlan:node-b/eth0\tTCP\n"
		if text != want {
			t.Errorf("tshark SYNs:\n%s\nwant\n%s", text, want)
		}
	} else if strings.Count(text, "10.0.0.100") != 2 {
		t.Errorf("tcpdump SYNs:\n%s", text)
	}
}

func slices8Equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// summarize decodes a pcapng stream with pcapgo and describes each frame.
func summarize(t *testing.T, data []byte) []string {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(data), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		b, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if ci.Timestamp.Before(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("frame stamped %v, before the virtual epoch", ci.Timestamp)
		}
		p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
		switch {
		case p.Layer(layers.LayerTypeARP) != nil:
			a := p.Layer(layers.LayerTypeARP).(*layers.ARP)
			op := "request"
			if a.Operation == layers.ARPReply {
				op = "reply"
			}
			out = append(out, "ARP "+op+" "+ip4(a.SourceProtAddress)+">"+ip4(a.DstProtAddress))
		case p.Layer(layers.LayerTypeTCP) != nil:
			src, dst := p.NetworkLayer().NetworkFlow().Endpoints()
			tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			flags := ""
			for _, f := range []struct {
				on   bool
				name string
			}{{tcp.SYN, "SYN"}, {tcp.ACK, "ACK"}, {tcp.FIN, "FIN"}, {tcp.RST, "RST"}} {
				if f.on {
					flags += " " + f.name
				}
			}
			out = append(out, "TCP "+src.String()+">"+dst.String()+flags)
		case p.Layer(layers.LayerTypeICMPv4) != nil:
			ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			out = append(out, "ICMPv4 "+ip.SrcIP.String()+">"+ip.DstIP.String())
		case p.Layer(layers.LayerTypeICMPv6) != nil:
			src, dst := p.NetworkLayer().NetworkFlow().Endpoints()
			out = append(out, "ICMPv6 "+src.String()+">"+dst.String())
		default:
			out = append(out, "other")
		}
	}
	return out
}

func ip4(b []byte) string { return netip.AddrFrom4([4]byte(b)).String() }
