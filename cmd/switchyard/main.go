// Command switchyard is Switchyard's single binary: a load balancer for bare-metal Kubernetes
// that reads MetalLB's metallb.io API. Each role is a subcommand (controller, speaker,
// operator, sim, validate, version).
//
// A subcommand lives in a file of its own that registers it from an init function:
//
//	func init() {
//		register(&command{name: "validate", summary: "...", run: runValidate})
//	}
//
// and parses its own flags with a flag.FlagSet from newFlagSet, so that `switchyard NAME
// --help` works the same for every subcommand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand.
type command struct {
	// name is the word that selects the subcommand.
	name string
	// summary is the one-line description shown by `switchyard help`.
	summary string
	// run runs the subcommand with the arguments after its name and returns the exit code:
	// 0 for success, 1 for failure, 2 for a usage error. ctx is cancelled on SIGINT and
	// SIGTERM; long-running subcommands return when it is.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// Exit codes shared by the subcommands.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

var commands = map[string]*command{}

// register adds a subcommand; it is called from init functions only.
func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("switchyard: subcommand registered twice: " + c.name)
	}
	commands[c.name] = c
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to the subcommand named by args[0].
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c.run(ctx, []string{"--help"}, stdout, stderr)
			}
		}
		usage(stdout)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "switchyard: unknown subcommand %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: switchyard SUBCOMMAND [FLAGS] [ARGS]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Subcommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'switchyard SUBCOMMAND --help' for the flags of a subcommand.")
}

// newFlagSet returns a flag set for a subcommand that reports errors instead of exiting and
// prints synopsis, then the flags, for --help.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("switchyard "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), synopsis)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(fs.Output())
			fmt.Fprintln(fs.Output(), "Flags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args with fs. It returns done=true with the exit code when the
// subcommand should stop: after --help (exit 0) or a flag error (exit 2, already printed).
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return exitOK, false
	case errors.Is(err, flag.ErrHelp):
		return exitOK, true
	default:
		return exitUsage, true
	}
}
