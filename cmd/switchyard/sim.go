package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/switchyard-lb/switchyard/scenarios"
)

func init() {
	register(&command{name: "sim", summary: "run a scenario on the simulated network (sim run FILE)", run: runSim})
}

const simSynopsis = `usage: switchyard sim run FILE [--seed N] [--pcap OUT.pcap] [--trace OUT.jsonl]

Runs the scenario FILE (topology, metallb.io configuration, Services, timed events and
expectations; see scenarios/README.md) on the deterministic simulated network, with a
Switchyard speaker on every node. Prints the timeline, one line
"client-observed outage: N ms" per failover, and the verdict of every expectation.
The exit status is 1 when an expectation fails; the failures are repeated on stderr.

--pcap writes the frames of the network's segment as pcapng (open it with Wireshark);
a scenario with several segments writes one file per segment, named OUT-SEGMENT.pcap.
--trace writes the simulation's JSON-lines trace. The same FILE and seed always give the
same timeline, trace and pcap.`

func runSim(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("sim", simSynopsis, stderr)
	seed := fs.Uint64("seed", 0, "seed for the simulation's random choices (default: the scenario's seed)")
	pcapPath := fs.String("pcap", "", "write the segment's frames to `OUT.pcap` (pcapng)")
	tracePath := fs.String("trace", "", "write the JSON-lines trace to `OUT.jsonl`")
	// Flags may come before or after the positional arguments.
	var positional []string
	for {
		if code, done := parseFlags(fs, args); done {
			return code
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 2 || positional[0] != "run" {
		fmt.Fprintln(stderr, "switchyard sim: expected: run FILE")
		fs.Usage()
		return exitUsage
	}
	sc, err := scenarios.ParseFile(positional[1])
	if err != nil {
		fmt.Fprintf(stderr, "switchyard sim: %v\n", err)
		return exitFail
	}

	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	create := func(path string) (*os.File, error) {
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
		}
		f, err := os.Create(path)
		if err == nil {
			closers = append(closers, f)
		}
		return f, err
	}
	opts := scenarios.Options{Seed: *seed}
	if *tracePath != "" {
		f, err := create(*tracePath)
		if err != nil {
			fmt.Fprintf(stderr, "switchyard sim: %v\n", err)
			return exitFail
		}
		opts.Trace = f
	}
	if *pcapPath != "" {
		several := len(sc.Topology.Segments) > 1
		opts.PCAP = func(segment string) (io.Writer, error) {
			path := *pcapPath
			if several {
				ext := filepath.Ext(path)
				path = strings.TrimSuffix(path, ext) + "-" + segment + ext
			}
			return create(path)
		}
	}

	// The simulation is deterministic only on one P (see package sim).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	res, err := scenarios.Run(sc, opts)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard sim: %v\n", err)
		return exitFail
	}
	if err := res.WriteReport(stdout); err != nil {
		fmt.Fprintf(stderr, "switchyard sim: %v\n", err)
		return exitFail
	}
	var closeErrs []error
	for _, c := range closers {
		closeErrs = append(closeErrs, c.Close())
	}
	closers = nil
	if err := errors.Join(closeErrs...); err != nil {
		fmt.Fprintf(stderr, "switchyard sim: %v\n", err)
		return exitFail
	}
	if !res.Passed() {
		for _, f := range res.Failures() {
			fmt.Fprintf(stderr, "switchyard sim: %s: %s\n", sc.Name, f)
		}
		return exitFail
	}
	return exitOK
}
