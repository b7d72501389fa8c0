package metalink

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// MaxLinks bounds the links ParseLinks returns: a server names a handful
// of mirrors, never thousands.
const MaxLinks = 100

// Link is one link of a Link header field (RFC 8288) with the parameters
// Metalink/HTTP (RFC 6249) gives meaning to.
type Link struct {
	// URL is the target as written, possibly relative: resolve it against
	// the address of the answer that carried it.
	URL string
	// Rel holds the relation types, lower case ("duplicate", "describedby").
	Rel []string
	// Type is the media type hint, lower case, without parameters.
	Type string
	// Pri is the mirror's priority, 1 (first) to LowestPriority; an absent
	// or unreadable pri is LowestPriority.
	Pri int
	// Geo is the mirror's lower-case ISO 3166-1 country code, "" if none.
	Geo string
	// Depth is the number of path segments the mirror's URL shares with
	// the original's tree (RFC 6249); 0 when not given.
	Depth int
}

// HasRel reports whether l has relation type rel (lower case).
func (l Link) HasRel(rel string) bool { return slices.Contains(l.Rel, rel) }

// ParseLinks reads Link header values: each value may hold several links
// separated by commas, a comma inside <...> or a quoted string being part
// of it. A link that does not parse ends the reading of its value, keeping
// the links before it; at most MaxLinks are returned. Of a parameter given
// twice the first counts, as RFC 8288 says of rel.
func ParseLinks(values []string) []Link {
	var out []Link
	for _, v := range values {
		p := linkParser{s: v}
		for len(out) < MaxLinks {
			l, ok := p.link()
			if !ok {
				break
			}
			out = append(out, l)
		}
	}
	return out
}

type linkParser struct {
	s string
	i int
}

func (p *linkParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// link reads one link-value and the comma after it; ok is false at the end
// of the value or at a link that does not parse.
func (p *linkParser) link() (Link, bool) {
	for {
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == ',' { // empty list elements are allowed
			p.i++
			continue
		}
		break
	}
	if p.i >= len(p.s) || p.s[p.i] != '<' {
		return Link{}, false
	}
	end := strings.IndexByte(p.s[p.i:], '>')
	if end < 0 {
		return Link{}, false
	}
	l := Link{URL: strings.TrimSpace(p.s[p.i+1 : p.i+end]), Pri: LowestPriority}
	p.i += end + 1
	seen := map[string]bool{}
	for {
		p.skipSpace()
		if p.i >= len(p.s) {
			return l, true
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			return l, true
		case ';':
			p.i++
		default:
			return Link{}, false
		}
		p.skipSpace()
		name := strings.ToLower(p.token())
		if name == "" {
			if p.i >= len(p.s) || p.s[p.i] == ',' || p.s[p.i] == ';' {
				continue // an empty parameter: "; ;"
			}
			return Link{}, false
		}
		p.skipSpace()
		var value string
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
			p.skipSpace()
			var ok bool
			if value, ok = p.value(); !ok {
				return Link{}, false
			}
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		l.set(name, value)
	}
}

// token reads an RFC 9110 token (possibly empty), with the "*" that ends
// the name of an extended parameter ("title*"), which is skipped here like
// any parameter of no use.
func (p *linkParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	if p.i < len(p.s) && p.s[p.i] == '*' && p.i > start {
		p.i++ // an extended parameter name, "title*"
	}
	return p.s[start:p.i]
}

// value reads a token or a quoted string.
func (p *linkParser) value() (string, bool) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return p.token(), true
	}
	var b strings.Builder
	for p.i++; p.i < len(p.s); p.i++ {
		switch c := p.s[p.i]; c {
		case '"':
			p.i++
			return b.String(), true
		case '\\':
			p.i++
			if p.i >= len(p.s) {
				return "", false
			}
			b.WriteByte(p.s[p.i])
		default:
			b.WriteByte(c)
		}
	}
	return "", false // unterminated
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'+-.^_`|~", c) >= 0
}

func (l *Link) set(name, value string) {
	switch name {
	case "rel":
		for _, r := range strings.Fields(strings.ToLower(value)) {
			if !slices.Contains(l.Rel, r) {
				l.Rel = append(l.Rel, r)
			}
		}
	case "type":
		t, _, _ := strings.Cut(value, ";")
		l.Type = strings.ToLower(strings.TrimSpace(t))
	case "pri":
		if n, err := strconv.Atoi(value); err == nil && n >= 1 && n <= LowestPriority {
			l.Pri = n
		}
	case "geo":
		l.Geo = strings.ToLower(value)
	case "depth":
		if n, err := strconv.Atoi(value); err == nil && n >= 0 && n < 1000 {
			l.Depth = n
		}
	}
}

// Duplicates returns the links with rel=duplicate (the file's mirrors),
// by priority, the first given first among equals.
func Duplicates(links []Link) []Link {
	var out []Link
	for _, l := range links {
		if l.HasRel("duplicate") && l.URL != "" {
			out = append(out, l)
		}
	}
	slices.SortStableFunc(out, func(a, b Link) int { return cmp.Compare(a.Pri, b.Pri) })
	return out
}

// DescribedBy returns the links with rel=describedby to a Metalink
// document (Metalink 4 first, then Metalink 3), in the order given.
func DescribedBy(links []Link) []Link {
	var four, three []Link
	for _, l := range links {
		if !l.HasRel("describedby") || l.URL == "" {
			continue
		}
		switch l.Type {
		case MediaType4:
			four = append(four, l)
		case MediaType3:
			three = append(three, l)
		}
	}
	return append(four, three...)
}

// Order sorts urls for trying: those in the preferred countries first, in
// the order the countries are given, then by priority; the document's
// order decides among equals. locations are ISO 3166-1 codes, any case.
func Order(urls []URL, locations []string) []URL {
	rank := func(u URL) int {
		for i, l := range locations {
			if u.Location != "" && strings.EqualFold(strings.TrimSpace(l), u.Location) {
				return i
			}
		}
		return len(locations)
	}
	out := slices.Clone(urls)
	slices.SortStableFunc(out, func(a, b URL) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.Priority, b.Priority))
	})
	return out
}
