package ipam

import (
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const benchServices = 100_000

func benchServicesList(n int) []Service {
	svcs := make([]Service, n)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range svcs {
		svcs[i] = Service{
			Namespace: "ns-" + strconv.Itoa(i%50),
			Name:      "svc-" + strconv.Itoa(i),
			Created:   base.Add(time.Duration(i) * time.Second),
			Families:  []Family{IPv4},
			Ports:     []Port{{"TCP", 80}},
		}
	}
	return svcs
}

// cpuTime is the process's CPU time. The benchmarks report rates per CPU-second next to the
// wall-clock ones: on a shared machine the wall clock also counts time spent waiting for a
// core, while CPU time counts only the work (including the garbage collector's).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkAllocate allocates 100,000 Services from one /14 pool per iteration and reports
// allocations per second and the allocator's heap bytes per allocated address.
func BenchmarkAllocate(b *testing.B) {
	cfg := cfgOf(mkPool(b, "big", "10.0.0.0/14"))
	svcs := benchServicesList(benchServices)
	b.ReportAllocs()
	var bytesPerIP float64
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		before := heapInUse()
		b.StartTimer()
		start := cpuTime()
		a := New(cfg, Options{})
		for i := range svcs {
			if _, err := a.Allocate(&svcs[i]); err != nil {
				b.Fatal(err)
			}
		}
		cpu += cpuTime() - start
		b.StopTimer()
		bytesPerIP = float64(heapInUse()-before) / benchServices
		runtime.KeepAlive(a)
		b.StartTimer()
	}
	b.ReportMetric(float64(benchServices)*float64(b.N)/b.Elapsed().Seconds(), "allocs/s")
	b.ReportMetric(float64(benchServices)*float64(b.N)/cpu.Seconds(), "allocs/cpu-s")
	b.ReportMetric(bytesPerIP, "B/IP")
}

// BenchmarkRestore restores 100,000 existing assignments, given in reverse age order.
func BenchmarkRestore(b *testing.B) {
	cfg := cfgOf(mkPool(b, "big", "10.0.0.0/14"))
	svcs := benchServicesList(benchServices)
	a := New(cfg, Options{})
	for i := range svcs {
		as, err := a.Allocate(&svcs[i])
		if err != nil {
			b.Fatal(err)
		}
		svcs[i].CurrentIPs = as.IPs
	}
	for i, j := 0, len(svcs)-1; i < j; i, j = i+1, j-1 {
		svcs[i], svcs[j] = svcs[j], svcs[i]
	}
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		r := New(cfg, Options{})
		if refused := r.Restore(svcs); len(refused) != 0 {
			b.Fatal(refused[0])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/restore")
	b.ReportMetric(float64((cpuTime()-start).Milliseconds())/float64(b.N), "cpu-ms/restore")
}

// BenchmarkPlan plans a config change over 100,000 Services: the pool shrinks by a /16, so
// 65,536 Services keep their addresses and the rest move to a new pool.
func BenchmarkPlan(b *testing.B) {
	oldCfg := cfgOf(mkPool(b, "big", "10.0.0.0/14"))
	newCfg := cfgOf(mkPool(b, "big", "10.0.0.0/16"), mkPool(b, "extra", "10.8.0.0/16"))
	svcs := benchServicesList(benchServices)
	a := New(oldCfg, Options{})
	for i := range svcs {
		as, err := a.Allocate(&svcs[i])
		if err != nil {
			b.Fatal(err)
		}
		svcs[i].CurrentIPs = as.IPs
	}
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		plan := Plan(oldCfg, newCfg, svcs, Options{})
		if len(plan) != benchServices {
			b.Fatalf("plan has %d entries", len(plan))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/plan")
	b.ReportMetric(float64((cpuTime()-start).Milliseconds())/float64(b.N), "cpu-ms/plan")
}
