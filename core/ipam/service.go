package ipam

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"iter"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Family is an IP address family.
type Family uint8

// The two address families. The zero Family is invalid.
const (
	IPv4 Family = 1
	IPv6 Family = 2
)

// familyOf returns the family of a valid address. IPv4-mapped IPv6 addresses must have been
// unmapped by the caller.
func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// index maps a family to 0 (IPv4) or 1 (IPv6) for per-family arrays.
func (f Family) index() int { return int(f) - 1 }

// other returns the opposite family.
func (f Family) other() Family {
	if f == IPv4 {
		return IPv6
	}
	return IPv4
}

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "Family(" + strconv.Itoa(int(f)) + ")"
}

// FamilyPolicy is a Service's spec.ipFamilyPolicy.
type FamilyPolicy string

// The policies Kubernetes defines. The empty policy means SingleStack.
const (
	SingleStack      FamilyPolicy = "SingleStack"
	PreferDualStack  FamilyPolicy = "PreferDualStack"
	RequireDualStack FamilyPolicy = "RequireDualStack"
)

// TrafficPolicy is a Service's spec.externalTrafficPolicy. The empty policy means Cluster.
type TrafficPolicy string

// The external traffic policies.
const (
	TrafficCluster TrafficPolicy = "Cluster"
	TrafficLocal   TrafficPolicy = "Local"
)

// Port is one port a Service exposes. Two Services sharing an address must not both use the
// same Port.
type Port struct {
	Protocol string // "TCP", "UDP" or "SCTP"
	Port     int32
}

func (p Port) String() string { return p.Protocol + "/" + strconv.Itoa(int(p.Port)) }

// ServiceKey identifies a Service.
type ServiceKey struct {
	Namespace, Name string
}

func (k ServiceKey) String() string { return k.Namespace + "/" + k.Name }

func (k ServiceKey) compare(o ServiceKey) int {
	if k.Namespace != o.Namespace {
		if k.Namespace < o.Namespace {
			return -1
		}
		return 1
	}
	switch {
	case k.Name < o.Name:
		return -1
	case k.Name > o.Name:
		return 1
	}
	return 0
}

// Service is what the allocator needs to know about a LoadBalancer Service. It is a plain
// value, independent of the Kubernetes API types; ServiceFromKube builds one from a
// corev1.Service.
type Service struct {
	Namespace, Name string
	// Created is the Service's creation time. Restore uses it to decide which of two Services
	// claiming one address keeps it: the older one.
	Created time.Time
	// Labels are the Service's labels, matched by serviceAllocation.serviceSelectors.
	Labels map[string]string
	// NamespaceLabels are the labels of the Service's namespace, matched by
	// serviceAllocation.namespaceSelectors.
	NamespaceLabels map[string]string
	// LoadBalancerClass is spec.loadBalancerClass, or "" when unset.
	LoadBalancerClass string
	// FamilyPolicy and Families are spec.ipFamilyPolicy and spec.ipFamilies; Families[0] is
	// the primary family.
	FamilyPolicy FamilyPolicy
	Families     []Family
	// RequestedIPs are the addresses the user asked for (metallb.io/loadBalancerIPs or
	// spec.loadBalancerIP), at most one per family.
	RequestedIPs []netip.Addr
	// RequestedPool is metallb.io/address-pool, or "".
	RequestedPool string
	// SharingKey is metallb.io/allow-shared-ip, or "" when the Service shares with nobody.
	SharingKey string
	// Ports are the Service's ports.
	Ports []Port
	// ExternalTrafficPolicy and Selector decide which Services may share an address: Services
	// with policy Local must select the same pods.
	ExternalTrafficPolicy TrafficPolicy
	Selector              map[string]string
	// CurrentIPs are the addresses in status.loadBalancer.ingress, the state to restore.
	CurrentIPs []netip.Addr
}

// Key returns the Service's namespace and name.
func (s *Service) Key() ServiceKey { return ServiceKey{s.Namespace, s.Name} }

// wantedFamilies returns the families the Service should get addresses of, primary first.
func (s *Service) wantedFamilies() ([]Family, error) {
	fams := s.Families
	switch {
	case len(fams) == 0:
		return nil, fmt.Errorf("spec.ipFamilies is empty")
	case len(fams) > 2:
		return nil, fmt.Errorf("spec.ipFamilies has %d entries, at most 2 are allowed", len(fams))
	case len(fams) == 2 && fams[0] == fams[1]:
		return nil, fmt.Errorf("spec.ipFamilies lists %s twice", fams[0])
	}
	for _, f := range fams {
		if f != IPv4 && f != IPv6 {
			return nil, fmt.Errorf("spec.ipFamilies has unknown family %s", f)
		}
	}
	switch s.FamilyPolicy {
	case "", SingleStack:
		return fams[:1], nil
	case PreferDualStack:
		return fams, nil
	case RequireDualStack:
		if len(fams) != 2 {
			return nil, fmt.Errorf("spec.ipFamilyPolicy RequireDualStack needs two spec.ipFamilies, got %s", fams[0])
		}
		return fams, nil
	}
	return nil, fmt.Errorf("unknown spec.ipFamilyPolicy %q", s.FamilyPolicy)
}

// backendKey is the part of the sharing rule about backends: Services with
// externalTrafficPolicy Local may share only with Services selecting the same pods, because
// each node announces the address only when it runs one of those pods.
func (s *Service) backendKey() string {
	if s.ExternalTrafficPolicy != TrafficLocal {
		return ""
	}
	return canonicalSelector(s.Selector)
}

func canonicalSelector(sel map[string]string) string {
	var b []byte
	for i, k := range slices.Sorted(maps.Keys(sel)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, k...)
		b = append(b, '=')
		b = append(b, sel[k]...)
	}
	return string(b)
}

// batch is a batch of Services (Restore's, Plan's) with compact sort keys. Sorting these,
// rather than indices into the []Service, keeps every comparison within a small array instead
// of touching two large Service values scattered over memory.
type batch struct {
	svcs []Service
	keys []batchKey
	// sorted is set when keys are in namespace/name order, so that a position in keys
	// compares like the key itself.
	sorted bool
}

type batchKey struct {
	// prefix holds the first 16 bytes of the name, big-endian and zero-padded, so that most
	// comparisons are integer comparisons; equal prefixes fall back to the full names.
	prefix [2]uint64
	ns     uint32 // rank of the namespace among the batch's namespaces
	idx    int32  // index into svcs
}

func namePrefix(name string) [2]uint64 {
	var b [16]byte
	copy(b[:], name)
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// compareKeys orders by namespace/name, then by position in the input.
func (b *batch) compareKeys(x, y batchKey) int {
	if c := cmp.Compare(x.ns, y.ns); c != 0 {
		return c
	}
	return b.compareNames(x, y)
}

// newBatch collects the Services of svcs that include accepts, sorted by namespace/name when
// sortByKey is set.
func newBatch(svcs []Service, include func(*Service) bool, sortByKey bool) *batch {
	// Number namespaces in order of appearance first, so that each Service costs one map
	// lookup, then turn those numbers into ranks.
	seen := map[string]uint32{}
	var names []string // by number of appearance
	b := &batch{svcs: svcs, keys: make([]batchKey, 0, len(svcs)), sorted: sortByKey}
	for i := range svcs {
		s := &svcs[i]
		if include(s) {
			n, ok := seen[s.Namespace]
			if !ok {
				n = uint32(len(names))
				seen[s.Namespace] = n
				names = append(names, s.Namespace)
			}
			b.keys = append(b.keys, batchKey{prefix: namePrefix(s.Name), ns: n, idx: int32(i)})
		}
	}
	byName := make([]uint32, len(names)) // numbers sorted by namespace
	for i := range byName {
		byName[i] = uint32(i)
	}
	slices.SortFunc(byName, func(x, y uint32) int { return strings.Compare(names[x], names[y]) })
	rank := make([]uint32, len(names)) // number -> rank
	for r, n := range byName {
		rank[n] = uint32(r)
	}
	for i := range b.keys {
		b.keys[i].ns = rank[b.keys[i].ns]
	}
	if sortByKey {
		b.sortByKey(len(names))
	}
	return b
}

// sortByKey sorts keys by namespace/name: a counting sort groups them by namespace rank,
// then each namespace's keys are sorted by name, so no comparison looks at the namespace.
func (b *batch) sortByKey(namespaces int) {
	start := make([]int, namespaces+1)
	for _, k := range b.keys {
		start[k.ns+1]++
	}
	for i := 1; i <= namespaces; i++ {
		start[i] += start[i-1]
	}
	grouped := make([]batchKey, len(b.keys))
	next := slices.Clone(start[:namespaces])
	for _, k := range b.keys {
		grouped[next[k.ns]] = k
		next[k.ns]++
	}
	scratch := b.keys // no longer needed: every key is in grouped
	for ns := range namespaces {
		b.sortNames(grouped[start[ns]:start[ns+1]], scratch[start[ns]:start[ns+1]], 0)
	}
	b.keys = grouped
}

// smallSort is the size below which sortNames leaves a bucket to a comparison sort.
const smallSort = 32

// sortNames sorts keys like compareNames, knowing that they agree on the first depth bytes
// of their name prefix. It is a most-significant-byte-first radix sort on the prefix: names
// of one namespace often share a long prefix ("svc-"), where a comparison sort would compare
// the same bytes again at every step, while a byte that all keys share costs one counting
// pass here. Small buckets, and keys whose whole prefix is equal, go to compareNames.
// scratch is as long as keys.
func (b *batch) sortNames(keys, scratch []batchKey, depth int) {
	for len(keys) > smallSort && depth < len(batchKey{}.prefix)*8 {
		var count [256]int
		for i := range keys {
			count[keys[i].prefixByte(depth)]++
		}
		depth++
		if count[keys[0].prefixByte(depth-1)] == len(keys) {
			continue // every key has this byte: look at the next one
		}
		var next [256]int
		for c, pos := 1, 0; c < 256; c++ {
			pos += count[c-1]
			next[c] = pos
		}
		for _, k := range keys {
			c := k.prefixByte(depth - 1)
			scratch[next[c]] = k
			next[c]++
		}
		copy(keys, scratch)
		for lo, c := 0, 0; c < 256; c++ {
			hi := lo + count[c]
			if count[c] > 1 {
				b.sortNames(keys[lo:hi], scratch[lo:hi], depth)
			}
			lo = hi
		}
		return
	}
	slices.SortFunc(keys, b.compareNames)
}

// prefixByte returns byte i (0 to 15) of the key's name prefix.
func (k *batchKey) prefixByte(i int) byte { return byte(k.prefix[i/8] >> (56 - 8*(i%8))) }

// compareNames orders keys of one namespace by name, then by position in the input.
func (b *batch) compareNames(x, y batchKey) int {
	if x.prefix != y.prefix {
		if x.prefix[0] != y.prefix[0] {
			return cmp.Compare(x.prefix[0], y.prefix[0])
		}
		return cmp.Compare(x.prefix[1], y.prefix[1])
	}
	if c := strings.Compare(b.svcs[x.idx].Name, b.svcs[y.idx].Name); c != 0 {
		return c
	}
	return cmp.Compare(x.idx, y.idx)
}

// inInputOrder yields every position of the batch, in the order of the Services in svcs.
func (b *batch) inInputOrder() iter.Seq[int32] {
	return func(yield func(int32) bool) {
		if !b.sorted {
			for pos := range b.keys {
				if !yield(int32(pos)) {
					return
				}
			}
			return
		}
		// posOf[i] is 1 + the position of svcs[i], or 0 when the batch left it out.
		posOf := make([]int32, len(b.svcs))
		for pos, k := range b.keys {
			posOf[k.idx] = int32(pos) + 1
		}
		for _, p := range posOf {
			if p != 0 && !yield(p-1) {
				return
			}
		}
	}
}

// service returns the Service at position pos.
func (b *batch) service(pos int32) *Service { return &b.svcs[b.keys[pos].idx] }

// agePosition is a position in the batch with the Service's creation time.
type agePosition struct {
	sec  int64
	nsec int32
	pos  int32
}

func (b *batch) agePosition(pos int32) agePosition {
	created := b.service(pos).Created
	return agePosition{sec: created.Unix(), nsec: int32(created.Nanosecond()), pos: pos}
}

// compareAge orders oldest first, then by namespace/name.
func (b *batch) compareAge(x, y agePosition) int {
	if c := cmp.Compare(x.sec, y.sec); c != 0 {
		return c
	}
	if c := cmp.Compare(x.nsec, y.nsec); c != 0 {
		return c
	}
	if b.sorted {
		return cmp.Compare(x.pos, y.pos)
	}
	return b.compareKeys(b.keys[x.pos], b.keys[y.pos])
}

// byAge returns every position of the batch, oldest Service first.
func (b *batch) byAge() []agePosition {
	out := make([]agePosition, len(b.keys))
	for i := range out {
		out[i] = b.agePosition(int32(i))
	}
	slices.SortFunc(out, b.compareAge)
	return out
}
