package ipam

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-lb/switchyard/core/config"
)

func planString(entries []PlanEntry) string {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %s [%s]@%q -> [%s]@%q: %s\n", e.Service, e.Action, ipStrings(e.OldIPs), e.OldPool, ipStrings(e.NewIPs), e.NewPool, e.Reason)
	}
	return b.String()
}

func TestPlan(t *testing.T) {
	oldCfg := cfgOf(
		mkPool(t, "p", "10.0.0.0/24"),
		mkPool(t, "gone", "10.9.0.0/24"),
		allocation(mkPool(t, "team", "10.7.0.0/24"), config.ServiceAllocation{Namespaces: []string{"team"}}),
		mkPool(t, "x", "10.5.0.0/24"),
	)
	newCfg := cfgOf(
		mkPool(t, "p", "10.0.0.0/25"),
		allocation(mkPool(t, "team", "10.7.0.0/24"), config.ServiceAllocation{Namespaces: []string{"other"}}),
		mkPool(t, "y", "10.5.0.0/16"),
	)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s Service, minutes int) Service {
		s.Created = t0.Add(time.Duration(minutes) * time.Minute)
		return s
	}
	svcs := []Service{
		at(mk("e", current("10.5.0.9")), 5),
		at(mk("d", inNS("team"), current("10.7.0.1")), 4),
		at(mk("c", current("10.9.0.1")), 3),
		at(mk("b", current("10.0.0.200")), 2),
		at(mk("a", current("10.0.0.1")), 1),
		at(mk("pending"), 0),
		at(mk("foreign", class("other.io/lb"), current("10.0.0.100")), 0),
	}
	want := `default/a Keep [10.0.0.1]@"p" -> [10.0.0.1]@"p": still in pool "p"
default/b Reassign [10.0.0.200]@"p" -> [10.0.0.0]@"p": pool "p" no longer holds them: 10.0.0.200 is outside every address pool
default/c Reassign [10.9.0.1]@"gone" -> [10.0.0.2]@"p": pool "gone" was removed
default/e Keep [10.5.0.9]@"x" -> [10.5.0.9]@"y": moved from pool "x" to pool "y"
team/d Reassign [10.7.0.1]@"team" -> [10.0.0.3]@"p": pool "team" does not serve namespace "team" (serviceAllocation)
`
	got := planString(Plan(oldCfg, newCfg, svcs, Options{}))
	if got != want {
		t.Fatalf("plan\n got:\n%s\nwant:\n%s", got, want)
	}
}

func TestPlanRelease(t *testing.T) {
	oldCfg := cfgOf(mkPool(t, "p", "10.0.0.0/30"))
	newCfg := cfgOf(mkPool(t, "p", "10.0.0.0/32"))
	svcs := []Service{mk("kept", current("10.0.0.0")), mk("dropped", current("10.0.0.1"))}
	entries := Plan(oldCfg, newCfg, svcs, Options{})
	want := `default/dropped Release [10.0.0.1]@"p" -> []@"": pool "p" no longer holds them: 10.0.0.1 is outside every address pool; no new address: no IPv4 address available in pool "p" (exhausted: 1 of 1 in use)
default/kept Keep [10.0.0.0]@"p" -> [10.0.0.0]@"p": still in pool "p"
`
	if got := planString(entries); got != want {
		t.Fatalf("plan\n got:\n%s\nwant:\n%s", got, want)
	}
	if entries[0].Err == nil || entries[1].Err != nil {
		t.Fatalf("Err: %v, %v", entries[0].Err, entries[1].Err)
	}
}

func TestPlanIsPure(t *testing.T) {
	cfg := cfgOf(mkPool(t, "p", "10.0.0.0/24"))
	svcs := []Service{mk("a", current("10.0.0.5"))}
	before := fmt.Sprint(svcs)
	Plan(cfg, cfg, svcs, Options{})
	if after := fmt.Sprint(svcs); after != before {
		t.Fatalf("Plan changed its input: %s -> %s", before, after)
	}
}
