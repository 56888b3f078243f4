package netnslab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// recordingTB records Skip and Fatal instead of ending the test, so the skip-or-fail decision
// can itself be tested.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper()                           {}
func (r *recordingTB) Skip(args ...any)                  { r.skipped = strings.TrimSpace(sprint(args)) }
func (r *recordingTB) Fatalf(format string, args ...any) { r.failed = sprintf(format, args) }

func TestRequireRootAndBinaryDecision(t *testing.T) {
	tests := []struct {
		name        string
		check       func(tb testing.TB, ci string)
		ci          string
		wantSkipped string
		wantFailed  string
	}{
		{
			name:  "root passes",
			check: func(tb testing.TB, ci string) { requireRoot(tb, 0, ci) },
			ci:    "true",
		},
		{
			name:        "not root skips",
			check:       func(tb testing.TB, ci string) { requireRoot(tb, 1000, ci) },
			wantSkipped: "needs root for network namespaces (running as uid 1000)",
		},
		{
			name:       "not root under CI fails",
			check:      func(tb testing.TB, ci string) { requireRoot(tb, 1000, ci) },
			ci:         "true",
			wantFailed: "needs root for network namespaces (running as uid 1000); CI=true, so this is a failure instead of a skip",
		},
		{
			name:        "CI=false is not CI",
			check:       func(tb testing.TB, ci string) { requireRoot(tb, 1000, ci) },
			ci:          "false",
			wantSkipped: "needs root for network namespaces (running as uid 1000)",
		},
		{
			name:  "present binary passes",
			check: func(tb testing.TB, ci string) { requireBinary(tb, ci, "sh") },
			ci:    "true",
		},
		{
			name:        "missing binary skips",
			check:       func(tb testing.TB, ci string) { requireBinary(tb, ci, "sh", "no-such-binary-sylab") },
			wantSkipped: `needs "no-such-binary-sylab" on PATH (make lab-deps installs it): exec: "no-such-binary-sylab": executable file not found in $PATH`,
		},
		{
			name:       "missing binary under CI fails",
			check:      func(tb testing.TB, ci string) { requireBinary(tb, ci, "no-such-binary-sylab") },
			ci:         "true",
			wantFailed: `needs "no-such-binary-sylab" on PATH (make lab-deps installs it): exec: "no-such-binary-sylab": executable file not found in $PATH; CI=true, so this is a failure instead of a skip`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			tt.check(rec, tt.ci)
			if rec.skipped != tt.wantSkipped {
				t.Errorf("skip = %q, want %q", rec.skipped, tt.wantSkipped)
			}
			if rec.failed != tt.wantFailed {
				t.Errorf("fatal = %q, want %q", rec.failed, tt.wantFailed)
			}
		})
	}
}

func TestVethPairCarriesTraffic(t *testing.T) {
	lab := New(t)
	RequireBinary(t, "ping")
	a, b := lab.Namespace("a"), lab.Namespace("b")
	lab.Veth(a, "eth0", b, "eth0")
	a.AddAddr("eth0", "10.77.0.1/24")
	b.AddAddr("eth0", "10.77.0.2/24")
	a.AddAddr("eth0", "fd00:77::1/64")
	b.AddAddr("eth0", "fd00:77::2/64")

	// nodad makes the IPv6 address usable at once: no wait before the ping.
	for _, dst := range []string{"10.77.0.2", "fd00:77::2"} {
		if out, err := a.Run("ping", "-c", "1", "-W", "2", dst); err != nil {
			t.Errorf("ping %s from a: %v\n%s", dst, err, out)
		}
	}

	// The namespaces are isolated from each other and from the host: b cannot see a's eth0
	// addresses as its own.
	if out := b.MustIP("-brief", "addr", "show", "dev", "eth0"); strings.Contains(out, "10.77.0.1") {
		t.Errorf("b's eth0 has a's address: %s", out)
	}
}

func TestSwitchJoinsHosts(t *testing.T) {
	lab := New(t)
	RequireBinary(t, "ping")
	sw := lab.Switch("sw")
	hosts := []*Namespace{lab.Namespace("h1"), lab.Namespace("h2"), lab.Namespace("h3")}
	for i, h := range hosts {
		port := sw.Attach(h, "eth0")
		if want := "p" + strconv.Itoa(i+1); port != want {
			t.Errorf("Attach #%d returned port %q, want %q", i+1, port, want)
		}
		h.AddAddr("eth0", "10.77.0."+strconv.Itoa(i+1)+"/24")
	}
	if out, err := hosts[0].Run("ping", "-c", "1", "-W", "2", "10.77.0.3"); err != nil {
		t.Fatalf("ping across the switch: %v\n%s", err, out)
	}
	// Cutting h3's cable on the switch side stops the traffic.
	sw.NS.MustIP("link", "set", "p3", "down")
	if out, err := hosts[0].Run("ping", "-c", "1", "-W", "1", "10.77.0.3"); err == nil {
		t.Fatalf("ping through a cut cable succeeded:\n%s", out)
	}
}

func TestDoRunsInsideNamespace(t *testing.T) {
	lab := New(t)
	a, b := lab.Namespace("a"), lab.Namespace("b")
	lab.Veth(a, "eth-a", b, "eth-b")

	var names []string
	err := a.Do(func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifi := range ifs {
			names = append(names, ifi.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(names, ","), "lo,eth-a"; got != want {
		t.Errorf("interfaces seen inside a = %s, want %s", got, want)
	}

	sentinel := errors.New("from inside")
	if err := b.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do returned %v, want fn's error %v", err, sentinel)
	}

	// The calling goroutine's thread is untouched: the host's interfaces are not the lab's.
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifs {
		if ifi.Name == "eth-a" || ifi.Name == "eth-b" {
			t.Errorf("lab interface %s visible outside the lab", ifi.Name)
		}
	}
}

func TestStartCapturesLogAndStops(t *testing.T) {
	lab := New(t)
	RequireBinary(t, "sh", "sleep")
	a := lab.Namespace("a")

	p := a.Start("sh", "-c", "echo ready; echo oops >&2; exec sleep 300")
	if !p.WaitForLog("oops", 5*time.Second) {
		t.Fatalf("log never showed stderr output; log: %q", p.Log())
	}
	if got, want := p.Log(), "ready\noops\n"; got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
	pids, err := a.Pids()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 {
		t.Fatalf("pids in namespace = %v, want exactly the started process", pids)
	}
	err = p.Stop()
	var exitErr interface{ Sys() any }
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("Stop returned %v, want the process killed by SIGTERM", err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Stop")
	}
}

func TestCleanupRemovesEverything(t *testing.T) {
	RequireRoot(t)
	RequireBinary(t, "ip", "sh", "sleep")
	var (
		names  []string
		orphan int
	)
	t.Run("lab", func(t *testing.T) {
		lab := New(t)
		a, b := lab.Namespace("a"), lab.Namespace("b")
		lab.Veth(a, "eth0", b, "eth0")
		sw := lab.Switch("sw")
		sw.Attach(a, "eth1")
		names = []string{a.Name, b.Name, sw.NS.Name}
		// A daemon that forks away from the process the test started, like zebra -d: only
		// killing by namespace finds it.
		out := a.MustRun("sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!")
		var err error
		if orphan, err = strconv.Atoi(strings.TrimSpace(out)); err != nil {
			t.Fatalf("daemon pid: %q", out)
		}
		a.Start("sleep", "300")
	})
	for _, name := range names {
		if _, err := os.Stat(netnsDir + "/" + name); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still exists after cleanup (stat: %v)", name, err)
		}
	}
	if orphan == 0 {
		t.Fatal("daemon was not started")
	}
	// Kill(pid, 0) fails with ESRCH once the process is gone (it was reaped by init, or is a
	// zombie of the shell that already exited).
	if err := syscall.Kill(orphan, 0); err == nil && !isZombie(orphan) {
		t.Errorf("forked daemon %d survived cleanup", orphan)
	}
}

func isZombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// Field 3 of /proc/pid/stat is the state; the command in field 2 is in parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func sprint(args []any) string                 { return fmt.Sprint(args...) }
func sprintf(format string, args []any) string { return fmt.Sprintf(format, args...) }

func TestSysctlIsPerNamespace(t *testing.T) {
	lab := New(t)
	RequireBinary(t, "sysctl")
	a, b := lab.Namespace("a"), lab.Namespace("b")
	a.Sysctl("net.ipv4.ip_forward", "1")
	if got := strings.TrimSpace(a.MustRun("sysctl", "-n", "net.ipv4.ip_forward")); got != "1" {
		t.Errorf("ip_forward in a = %q, want 1", got)
	}
	if got := strings.TrimSpace(b.MustRun("sysctl", "-n", "net.ipv4.ip_forward")); got != "0" {
		t.Errorf("ip_forward in b = %q, want 0 (a new namespace's default)", got)
	}
}

func TestRunReportsFailure(t *testing.T) {
	lab := New(t)
	a := lab.Namespace("a")
	out, err := a.Run("sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
	if err == nil {
		t.Fatal("Run of a failing command returned no error")
	}
	if want := "to-stdout\nto-stderr\n"; out != want {
		t.Errorf("output = %q, want %q", out, want)
	}
	for _, part := range []string{"ip netns exec " + a.Name + " sh -c", "exit status 3", "to-stderr"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not contain %q", err, part)
		}
	}
}
