package sim

import (
	"fmt"
	"io"
	"sync"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/switchyard-lb/switchyard/sim/l2switch"
)

// Capture writes frames to a pcapng stream, stamped with virtual time, with one pcapng
// interface per switch port (named "segment:host/interface"), so Wireshark shows where each
// frame was seen.
//
// A capture of a segment records each frame once, as it enters the switch from its port. A
// capture of one host interface records what that interface's wire carries: frames the host
// sent (direction inbound to the switch) and frames delivered to it.
type Capture struct {
	net *Network

	mu     sync.Mutex
	w      *pcapgo.NgWriter
	ifaces map[*l2switch.Port]int
	only   *l2switch.Port // nil for a segment capture
	err    error
	frames uint64
}

func newCapture(n *Network, w io.Writer, ports []*l2switch.Port) (*Capture, error) {
	first := pcapgo.NgInterface{
		Name:                ports[0].Switch().Name() + ":" + ports[0].Name(),
		LinkType:            layers.LinkTypeEthernet,
		SnapLength:          0,
		TimestampResolution: 9,
	}
	nw, err := pcapgo.NewNgWriterInterface(w, first, pcapgo.NgWriterOptions{
		SectionInfo: pcapgo.NgSectionInfo{Application: "switchyard sim"},
	})
	if err != nil {
		return nil, fmt.Errorf("sim: capture: %w", err)
	}
	c := &Capture{net: n, w: nw, ifaces: map[*l2switch.Port]int{ports[0]: 0}}
	for _, p := range ports[1:] {
		id, err := nw.AddInterface(pcapgo.NgInterface{
			Name:                p.Switch().Name() + ":" + p.Name(),
			LinkType:            layers.LinkTypeEthernet,
			TimestampResolution: 9,
		})
		if err != nil {
			return nil, fmt.Errorf("sim: capture: %w", err)
		}
		c.ifaces[p] = id
	}
	n.captures = append(n.captures, c)
	return c, nil
}

// CaptureSegment records every frame entering the segment's switch.
func (n *Network) CaptureSegment(segment string, w io.Writer) (*Capture, error) {
	sw, err := n.Switch(segment)
	if err != nil {
		return nil, err
	}
	ports := sw.Ports()
	if len(ports) == 0 {
		return nil, fmt.Errorf("sim: capture of segment %s: it has no ports", segment)
	}
	c, err := newCapture(n, w, ports)
	if err != nil {
		return nil, err
	}
	sw.AddTap(func(p *l2switch.Port, dir l2switch.Direction, frame []byte) {
		if dir == l2switch.In {
			c.write(p, dir, frame)
		}
	})
	return c, nil
}

// CaptureNetwork records every frame entering any switch, with one interface per port of
// every segment.
func (n *Network) CaptureNetwork(w io.Writer) (*Capture, error) {
	var ports []*l2switch.Port
	for _, sw := range n.switches {
		ports = append(ports, sw.Ports()...)
	}
	if len(ports) == 0 {
		return nil, fmt.Errorf("sim: capture of the network: it has no ports")
	}
	c, err := newCapture(n, w, ports)
	if err != nil {
		return nil, err
	}
	for _, sw := range n.switches {
		sw.AddTap(func(p *l2switch.Port, dir l2switch.Direction, frame []byte) {
			if dir == l2switch.In {
				c.write(p, dir, frame)
			}
		})
	}
	return c, nil
}

// CaptureInterface records both directions of one host interface's cable.
func (n *Network) CaptureInterface(hostName, ifname string, w io.Writer) (*Capture, error) {
	_, p, err := n.port(hostName, ifname)
	if err != nil {
		return nil, err
	}
	c, err := newCapture(n, w, []*l2switch.Port{p})
	if err != nil {
		return nil, err
	}
	c.only = p
	p.Switch().AddTap(func(tp *l2switch.Port, dir l2switch.Direction, frame []byte) {
		if tp == p {
			c.write(tp, dir, frame)
		}
	})
	return c, nil
}

func (c *Capture) write(p *l2switch.Port, dir l2switch.Direction, frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	id, ok := c.ifaces[p]
	if !ok {
		return
	}
	ci := gopacket.CaptureInfo{
		Timestamp:      c.net.clock.Now(),
		CaptureLength:  len(frame),
		Length:         len(frame),
		InterfaceIndex: id,
	}
	var opts pcapgo.NgPacketOptions
	if c.only != nil {
		// Direction as seen from the host's interface: what it sent is outbound.
		flags := pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionInbound}
		if dir == l2switch.In {
			flags.Direction = pcapgo.NgEpbFlagDirectionOutbound
		}
		opts.Flags = &flags
	}
	c.err = c.w.WritePacketWithOptions(ci, frame, opts)
	c.frames++
}

// Frames returns the number of frames recorded.
func (c *Capture) Frames() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

// Flush writes buffered frames and returns the first error the capture met.
func (c *Capture) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.err = c.w.Flush()
	return c.err
}
