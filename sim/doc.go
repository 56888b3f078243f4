// Package sim is Switchyard's deterministic virtual network: virtual switches with gVisor hosts
// on their ports (Kubernetes nodes, clients, gateways, routers), a virtual clock, fault
// injection, pcap capture and a structured trace. Speakers run on simulated nodes through the
// netio interface (netio/netstack) exactly as they run on real ones.
//
// # Layers
//
//   - sim/vclock: the virtual clock, the only time source; events ordered by (time, sequence).
//   - sim/l2switch: learning switches with links that fail, partition, lose, delay, duplicate.
//   - sim/host: gVisor stacks on switch ports, with the roles of nodes, clients and gateways.
//   - sim/trace: JSON-lines events stamped with virtual time.
//   - sim (this package): topology as data, the driver, power and link control, client probes,
//     node services, captures.
//
// # Determinism
//
// A run is a pure function of topology, scripted events and seed: the same inputs give a
// byte-identical trace and pcap. That holds because
//
//   - time is virtual: every timer of every stack, switch, speaker and script is on one
//     vclock.Clock, and callbacks with equal deadlines run in the order they were armed;
//   - one driver (Run) does everything in a fixed order: it forwards one frame at a time from
//     the switches' FIFO queues, runs one due timer at a time, and after each step lets every
//     other runnable goroutine (gVisor's TCP processors, a speaker's connection readers) run
//     until it parks, checking the Go scheduler's runnable count, before taking the next step;
//     time jumps to the next deadline only when nothing at all is left to do now;
//   - the Go scheduler is reduced to one P (GOMAXPROCS=1, checked by New), so goroutines that
//     the driver lets run do so one after another in a reproducible order;
//   - every RNG is seeded: gVisor's RandSource and SecureRNG per host (from seed, host name and
//     boot count), link loss and duplication per switch port (from seed and port name).
//
// Code running inside a simulation must therefore never read the wall clock (time.Now,
// time.Sleep, time.After, context deadlines, net.Conn deadlines other than those of
// netio/netstack), never use unseeded randomness (math/rand's global functions, crypto/rand,
// map iteration order for anything observable), and never start goroutines that wait on real
// time or that the driver cannot see parking (spinning, busy-polling). A goroutine that blocks on
// a connection or a channel is fine: the driver waits for it to park.
//
// Run one simulation at a time per process. The driver waits while any goroutine of the process
// is runnable, so a second simulation, or any busy goroutine (a parallel test), slows it down
// and makes it count stalls (Network.Stalls).
package sim
