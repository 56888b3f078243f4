package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// runArgs runs the binary's dispatcher as main would, capturing its output.
func runArgs(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestValidateValid(t *testing.T) {
	code, stdout, stderr := runArgs("validate", "testdata/valid.yaml")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	wantOut := `Configuration is valid: 1 pool, 1 L2 advertisement, 1 BGP advertisement, 1 BGP peer, 0 BFD profiles.

Pools:
  lan  192.168.1.240/28, 2001:db8::f0-2001:db8::ff

L2 advertisements:
  lan  pools: lan  nodes: all  interfaces: eth0

BGP advertisements:
  host-routes  pools: lan  aggregation: /32 /128  localPref: 50  communities: 65535:65281  peers: all  nodes: all

BGP peers:
  router  192.168.1.1:179  AS64500 -> AS64501 eBGP  hold 1m30s, keepalive 30s  nodes: all  BFD fast
`
	if diff := cmp.Diff(wantOut, stdout); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	wantErr := `warning: testdata/valid.yaml#3: BGPPeer metallb-system/router: spec.bfdProfile: "fast": no BFDProfile has this name; the session runs without BFD until one is created
`
	if diff := cmp.Diff(wantErr, stderr); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
}

func TestValidateInvalid(t *testing.T) {
	code, stdout, stderr := runArgs("validate", "testdata/valid.yaml", "testdata/invalid.yaml")
	if code != exitFail {
		t.Errorf("exit %d, want %d", code, exitFail)
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
	want := `warning: testdata/invalid.yaml#1: IPAddressPool metallb-system/pool-a: spec.autoAsign: unknown field; ignored
warning: testdata/valid.yaml#3: BGPPeer metallb-system/router: spec.bfdProfile: "fast": no BFDProfile has this name; the session runs without BFD until one is created
testdata/invalid.yaml#1: IPAddressPool metallb-system/pool-a: spec.addresses[1]: "10.0.0.9-10.0.0.1": start 10.0.0.9 is after end 10.0.0.1
testdata/invalid.yaml#2: BGPPeer metallb-system/router: metadata.name: BGPPeer metallb-system/router is defined more than once
switchyard validate: 2 problem(s); the configuration is not valid
`
	if diff := cmp.Diff(want, stderr); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
}

func TestValidateExamples(t *testing.T) {
	code, stdout, stderr := runArgs("validate", "../../scenarios/examples/l2.yaml", "../../scenarios/examples/bgp.yaml")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if !strings.HasPrefix(stdout, "Configuration is valid: 3 pools, 1 L2 advertisement, 2 BGP advertisements, 2 BGP peers, 1 BFD profile.\n") {
		t.Errorf("stdout:\n%s", stdout)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args      []string
		code      int
		stdoutHas string
		stderrHas string
	}{
		{args: nil, code: exitUsage, stderrHas: "usage: switchyard SUBCOMMAND"},
		{args: []string{"help"}, code: exitOK, stdoutHas: "  validate   check metallb.io manifests"},
		{args: []string{"frobnicate"}, code: exitUsage, stderrHas: `switchyard: unknown subcommand "frobnicate"`},
		{args: []string{"validate"}, code: exitUsage, stderrHas: "switchyard validate: no files given"},
		{args: []string{"validate", "--help"}, code: exitOK, stderrHas: "usage: switchyard validate [--plan OLD]... FILE..."},
		{args: []string{"help", "validate"}, code: exitOK, stderrHas: "usage: switchyard validate [--plan OLD]... FILE..."},
		{args: []string{"validate", "--bogus", "x.yaml"}, code: exitUsage, stderrHas: "flag provided but not defined: -bogus"},
		{args: []string{"validate", "testdata/missing.yaml"}, code: exitFail, stderrHas: "switchyard validate: open testdata/missing.yaml: no such file or directory"},
		{args: []string{"version"}, code: exitOK, stdoutHas: "switchyard "},
		{args: []string{"version", "extra"}, code: exitUsage, stderrHas: "usage: switchyard version"},
	}
	for _, tc := range tests {
		code, stdout, stderr := runArgs(tc.args...)
		if code != tc.code || !strings.Contains(stdout, tc.stdoutHas) || !strings.Contains(stderr, tc.stderrHas) {
			t.Errorf("switchyard %q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				tc.args, code, stdout, stderr, tc.code, tc.stdoutHas, tc.stderrHas)
		}
	}
}

func TestValidatePlan(t *testing.T) {
	code, stdout, stderr := runArgs("validate", "--plan", "testdata/plan-old.yaml", "testdata/plan-new.yaml")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	want := `Configuration is valid: 2 pools, 0 L2 advertisements, 0 BGP advertisements, 0 BGP peers, 0 BFD profiles.

Pools:
  a  10.0.0.0/29
  c  10.0.2.0/30

5 Services also in the files.

IPAM plan: 2 kept, 1 reassigned, 1 released.
  SERVICE            ACTION    OLD            NEW           WHY
  shop/kept          Keep      10.0.0.5 (a)   10.0.0.5 (a)  still in pool "a"
  shop/out-of-range  Reassign  10.0.0.12 (a)  10.0.0.1 (a)  pool "a" no longer holds them: 10.0.0.12 is outside every address pool
  shop/pool-removed  Release   10.0.1.3 (b)   -             pool "b" was removed; no new address: requested pool "b" does not exist
  web/new            Keep      10.0.0.0 (a)   10.0.0.0 (a)  still in pool "a"
`
	if diff := cmp.Diff(want, stdout); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
}

func TestValidatePlanInvalidOld(t *testing.T) {
	code, stdout, stderr := runArgs("validate", "--plan", "testdata/invalid.yaml", "testdata/plan-new.yaml")
	if code != exitFail || stdout != "" {
		t.Errorf("exit %d, stdout %q; want exit 1 and no output", code, stdout)
	}
	want := "old configuration: testdata/invalid.yaml#1: IPAddressPool metallb-system/pool-a: spec.addresses[1]: \"10.0.0.9-10.0.0.1\": start 10.0.0.9 is after end 10.0.0.1\n"
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr = %q, want it to contain %q", stderr, want)
	}
}
