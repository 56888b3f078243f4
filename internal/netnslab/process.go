package netnslab

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a program running in the background inside a lab namespace, with its standard
// output and standard error captured together.
type Process struct {
	ns   *Namespace
	argv []string
	cmd  *exec.Cmd
	log  *syncBuffer

	done    chan struct{}
	waitErr error // valid after done is closed
	stop    sync.Once
}

// Start starts a program inside the namespace and returns at once. The lab stops it at Cleanup
// (and prints its log when the test failed); Stop stops it earlier.
func (n *Namespace) Start(name string, args ...string) *Process {
	n.lab.t.Helper()
	p := &Process{
		ns:   n,
		argv: append([]string{name}, args...),
		log:  &syncBuffer{},
		done: make(chan struct{}),
	}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	// A process group of its own, so Stop can signal the program and anything it spawned
	// without touching the test process.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		n.lab.t.Fatalf("netnslab: %s: start %s: %v", n, p, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	n.lab.mu.Lock()
	n.lab.processes = append(n.lab.processes, p)
	n.lab.mu.Unlock()
	return p
}

func (p *Process) String() string {
	return fmt.Sprintf("%q in %s", strings.Join(p.argv, " "), p.ns)
}

// Log returns everything the process wrote so far.
func (p *Process) Log() string { return p.log.String() }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error (nil for status 0).
func (p *Process) Wait() error {
	<-p.done
	return p.waitErr
}

// WaitForLog waits until the process has written substr (e.g. tcpdump's "listening on") and
// reports whether it did before timeout or before the process exited.
func (p *Process) WaitForLog(substr string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(p.Log(), substr) {
			return true
		}
		select {
		case <-p.done:
			return strings.Contains(p.Log(), substr)
		default:
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the process group: SIGTERM, then SIGKILL if it has not exited within two seconds.
// It returns the process's exit error; a process ended by Stop's signal reports it as such.
func (p *Process) Stop() error {
	p.stop.Do(func() {
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(2 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p.waitErr
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a process's two output pipes
// and reads by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
