package ipam

import (
	"errors"
	"fmt"
	"testing"

	"github.com/switchyard-lb/switchyard/core/config"
	"k8s.io/apimachinery/pkg/labels"
)

// svcOpt adjusts a test Service.
type svcOpt func(*Service)

func mk(name string, opts ...svcOpt) Service {
	s := v4svc(name)
	for _, o := range opts {
		o(&s)
	}
	return s
}

func inNS(ns string) svcOpt         { return func(s *Service) { s.Namespace = ns } }
func withLabels(k, v string) svcOpt { return func(s *Service) { s.Labels = map[string]string{k: v} } }
func withNSLabels(k, v string) svcOpt {
	return func(s *Service) { s.NamespaceLabels = map[string]string{k: v} }
}
func families(p FamilyPolicy, f ...Family) svcOpt {
	return func(s *Service) { s.FamilyPolicy, s.Families = p, f }
}
func requestIPs(ips ...string) svcOpt { return func(s *Service) { s.RequestedIPs = addrs(ips...) } }
func requestPool(p string) svcOpt     { return func(s *Service) { s.RequestedPool = p } }
func current(ips ...string) svcOpt    { return func(s *Service) { s.CurrentIPs = addrs(ips...) } }
func class(c string) svcOpt           { return func(s *Service) { s.LoadBalancerClass = c } }
func shared(key string, ports ...int32) svcOpt {
	return func(s *Service) {
		s.SharingKey = key
		for _, p := range ports {
			s.Ports = append(s.Ports, Port{"TCP", p})
		}
	}
}
func local(selector string) svcOpt {
	return func(s *Service) {
		s.ExternalTrafficPolicy = TrafficLocal
		s.Selector = map[string]string{"app": selector}
	}
}

func noAuto(p *config.Pool) *config.Pool     { p.AutoAssign = false; return p }
func avoidBuggy(p *config.Pool) *config.Pool { p.AvoidBuggyIPs = true; return p }
func allocation(p *config.Pool, al config.ServiceAllocation) *config.Pool {
	p.Allocation = &al
	return p
}

// fill returns n Services named fill-0 ... fill-(n-1) with the given options.
func fill(n int, opts ...svcOpt) []Service {
	out := make([]Service, n)
	for i := range out {
		out[i] = mk(fmt.Sprintf("fill-%d", i), opts...)
	}
	return out
}

func TestAllocateRules(t *testing.T) {
	tests := []struct {
		name     string
		pools    func(t *testing.T) []*config.Pool
		opts     Options
		before   []Service
		svc      Service
		wantIPs  string
		wantPool string
		wantErr  error
		wantMsg  string
	}{
		{
			name:    "CIDR: lowest address first",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/30")} },
			svc:     mk("web"),
			wantIPs: "10.0.0.0", wantPool: "p",
		},
		{
			name:    "a-b range",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.5-10.0.0.6")} },
			before:  fill(1),
			svc:     mk("web"),
			wantIPs: "10.0.0.6", wantPool: "p",
		},
		{
			name: "mixed CIDR and range: the next range after the first fills",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "p", "10.0.0.0/31", "10.0.1.7-10.0.1.9")}
			},
			before:  fill(2),
			svc:     mk("web"),
			wantIPs: "10.0.1.7", wantPool: "p",
		},
		{
			name: "avoidBuggyIPs skips .255 and .0",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{avoidBuggy(mkPool(t, "p", "10.0.0.254-10.0.1.2"))}
			},
			before:  fill(1),
			svc:     mk("web"),
			wantIPs: "10.0.1.1", wantPool: "p",
		},
		{
			name: "avoidBuggyIPs refuses a requested .0",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{avoidBuggy(mkPool(t, "p", "10.0.0.0/24"))}
			},
			svc:     mk("web", requestIPs("10.0.0.0")),
			wantErr: ErrOutsidePools,
			wantMsg: `default/web: 10.0.0.0 is in pool "p", which avoids addresses ending in .0 and .255 (avoidBuggyIPs)`,
		},
		{
			name: "autoAssign false: never picked automatically",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{noAuto(mkPool(t, "manual", "10.0.0.0/24"))}
			},
			svc:     mk("web"),
			wantErr: ErrNoPool,
			wantMsg: "default/web: no autoAssign address pool serves this Service",
		},
		{
			name: "autoAssign false: used when requested by pool",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{noAuto(mkPool(t, "manual", "10.0.0.0/24")), mkPool(t, "auto", "10.1.0.0/24")}
			},
			svc:     mk("web", requestPool("manual")),
			wantIPs: "10.0.0.0", wantPool: "manual",
		},
		{
			name: "autoAssign false: used when requested by address",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{noAuto(mkPool(t, "manual", "10.0.0.0/24"))}
			},
			svc:     mk("web", requestIPs("10.0.0.42")),
			wantIPs: "10.0.0.42", wantPool: "manual",
		},
		{
			name: "pools without serviceAllocation go by name",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "b", "10.0.0.0/24"), mkPool(t, "a", "10.1.0.0/24")}
			},
			svc:     mk("web"),
			wantIPs: "10.1.0.0", wantPool: "a",
		},
		{
			name: "serviceAllocation priority: lower first, unset last",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					allocation(mkPool(t, "unset", "10.0.0.0/24"), config.ServiceAllocation{Namespaces: []string{"default"}}),
					allocation(mkPool(t, "two", "10.2.0.0/24"), config.ServiceAllocation{Priority: 2, Namespaces: []string{"default"}}),
					allocation(mkPool(t, "one", "10.1.0.0/24"), config.ServiceAllocation{Priority: 1, Namespaces: []string{"default"}}),
				}
			},
			svc:     mk("web"),
			wantIPs: "10.1.0.0", wantPool: "one",
		},
		{
			name: "serviceAllocation beats pools without one",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					mkPool(t, "a-open", "10.0.0.0/24"),
					allocation(mkPool(t, "z-team", "10.9.0.0/24"), config.ServiceAllocation{Namespaces: []string{"team"}}),
				}
			},
			svc:     mk("web", inNS("team")),
			wantIPs: "10.9.0.0", wantPool: "z-team",
		},
		{
			name: "serviceAllocation namespace mismatch: open pool",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					mkPool(t, "open", "10.0.0.0/24"),
					allocation(mkPool(t, "team", "10.9.0.0/24"), config.ServiceAllocation{Namespaces: []string{"team"}}),
				}
			},
			svc:     mk("web"),
			wantIPs: "10.0.0.0", wantPool: "open",
		},
		{
			name: "serviceAllocation namespaceSelectors",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					mkPool(t, "open", "10.0.0.0/24"),
					allocation(mkPool(t, "prod", "10.9.0.0/24"), config.ServiceAllocation{NamespaceSelectors: []labels.Selector{sel(t, "env=prod")}}),
				}
			},
			svc:     mk("web", withNSLabels("env", "prod")),
			wantIPs: "10.9.0.0", wantPool: "prod",
		},
		{
			name: "serviceAllocation serviceSelectors",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					mkPool(t, "open", "10.0.0.0/24"),
					allocation(mkPool(t, "db", "10.9.0.0/24"), config.ServiceAllocation{ServiceSelectors: []labels.Selector{sel(t, "tier=db")}}),
				}
			},
			svc:     mk("web", withLabels("tier", "db")),
			wantIPs: "10.9.0.0", wantPool: "db",
		},
		{
			name: "a pool with serviceAllocation serves only matching Services",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					allocation(mkPool(t, "db", "10.9.0.0/24"), config.ServiceAllocation{ServiceSelectors: []labels.Selector{sel(t, "tier=db")}}),
				}
			},
			svc:     mk("web", withLabels("tier", "web")),
			wantErr: ErrNoPool,
			wantMsg: "default/web: no autoAssign address pool serves this Service",
		},
		{
			name: "pinned pools exhausted: fall back to open pools",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					allocation(mkPool(t, "team", "10.9.0.0/32"), config.ServiceAllocation{Namespaces: []string{"default"}}),
					mkPool(t, "open", "10.0.0.0/24"),
				}
			},
			before:  fill(1),
			svc:     mk("web"),
			wantIPs: "10.0.0.0", wantPool: "open",
		},
		{
			name:    "requested address",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			svc:     mk("web", requestIPs("10.0.0.77")),
			wantIPs: "10.0.0.77", wantPool: "p",
		},
		{
			name:    "requested address outside all pools",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			svc:     mk("web", requestIPs("192.168.1.1")),
			wantErr: ErrOutsidePools,
			wantMsg: "default/web: 192.168.1.1 is outside every address pool",
		},
		{
			name: "requested address in a pool that does not serve the Service",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{allocation(mkPool(t, "team", "10.0.0.0/24"), config.ServiceAllocation{Namespaces: []string{"team"}})}
			},
			svc:     mk("web", requestIPs("10.0.0.1")),
			wantErr: ErrPoolMismatch,
			wantMsg: `default/web: pool "team" does not serve namespace "default" (serviceAllocation)`,
		},
		{
			name: "requested address and requested pool disagree",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "a", "10.0.0.0/24"), mkPool(t, "b", "10.1.0.0/24")}
			},
			svc:     mk("web", requestIPs("10.0.0.1"), requestPool("b")),
			wantErr: ErrPoolMismatch,
			wantMsg: `default/web: requests 10.0.0.1, which is in pool "a", not in the requested pool "b"`,
		},
		{
			name:    "requested pool does not exist",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			svc:     mk("web", requestPool("nope")),
			wantErr: ErrNoPool,
			wantMsg: `default/web: requested pool "nope" does not exist`,
		},
		{
			name:    "requested address of the wrong family",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24", "fd00::/120")} },
			svc:     mk("web", requestIPs("fd00::1")),
			wantErr: ErrFamilyMismatch,
			wantMsg: "default/web: requests fd00::1 but its IP families are IPv4",
		},
		{
			name:    "pool exhausted",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "small", "10.0.0.0/31")} },
			before:  fill(2),
			svc:     mk("web"),
			wantErr: ErrPoolExhausted,
			wantMsg: `default/web: no IPv4 address available in pool "small" (exhausted: 2 of 2 in use)`,
		},
		{
			name:    "IPv6 pool exhausted",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "v6-pool", "fd00::/120")} },
			before:  fill(256, families(SingleStack, IPv6)),
			svc:     mk("web", families(SingleStack, IPv6)),
			wantErr: ErrPoolExhausted,
			wantMsg: `default/web: no IPv6 address available in pool "v6-pool" (exhausted: 256 of 256 in use)`,
		},
		{
			name: "every pool exhausted",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "a", "10.0.0.0/32"), mkPool(t, "b", "10.1.0.0/32")}
			},
			before:  fill(2),
			svc:     mk("web"),
			wantErr: ErrPoolExhausted,
			wantMsg: `default/web: no IPv4 address available in pools "a" (exhausted: 1 of 1 in use), "b" (exhausted: 1 of 1 in use)`,
		},
		{
			name:    "no pool has the family",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "v4", "10.0.0.0/24")} },
			svc:     mk("web", families(SingleStack, IPv6)),
			wantErr: ErrNoPool,
			wantMsg: `default/web: no address pool serving this Service has IPv6 address: pool "v4" (no IPv6 addresses)`,
		},
		{
			name:    "sharing: same key, different ports share the address",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			before:  []Service{mk("other", shared("k", 80))},
			svc:     mk("web", shared("k", 443)),
			wantIPs: "10.0.0.0", wantPool: "p",
		},
		{
			name:    "sharing: same port takes another address",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			before:  []Service{mk("other", shared("k", 80))},
			svc:     mk("web", shared("k", 80)),
			wantIPs: "10.0.0.1", wantPool: "p",
		},
		{
			name:    "sharing: requested address, same port",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			before:  []Service{mk("other", shared("k", 80))},
			svc:     mk("web", shared("k", 80), requestIPs("10.0.0.0")),
			wantErr: ErrSharingConflict,
			wantMsg: `default/web: sharing key "k" conflicts with default/other: both use TCP/80`,
		},
		{
			name:    "sharing: requested address, other key",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			before:  []Service{mk("other", shared("k", 80))},
			svc:     mk("web", shared("j", 443), requestIPs("10.0.0.0")),
			wantErr: ErrSharingConflict,
			wantMsg: `default/web: sharing key "j" conflicts with default/other, which holds 10.0.0.0 with sharing key "k"`,
		},
		{
			name:    "sharing: holder does not allow sharing",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			before:  []Service{mk("other")},
			svc:     mk("web", shared("k", 443), requestIPs("10.0.0.0")),
			wantErr: ErrSharingConflict,
			wantMsg: `default/web: 10.0.0.0 is in use by default/other, which does not allow sharing`,
		},
		{
			name:    "sharing: requester has no sharing key",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			before:  []Service{mk("other", shared("k", 80))},
			svc:     mk("web", requestIPs("10.0.0.0")),
			wantErr: ErrSharingConflict,
			wantMsg: `default/web: 10.0.0.0 is in use by default/other and this Service has no sharing key (metallb.io/allow-shared-ip)`,
		},
		{
			name:    "sharing: externalTrafficPolicy Local with the same selector",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			before:  []Service{mk("other", shared("k", 80), local("x"))},
			svc:     mk("web", shared("k", 443), local("x"), requestIPs("10.0.0.0")),
			wantIPs: "10.0.0.0", wantPool: "p",
		},
		{
			name:    "sharing: externalTrafficPolicy Local with another selector",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			before:  []Service{mk("other", shared("k", 80), local("x"))},
			svc:     mk("web", shared("k", 443), local("y"), requestIPs("10.0.0.0")),
			wantErr: ErrSharingConflict,
			wantMsg: `default/web: sharing key "k" conflicts with default/other: Services sharing 10.0.0.0 must all have externalTrafficPolicy Cluster, or all Local with the same selector`,
		},
		{
			name:    "sharing: Cluster and Local do not share",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			before:  []Service{mk("other", shared("k", 80))},
			svc:     mk("web", shared("k", 443), local("x")),
			wantIPs: "10.0.0.1", wantPool: "p",
		},
		{
			name: "RequireDualStack: both families from one pool",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "a-v4only", "10.0.0.0/24"), mkPool(t, "b-dual", "10.1.0.0/24", "fd00::/120")}
			},
			svc:     mk("web", families(RequireDualStack, IPv4, IPv6)),
			wantIPs: "10.1.0.0, fd00::", wantPool: "b-dual",
		},
		{
			name: "RequireDualStack: IPv6 primary is listed first",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "dual", "10.1.0.0/24", "fd00::/120")}
			},
			svc:     mk("web", families(RequireDualStack, IPv6, IPv4)),
			wantIPs: "fd00::, 10.1.0.0", wantPool: "dual",
		},
		{
			name: "RequireDualStack: no pool with both",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "v4", "10.0.0.0/24"), mkPool(t, "v6", "fd00::/120")}
			},
			svc:     mk("web", families(RequireDualStack, IPv4, IPv6)),
			wantErr: ErrNoPool,
			wantMsg: `default/web: no address pool serving this Service has IPv4 and IPv6 addresses: pools "v4" (no IPv6 addresses), "v6" (no IPv4 addresses)`,
		},
		{
			name: "RequireDualStack: the dual pool's IPv6 side is full",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "dual", "10.0.0.0/24", "fd00::/128")}
			},
			before:  fill(1, families(SingleStack, IPv6)),
			svc:     mk("web", families(RequireDualStack, IPv4, IPv6)),
			wantErr: ErrPoolExhausted,
			wantMsg: `default/web: no IPv4 and IPv6 addresses available in pool "dual" (IPv6 exhausted: 1 of 1 in use)`,
		},
		{
			name: "PreferDualStack: both when one pool has both",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "dual", "10.0.0.0/24", "fd00::/120")}
			},
			svc:     mk("web", families(PreferDualStack, IPv4, IPv6)),
			wantIPs: "10.0.0.0, fd00::", wantPool: "dual",
		},
		{
			name: "PreferDualStack: falls back to the primary family",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "a-v6", "fd00::/120"), mkPool(t, "b-v4", "10.0.0.0/24")}
			},
			svc:     mk("web", families(PreferDualStack, IPv4, IPv6)),
			wantIPs: "10.0.0.0", wantPool: "b-v4",
		},
		{
			name: "PreferDualStack: then to the secondary family",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "v6", "fd00::/120")}
			},
			svc:     mk("web", families(PreferDualStack, IPv4, IPv6)),
			wantIPs: "fd00::", wantPool: "v6",
		},
		{
			name: "SingleStack uses the primary family only",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "dual", "10.0.0.0/24", "fd00::/120")}
			},
			svc:     mk("web", families(SingleStack, IPv6, IPv4)),
			wantIPs: "fd00::", wantPool: "dual",
		},
		{
			name:    "loadBalancerClass of another controller",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			svc:     mk("web", class("other.io/lb")),
			wantErr: ErrNotHandled,
			wantMsg: `default/web: loadBalancerClass "other.io/lb" is not handled by this controller, which handles Services without a loadBalancerClass`,
		},
		{
			name:    "loadBalancerClass of this controller",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			opts:    Options{LoadBalancerClass: "switchyard.io/lb"},
			svc:     mk("web", class("switchyard.io/lb")),
			wantIPs: "10.0.0.0", wantPool: "p",
		},
		{
			name:    "no class when the controller has one",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			opts:    Options{LoadBalancerClass: "switchyard.io/lb"},
			svc:     mk("web"),
			wantErr: ErrNotHandled,
			wantMsg: `default/web: loadBalancerClass "" is not handled by this controller, which handles loadBalancerClass "switchyard.io/lb"`,
		},
		{
			name:    "RequireDualStack with one family is invalid",
			pools:   func(t *testing.T) []*config.Pool { return []*config.Pool{mkPool(t, "p", "10.0.0.0/24")} },
			svc:     mk("web", families(RequireDualStack, IPv4)),
			wantErr: ErrInvalidService,
			wantMsg: "default/web: spec.ipFamilyPolicy RequireDualStack needs two spec.ipFamilies, got IPv4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(cfgOf(tt.pools(t)...), tt.opts)
			for i := range tt.before {
				b := tt.before[i]
				b.LoadBalancerClass = tt.opts.LoadBalancerClass
				if _, err := a.Allocate(&b); err != nil {
					t.Fatalf("setup %s: %v", b.Key(), err)
				}
			}
			got, err := a.Allocate(&tt.svc)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if err.Error() != tt.wantMsg {
					t.Fatalf("message\n got: %s\nwant: %s", err, tt.wantMsg)
				}
				if _, held := a.Lookup(tt.svc.Key()); held {
					t.Errorf("refused Service holds an assignment")
				}
				return
			}
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			if s := ipStrings(got.IPs); s != tt.wantIPs || got.Pool != tt.wantPool {
				t.Fatalf("got %s from %q, want %s from %q", s, got.Pool, tt.wantIPs, tt.wantPool)
			}
			checkInvariants(t, a)
		})
	}
}
