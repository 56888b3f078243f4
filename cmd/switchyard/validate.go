package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/switchyard-lb/switchyard/core/config"
	"github.com/switchyard-lb/switchyard/core/ipam"
)

func init() {
	register(&command{name: "validate", summary: "check metallb.io manifests and summarise the configuration", run: runValidate})
}

const validateSynopsis = `usage: switchyard validate [--plan OLD]... FILE...

Loads the multi-document YAML files (the manifests you would kubectl apply) as one
configuration and checks it as the admission webhook would. Problems are printed to stderr,
one per line, and the exit status is 1. Otherwise a summary of the pools, advertisements and
BGP peers is printed to stdout. Warnings (unknown fields, kinds that are not read, references
to missing objects) go to stderr and do not change the exit status.

With --plan, the OLD files are loaded as the configuration in force, and the summary is
followed by the IPAM plan: what moving from OLD to the new FILEs does to the addresses of the
LoadBalancer Services found in either set of files (their status.loadBalancer.ingress
addresses; a Service without them first gets what OLD would assign it).

  switchyard validate --plan old.yaml new.yaml`

func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", validateSynopsis, stderr)
	var oldFiles []string
	fs.Func("plan", "load `OLD` as the configuration in force and print the IPAM plan for moving to FILE... (repeat for several files)", func(path string) error {
		oldFiles = append(oldFiles, path)
		return nil
	})
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "switchyard validate: no files given")
		fs.Usage()
		return exitUsage
	}

	res, ok := loadAndReport(fs.Args(), "", stderr)
	if !ok {
		return exitFail
	}
	var oldRes *config.Result
	if len(oldFiles) > 0 {
		if oldRes, ok = loadAndReport(oldFiles, "old configuration: ", stderr); !ok {
			return exitFail
		}
	}
	printSummary(stdout, res)
	if oldRes != nil {
		svcs := planServices(oldRes, res, stderr)
		assignUnderOld(oldRes.Config, svcs, stderr)
		printPlan(stdout, ipam.Plan(oldRes.Config, res.Config, svcs, ipam.Options{}))
	}
	return exitOK
}

// loadAndReport loads files, printing warnings and problems to stderr, each line prefixed
// with prefix. It reports whether the configuration is valid.
func loadAndReport(files []string, prefix string, stderr io.Writer) (*config.Result, bool) {
	res, err := config.LoadFiles(files...)
	if res != nil {
		for _, w := range res.Warnings {
			fmt.Fprintf(stderr, "warning: %s%v\n", prefix, w)
		}
	}
	var problems config.Errors
	switch {
	case errors.As(err, &problems):
		for _, p := range problems {
			fmt.Fprintf(stderr, "%s%v\n", prefix, p)
		}
		fmt.Fprintf(stderr, "switchyard validate: %s%d problem(s); the configuration is not valid\n", prefix, len(problems))
		return nil, false
	case err != nil:
		fmt.Fprintf(stderr, "switchyard validate: %s%v\n", prefix, err)
		return nil, false
	}
	return res, true
}

// printSummary writes a readable account of a valid configuration.
func printSummary(w io.Writer, res *config.Result) {
	c := res.Config
	fmt.Fprintf(w, "Configuration is valid: %s, %s, %s, %s, %s.\n",
		plural(len(c.Pools), "pool"), plural(len(c.L2Advertisements), "L2 advertisement"),
		plural(len(c.BGPAdvertisements), "BGP advertisement"), plural(len(c.Peers), "BGP peer"),
		plural(len(c.BFDProfiles), "BFD profile"))

	// The tables are aligned in a buffer first so that the padding tabwriter adds after an
	// empty last cell can be trimmed from each line.
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	if len(c.Pools) > 0 {
		fmt.Fprintln(tw, "\nPools:")
		for _, p := range c.Pools {
			ranges := make([]string, len(p.Ranges))
			for i, r := range p.Ranges {
				ranges[i] = r.String()
			}
			var notes []string
			if !p.AutoAssign {
				notes = append(notes, "on request only")
			}
			if p.AvoidBuggyIPs {
				notes = append(notes, "avoids .0 and .255")
			}
			if a := p.Allocation; a != nil {
				notes = append(notes, allocationText(a))
			}
			row(tw, p.Name, strings.Join(ranges, ", "), strings.Join(notes, "; "))
		}
	}
	if len(c.L2Advertisements) > 0 {
		fmt.Fprintln(tw, "\nL2 advertisements:")
		for _, a := range c.L2Advertisements {
			row(tw, a.Name, "pools: "+listOrNone(a.Pools), "nodes: "+selectorsText(a.NodeSelectors), "interfaces: "+listOrAll(a.Interfaces))
		}
	}
	if len(c.BGPAdvertisements) > 0 {
		fmt.Fprintln(tw, "\nBGP advertisements:")
		for _, a := range c.BGPAdvertisements {
			comms := make([]string, len(a.Communities))
			for i, cm := range a.Communities {
				comms[i] = cm.String()
			}
			pref := "-"
			if a.LocalPref != 0 {
				pref = fmt.Sprint(a.LocalPref)
			}
			row(tw, a.Name, "pools: "+listOrNone(a.Pools), fmt.Sprintf("aggregation: /%d /%d", a.AggregationLength, a.AggregationLengthV6),
				"localPref: "+pref, "communities: "+listOrNone(comms), "peers: "+listOrAll(a.Peers), "nodes: "+selectorsText(a.NodeSelectors))
		}
	}
	if len(c.Peers) > 0 {
		fmt.Fprintln(tw, "\nBGP peers:")
		for _, p := range c.Peers {
			row(tw, p.Name, peerTarget(p), asText(p), fmt.Sprintf("hold %s, keepalive %s", p.HoldTime, p.KeepaliveTime),
				"nodes: "+selectorsText(p.NodeSelectors), peerNotes(p))
		}
	}
	if len(c.BFDProfiles) > 0 {
		fmt.Fprintln(tw, "\nBFD profiles:")
		for _, b := range c.BFDProfiles {
			row(tw, b.Name, fmt.Sprintf("rx %s, tx %s, multiplier %d", b.ReceiveInterval, b.TransmitInterval, b.DetectMultiplier),
				fmt.Sprintf("echo: %v", b.EchoMode), fmt.Sprintf("passive: %v", b.PassiveMode), fmt.Sprintf("minimum TTL %d", b.MinimumTTL))
		}
	}
	if len(res.Services) > 0 {
		fmt.Fprintf(tw, "\n%s also in the files.\n", plural(len(res.Services), "Service"))
	}
	tw.Flush()
	writeTrimmed(w, table.String())
}

// writeTrimmed writes text without the spaces tabwriter leaves at the end of lines.
func writeTrimmed(w io.Writer, text string) {
	for _, line := range strings.SplitAfter(text, "\n") {
		if line != "" {
			fmt.Fprintln(w, strings.TrimRight(line, " \n"))
		}
	}
}

// row writes one indented table row.
func row(w io.Writer, cells ...string) {
	fmt.Fprintf(w, "  %s\n", strings.Join(cells, "\t"))
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

func listOrAll(xs []string) string {
	if len(xs) == 0 {
		return "all"
	}
	return strings.Join(xs, ", ")
}

type selector interface{ String() string }

// selectorsText shows label selectors, any of which may match; none means every node.
func selectorsText[S selector](sels []S) string {
	if len(sels) == 0 {
		return "all"
	}
	parts := make([]string, len(sels))
	for i, s := range sels {
		parts[i] = "{" + s.String() + "}"
		if s.String() == "" {
			parts[i] = "{everything}"
		}
	}
	return strings.Join(parts, " or ")
}

func allocationText(a *config.ServiceAllocation) string {
	var parts []string
	if a.Priority != 0 {
		parts = append(parts, fmt.Sprintf("priority %d", a.Priority))
	}
	if len(a.Namespaces) > 0 {
		parts = append(parts, "namespaces "+strings.Join(a.Namespaces, ", "))
	}
	if len(a.NamespaceSelectors) > 0 {
		parts = append(parts, "namespace labels "+selectorsText(a.NamespaceSelectors))
	}
	if len(a.ServiceSelectors) > 0 {
		parts = append(parts, "service labels "+selectorsText(a.ServiceSelectors))
	}
	if len(parts) == 0 {
		return "any Service"
	}
	return "serves " + strings.Join(parts, ", ")
}

func peerTarget(p *config.Peer) string {
	var target string
	if p.Addr.IsValid() {
		target = netip.AddrPortFrom(p.Addr, p.Port).String()
	} else {
		target = fmt.Sprintf("interface %s, port %d", p.Interface, p.Port)
	}
	if p.VRF != "" {
		target += " vrf " + p.VRF
	}
	return target
}

func asText(p *config.Peer) string {
	kind := "eBGP"
	if p.IBGP() {
		kind = "iBGP"
	}
	remote := fmt.Sprintf("AS%d", p.ASN)
	if p.DynamicASN != config.DynamicASNNone {
		remote = "dynamic AS (" + string(p.DynamicASN) + ")"
	}
	return fmt.Sprintf("AS%d -> %s %s", p.MyASN, remote, kind)
}

func peerNotes(p *config.Peer) string {
	var notes []string
	if p.BFDProfile != "" {
		notes = append(notes, "BFD "+p.BFDProfile)
	}
	if p.EBGPMultiHop {
		notes = append(notes, "multihop")
	}
	if p.Password != "" || p.PasswordSecret != nil {
		notes = append(notes, "TCP-MD5")
	}
	if p.EnableGracefulRestart {
		notes = append(notes, "graceful restart")
	}
	return strings.Join(notes, ", ")
}
