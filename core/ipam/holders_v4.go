package ipam

import "iter"

// v4Holders maps IPv4 addresses in use to the id of their first holder.
//
// Addresses are handed out in order from the bottom of each range, and Services are mostly
// restored in the order they were created, so the addresses in use cluster and are visited
// in runs. v4Holders exploits both: it keeps the ids in small pages of consecutive addresses
// (a dense page costs 5 bytes per address, against about 15 for a map entry) and remembers
// the last page it used, so that a run of neighbouring addresses needs one map lookup per
// page instead of one per address. The price is paid by scattered addresses: a lone address
// in a page costs the whole page, 80 bytes.
type v4Holders struct {
	pages map[uint32]*v4Page // by address >> v4PageBits
	n     int                // addresses with a holder

	// last is the page of the most recent lookup (nil when none), lastKey its key.
	last    *v4Page
	lastKey uint32
}

const (
	v4PageBits = 4
	v4PageSize = 1 << v4PageBits
)

// v4Page holds the holder ids of v4PageSize consecutive addresses; 0 means "free".
type v4Page struct {
	ids  [v4PageSize]uint32
	used uint32 // non-zero entries of ids; a page with none is deleted
}

func newV4Holders() *v4Holders { return &v4Holders{pages: map[uint32]*v4Page{}} }

// reserve sizes the page map for n more addresses, assuming they are dense.
func (h *v4Holders) reserve(n int) {
	if len(h.pages) == 0 {
		h.pages = make(map[uint32]*v4Page, n/v4PageSize+1)
		h.last = nil
	}
}

func (h *v4Holders) page(key uint32) *v4Page {
	if h.last != nil && h.lastKey == key {
		return h.last
	}
	p := h.pages[key]
	if p != nil {
		h.last, h.lastKey = p, key
	}
	return p
}

// get returns the first holder of x, or 0.
func (h *v4Holders) get(x uint32) uint32 {
	if p := h.page(x >> v4PageBits); p != nil {
		return p.ids[x%v4PageSize]
	}
	return 0
}

// set makes id the first holder of x; id 0 frees x.
func (h *v4Holders) set(x, id uint32) {
	key := x >> v4PageBits
	p := h.page(key)
	if p == nil {
		if id == 0 {
			return
		}
		p = new(v4Page)
		h.pages[key] = p
		h.last, h.lastKey = p, key
	}
	slot := &p.ids[x%v4PageSize]
	switch {
	case *slot == 0 && id != 0:
		p.used++
		h.n++
	case *slot != 0 && id == 0:
		p.used--
		h.n--
	}
	*slot = id
	if p.used == 0 {
		delete(h.pages, key)
		h.last = nil
	}
}

// len returns the number of addresses with a holder.
func (h *v4Holders) len() int { return h.n }

// all yields every address in use with its first holder, in no particular order.
func (h *v4Holders) all() iter.Seq2[uint32, uint32] {
	return func(yield func(uint32, uint32) bool) {
		for key, p := range h.pages {
			for i, id := range p.ids {
				if id != 0 && !yield(key<<v4PageBits|uint32(i), id) {
					return
				}
			}
		}
	}
}
