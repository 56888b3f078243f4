package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-lb/switchyard/core/config"
)

func FuzzParseLoadBalancerIPs(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "10.0.0.1,fd00::1", " fd00::1 , 10.0.0.1", "10.0.0.1,10.0.0.2", "", ",", "1.2.3.4,5.6.7.8,::1", "fe80::1%eth0", "::ffff:10.0.0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ips, err := ParseLoadBalancerIPs(s)
		if err != nil {
			if ips != nil {
				t.Fatalf("%q: error %v with addresses %v", s, err, ips)
			}
			return
		}
		if len(ips) == 0 || len(ips) > 2 || (len(ips) == 2 && familyOf(ips[0]) == familyOf(ips[1])) {
			t.Fatalf("%q: accepted %v", s, ips)
		}
		text := make([]string, len(ips))
		for i, ip := range ips {
			if ip.Is4In6() || ip.Zone() != "" {
				t.Fatalf("%q: accepted %v", s, ip)
			}
			text[i] = ip.String()
		}
		again, err := ParseLoadBalancerIPs(strings.Join(text, ","))
		if err != nil || !slices.Equal(again, ips) {
			t.Fatalf("%q: round trip gave %v, %v", s, again, err)
		}
	})
}

// fuzzConfigs are the configurations FuzzOperations switches between: small pools so that
// exhaustion, sharing and fallbacks happen often.
func fuzzConfigs(t testing.TB) []*config.Config {
	team := config.ServiceAllocation{Priority: 1, Namespaces: []string{"team"}}
	return []*config.Config{
		cfgOf(
			mkPool(t, "a", "10.0.0.0/29", "fd00::/125"),
			avoidBuggy(mkPool(t, "b", "10.0.1.254-10.0.2.1")),
			allocation(mkPool(t, "c", "10.0.3.0/30", "fd00:3::/126"), team),
			noAuto(mkPool(t, "d", "10.0.4.0/30")),
		),
		cfgOf(
			mkPool(t, "a", "10.0.0.0/30", "fd00::/126"),
			mkPool(t, "b", "10.0.1.254-10.0.2.1"),
			allocation(mkPool(t, "c2", "10.0.3.0/30", "10.0.0.4/30"), config.ServiceAllocation{Namespaces: []string{"default"}}),
		),
		cfgOf(mkPool(t, "z", "10.0.0.0/22", "fd00::/64")),
	}
}

var fuzzCandidates = addrs("10.0.0.1", "10.0.0.6", "10.0.1.255", "10.0.2.1", "10.0.3.1", "10.0.4.2", "192.168.0.1", "fd00::2", "fd00:3::1", "fd00::6")

// fuzzService decodes a Service from 4 bytes.
func fuzzService(b []byte) Service {
	s := Service{Namespace: []string{"default", "team"}[b[0]&1], Name: fmt.Sprintf("s%d", b[0]>>1&15)}
	switch b[1] % 5 {
	case 0, 1:
		s.Families = []Family{IPv4}
	case 2:
		s.Families = []Family{IPv6}
	case 3:
		s.FamilyPolicy, s.Families = RequireDualStack, []Family{IPv4, IPv6}
	case 4:
		s.FamilyPolicy, s.Families = PreferDualStack, []Family{IPv6, IPv4}
	}
	if k := b[2] % 3; k > 0 {
		s.SharingKey = []string{"", "k", "j"}[k]
		s.Ports = []Port{{"TCP", int32(80 + b[2]>>2%3)}}
		if b[2]&0x80 != 0 {
			s.ExternalTrafficPolicy, s.Selector = TrafficLocal, map[string]string{"app": fmt.Sprint(b[2] >> 5 & 1)}
		}
	}
	switch r := int(b[3]); {
	case r < len(fuzzCandidates):
		s.RequestedIPs = []netip.Addr{fuzzCandidates[r]}
	case r < len(fuzzCandidates)+4:
		s.RequestedPool = []string{"a", "c", "d", "nope"}[r-len(fuzzCandidates)]
	}
	return s
}

// FuzzOperations runs random sequences of Allocate, Release, SetConfig and Restore and checks
// after every step that no address is held by two Services that may not share it, that every
// assigned address is inside its pool, and that counters and indexes agree. Restoring the
// state into a new allocator, in two different orders, must give identical results.
func FuzzOperations(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 255})
	f.Add([]byte{0, 2, 3, 1, 200, 0, 4, 3, 1, 200, 0, 2, 3, 1, 200, 1, 2, 3, 3, 0})
	f.Add([]byte{0, 1, 1, 1, 255, 0, 3, 1, 1, 255, 0, 5, 4, 2, 255, 2, 1, 4, 0, 3, 0, 0, 0})
	f.Add([]byte{0, 7, 3, 0, 12, 0, 9, 3, 0, 13, 3, 1, 5, 0, 11, 0, 2, 0, 4, 3, 2, 0})
	configs := fuzzConfigs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		a := New(configs[0], Options{})
		services := map[ServiceKey]Service{} // the attributes each holder was allocated with
		for len(data) > 0 {
			op := data[0] % 5
			data = data[1:]
			switch op {
			case 0, 1: // Allocate
				if len(data) < 4 {
					return
				}
				s := fuzzService(data[:4])
				data = data[4:]
				as, err := a.Allocate(&s)
				var ae *AllocationError
				switch {
				case err == nil:
					services[s.Key()] = s
					if as.Service != s.Key() || len(as.IPs) == 0 {
						t.Fatalf("Allocate %s: %+v", s.Key(), as)
					}
				case !errors.As(err, &ae) || ae.Service != s.Key() || ae.Detail == "":
					t.Fatalf("Allocate %s: malformed error %#v", s.Key(), err)
				default:
					delete(services, s.Key())
				}
			case 2: // Release
				if len(data) < 1 {
					return
				}
				s := fuzzService([]byte{data[0], 0, 0, 255})
				data = data[1:]
				_, held := services[s.Key()]
				if a.Release(s.Key()) != held {
					t.Fatalf("Release %s: reported %v, model says %v", s.Key(), !held, held)
				}
				delete(services, s.Key())
			case 3: // SetConfig
				if len(data) < 1 {
					return
				}
				for _, c := range a.SetConfig(configs[int(data[0])%len(configs)]) {
					if c.Released() {
						delete(services, c.Service)
					}
				}
				data = data[1:]
			case 4: // Restore into fresh allocators, in two orders
				var svcs []Service
				for k, s := range services {
					as, ok := a.Lookup(k)
					if !ok {
						t.Fatalf("%s: model holds it, allocator does not", k)
					}
					s.CurrentIPs = as.IPs
					svcs = append(svcs, s)
				}
				slices.SortFunc(svcs, func(x, y Service) int { return x.Key().compare(y.Key()) })
				one, two := New(a.cfg, Options{}), New(a.cfg, Options{})
				r1 := one.Restore(svcs)
				slices.Reverse(svcs)
				r2 := two.Restore(svcs)
				if d1, d2 := dumpState(one, svcs, r1), dumpState(two, svcs, r2); d1 != d2 {
					t.Fatalf("restore depends on order:\n%s\nvs\n%s", d1, d2)
				}
				if err := invariantError(one); err != nil {
					t.Fatalf("restored allocator: %v", err)
				}
			}
			if err := invariantError(a); err != nil {
				t.Fatal(err)
			}
			if a.Len() != len(services) {
				t.Fatalf("allocator holds %d Services, model %d", a.Len(), len(services))
			}
		}
	})
}
