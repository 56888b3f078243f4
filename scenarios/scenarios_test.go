package scenarios

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Package sim's determinism needs one P. Fuzz workers only parse, and with one P they
	// starve their coordinator and stall.
	if f := flag.Lookup("test.fuzzworker"); f == nil || f.Value.String() != "true" {
		runtime.GOMAXPROCS(1)
	}
	os.Exit(m.Run())
}

type run struct {
	res         *Result
	trace, pcap bytes.Buffer
}

func runFile(t testing.TB, path string) *run {
	t.Helper()
	sc, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out run
	out.res, err = Run(sc, Options{
		Trace: &out.trace,
		PCAP:  func(string) (io.Writer, error) { return &out.pcap, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &out
}

// TestScenarios runs every scenario file twice: its expectations must hold, and the two runs
// must write byte-identical traces and pcaps.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			first := runFile(t, f)
			var report bytes.Buffer
			if err := first.res.WriteReport(&report); err != nil {
				t.Fatal(err)
			}
			if !first.res.Passed() || testing.Verbose() {
				t.Log("\n" + report.String())
			}
			if !first.res.Passed() {
				t.Fatalf("%s failed", f)
			}
			if first.res.Stalls != 0 {
				t.Errorf("the simulation driver stalled %d times", first.res.Stalls)
			}
			second := runFile(t, f)
			a, b := first.trace.Bytes(), second.trace.Bytes()
			if !bytes.Equal(a, b) {
				t.Errorf("two runs wrote different traces (%d and %d bytes)", first.trace.Len(), second.trace.Len())
			}
			if !bytes.Equal(first.pcap.Bytes(), second.pcap.Bytes()) {
				t.Errorf("two runs wrote different pcaps (%d and %d bytes)", first.pcap.Len(), second.pcap.Len())
			}
		})
	}
}
