package l2switch

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/sim/vclock"
)

// rig is a switch with ports p0..pN-1 that record what they receive.
type rig struct {
	clock *vclock.Clock
	sw    *Switch
	ports []*Port
	got   [][]string // per port: frame labels received, in order
}

func newRig(t testing.TB, n int) *rig {
	r := &rig{clock: vclock.New(), got: make([][]string, n)}
	r.sw = New("lan", r.clock, 7, nil)
	for i := range n {
		p, err := r.sw.AddPort(fmt.Sprintf("p%d", i), func(f []byte) { r.got[i] = append(r.got[i], label(f)) })
		if err != nil {
			t.Fatal(err)
		}
		r.ports = append(r.ports, p)
	}
	return r
}

// frame is from host s to host d (MACs 02:00:00:00:00:0s); d = 0xff means broadcast. The
// payload's first byte is a tag that labels the frame.
func frame(s, d byte, tag byte) []byte {
	f := make([]byte, 60)
	if d == 0xff {
		copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	} else {
		copy(f[0:6], []byte{2, 0, 0, 0, 0, d})
	}
	copy(f[6:12], []byte{2, 0, 0, 0, 0, s})
	f[12], f[13] = 0x88, 0xb5
	f[14] = tag
	return f
}

func label(f []byte) string { return fmt.Sprintf("%d>%d#%d", f[11], f[5], f[14]) }

func (r *rig) drain() {
	for {
		for r.clock.RunOne() {
		}
		if !r.sw.Step() {
			if next, ok := r.clock.Next(); ok {
				r.clock.AdvanceTo(next)
				continue
			}
			return
		}
	}
}

func TestForwarding(t *testing.T) {
	tests := []struct {
		name  string
		setup func(r *rig)
		send  [][3]byte // port, dst host, tag; src host = port number
		want  [][]string
	}{{
		name: "unknown unicast floods in port order",
		send: [][3]byte{{0, 2, 1}},
		want: [][]string{nil, {"0>2#1"}, {"0>2#1"}, {"0>2#1"}},
	}, {
		name: "known unicast goes to one port only",
		send: [][3]byte{{2, 0xff, 1}, {0, 2, 2}},
		want: [][]string{{"2>255#1"}, {"2>255#1"}, {"0>2#2"}, {"2>255#1"}},
	}, {
		name: "known unicast to a down port is dropped, not flooded",
		setup: func(r *rig) {
			r.ports[2].Send(frame(2, 0xff, 1))
			r.drain()
			r.got = make([][]string, 4)
			r.ports[2].SetUp(false)
		},
		send: [][3]byte{{0, 2, 2}},
		// The link went down, so the MAC was flushed: the frame floods, and the down port
		// gets nothing.
		want: [][]string{nil, {"0>2#2"}, nil, {"0>2#2"}},
	}, {
		name:  "frame to a MAC learned on its ingress port is filtered",
		setup: func(r *rig) { r.ports[1].Send(frame(5, 0xff, 1)); r.drain(); r.got = make([][]string, 4) },
		send:  [][3]byte{{1, 5, 2}},
		want:  [][]string{nil, nil, nil, nil},
	}, {
		name: "partition keeps floods and unicast inside groups",
		setup: func(r *rig) {
			if err := r.sw.Partition([][]string{{"p0", "p1"}}); err != nil {
				t.Fatal(err)
			}
		},
		send: [][3]byte{{0, 0xff, 1}, {2, 0xff, 2}, {2, 0, 3}},
		want: [][]string{nil, {"0>255#1"}, nil, {"2>255#2"}},
	}, {
		name: "a down port neither sends nor receives",
		setup: func(r *rig) {
			r.ports[3].SetUp(false)
		},
		send: [][3]byte{{3, 0xff, 1}, {0, 0xff, 2}},
		want: [][]string{nil, {"0>255#2"}, {"0>255#2"}, nil},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 4)
			if tt.setup != nil {
				tt.setup(r)
			}
			for _, s := range tt.send {
				r.ports[s[0]].Send(frame(s[0], s[1], s[2]))
				r.drain()
			}
			for i := range tt.want {
				if !slices.Equal(r.got[i], tt.want[i]) {
					t.Errorf("port p%d got %q, want %q", i, r.got[i], tt.want[i])
				}
			}
		})
	}
}

func TestAging(t *testing.T) {
	r := newRig(t, 3)
	if err := r.sw.SetAgingTime(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	r.ports[1].Send(frame(1, 0xff, 1))
	r.drain()
	r.got = make([][]string, 3)

	r.clock.AdvanceTo(vclock.Epoch.Add(9 * time.Second))
	r.ports[0].Send(frame(0, 1, 2))
	r.drain()
	r.clock.AdvanceTo(vclock.Epoch.Add(10 * time.Second))
	r.ports[0].Send(frame(0, 1, 3))
	r.drain()
	want := [][]string{nil, {"0>1#2", "0>1#3"}, {"0>1#3"}}
	for i := range want {
		if !slices.Equal(r.got[i], want[i]) {
			t.Errorf("port p%d got %q, want %q (entry must age out at 10 s)", i, r.got[i], want[i])
		}
	}
}

func TestImpairment(t *testing.T) {
	r := newRig(t, 2)
	if err := r.ports[1].SetImpairment(Impairment{Delay: 5 * time.Millisecond, Duplicate: 1}); err != nil {
		t.Fatal(err)
	}
	var at []time.Duration
	r.ports[1].SetReceiver(func([]byte) { at = append(at, r.clock.Since()) })
	r.ports[0].Send(frame(0, 0xff, 1))
	r.drain()
	if want := []time.Duration{5 * time.Millisecond, 5 * time.Millisecond}; !slices.Equal(at, want) {
		t.Errorf("delivered at %v, want %v", at, want)
	}

	if err := r.ports[1].SetImpairment(Impairment{Loss: 0.5}); err != nil {
		t.Fatal(err)
	}
	count := func(seed uint64) int {
		r := newRig(t, 2)
		r.sw.seed = seed
		r.sw.ports = nil
		r.sw.byName = map[string]*Port{}
		n := 0
		a, _ := r.sw.AddPort("a", nil)
		b, _ := r.sw.AddPort("b", func([]byte) { n++ })
		if err := b.SetImpairment(Impairment{Loss: 0.5}); err != nil {
			t.Fatal(err)
		}
		for range 1000 {
			a.Send(frame(0, 0xff, 0))
			r.drain()
		}
		return n
	}
	n1, n1again, n2 := count(1), count(1), count(2)
	if n1 != n1again {
		t.Errorf("same seed delivered %d and %d frames", n1, n1again)
	}
	if n1 == n2 {
		t.Errorf("seeds 1 and 2 both delivered %d frames", n1)
	}
	if n1 < 400 || n1 > 600 {
		t.Errorf("50%% loss delivered %d of 1000", n1)
	}

	for _, bad := range []Impairment{{Loss: -0.1}, {Loss: 1.5}, {Duplicate: 2}, {Delay: -time.Second}} {
		if err := r.ports[0].SetImpairment(bad); err == nil {
			t.Errorf("SetImpairment(%+v) succeeded, want error", bad)
		}
	}
}

func TestPartitionErrors(t *testing.T) {
	r := newRig(t, 2)
	if err := r.sw.Partition([][]string{{"p0"}, {"p0"}}); err == nil || err.Error() != `switch lan: partition: port "p0" is in groups 0 and 1` {
		t.Errorf("got %v", err)
	}
	if err := r.sw.Partition([][]string{{"nope"}}); err == nil || err.Error() != `switch lan: partition group 0: no port "nope"` {
		t.Errorf("got %v", err)
	}
}

// BenchmarkUnicast measures frames forwarded per second between two ports whose MACs are
// learned: the switch's hot path, without trace or capture.
func BenchmarkUnicast(b *testing.B) {
	clk := vclock.New()
	sw := New("lan", clk, 1, nil)
	delivered := 0
	p0, _ := sw.AddPort("p0", func([]byte) { delivered++ })
	p1, _ := sw.AddPort("p1", func([]byte) { delivered++ })
	f01, f10 := frame(0, 1, 0), frame(1, 0, 0)
	p0.Send(f01)
	p1.Send(f10)
	for sw.Step() {
	}
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i&1 == 0 {
			p0.Send(f01)
		} else {
			p1.Send(f10)
		}
		sw.Step()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	// Frames per second of CPU time: the same figure without the noise of a busy machine.
	b.ReportMetric(float64(b.N)/(cpuTime(b)-cpu0).Seconds(), "frames/cpu-s")
	if delivered < b.N {
		b.Fatalf("delivered %d of %d", delivered, b.N)
	}
}

// cpuTime returns the process's user+system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
