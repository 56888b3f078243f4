package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseAddressRange checks that any accepted pool entry is a well-formed range whose
// written form parses back to the same range and whose prefixes tile it exactly.
func FuzzParseAddressRange(f *testing.F) {
	for _, s := range []string{
		"192.168.10.0/24", "192.168.9.1-192.168.9.5", "fc00:f853:ccd:e799::/124", "10.0.0.9-10.0.0.1",
		"::/0", "0.0.0.0/0", "2001:db8::1 - 2001:db8::ff", "::ffff:10.0.0.1-::ffff:10.0.0.9", "10.0.0.1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseAddressRange(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ParseAddressRange(%q): empty error", s)
			}
			return
		}
		if !r.First.IsValid() || !r.Last.IsValid() || r.First.BitLen() != r.Last.BitLen() || r.First.Compare(r.Last) > 0 {
			t.Fatalf("ParseAddressRange(%q) = %v: not a range", s, r)
		}
		if r.First.Zone() != "" || r.Last.Zone() != "" {
			t.Fatalf("ParseAddressRange(%q) = %v: zone accepted", s, r)
		}
		if !r.Contains(r.First) || !r.Contains(r.Last) {
			t.Fatalf("ParseAddressRange(%q) = %v: does not contain its ends", s, r)
		}
		back, err := ParseAddressRange(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseAddressRange(%q).String() = %q reparses to %v, %v", s, r.String(), back, err)
		}
		prefixes := r.Prefixes()
		if len(prefixes) == 0 || len(prefixes) > 2*r.First.BitLen() {
			t.Fatalf("%v.Prefixes() = %v", r, prefixes)
		}
		next := r.First
		for i, p := range prefixes {
			if p.Addr() != next || p.Masked() != p {
				t.Fatalf("%v.Prefixes()[%d] = %v, want a prefix starting at %v", r, i, p, next)
			}
			next = lastAddr(p).Next()
		}
		if end := lastAddr(prefixes[len(prefixes)-1]); end != r.Last {
			t.Fatalf("%v.Prefixes() end at %v", r, end)
		}
	})
}

// FuzzLoad checks that no input makes Load panic, that it returns either a Config or an
// Errors of complete problems, and that it is deterministic.
//
// The seeds are the documentation examples one document at a time: small inputs keep the
// fuzzer's minimisation of each new input short, which leaves the time for fuzzing.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/metallb-docs/*.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, doc := range bytes.Split(data, []byte("\n---\n")) {
			f.Add(doc)
		}
	}
	f.Add([]byte(docs(pool("a", "10.0.0.0/24"), pool("b", "10.0.0.128/25"), bgpAdv("adv", "{aggregationLength: 8, communities: [x]}"))))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: []}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Load(Source{Name: "f.yaml", Data: data})
		if res == nil {
			t.Fatal("Load returned a nil Result")
		}
		if err == nil {
			if res.Config == nil {
				t.Fatal("Load returned neither a Config nor an error")
			}
		} else {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("Load error %v is not a non-empty Errors", err)
			}
			if res.Config != nil {
				t.Fatal("Load returned a Config with errors")
			}
			for _, e := range errs {
				if e.Reason == "" || e.Source == "" {
					t.Fatalf("incomplete problem %+v", e)
				}
			}
		}
		_, err2 := Load(Source{Name: "f.yaml", Data: data})
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("Load is not deterministic:\n%v\n---\n%v", err, err2)
		}
	})
}
