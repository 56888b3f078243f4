// Package netnslab builds small real networks out of Linux network namespaces for tests.
//
// A Lab is a set of namespaces joined by veth pairs or by a bridge that lives in a "switch"
// namespace of its own, so nothing a test does is visible in (or can disturb) the machine's own
// network. Tests use it to put real kernel clients (ping, arping, ndisc6), real routers (FRR,
// BIRD, gobgpd) and Switchyard's own code on one L2 segment:
//
//	lab := netnslab.New(t)               // skips without root; fails instead under CI=true
//	a, b := lab.Namespace("a"), lab.Namespace("b")
//	lab.Veth(a, "eth0", b, "eth0")
//	a.AddAddr("eth0", "10.77.0.1/24")
//	b.AddAddr("eth0", "fd00:77::2/64")     // IPv6 addresses get nodad: usable at once
//	out := b.MustRun("ping", "-c1", "10.77.0.1")
//	err := a.Do(func() error { ... })      // Go code on an OS thread inside a
//
// Namespace names carry the process id and a random suffix, so parallel test binaries never
// collide. Everything a Lab makes is removed by Cleanup, which New registers with t.Cleanup so it
// also runs when the test fails: processes inside the lab's namespaces are killed (including
// daemons that forked away from the process the test started), then links and namespaces are
// deleted.
//
// Setup is done with iproute2's `ip`, so a failing step reports the exact command and ip's own
// message. Methods that take no error return call t.Fatal on failure and must therefore be
// called from the test's goroutine.
package netnslab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// CommandTimeout bounds every command Run executes; a lab step that hangs longer is a failure.
const CommandTimeout = 30 * time.Second

// netnsDir is where `ip netns add` bind-mounts named namespaces.
const netnsDir = "/var/run/netns"

// RequireRoot skips the test when the process is not root, because namespaces, veth pairs and
// raw sockets need CAP_NET_ADMIN and CAP_NET_RAW. Under CI=true the skip is a failure instead:
// CI must run these tests, not silently pass over them.
func RequireRoot(t testing.TB) {
	t.Helper()
	requireRoot(t, os.Geteuid(), os.Getenv("CI"))
}

func requireRoot(t testing.TB, euid int, ci string) {
	t.Helper()
	if euid != 0 {
		skipOrFail(t, ci, fmt.Sprintf("needs root for network namespaces (running as uid %d)", euid))
	}
}

// RequireBinary skips the test when one of the named programs is not on PATH (run `make
// lab-deps` to install them). Under CI=true the skip is a failure instead. It returns the
// programs' full paths in the order given.
func RequireBinary(t testing.TB, names ...string) []string {
	t.Helper()
	return requireBinary(t, os.Getenv("CI"), names...)
}

func requireBinary(t testing.TB, ci string, names ...string) []string {
	t.Helper()
	paths := make([]string, 0, len(names))
	for _, name := range names {
		p, err := exec.LookPath(name)
		if err != nil {
			skipOrFail(t, ci, fmt.Sprintf("needs %q on PATH (make lab-deps installs it): %v", name, err))
			return nil
		}
		paths = append(paths, p)
	}
	return paths
}

func skipOrFail(t testing.TB, ci, reason string) {
	t.Helper()
	if ci == "true" {
		t.Fatalf("%s; CI=true, so this is a failure instead of a skip", reason)
		return
	}
	t.Skip(reason)
}

// Lab owns a set of namespaces and everything inside them.
type Lab struct {
	t      testing.TB
	prefix string

	mu         sync.Mutex
	seq        int
	namespaces []*Namespace
	processes  []*Process
	cleaned    bool
}

// New creates an empty lab. It skips the test without root or without `ip` (see RequireRoot) and
// registers Cleanup with t.Cleanup.
func New(t testing.TB) *Lab {
	t.Helper()
	RequireRoot(t)
	RequireBinary(t, "ip")
	var suffix [2]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		t.Fatalf("netnslab: random suffix: %v", err)
	}
	l := &Lab{t: t, prefix: fmt.Sprintf("sylab-%d-%s", os.Getpid(), hex.EncodeToString(suffix[:]))}
	t.Cleanup(l.Cleanup)
	return l
}

// Namespace creates a new network namespace whose name ends in name, with its loopback up.
func (l *Lab) Namespace(name string) *Namespace {
	l.t.Helper()
	l.mu.Lock()
	l.seq++
	full := fmt.Sprintf("%s-%d-%s", l.prefix, l.seq, name)
	l.mu.Unlock()

	if _, err := runIP("netns", "add", full); err != nil {
		l.t.Fatalf("netnslab: create namespace %s: %v", name, err)
	}
	ns := &Namespace{lab: l, Name: full, Short: name}
	l.mu.Lock()
	l.namespaces = append(l.namespaces, ns)
	l.mu.Unlock()
	ns.MustIP("link", "set", "lo", "up")
	return ns
}

// Veth joins namespace a's interface aName and namespace b's interface bName with a veth pair
// (a direct cable) and sets both ends up.
func (l *Lab) Veth(a *Namespace, aName string, b *Namespace, bName string) {
	l.t.Helper()
	a.MustIP("link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
	a.addLink(aName)
	a.MustIP("link", "set", aName, "up")
	b.MustIP("link", "set", bName, "up")
}

// Switch is a Linux bridge in a namespace of its own: a dumb L2 switch between lab hosts.
type Switch struct {
	// NS is the switch's namespace; the bridge is called "br0" there.
	NS    *Namespace
	ports int
}

// Switch creates a namespace holding bridge br0 with STP and multicast snooping off, so it
// forwards every frame at once, like an unmanaged switch.
func (l *Lab) Switch(name string) *Switch {
	l.t.Helper()
	ns := l.Namespace(name)
	ns.MustIP("link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0")
	ns.addLink("br0")
	ns.MustIP("link", "set", "br0", "up")
	return &Switch{NS: ns}
}

// Attach cables host's interface ifname to a new port of the switch and sets both ends up. It
// returns the name of the switch-side port ("p1", "p2", …), so a test can cut the cable with
// sw.NS.MustIP("link", "set", port, "down").
func (s *Switch) Attach(host *Namespace, ifname string) string {
	s.NS.lab.t.Helper()
	s.ports++
	port := "p" + strconv.Itoa(s.ports)
	s.NS.MustIP("link", "add", port, "type", "veth", "peer", "name", ifname, "netns", host.Name)
	s.NS.addLink(port)
	s.NS.MustIP("link", "set", port, "master", "br0")
	s.NS.MustIP("link", "set", port, "up")
	host.MustIP("link", "set", ifname, "up")
	return port
}

// Cleanup kills every process in the lab's namespaces, deletes the links the lab made and the
// namespaces themselves. It is safe to call more than once; New registers it with t.Cleanup.
// Problems are reported with t.Errorf, and cleanup carries on with the rest.
func (l *Lab) Cleanup() {
	l.mu.Lock()
	if l.cleaned {
		l.mu.Unlock()
		return
	}
	l.cleaned = true
	procs := append([]*Process(nil), l.processes...)
	namespaces := append([]*Namespace(nil), l.namespaces...)
	l.mu.Unlock()

	for _, p := range procs {
		p.Stop()
		if l.t.Failed() {
			l.t.Logf("netnslab: log of %s:\n%s", p, tail(p.Log(), 4000))
		}
	}
	for _, ns := range namespaces {
		ns.killAll()
	}
	for _, ns := range namespaces {
		for _, link := range ns.links {
			// The link may already be gone with its peer; only a link that still exists and
			// cannot be deleted is a problem.
			if _, err := ns.IP("link", "show", link); err == nil {
				if _, err := ns.IP("link", "del", link); err != nil {
					l.t.Errorf("netnslab: cleanup: %v", err)
				}
			}
		}
	}
	for _, ns := range namespaces {
		if _, err := runIP("netns", "del", ns.Name); err != nil {
			l.t.Errorf("netnslab: cleanup: %v", err)
		}
	}
}

// Namespace is one network namespace of a lab: a host, a router or a switch.
type Namespace struct {
	lab *Lab
	// Name is the namespace's full, unique name (as `ip netns list` shows it).
	Name string
	// Short is the name the test gave it.
	Short string
	links []string
}

func (n *Namespace) String() string { return n.Short }

// Path is the namespace's bind mount, e.g. for rawsock.Options.NetNS or netns.GetFromPath.
func (n *Namespace) Path() string { return filepath.Join(netnsDir, n.Name) }

func (n *Namespace) addLink(name string) {
	n.lab.mu.Lock()
	defer n.lab.mu.Unlock()
	n.links = append(n.links, name)
}

// IP runs `ip -n <namespace> args…` and returns its output.
func (n *Namespace) IP(args ...string) (string, error) {
	return runIP(append([]string{"-n", n.Name}, args...)...)
}

// MustIP is IP that fails the test on error.
func (n *Namespace) MustIP(args ...string) string {
	n.lab.t.Helper()
	out, err := n.IP(args...)
	if err != nil {
		n.lab.t.Fatalf("netnslab: %s: %v", n, err)
	}
	return out
}

// AddAddr adds prefix (e.g. "10.77.0.1/24" or "fd00:77::1/64") to interface ifname. IPv6
// addresses are added with nodad, so they are usable at once instead of staying tentative for
// the one to two seconds of duplicate address detection.
func (n *Namespace) AddAddr(ifname, prefix string) {
	n.lab.t.Helper()
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		n.lab.t.Fatalf("netnslab: %s: address for %s: %v", n, ifname, err)
	}
	args := []string{"addr", "add", p.String(), "dev", ifname}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	n.MustIP(args...)
}

// Sysctl sets a sysctl inside the namespace, e.g. Sysctl("net.ipv4.ip_forward", "1").
func (n *Namespace) Sysctl(key, value string) {
	n.lab.t.Helper()
	n.MustRun("sysctl", "-q", "-w", key+"="+value)
}

// Run runs a program inside the namespace (`ip netns exec`) and returns its combined output.
// The error, if any, names the command and includes the output. Run gives up after
// CommandTimeout.
func (n *Namespace) Run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	return runCommand(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// MustRun is Run that fails the test on error.
func (n *Namespace) MustRun(name string, args ...string) string {
	n.lab.t.Helper()
	out, err := n.Run(name, args...)
	if err != nil {
		n.lab.t.Fatalf("netnslab: %s: %v", n, err)
	}
	return out
}

// Do runs fn on an OS thread that is inside the namespace and returns fn's error. Sockets fn
// opens belong to the namespace for good, even when used from other goroutines later; goroutines
// fn starts do not run in the namespace. The thread is discarded afterwards rather than switched
// back, so no other goroutine can ever be scheduled on a thread left in the lab's namespace.
func (n *Namespace) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Deliberately never unlocked: the runtime destroys a locked thread when its
		// goroutine exits.
		runtime.LockOSThread()
		h, err := netns.GetFromPath(n.Path())
		if err != nil {
			errc <- fmt.Errorf("netnslab: open namespace %s: %w", n, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("netnslab: enter namespace %s: %w", n, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Pids returns the ids of the processes running in the namespace.
func (n *Namespace) Pids() ([]int, error) {
	out, err := runIP("netns", "pids", n.Name)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("netnslab: ip netns pids %s: unexpected output %q", n.Name, out)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// killAll terminates every process in the namespace: SIGTERM, then SIGKILL for those still
// there after a grace period. This catches daemons that forked away from the process the test
// started (zebra -d, bird), which would otherwise keep the namespace and its links alive.
func (n *Namespace) killAll() {
	const grace = 3 * time.Second
	signal := syscall.SIGTERM
	deadline := time.Now().Add(grace)
	for {
		pids, err := n.Pids()
		if err != nil {
			n.lab.t.Errorf("netnslab: cleanup %s: %v", n, err)
			return
		}
		pids = withoutSelf(pids)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			signal = syscall.SIGKILL
		}
		for _, pid := range pids {
			// The process may exit on its own meanwhile; ESRCH is fine.
			_ = syscall.Kill(pid, signal)
		}
		if signal == syscall.SIGKILL && time.Now().After(deadline.Add(grace)) {
			n.lab.t.Errorf("netnslab: cleanup %s: processes %v survive SIGKILL", n, pids)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// withoutSelf drops this test process from pids: a thread of ours may sit in a lab namespace
// (Do) and the process must never signal itself.
func withoutSelf(pids []int) []int {
	self := os.Getpid()
	out := pids[:0]
	for _, p := range pids {
		if p != self {
			out = append(out, p)
		}
	}
	return out
}

func runIP(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	return runCommand(ctx, "ip", args...)
}

func runCommand(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
