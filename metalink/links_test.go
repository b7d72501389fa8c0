package metalink

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseLinks(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string // fmt of the links
	}{
		{"mirrorcache", []string{
			`<http://mirror.de/tw.iso>; rel=duplicate; pri=1; geo=de`,
			`<http://mirror.fr/tw.iso>; rel=duplicate; pri=2; geo=fr`,
			`<http://dl.example.org/tw.iso.meta4>; rel=describedby; type="application/metalink4+xml"`,
		}, `[{http://mirror.de/tw.iso [duplicate]  1 de 0} {http://mirror.fr/tw.iso [duplicate]  2 fr 0} {http://dl.example.org/tw.iso.meta4 [describedby] application/metalink4+xml 999999  0}]`},
		{"several-in-one-value", []string{`<http://a/f>; rel="duplicate"; pri=2, <http://b/f>; rel=duplicate; pri=1`},
			`[{http://a/f [duplicate]  2  0} {http://b/f [duplicate]  1  0}]`},
		{"comma-inside-url-and-quotes", []string{`<http://a/f,g>; rel=duplicate; title="a, b", <http://b/f>; rel=duplicate`},
			`[{http://a/f,g [duplicate]  999999  0} {http://b/f [duplicate]  999999  0}]`},
		{"semicolon-inside-quotes", []string{`<http://a/f>; title="x; rel=describedby"; rel=duplicate`},
			`[{http://a/f [duplicate]  999999  0}]`},
		{"escaped-quote", []string{`<http://a/f>; title="say \"hi\", then"; rel=duplicate`},
			`[{http://a/f [duplicate]  999999  0}]`},
		{"first-rel-wins", []string{`<http://a/f>; rel=duplicate; rel=describedby`},
			`[{http://a/f [duplicate]  999999  0}]`},
		{"rel-list-and-case", []string{`<http://a/f>; REL="Duplicate Alternate"; GEO=DE; Depth=2; pri=7`},
			`[{http://a/f [duplicate alternate]  7 de 2}]`},
		{"relative", []string{`</other/f>; rel=duplicate`}, `[{/other/f [duplicate]  999999  0}]`},
		{"bad-pri", []string{`<http://a/f>; rel=duplicate; pri=0, <http://b/f>; rel=duplicate; pri=x, <http://c/f>; rel=duplicate; pri=1000000`},
			`[{http://a/f [duplicate]  999999  0} {http://b/f [duplicate]  999999  0} {http://c/f [duplicate]  999999  0}]`},
		{"extended-param", []string{`<http://a/f>; title*=UTF-8'de'n%c3%a4chstes; rel=duplicate`},
			`[{http://a/f [duplicate]  999999  0}]`},
		{"empty-elements", []string{`, ,<http://a/f>; ; rel=duplicate,`}, `[{http://a/f [duplicate]  999999  0}]`},
		{"garbage-ends-the-value", []string{`<http://a/f>; rel=duplicate, garbage, <http://b/f>; rel=duplicate`, `<http://c/f>; rel=duplicate`},
			`[{http://a/f [duplicate]  999999  0} {http://c/f [duplicate]  999999  0}]`},
		{"unterminated-url", []string{`<http://a/f; rel=duplicate`}, `[]`},
		{"unterminated-quote", []string{`<http://a/f>; rel="duplicate`}, `[]`},
		{"empty", []string{""}, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseLinks(tt.values)
			if s := fmt.Sprint(got); s != tt.want {
				t.Errorf("ParseLinks(%q) =\n%s\nwant\n%s", tt.values, s, tt.want)
			}
		})
	}
}

func TestParseLinksIsBounded(t *testing.T) {
	v := strings.Repeat(`<http://a/f>; rel=duplicate, `, 5*MaxLinks)
	if n := len(ParseLinks([]string{v, v})); n != MaxLinks {
		t.Errorf("%d links, want at most %d", n, MaxLinks)
	}
}

func TestDuplicatesAndDescribedBy(t *testing.T) {
	links := ParseLinks([]string{
		`<http://c/f>; rel=duplicate; pri=3`,
		`<http://a/f.meta3>; rel=describedby; type="application/metalink+xml"`,
		`<http://a/f.torrent>; rel=describedby; type="application/x-bittorrent"`,
		`<http://a/f>; rel=duplicate; pri=1`,
		`<http://b/f>; rel=duplicate`,
		`<http://a/f.meta4>; rel=describedby; type="Application/Metalink4+XML"`,
		`<http://d/f>; rel=duplicate; pri=1`,
		`<http://e/f>; rel=alternate; pri=1`,
	})
	var dup []string
	for _, l := range Duplicates(links) {
		dup = append(dup, l.URL)
	}
	if got := strings.Join(dup, " "); got != "http://a/f http://d/f http://c/f http://b/f" {
		t.Errorf("Duplicates = %s", got)
	}
	var desc []string
	for _, l := range DescribedBy(links) {
		desc = append(desc, l.URL)
	}
	if got := strings.Join(desc, " "); got != "http://a/f.meta4 http://a/f.meta3" {
		t.Errorf("DescribedBy = %s", got)
	}
}
