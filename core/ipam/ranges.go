package ipam

// addrRange is the free-space tracker for one AddressRange of a pool.
//
// The lowest free address is always the smaller of two candidates:
//   - the cursor: every address below it has been examined by the allocator, every address
//     at or above it that is not in use is free;
//   - the smallest address in released, a min-heap of addresses below the cursor that were
//     freed again.
//
// Handing out addresses in order only moves the cursor (amortised O(1): an address the cursor
// skips because it was claimed out of order is skipped once), a release below the cursor is a
// heap push (O(log n)), and nothing is stored per address of the range, so an IPv6 /64 costs
// no more than an IPv4 /30.
//
// Whether an address is in use is the allocator's knowledge (its holder index); the range
// asks through the inUse callback. The heap may therefore hold stale entries (an address
// claimed by request after its release); they are dropped when they reach the top, and the
// heap is compacted when they outnumber the live entries.
type addrRange struct {
	family     Family
	first      u128
	last       u128
	avoidBuggy bool

	capacity uint64 // addresses that can be handed out, saturating
	used     uint64 // addresses in use

	cursor    u128
	swept     bool // the cursor has passed last: every address has been examined
	released  []u128
	freeBelow uint64 // free addresses below the cursor; each has at least one heap entry
}

type inUseFunc func(Family, u128) bool

func newAddrRange(f Family, first, last u128, avoidBuggy bool) *addrRange {
	return &addrRange{
		family:     f,
		first:      first,
		last:       last,
		avoidBuggy: avoidBuggy,
		capacity:   rangeCapacity(f, first, last, avoidBuggy),
		cursor:     first,
	}
}

func (r *addrRange) contains(x u128) bool {
	return r.first.cmp(x) <= 0 && x.cmp(r.last) <= 0 && !(r.avoidBuggy && isBuggy(r.family, x))
}

func (r *addrRange) full() bool { return r.used >= r.capacity }

// belowCursor reports whether x has already been passed by the cursor.
func (r *addrRange) belowCursor(x u128) bool { return r.swept || x.less(r.cursor) }

func (r *addrRange) advance() {
	if r.cursor == r.last {
		r.swept = true
		return
	}
	r.cursor = r.cursor.next()
}

// lowestFree returns the lowest free address of the range without taking it.
func (r *addrRange) lowestFree(inUse inUseFunc) (u128, bool) {
	if r.full() {
		return u128{}, false
	}
	for len(r.released) > 0 {
		if x := r.released[0]; !inUse(r.family, x) {
			return x, true
		}
		r.popReleased() // stale: claimed after it was released
	}
	for !r.swept {
		x := r.cursor
		if (r.avoidBuggy && isBuggy(r.family, x)) || inUse(r.family, x) {
			r.advance()
			continue
		}
		return x, true
	}
	return u128{}, false
}

// take records that the free address x is now in use.
func (r *addrRange) take(x u128) {
	r.used++
	switch {
	case r.belowCursor(x):
		r.freeBelow--
		if len(r.released) > 0 && r.released[0] == x {
			r.popReleased()
		}
	case x == r.cursor:
		r.advance()
	}
}

// put records that x, in use until now, is free again.
func (r *addrRange) put(x u128, inUse inUseFunc) {
	r.used--
	if !r.belowCursor(x) {
		return // the cursor will find it
	}
	r.freeBelow++
	r.pushReleased(x)
	if n := uint64(len(r.released)); n > 64 && n > 2*r.freeBelow {
		r.compact(inUse)
	}
}

// compact drops stale and duplicate heap entries. A sorted slice is a valid min-heap.
func (r *addrRange) compact(inUse inUseFunc) {
	live := r.released[:0]
	for _, x := range r.released {
		if !inUse(r.family, x) {
			live = append(live, x)
		}
	}
	sortU128(live)
	out := live[:0]
	for i, x := range live {
		if i == 0 || x != live[i-1] {
			out = append(out, x)
		}
	}
	clear(r.released[len(out):])
	r.released = out
}

func (r *addrRange) pushReleased(x u128) {
	h := append(r.released, x)
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].less(h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	r.released = h
}

func (r *addrRange) popReleased() {
	h := r.released
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		smallest, left, right := i, 2*i+1, 2*i+2
		if left < n && h[left].less(h[smallest]) {
			smallest = left
		}
		if right < n && h[right].less(h[smallest]) {
			smallest = right
		}
		if smallest == i {
			break
		}
		h[i], h[smallest] = h[smallest], h[i]
		i = smallest
	}
	r.released = h
}
