package ipam

import (
	"net/netip"
	"slices"
)

// The holder index: which Services hold an address, and the bookkeeping of claiming and
// releasing addresses.

// isInUse reports whether any Service holds x.
func (a *Allocator) isInUse(f Family, x u128) bool { return a.head(f, x) != 0 }

// head returns the first holder of x, or 0.
func (a *Allocator) head(f Family, x u128) uint32 {
	if f == IPv4 {
		return a.holdersV4.get(uint32(x.lo))
	}
	return a.holdersV6[x]
}

// setHead makes id the first holder of x; id 0 frees the address.
func (a *Allocator) setHead(f Family, x u128, id uint32) {
	switch {
	case f == IPv4:
		a.holdersV4.set(uint32(x.lo), id)
	case id == 0:
		delete(a.holdersV6, x)
	default:
		a.holdersV6[x] = id
	}
}

// nextHolder returns the holder after id on id's address of family f, or 0.
func (a *Allocator) nextHolder(id uint32, f Family) uint32 {
	if e := a.st.rec(id).ext; e != 0 {
		return a.st.exts[e].next[f.index()]
	}
	return 0
}

// addrOf returns record id's address of family f.
func (a *Allocator) addrOf(id uint32, f Family) u128 {
	r := a.st.rec(id)
	if f == IPv4 {
		return u128{lo: uint64(r.v4)}
	}
	return a.st.exts[r.ext].v6
}

// familyList is the families a record holds, in the Service's order; a fixed array keeps the
// hot paths free of allocations.
type familyList struct {
	f [2]Family
	n int
}

func (l familyList) list() []Family { return l.f[:l.n] }

// familiesOf lists the families record id holds.
func (a *Allocator) familiesOf(id uint32) familyList {
	r := a.st.rec(id)
	var l familyList
	if r.has(flagV4) {
		l.f[l.n] = IPv4
		l.n++
	}
	if r.has(flagV6) {
		l.f[l.n] = IPv6
		l.n++
	}
	if l.n == 2 && r.has(flagV6First) {
		l.f = [2]Family{IPv6, IPv4}
	}
	return l
}

// ipsOf returns record id's addresses in the Service's family order.
func (a *Allocator) ipsOf(id uint32) []netip.Addr {
	fams := a.familiesOf(id)
	ips := make([]netip.Addr, fams.n)
	for i, f := range fams.list() {
		ips[i] = a.addrOf(id, f).addr(f)
	}
	return ips
}

// release frees every address of record id and deletes the record.
func (a *Allocator) release(id uint32) {
	fams := a.familiesOf(id)
	for _, f := range fams.list() {
		a.unlink(id, f, a.addrOf(id, f))
	}
	a.st.remove(id)
}

// unlink removes id from the holders of x; the last holder frees the address.
func (a *Allocator) unlink(id uint32, f Family, x u128) {
	head := a.head(f, x)
	next := a.nextHolder(id, f)
	if head == id {
		a.setHead(f, x, next)
		if next == 0 {
			if _, r, ok := a.locate(f, x); ok {
				r.put(x, a.inUse)
			}
			if e := a.st.rec(id).ext; e != 0 && a.st.exts[e].sharingKey != "" {
				a.unshare(a.st.exts[e].sharingKey, familyAddr{f, x})
			}
		}
	} else {
		prev := head
		for a.nextHolder(prev, f) != id {
			prev = a.nextHolder(prev, f)
		}
		a.st.exts[a.st.rec(prev).ext].next[f.index()] = next
	}
	if e := a.st.rec(id).ext; e != 0 {
		a.st.exts[e].next[f.index()] = 0
	}
}

// unshare removes a freed address from the sharing index.
func (a *Allocator) unshare(key string, fa familyAddr) {
	list := a.shared[key]
	if i := slices.Index(list, fa); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(a.shared, key)
	} else {
		a.shared[key] = list
	}
}

// claim records that svc holds ips (already checked) from pool p. primary is the Service's
// primary family, listed first; kh is the key's hash from find; svc must hold no record.
func (a *Allocator) claim(svc *Service, kh keyHash, ips []netip.Addr, p int, primary Family) uint32 {
	id := a.st.add(svc.Key(), kh)
	flags := uint32(p)
	if primary == IPv6 {
		flags |= flagV6First
	}
	a.st.rec(id).poolFlags = flags
	if svc.SharingKey != "" {
		e := a.st.extOf(id)
		e.sharingKey = svc.SharingKey
		e.backendKey = svc.backendKey()
		e.ports = slices.Clone(svc.Ports)
	}
	for _, ip := range ips {
		a.addAddr(id, svc.SharingKey, familyOf(ip), u128From(ip))
	}
	return id
}

// addAddr gives record id the address x of family f.
func (a *Allocator) addAddr(id uint32, sharingKey string, f Family, x u128) {
	r := a.st.rec(id)
	if f == IPv4 {
		r.v4 = uint32(x.lo)
		r.poolFlags |= flagV4
	} else {
		a.st.extOf(id).v6 = x
		a.st.rec(id).poolFlags |= flagV6
	}
	head := a.head(f, x)
	if head == 0 {
		a.setHead(f, x, id)
		if _, rg, ok := a.locate(f, x); ok {
			rg.take(x)
		}
		if sharingKey != "" {
			a.shared[sharingKey] = append(a.shared[sharingKey], familyAddr{f, x})
		}
		return
	}
	// Join a shared address: insert after the head. Both have extensions, since only
	// Services with a sharing key share. (extOf may grow the table: index, don't hold
	// pointers across it.)
	mine := a.st.extOf(id)
	heads := &a.st.exts[a.st.rec(head).ext]
	mine.next[f.index()] = heads.next[f.index()]
	heads.next[f.index()] = id
}
