package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The helpers below write small manifests, so that each table entry shows only what matters.

func pool(name string, addresses ...string) string {
	return fmt.Sprintf("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: %s, namespace: ns}\nspec:\n  addresses: [%s]\n",
		name, strings.Join(addresses, ", "))
}

func peer(name, spec string) string {
	return fmt.Sprintf("apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: %s, namespace: ns}\nspec: %s\n", name, spec)
}

func bgpAdv(name, spec string) string {
	return fmt.Sprintf("apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: %s, namespace: ns}\nspec: %s\n", name, spec)
}

func l2Adv(name, spec string) string {
	return fmt.Sprintf("apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: %s, namespace: ns}\nspec: %s\n", name, spec)
}

func docs(ds ...string) string { return strings.Join(ds, "---\n") }

// load loads one in-memory file named t.yaml and returns its problems as lines.
func load(t *testing.T, yaml string) (res *Result, errLines, warnLines []string) {
	t.Helper()
	res, err := Load(Source{Name: "t.yaml", Data: []byte(yaml)})
	if err != nil {
		var errs Errors
		if !errors.As(err, &errs) {
			t.Fatalf("Load error %v is not an Errors", err)
		}
		if res.Config != nil {
			t.Errorf("Load returned a Config with errors")
		}
		for _, e := range errs {
			errLines = append(errLines, e.Error())
		}
	} else if res.Config == nil {
		t.Fatalf("Load returned no error and no Config")
	}
	for _, w := range res.Warnings {
		warnLines = append(warnLines, w.Error())
	}
	return res, errLines, warnLines
}

func TestLoadRejects(t *testing.T) {
	const ibgp = "{myASN: 64500, peerASN: 64500, peerAddress: 10.0.0.1"
	const ebgp = "{myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		// Addresses.
		{"empty address", pool("a", `""`), []string{
			`t.yaml#1: IPAddressPool ns/a: spec.addresses[0]: "": empty address`}},
		{"malformed CIDR", pool("a", "10.0.0.300/24"), []string{
			`t.yaml#1: IPAddressPool ns/a: spec.addresses[0]: "10.0.0.300/24": not a valid CIDR (want "192.168.10.0/24" or "fc00::/124")`}},
		{"bare address", pool("a", "10.0.0.1"), []string{
			`t.yaml#1: IPAddressPool ns/a: spec.addresses[0]: "10.0.0.1": neither a CIDR ("192.168.10.0/24") nor a range ("192.168.10.1-192.168.10.9")`}},
		{"start after end", pool("pool-a", "10.0.0.0/29", "10.0.0.9-10.0.0.1"), []string{
			`t.yaml#1: IPAddressPool ns/pool-a: spec.addresses[1]: "10.0.0.9-10.0.0.1": start 10.0.0.9 is after end 10.0.0.1`}},
		{"mixed families", pool("a", "10.0.0.1-2001:db8::1"), []string{
			`t.yaml#1: IPAddressPool ns/a: spec.addresses[0]: "10.0.0.1-2001:db8::1": start 10.0.0.1 and end 2001:db8::1 are of different families`}},
		{"no addresses", pool("a"), []string{
			`t.yaml#1: IPAddressPool ns/a: spec.addresses: no addresses: a pool needs at least one CIDR or range`}},

		// Pools against each other.
		{"overlap within a pool", pool("a", "10.0.0.0/24", "10.0.0.200-10.0.1.5"), []string{
			`t.yaml#1: IPAddressPool ns/a: spec.addresses[1]: "10.0.0.200-10.0.1.5": overlaps "10.0.0.0/24" (spec.addresses[0] of the same pool)`}},
		{"overlap across pools", docs(pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24", "10.0.0.128/25")), []string{
			`t.yaml#2: IPAddressPool ns/b: spec.addresses[1]: "10.0.0.128/25": overlaps "10.0.0.0/24" (spec.addresses[0] of IPAddressPool "a")`}},
		{"ranges inside a larger one", docs(pool("a", "10.0.0.0/24"), pool("b", "10.0.0.16/28"), pool("c", "10.0.0.64/28", "10.0.1.0/24")), []string{
			`t.yaml#2: IPAddressPool ns/b: spec.addresses[0]: "10.0.0.16/28": overlaps "10.0.0.0/24" (spec.addresses[0] of IPAddressPool "a")`,
			`t.yaml#3: IPAddressPool ns/c: spec.addresses[0]: "10.0.0.64/28": overlaps "10.0.0.0/24" (spec.addresses[0] of IPAddressPool "a")`}},
		{"IPv4 and IPv6 never overlap", docs(pool("a", "0.0.0.0/0"), pool("b", `"::/0"`)), nil},
		{"IPv6 overlap", docs(pool("a", "2001:db8::/64"), pool("b", "2001:db8::ff-2001:db8:0:1::1")), []string{
			`t.yaml#2: IPAddressPool ns/b: spec.addresses[0]: "2001:db8::ff-2001:db8:0:1::1": overlaps "2001:db8::/64" (spec.addresses[0] of IPAddressPool "a")`}},
		{"duplicate pool name", docs(pool("a", "10.0.0.0/24"), pool("a", "10.0.1.0/24")), []string{
			`t.yaml#2: IPAddressPool ns/a: metadata.name: IPAddressPool ns/a is defined more than once`}},
		{"duplicate name across namespaces", docs(l2Adv("a", "{}"), strings.Replace(l2Adv("a", "{}"), "namespace: ns", "namespace: other", 1)), []string{
			`t.yaml#2: L2Advertisement other/a: metadata.name: L2Advertisement "a" is also defined as ns/a; names must be unique across namespaces`}},
		{"missing name", "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nspec: {addresses: [10.0.0.0/24]}\n", []string{
			`t.yaml#1: IPAddressPool: metadata.name: missing`}},
		{"bad namespace selector", docs(pool("a", "10.0.0.0/24") + "  serviceAllocation: {namespaceSelectors: [{matchExpressions: [{key: k, operator: Foo}]}], namespaces: [\"\"]}\n"), []string{
			`t.yaml#1: IPAddressPool ns/a: spec.serviceAllocation.namespaceSelectors[0]: invalid label selector: "Foo" is not a valid label selector operator`,
			`t.yaml#1: IPAddressPool ns/a: spec.serviceAllocation.namespaces[0]: empty namespace name`}},

		// BGPAdvertisement.
		{"aggregation shorter than CIDR", docs(pool("a", "10.0.0.0/26"), bgpAdv("adv", "{aggregationLength: 24}")), []string{
			`t.yaml#2: BGPAdvertisement ns/adv: spec.aggregationLength: 24: shorter than prefix 10.0.0.0/26 of IPAddressPool "a"; the aggregated route would cover addresses outside the pool`}},
		{"aggregation shorter than a range's prefixes", docs(pool("a", "10.0.0.0-10.0.0.127"), bgpAdv("adv", "{aggregationLength: 24}")), []string{
			`t.yaml#2: BGPAdvertisement ns/adv: spec.aggregationLength: 24: shorter than prefix 10.0.0.0/25 of IPAddressPool "a"; the aggregated route would cover addresses outside the pool`}},
		{"IPv6 aggregation shorter than CIDR", docs(pool("a", "2001:db8::/120"), bgpAdv("adv", "{ipAddressPools: [a], aggregationLengthV6: 64}")), []string{
			`t.yaml#2: BGPAdvertisement ns/adv: spec.aggregationLengthV6: 64: shorter than prefix 2001:db8::/120 of IPAddressPool "a"; the aggregated route would cover addresses outside the pool`}},
		{"aggregation out of range", bgpAdv("adv", "{aggregationLength: 33, aggregationLengthV6: 129}"), []string{
			`t.yaml#1: BGPAdvertisement ns/adv: spec.aggregationLength: 33: must be from 1 to 32 for IPv4`,
			`t.yaml#1: BGPAdvertisement ns/adv: spec.aggregationLengthV6: 129: must be from 1 to 128 for IPv6`}},
		{"conflicting localPref", docs(pool("a", "10.0.0.0/24"), bgpAdv("one", "{localPref: 100}"), bgpAdv("two", "{ipAddressPools: [a], localPref: 200}")), []string{
			`t.yaml#3: BGPAdvertisement ns/two: spec.localPref: 200: conflicts with localPref 100 of BGPAdvertisement "one" for IPAddressPool "a" and the same peers`}},
		{"malformed communities", bgpAdv("adv", `{communities: ["65536:1", "large:1:2", "1:2", "1:2"]}`), []string{
			`t.yaml#1: BGPAdvertisement ns/adv: spec.communities[0]: "65536:1": malformed community: standard community part "65536" is not a number from 0 to 65535`,
			`t.yaml#1: BGPAdvertisement ns/adv: spec.communities[1]: "large:1:2": malformed community: a large community has three parts: "large:a:b:c"`,
			`t.yaml#1: BGPAdvertisement ns/adv: spec.communities[3]: "1:2": duplicate of spec.communities[2]`}},
		{"unknown community alias", bgpAdv("adv", `{communities: [vpn-only]}`), []string{
			`t.yaml#1: BGPAdvertisement ns/adv: spec.communities[0]: "vpn-only": unknown community alias: no Community object defines it`}},
		{"bad Community aliases", "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c, namespace: ns}\nspec:\n  communities: [{name: a, value: '1:2'}, {name: a, value: '3:4'}, {name: b, value: 'x'}, {value: '1:1'}]\n", []string{
			`t.yaml#1: Community ns/c: spec.communities[1].name: "a": alias already defined by Community ns/c spec.communities[0]`,
			`t.yaml#1: Community ns/c: spec.communities[2].value: "x": want a standard community "a:b" or a large community "large:a:b:c"`,
			`t.yaml#1: Community ns/c: spec.communities[3].name: missing`}},
		{"repeated lists in advertisements", docs(pool("a", "10.0.0.0/24"), l2Adv("l2", `{ipAddressPools: [a, a, ""], interfaces: [eth0, eth0, ""], nodeSelectors: [{matchLabels: {x: z}}, {matchLabels: {x: z}}]}`)), []string{
			`t.yaml#2: L2Advertisement ns/l2: spec.ipAddressPools[1]: "a": listed twice`,
			`t.yaml#2: L2Advertisement ns/l2: spec.ipAddressPools[2]: empty pool name`,
			`t.yaml#2: L2Advertisement ns/l2: spec.nodeSelectors[1]: duplicate of spec.nodeSelectors[0]`,
			`t.yaml#2: L2Advertisement ns/l2: spec.interfaces[1]: "eth0": listed twice`,
			`t.yaml#2: L2Advertisement ns/l2: spec.interfaces[2]: empty interface name`}},

		// BGPPeer.
		{"missing myASN", peer("p", "{peerASN: 64501, peerAddress: 10.0.0.1}"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.myASN: missing: the local ASN is required`}},
		{"missing peer ASN", peer("p", "{myASN: 64500, peerAddress: 10.0.0.1}"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.peerASN: missing: set peerASN or dynamicASN`}},
		{"both peerASN and dynamicASN", peer("p", ebgp+", dynamicASN: external}"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.peerASN: 64501: peerASN and dynamicASN "external" are mutually exclusive; set exactly one`}},
		{"unknown dynamicASN", peer("p", "{myASN: 64500, dynamicASN: outside, peerAddress: 10.0.0.1}"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.dynamicASN: "outside": must be "internal" or "external"`}},
		{"keepalive without hold", peer("p", ebgp+", keepaliveTime: 10s}"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.keepaliveTime: 10s: set without holdTime; set holdTime too, above the keepalive time`}},
		{"keepalive not below hold", peer("p", ebgp+", holdTime: 30s, keepaliveTime: 30s}"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.keepaliveTime: 30s: must be lower than holdTime 30s`}},
		{"hold time of 2s", peer("p", ebgp+", holdTime: 2s}"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.holdTime: 2s: must be 0 (no keepalives) or at least 3s (RFC 4271)`}},
		{"hold time of 1s", peer("p", ebgp+", holdTime: 1s}"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.holdTime: 1s: must be 0 (no keepalives) or at least 3s (RFC 4271)`}},
		{"hold time too long", peer("p", ebgp+", holdTime: 20h}"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.holdTime: 20h0m0s: must be at most 18h12m15s (RFC 4271)`}},
		{"connect time", docs(peer("p", ebgp+", connectTime: 500ms}"), peer("q", "{myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.2, connectTime: 1500ms}")), []string{
			`t.yaml#1: BGPPeer ns/p: spec.connectTime: 500ms: must be from 1s to 18h12m15s`,
			`t.yaml#2: BGPPeer ns/q: spec.connectTime: 1.5s: must be a whole number of seconds`}},
		{"different myASN", docs(peer("p", ebgp+"}"), peer("q", "{myASN: 64510, peerASN: 64501, peerAddress: 10.0.0.2}")), []string{
			`t.yaml#2: BGPPeer ns/q: spec.myASN: 64510 differs from myASN 64500 of BGPPeer "p": all peers in a VRF must share one local ASN`}},
		{"multihop on iBGP", docs(peer("p", ibgp+", ebgpMultiHop: true}"), peer("q", "{myASN: 64500, dynamicASN: internal, peerAddress: 10.0.0.2, ebgpMultiHop: true}")), []string{
			`t.yaml#1: BGPPeer ns/p: spec.ebgpMultiHop: set on an iBGP session (the peer's ASN is myASN); eBGP multihop applies to eBGP only`,
			`t.yaml#2: BGPPeer ns/q: spec.ebgpMultiHop: set on an iBGP session (the peer's ASN is myASN); eBGP multihop applies to eBGP only`}},
		{"password and passwordSecret", peer("p", ebgp+", password: x, passwordSecret: {name: s}}"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.passwordSecret: password and passwordSecret are mutually exclusive; set at most one`}},
		{"password Secret of the wrong shape", docs(peer("p", ebgp+", passwordSecret: {name: s}}"), "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns}\nstringData: {pass: x}\n"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.passwordSecret: Secret ns/s is of type ""; want "kubernetes.io/basic-auth"`,
			`t.yaml#1: BGPPeer ns/p: spec.passwordSecret: Secret ns/s has no key "password"`}},
		{"malformed addresses", peer("p", "{myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.256, sourceAddress: 'fe80::1%eth0', routerID: '2001:db8::1', peerPort: 20000}"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.peerAddress: "10.0.0.256" is not an IP address`,
			`t.yaml#1: BGPPeer ns/p: spec.sourceAddress: "fe80::1%eth0" has an IPv6 zone, which is not allowed here`,
			`t.yaml#1: BGPPeer ns/p: spec.routerID: "2001:db8::1": a router ID is written as an IPv4 address`,
			`t.yaml#1: BGPPeer ns/p: spec.peerPort: 20000: must be from 1 to 16384`}},
		{"source address of another family", peer("p", ebgp+", sourceAddress: '2001:db8::1'}"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.sourceAddress: "2001:db8::1": not of the family of peerAddress 10.0.0.1`}},
		{"address and interface", docs(peer("p", ebgp+", interface: eth0}"), peer("q", "{myASN: 64500, peerASN: 64501}")), []string{
			`t.yaml#1: BGPPeer ns/p: spec.peerAddress: "10.0.0.1": peerAddress and interface "eth0" are mutually exclusive; set exactly one`,
			`t.yaml#2: BGPPeer ns/q: spec.peerAddress: missing: set peerAddress or interface`}},
		{"same session twice", docs(peer("p", ebgp+"}"), peer("q", ebgp+"}")), []string{
			`t.yaml#2: BGPPeer ns/q: spec.peerAddress: same session as BGPPeer "p" (same address or interface, port, VRF and node selectors)`}},
		{"v1beta1 peer", "apiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: old, namespace: ns}\nspec: {myASN: 64500, peerASN: 64500, peerAddress: 10.0.0.1, ebgpMultiHop: true}\n", []string{
			`t.yaml#1: BGPPeer ns/old: spec.ebgpMultiHop: set on an iBGP session (the peer's ASN is myASN); eBGP multihop applies to eBGP only`}},

		// BFDProfile.
		{"BFD values out of range", "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: b, namespace: ns}\nspec: {receiveInterval: 5, transmitInterval: 60001, detectMultiplier: 1, echoInterval: 9, minimumTtl: 255}\n", []string{
			`t.yaml#1: BFDProfile ns/b: spec.receiveInterval: 5: must be from 10 to 60000 (milliseconds)`,
			`t.yaml#1: BFDProfile ns/b: spec.transmitInterval: 60001: must be from 10 to 60000 (milliseconds)`,
			`t.yaml#1: BFDProfile ns/b: spec.detectMultiplier: 1: must be from 2 to 255`,
			`t.yaml#1: BFDProfile ns/b: spec.echoInterval: 9: must be from 10 to 60000 (milliseconds)`,
			`t.yaml#1: BFDProfile ns/b: spec.minimumTtl: 255: must be from 1 to 254`}},

		// Documents.
		{"unknown metallb.io kind", "apiVersion: metallb.io/v1beta1\nkind: IPPool\nmetadata: {name: x}\n", []string{
			`t.yaml#1: IPPool x: unknown kind IPPool in metallb.io/v1beta1: metallb.io defines IPAddressPool, L2Advertisement, BGPAdvertisement, BFDProfile, Community, MetalLB and the status kinds in v1beta1, BGPPeer in v1beta1 and v1beta2`}},
		{"legacy AddressPool", "apiVersion: metallb.io/v1beta1\nkind: AddressPool\nmetadata: {name: x, namespace: ns}\n", []string{
			`t.yaml#1: AddressPool ns/x: AddressPool was removed in MetalLB 0.13: use IPAddressPool with L2Advertisement or BGPAdvertisement`}},
		{"missing kind", "apiVersion: metallb.io/v1beta1\nmetadata: {name: x}\n", []string{
			`t.yaml#1: object x: missing apiVersion or kind`}},
		{"not a mapping", "- a\n- b\n", []string{
			`t.yaml#1: object: not an object: a document must be a YAML mapping with apiVersion and kind`}},
		{"invalid YAML", "a: [1\n", []string{
			`t.yaml#1: object: invalid YAML: yaml: line 1: did not find expected ',' or ']'`}},
		{"wrong value type", docs("# comment only\n", pool("a", "10.0.0.0/24")+"  autoAssign: \"yes\"\n"), []string{
			`t.yaml#2: IPAddressPool ns/a: spec.autoAssign: wrong type: got string, want bool`}},
		{"number out of range", peer("p", "{myASN: 4294967296, peerASN: 1, peerAddress: 10.0.0.1}"), []string{
			`t.yaml#1: BGPPeer ns/p: spec.myASN: wrong type: got number 4294967296, want uint32`}},
		{"list where a string is expected", "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: a}\nspec: {communities: [[1]]}\n", []string{
			`t.yaml#1: BGPAdvertisement a: spec.communities: wrong type: got array, want string`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, got, _ := load(t, tc.yaml)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s\ninput:\n%s", diff, tc.yaml)
			}
		})
	}
}

func TestLoadWarnsAboutOtherNamespaces(t *testing.T) {
	other := func(doc string) string { return strings.Replace(doc, "namespace: ns", "namespace: default", 1) }
	_, errs, got := load(t, docs(pool("a", "10.0.0.0/24"), other(pool("b", "10.0.1.0/24")), l2Adv("l2", "{}"),
		"apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: no-namespace}\n"))
	if errs != nil {
		t.Fatalf("unexpected errors: %q", errs)
	}
	want := []string{
		`t.yaml#2: IPAddressPool default/b: metadata.namespace: "default" differs from "ns", the namespace of the other configuration objects; Switchyard reads only the namespace it runs in`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestLoadWarnings(t *testing.T) {
	yaml := docs(
		pool("a", "10.0.0.0/24")+"  autoAsign: false\n",
		peer("p", "{myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, bfdProfile: missing}"),
		bgpAdv("adv", "{ipAddressPools: [a, gone], peers: [p, nobody]}"),
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\n",
	)
	res, errs, got := load(t, yaml)
	if errs != nil {
		t.Fatalf("unexpected errors: %q", errs)
	}
	want := []string{
		`t.yaml#1: IPAddressPool ns/a: spec.autoAsign: unknown field; ignored`,
		`t.yaml#4: Deployment default/web: apps/v1 Deployment is not a kind Switchyard reads; ignored`,
		`t.yaml#2: BGPPeer ns/p: spec.bfdProfile: "missing": no BFDProfile has this name; the session runs without BFD until one is created`,
		`t.yaml#3: BGPAdvertisement ns/adv: spec.ipAddressPools[1]: "gone": no IPAddressPool has this name; nothing is advertised for it`,
		`t.yaml#3: BGPAdvertisement ns/adv: spec.peers[1]: "nobody": no BGPPeer has this name; nothing is advertised to it`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if p := res.Config.Peer("p"); p == nil || p.BFDProfile != "missing" {
		t.Errorf("peer p = %+v, want it kept with BFDProfile \"missing\"", p)
	}
	if adv := res.Config.BGPAdvertisements[0]; !cmp.Equal(adv.Pools, []string{"a"}) || !cmp.Equal(adv.Peers, []string{"nobody", "p"}) {
		t.Errorf("advertisement pools %q peers %q, want [a] and [nobody p]", adv.Pools, adv.Peers)
	}
}

// TestMetalLBDocumentationExamples loads manifests shaped like the examples of MetalLB's
// documentation, one file at a time: each must load without errors or warnings.
func TestMetalLBDocumentationExamples(t *testing.T) {
	files, err := filepath.Glob("testdata/metallb-docs/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("testdata: %v, %d files", err, len(files))
	}
	for _, f := range files {
		res, err := LoadFiles(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, w := range res.Warnings {
			t.Errorf("%s: warning: %v", f, w)
		}
	}
}

func TestLoadResolvesBGPExample(t *testing.T) {
	res, err := LoadFiles("testdata/metallb-docs/bgp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := res.Config

	var peers []string
	for _, p := range c.Peers {
		peers = append(peers, fmt.Sprintf("%s my=%d asn=%d dyn=%q addr=%v port=%d hold=%v keep=%v connect=%v multihop=%v bfd=%q ibgp=%v",
			p.Name, p.MyASN, p.ASN, p.DynamicASN, p.Addr, p.Port, p.HoldTime, p.KeepaliveTime, p.ConnectTime, p.EBGPMultiHop, p.BFDProfile, p.IBGP()))
	}
	wantPeers := []string{
		`old-style my=64500 asn=64504 dyn="" addr=10.0.0.5 port=179 hold=1m30s keep=30s connect=2m0s multihop=false bfd="" ibgp=false`,
		`sample my=64500 asn=64501 dyn="" addr=10.0.0.1 port=179 hold=1m30s keep=30s connect=2m0s multihop=false bfd="" ibgp=false`,
		`some-nodes my=64500 asn=64503 dyn="" addr=172.30.0.3 port=180 hold=1m30s keep=30s connect=2m0s multihop=true bfd="" ibgp=false`,
		`unnumbered my=64500 asn=0 dyn="internal" addr=invalid IP port=179 hold=1m30s keep=30s connect=2m0s multihop=false bfd="" ibgp=true`,
		`with-bfd my=64500 asn=64502 dyn="" addr=10.0.0.2 port=179 hold=9s keep=3s connect=5s multihop=false bfd="full1" ibgp=false`,
		`with-secret my=64500 asn=0 dyn="external" addr=10.0.0.4 port=179 hold=1m30s keep=30s connect=2m0s multihop=false bfd="" ibgp=false`,
	}
	if diff := cmp.Diff(wantPeers, peers); diff != "" {
		t.Errorf("peers (-want +got):\n%s", diff)
	}
	if got := c.Peer("with-secret").PasswordSecret; got == nil || *got != (SecretRef{Namespace: "metallb-system", Name: "bgp-password"}) {
		t.Errorf("with-secret PasswordSecret = %+v", got)
	}
	if got := c.Peer("old-style").NodeSelectors[0].String(); got != "kubernetes.io/hostname in (hostA,hostB)" {
		t.Errorf("old-style node selector = %q", got)
	}

	var advs []string
	for _, a := range c.BGPAdvertisements {
		var comms []string
		for _, cm := range a.Communities {
			comms = append(comms, cm.String())
		}
		advs = append(advs, fmt.Sprintf("%s pools=%v agg=%d/%d pref=%d comms=%v peers=%v nodes=%d",
			a.Name, a.Pools, a.AggregationLength, a.AggregationLengthV6, a.LocalPref, comms, a.Peers, len(a.NodeSelectors)))
	}
	wantAdvs := []string{
		"external pools=[bgp-pool] agg=24/128 pref=0 comms=[1234:1 large:64500:1:2] peers=[] nodes=0",
		"local pools=[bgp-pool] agg=32/128 pref=100 comms=[65535:65282] peers=[] nodes=0",
		"v6 pools=[bgp-pool-v6] agg=32/120 pref=0 comms=[] peers=[sample with-bfd] nodes=1",
	}
	if diff := cmp.Diff(wantAdvs, advs); diff != "" {
		t.Errorf("BGP advertisements (-want +got):\n%s", diff)
	}

	wantBFD := []BFDProfile{
		{Name: "defaults", ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 3, EchoInterval: 50 * time.Millisecond, MinimumTTL: 254},
		{Name: "full1", ReceiveInterval: 380 * time.Millisecond, TransmitInterval: 270 * time.Millisecond, DetectMultiplier: 5, EchoInterval: 62 * time.Millisecond, EchoMode: true, PassiveMode: true, MinimumTTL: 254},
	}
	var gotBFD []BFDProfile
	for _, b := range c.BFDProfiles {
		gotBFD = append(gotBFD, *b)
	}
	if diff := cmp.Diff(wantBFD, gotBFD); diff != "" {
		t.Errorf("BFD profiles (-want +got):\n%s", diff)
	}
}

func TestLoadResolvesPoolsAndL2(t *testing.T) {
	res, err := Load(
		Source{Name: "pools.yaml", Data: mustRead(t, "testdata/metallb-docs/ipaddresspools.yaml")},
		Source{Name: "more.yaml", Data: []byte(docs(
			l2Adv("all", "{}"),
			l2Adv("east", "{ipAddressPoolSelectors: [{matchLabels: {zone: east}}], interfaces: [eth1]}"),
			"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: web, namespace: shop}\n  spec: {type: LoadBalancer}\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: shop, labels: {foo: bar}}\n",
		))},
	)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Config
	var pools []string
	for _, p := range c.Pools {
		pools = append(pools, fmt.Sprintf("%s %v auto=%v buggy=%v v4=%v v6=%v", p.Name, p.Ranges, p.AutoAssign, p.AvoidBuggyIPs, p.HasFamily(IPv4), p.HasFamily(IPv6)))
	}
	want := []string{
		"cheap [192.168.144.0/20] auto=true buggy=false v4=true v6=false",
		"expensive [42.176.25.64/30] auto=false buggy=false v4=true v6=false",
		"first-pool [192.168.9.1-192.168.9.5 192.168.10.0/24 fc00:f853:ccd:e799::/124] auto=true buggy=false v4=true v6=true",
		"ipaddresspool-with-priority [172.20.0.100/30] auto=true buggy=false v4=true v6=false",
		"ipv6-only [2001:db8:1::1-2001:db8:1::ff] auto=true buggy=false v4=false v6=true",
		"no-buggy-ips [192.168.200.0/24] auto=true buggy=true v4=true v6=false",
	}
	if diff := cmp.Diff(want, pools); diff != "" {
		t.Errorf("pools (-want +got):\n%s", diff)
	}
	alloc := c.Pool("ipaddresspool-with-priority").Allocation
	if alloc == nil || alloc.Priority != 50 || !cmp.Equal(alloc.Namespaces, []string{"namespace-a", "namespace-b"}) ||
		alloc.NamespaceSelectors[0].String() != "foo=bar" || alloc.ServiceSelectors[0].String() != "serviceType in (database)" {
		t.Errorf("serviceAllocation = %+v", alloc)
	}
	if got := c.L2Advertisements[0]; got.Name != "all" || len(got.Pools) != 6 {
		t.Errorf("L2Advertisement all covers %v, want every pool", got.Pools)
	}
	if got := c.L2Advertisements[1]; got.Name != "east" || !cmp.Equal(got.Pools, []string{"ipv6-only"}) || !cmp.Equal(got.Interfaces, []string{"eth1"}) {
		t.Errorf("L2Advertisement east = %+v, want pools [ipv6-only] on eth1", got)
	}
	if len(res.Services) != 1 || res.Services[0].Name != "web" || len(res.Namespaces) != 1 || res.Namespaces[0].Labels["foo"] != "bar" {
		t.Errorf("Services %v, Namespaces %v: want web and shop from the List", res.Services, res.Namespaces)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
