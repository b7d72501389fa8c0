package metalink

import (
	"strings"
	"testing"

	"github.com/convoy-dl/convoy/internal/names"
)

func FuzzDecode(f *testing.F) {
	u := "<url>http://h/f</url>"
	for _, s := range []string{
		example4,
		example3,
		doc4(file4("a", u), file4("sub/b", `<size>3</size><pieces length="1" type="md5"><hash>`+md5Hex+`</hash><hash>`+md5Hex+`</hash><hash>`+md5Hex+`</hash></pieces>`, u)),
		doc4(file4("../x", u)),
		doc4(file4("f", "<size>-1</size>", u)),
		`<!DOCTYPE x [<!ENTITY a "b">]><metalink xmlns="` + NS4 + `"/>`,
		doc4(file4("f", `<hash type="sha-256">`+sha256Hex+`</hash>`, `<pieces length="0" type="sha-1"></pieces>`, u)),
		example4[:len(example4)/2],
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(strings.NewReader(string(data)))
		if err != nil {
			if m != nil {
				t.Fatal("a document came back with an error")
			}
			return
		}
		if len(m.Files) == 0 || len(m.Files) > MaxFiles || (m.Version != 3 && m.Version != 4) {
			t.Fatalf("version %d with %d files", m.Version, len(m.Files))
		}
		seen := map[string]bool{}
		for _, file := range m.Files {
			if err := names.CheckRelative(file.Name); err != nil || seen[file.Name] {
				t.Fatalf("accepted name %q (%v, seen before: %v)", file.Name, err, seen[file.Name])
			}
			seen[file.Name] = true
			if file.Size < -1 || file.Size >= MaxSize {
				t.Fatalf("accepted size %d", file.Size)
			}
			if h := file.Hash; h != nil && len(h.Sum) != sizeOf(t, h.Algo) {
				t.Fatalf("%s hash of %d bytes", h.Algo, len(h.Sum))
			}
			if p := file.Pieces; p != nil {
				if p.Length <= 0 || file.Size < 0 {
					t.Fatalf("pieces of %d bytes for size %d", p.Length, file.Size)
				}
				if n := int64(len(p.Hashes)); n*p.Length < file.Size || (n > 0 && (n-1)*p.Length >= file.Size) {
					t.Fatalf("%d pieces of %d bytes for size %d", n, p.Length, file.Size)
				}
				for _, h := range p.Hashes {
					if len(h) != sizeOf(t, p.Algo) {
						t.Fatalf("%s piece hash of %d bytes", p.Algo, len(h))
					}
				}
			}
			if len(file.URLs)+len(file.MetaURLs) == 0 || len(file.URLs)+len(file.MetaURLs) > MaxURLs {
				t.Fatalf("%d addresses", len(file.URLs)+len(file.MetaURLs))
			}
			for _, u := range file.URLs {
				if u.URL == "" || u.Priority < 1 || u.Priority > LowestPriority {
					t.Fatalf("url %+v", u)
				}
			}
		}
	})
}

func sizeOf(t *testing.T, algo string) int {
	t.Helper()
	for _, a := range algoRank {
		if a.algo == algo {
			return a.size
		}
	}
	t.Fatalf("unknown algorithm %q", algo)
	return 0
}

func FuzzParseLinks(f *testing.F) {
	for _, s := range []string{
		`<http://mirror.de/tw.iso>; rel=duplicate; pri=1; geo=de`,
		`<http://a/f>; rel="duplicate"; pri=2, <http://b/f>; rel=duplicate; pri=1`,
		`<http://a/f,g>; rel=duplicate; title="a, b\" c", <http://b/f>`,
		`<http://dl/f.meta4>; rel=describedby; type="application/metalink4+xml"`,
		`<x>;;;rel=;=,<`,
		`<http://a/f>; title*=UTF-8'de'n%c3%a4chstes; rel=duplicate; depth=3`,
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		links := ParseLinks([]string{v, v})
		if len(links) > MaxLinks {
			t.Fatalf("%d links", len(links))
		}
		for _, l := range links {
			if l.Pri < 1 || l.Pri > LowestPriority || l.Depth < 0 {
				t.Fatalf("link %+v", l)
			}
			seen := map[string]bool{}
			for _, r := range l.Rel {
				if r == "" || r != strings.ToLower(r) || seen[r] {
					t.Fatalf("rel %q of %+v", r, l)
				}
				seen[r] = true
			}
			if strings.ContainsRune(l.URL, '>') {
				t.Fatalf("url %q", l.URL)
			}
		}
		for _, l := range Duplicates(links) {
			if !l.HasRel("duplicate") {
				t.Fatalf("Duplicates returned %+v", l)
			}
		}
		for _, l := range DescribedBy(links) {
			if !l.HasRel("describedby") || (l.Type != MediaType4 && l.Type != MediaType3) {
				t.Fatalf("DescribedBy returned %+v", l)
			}
		}
	})
}
