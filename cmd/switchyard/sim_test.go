package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The sim subcommand runs the scenario files users run; these tests run the shipped failover
// scenario through the same dispatcher main uses.

func TestSimRunFailover(t *testing.T) {
	dir := t.TempDir()
	pcap, trace := filepath.Join(dir, "f.pcap"), filepath.Join(dir, "f.jsonl")
	code, stdout, stderr := runArgs("sim", "run", "../../scenarios/failover.yaml", "--pcap", pcap, "--trace", trace)
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	for _, want := range []string{
		"scenario failover (seed 1)",
		"crash node-b (power off, no leave)",
		"client-observed outage: 300 ms",
		"PASS  client-observed outage ≤ 500ms",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	for _, p := range []string{pcap, trace} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s not written (err %v)", p, err)
		}
	}
}

func TestSimRunFailedExpectation(t *testing.T) {
	data, err := os.ReadFile("../../scenarios/failover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	strict := strings.Replace(string(data), "max: 500ms", "max: 100ms", 1)
	if strict == string(data) {
		t.Fatal("failover.yaml no longer has the 500ms expectation this test tightens")
	}
	path := filepath.Join(t.TempDir(), "strict.yaml")
	if err := os.WriteFile(path, []byte(strict), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runArgs("sim", "run", path)
	if code != exitFail {
		t.Fatalf("exit %d, want %d; stdout:\n%s", code, exitFail, stdout)
	}
	if !strings.Contains(stderr, "expectation failed: client-observed outage ≤ 100ms") || !strings.Contains(stderr, "300ms") {
		t.Errorf("stderr does not say which expectation failed and why:\n%s", stderr)
	}
}

func TestSimRunMalformed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("name: x\nevents:\n  - at: 1s\n    crash: {nodez: [a]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runArgs("sim", "run", path)
	if code != exitFail || !strings.Contains(stderr, "nodez") {
		t.Errorf("exit %d, stderr %q: want exit 1 naming the unknown field", code, stderr)
	}
	if code, _, _ := runArgs("sim"); code != exitUsage {
		t.Errorf("sim without arguments: exit %d, want %d", code, exitUsage)
	}
}
