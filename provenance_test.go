package convoy

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/convoy-dl/convoy/manifest"
)

// provenance must agree, byte for byte, with a plain array of owners after
// any sequence of writes, and keep its ranges ordered, disjoint and merged.
func TestProvenanceMatchesModel(t *testing.T) {
	const size = 200
	urls := []string{"http://a/f", "http://b/f", "http://c/f"}
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 1))
		p := newProvenance(nil)
		model := make([]string, size)
		for range 1 + rng.IntN(40) {
			off := rng.Int64N(size)
			n := 1 + rng.Int64N(min(size-off, 30))
			u := urls[rng.IntN(len(urls))]
			if rng.IntN(2) == 0 && seed%2 == 0 {
				// Mostly sequential writes, as a connection makes.
				off = 0
				for off < size && model[off] != "" {
					off++
				}
				if off == size {
					continue
				}
				n = min(n, size-off)
			}
			p.add(u, off, n)
			for b := off; b < off+n; b++ {
				model[b] = u
			}
			checkProvenance(t, seed, p.snapshot(), model)
		}
	}
}

func checkProvenance(t *testing.T, seed uint64, got []manifest.Served, model []string) {
	t.Helper()
	owner := make([]string, len(model))
	var prev manifest.Served
	for i, s := range got {
		if s.Start >= s.End || (i > 0 && s.Start < prev.End) {
			t.Fatalf("seed %d: range %d %+v after %+v: not ordered and disjoint: %+v", seed, i, s, prev, got)
		}
		if i > 0 && s.Start == prev.End && s.URL == prev.URL {
			t.Fatalf("seed %d: ranges %d and %d of one server are not merged: %+v", seed, i-1, i, got)
		}
		for b := s.Start; b < s.End; b++ {
			owner[b] = s.URL
		}
		prev = s
	}
	for b := range model {
		if owner[b] != model[b] {
			t.Fatalf("seed %d: byte %d recorded as from %q, sent by %q: %+v", seed, b, owner[b], model[b], got)
		}
	}
}

func TestProvenanceKeepsEarlierRun(t *testing.T) {
	p := newProvenance([]manifest.Served{{URL: "http://a/f", Start: 0, End: 10}})
	p.add("http://b/f", 10, 5)
	p.add("http://a/f", 15, 5)
	want := []manifest.Served{{URL: "http://a/f", Start: 0, End: 10}, {URL: "http://b/f", Start: 10, End: 15}, {URL: "http://a/f", Start: 15, End: 20}}
	got := p.snapshot()
	if len(got) != len(want) {
		t.Fatalf("snapshot = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("snapshot = %+v, want %+v", got, want)
		}
	}
	if s := p.summary(); !strings.HasPrefix(s, "http://a/f (15 B), http://b/f (5 B)") {
		t.Fatalf("summary = %q", s)
	}
}
