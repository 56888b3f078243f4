package ipam

import "hash/maphash"

// The assignment store is laid out for memory: an IPv4 assignment costs a 32-byte record, a
// 4-byte slot in the key index (at most 3/4 full) and a 5-byte entry in the IPv4 holder table
// (see v4Holders), about 50 bytes in all, which the benchmark measures. Rarely used data (IPv6 addresses, sharing
// details) lives in a side table only the Services that need it pay for.

// record is one Service's assignment. Records are addressed by id; id 0 means "none".
type record struct {
	name string // the Service's name; "" marks a free record
	ns   uint32 // namespace id, see store.namespaces
	v4   uint32 // the IPv4 address, when flagV4 is set
	ext  uint32 // index into store.exts, 0 when the Service needs no extension
	// poolFlags packs the pool index (low 24 bits) and the flag* bits (high 8 bits).
	poolFlags uint32
}

const (
	flagV4      = 1 << 24 // the Service holds an IPv4 address
	flagV6      = 1 << 25 // the Service holds an IPv6 address (in its extension)
	flagV6First = 1 << 26 // IPv6 is the Service's primary family: list it first
	// flagRestoring marks records claimed by the running Restore pass (see Allocator.restore).
	flagRestoring = 1 << 27
	poolMask      = 1<<24 - 1
	maxPools      = poolMask + 1
)

func (r *record) pool() int            { return int(r.poolFlags & poolMask) }
func (r *record) has(flag uint32) bool { return r.poolFlags&flag != 0 }

// extension holds what only some Services need.
type extension struct {
	v6 u128
	// sharingKey, backendKey and ports are kept for Services with a sharing key: another
	// Service can join their address only if these are compatible.
	sharingKey string
	backendKey string
	ports      []Port
	// next links the holders of one shared address: next[f.index()] is the id of the next
	// holder of this Service's address of family f, 0 at the end of the chain.
	next [2]uint32
}

const pageSize = 1024

// store holds records, their index by Service key, and the extensions.
type store struct {
	pages    []*[pageSize]record
	freeIDs  []uint32
	nextID   uint32 // ids below nextID have been handed out; 0 is never used
	live     int
	index    []uint32 // open addressing, linear probing; 0 is an empty slot
	seed     maphash.Seed
	exts     []extension
	freeExts []uint32

	namespaces []string          // namespace id -> name
	nsIDs      map[string]uint32 // name -> namespace id
}

func newStore() *store {
	return &store{
		nextID: 1,
		index:  make([]uint32, 64),
		seed:   maphash.MakeSeed(),
		exts:   make([]extension, 1), // index 0 means "no extension"
		nsIDs:  map[string]uint32{},
	}
}

func (s *store) rec(id uint32) *record { return &s.pages[id/pageSize][id%pageSize] }

func (s *store) key(id uint32) ServiceKey {
	r := s.rec(id)
	return ServiceKey{Namespace: s.namespaces[r.ns], Name: r.name}
}

func (s *store) hash(ns uint32, name string) uint64 {
	return maphash.String(s.seed, name) ^ (uint64(ns)+1)*0x9e3779b97f4a7c15
}

// keyHash is a Service key's position in the index, computed once by find and reused by add.
type keyHash struct {
	ns     uint32
	nsSeen bool // the namespace has an id
	h      uint64
}

// find returns the id of the Service's record, or 0, and the key's hash for add.
func (s *store) find(k ServiceKey) (uint32, keyHash) {
	ns, ok := s.nsIDs[k.Namespace]
	if !ok {
		return 0, keyHash{}
	}
	kh := keyHash{ns: ns, nsSeen: true, h: s.hash(ns, k.Name)}
	mask := uint64(len(s.index) - 1)
	for i := kh.h & mask; ; i = (i + 1) & mask {
		id := s.index[i]
		if id == 0 {
			return 0, kh
		}
		if r := s.rec(id); r.ns == ns && r.name == k.Name {
			return id, kh
		}
	}
}

// add creates a record for k, which must not have one; kh is what find returned for k.
func (s *store) add(k ServiceKey, kh keyHash) uint32 {
	if !kh.nsSeen {
		ns, ok := s.nsIDs[k.Namespace]
		if !ok {
			ns = uint32(len(s.namespaces))
			s.namespaces = append(s.namespaces, k.Namespace)
			s.nsIDs[k.Namespace] = ns
		}
		kh = keyHash{ns: ns, nsSeen: true, h: s.hash(ns, k.Name)}
	}
	var id uint32
	if n := len(s.freeIDs); n > 0 {
		id = s.freeIDs[n-1]
		s.freeIDs = s.freeIDs[:n-1]
	} else {
		id = s.nextID
		s.nextID++
		if int(id/pageSize) == len(s.pages) {
			s.pages = append(s.pages, new([pageSize]record))
		}
	}
	*s.rec(id) = record{name: k.Name, ns: kh.ns}
	s.live++
	if 4*s.live > 3*len(s.index) {
		s.rehash(2 * len(s.index)) // includes id
	} else {
		s.insert(id, kh.h)
	}
	return id
}

func (s *store) insert(id uint32, h uint64) {
	mask := uint64(len(s.index) - 1)
	i := h & mask
	for s.index[i] != 0 {
		i = (i + 1) & mask
	}
	s.index[i] = id
}

// reserve grows the index so that n more records fit without rehashing.
func (s *store) reserve(n int) {
	size := len(s.index)
	for 4*(s.live+n) > 3*size {
		size *= 2
	}
	if size != len(s.index) {
		s.rehash(size)
	}
}

// rehash rebuilds the index with size slots, walking records in id order: records sit in
// pages, so the walk reads memory sequentially.
func (s *store) rehash(size int) {
	s.index = make([]uint32, size)
	s.each(func(id uint32) {
		r := s.rec(id)
		s.insert(id, s.hash(r.ns, r.name))
	})
}

// remove deletes record id, its index slot (by backward-shift deletion, so lookups never
// need tombstones) and its extension.
func (s *store) remove(id uint32) {
	r := s.rec(id)
	mask := uint64(len(s.index) - 1)
	i := s.hash(r.ns, r.name) & mask
	for s.index[i] != id {
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; s.index[j] != 0; j = (j + 1) & mask {
		o := s.rec(s.index[j])
		home := s.hash(o.ns, o.name) & mask
		// Move the entry at j into the hole at i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			s.index[i] = s.index[j]
			i = j
		}
	}
	s.index[i] = 0
	if r.ext != 0 {
		s.exts[r.ext] = extension{}
		s.freeExts = append(s.freeExts, r.ext)
	}
	*r = record{}
	s.freeIDs = append(s.freeIDs, id)
	s.live--
}

// extOf returns the extension of record id, creating it if needed.
func (s *store) extOf(id uint32) *extension {
	r := s.rec(id)
	if r.ext == 0 {
		if n := len(s.freeExts); n > 0 {
			r.ext = s.freeExts[n-1]
			s.freeExts = s.freeExts[:n-1]
		} else {
			r.ext = uint32(len(s.exts))
			s.exts = append(s.exts, extension{})
		}
	}
	return &s.exts[r.ext]
}

// each calls fn for every live record id in id order.
func (s *store) each(fn func(id uint32)) {
	for id := uint32(1); id < s.nextID; id++ {
		if s.rec(id).name != "" {
			fn(id)
		}
	}
}
