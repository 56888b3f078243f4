package ipam

import (
	"fmt"
	"slices"
	"testing"
)

// checkInvariants verifies the allocator's internal consistency and its promises: no address
// is held by two Services that may not share it, every assigned address is inside its pool,
// and the counters and indexes agree with the assignments.
func checkInvariants(t testing.TB, a *Allocator) {
	t.Helper()
	if err := invariantError(a); err != nil {
		t.Fatal(err)
	}
}

func invariantError(a *Allocator) error {
	live := 0
	var err error
	a.st.each(func(id uint32) {
		live++
		if err != nil {
			return
		}
		r := a.st.rec(id)
		k := a.st.key(id)
		if found, _ := a.st.find(k); found != id {
			err = fmt.Errorf("%s: index finds record %d, want %d", k, found, id)
			return
		}
		if r.pool() >= len(a.pools) {
			err = fmt.Errorf("%s: pool index %d out of range", k, r.pool())
			return
		}
		p := a.pools[r.pool()]
		fams := a.familiesOf(id).list()
		if len(fams) == 0 {
			err = fmt.Errorf("%s: record without addresses", k)
			return
		}
		for _, f := range fams {
			x := a.addrOf(id, f)
			if p.rangeFor(f, x) == nil {
				err = fmt.Errorf("%s: %s is outside its pool %q", k, x.addr(f), p.name())
				return
			}
			onChain := false
			for h := a.head(f, x); h != 0; h = a.nextHolder(h, f) {
				onChain = onChain || h == id
			}
			if !onChain {
				err = fmt.Errorf("%s: not among the holders of %s", k, x.addr(f))
				return
			}
		}
	})
	if err != nil {
		return err
	}
	if live != a.st.live {
		return fmt.Errorf("%d live records, store counts %d", live, a.st.live)
	}
	used := map[*addrRange]uint64{}
	checkAddr := func(f Family, x u128, head uint32) error {
		var holders []uint32
		for h := head; h != 0; h = a.nextHolder(h, f) {
			if slices.Contains(holders, h) {
				return fmt.Errorf("%s: holder chain loops", x.addr(f))
			}
			holders = append(holders, h)
			if a.addrOf(h, f) != x {
				return fmt.Errorf("%s: holder %s holds %s", x.addr(f), a.st.key(h), a.addrOf(h, f).addr(f))
			}
		}
		_, rg, ok := a.locate(f, x)
		if !ok {
			return fmt.Errorf("%s: in use but in no pool", x.addr(f))
		}
		used[rg]++
		headExt := a.st.rec(head).ext
		if len(holders) > 1 {
			for i, h := range holders {
				e := a.st.rec(h).ext
				if e == 0 || a.st.exts[e].sharingKey == "" {
					return fmt.Errorf("%s: shared, but %s has no sharing key", x.addr(f), a.st.key(h))
				}
				he := a.st.exts[headExt]
				if a.st.exts[e].sharingKey != he.sharingKey || a.st.exts[e].backendKey != he.backendKey {
					return fmt.Errorf("%s: %s and %s may not share", x.addr(f), a.st.key(h), a.st.key(head))
				}
				for _, o := range holders[i+1:] {
					for _, port := range a.st.exts[e].ports {
						if slices.Contains(a.st.exts[a.st.rec(o).ext].ports, port) {
							return fmt.Errorf("%s: %s and %s both use %s", x.addr(f), a.st.key(h), a.st.key(o), port)
						}
					}
				}
			}
		}
		if headExt != 0 && a.st.exts[headExt].sharingKey != "" {
			if !slices.Contains(a.shared[a.st.exts[headExt].sharingKey], familyAddr{f, x}) {
				return fmt.Errorf("%s: missing from the sharing index", x.addr(f))
			}
		}
		return nil
	}
	v4InUse := 0
	for v4, head := range a.holdersV4.all() {
		v4InUse++
		if err := checkAddr(IPv4, u128{lo: uint64(v4)}, head); err != nil {
			return err
		}
	}
	if v4InUse != a.holdersV4.len() {
		return fmt.Errorf("IPv4 holder table lists %d addresses but counts %d", v4InUse, a.holdersV4.len())
	}
	for x, head := range a.holdersV6 {
		if err := checkAddr(IPv6, x, head); err != nil {
			return err
		}
	}
	for key, list := range a.shared {
		for _, fa := range list {
			h := a.head(fa.family, fa.addr)
			if h == 0 || a.st.rec(h).ext == 0 || a.st.exts[a.st.rec(h).ext].sharingKey != key {
				return fmt.Errorf("sharing index lists %s under %q, which is not held with that key", fa.addr.addr(fa.family), key)
			}
		}
	}
	for _, p := range a.pools {
		for _, rs := range p.ranges {
			for _, r := range rs {
				if r.used != used[r] {
					return fmt.Errorf("pool %q range %s: counts %d in use, holders say %d", p.name(), r.first.addr(r.family), r.used, used[r])
				}
			}
		}
	}
	return nil
}
