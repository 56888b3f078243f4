package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
)

func init() {
	register(&command{name: "version", summary: "print the version of this binary", run: runVersion})
}

// version is set at link time (-ldflags "-X main.version=v1.2.3"); otherwise the module
// version or VCS revision recorded by the Go toolchain is shown.
var version = ""

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "usage: switchyard version\n\nPrints the version of this binary, its VCS revision and Go version.", stderr)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return exitUsage
	}
	v, revision, goVersion := version, "", ""
	if info, ok := debug.ReadBuildInfo(); ok {
		goVersion = info.GoVersion
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	fmt.Fprintf(stdout, "switchyard %s", v)
	if revision != "" {
		fmt.Fprintf(stdout, " revision %s", revision)
	}
	if goVersion != "" {
		fmt.Fprintf(stdout, " %s", goVersion)
	}
	fmt.Fprintln(stdout)
	return exitOK
}
