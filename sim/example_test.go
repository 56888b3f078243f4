package sim_test

import (
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/switchyard-lb/switchyard/sim"
)

// A client on one segment opens a TCP connection to a node; the node answers with its name.
// The client's 50 µs cable is crossed six times: ARP request and reply, SYN and SYN-ACK, the
// client's ACK and the greeting.
func Example() {
	runtime.GOMAXPROCS(1) // before the network is built; see the package documentation
	topo, err := sim.ParseTopology([]byte(`
segments:
- name: lan
  subnets: [192.0.2.0/24]
nodes:
- name: node-a
  interfaces: [{name: eth0, segment: lan, addrs: [192.0.2.11/24]}]
clients:
- name: laptop
  interfaces: [{name: eth0, segment: lan, addrs: [192.0.2.100/24], link: {delay: 50us}}]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	n, err := sim.New(topo, sim.Options{Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	laptop, _ := n.Client("laptop")
	n.At(time.Second, "connect", func() {
		_ = laptop.ConnectTCP(netip.MustParseAddrPort("192.0.2.11:80"), time.Second, func(a sim.Attempt) {
			fmt.Printf("%s %s after %v, served by %s\n", a.Kind, a.Outcome, a.End-a.Start, a.Node)
		})
	})
	n.RunFor(2 * time.Second)
	// Output: tcp ok after 300µs, served by node-a
}
