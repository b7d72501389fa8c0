// Package redact removes secrets from URLs before they reach a message, a log
// line or a file: the userinfo (a user name and password, of a server or of a
// proxy) and the values of query parameters that carry signatures, tokens or
// keys.
package redact

import (
	"net/url"
	"strings"
)

// Mask replaces a secret value.
const Mask = "REDACTED"

// sensitiveQuery lists substrings that mark a query parameter's value as a
// secret (matched case-insensitively against the parameter name).
var sensitiveQuery = []string{
	"sig", "token", "key", "secret", "password", "passwd", "pwd", "auth",
	"credential", "session", "signature", "policy", "hash", "jwt", "code",
}

// URL returns raw with its userinfo, secret query values and fragment
// masked. A string that does not parse as a URL still loses its userinfo and
// everything after the first '?' or '#', so a malformed signed URL leaks
// nothing.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return maskUnparsed(raw)
	}
	return Parsed(u)
}

// maskUnparsed masks what may be secret in a URL that does not parse.
func maskUnparsed(raw string) string {
	tail := ""
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw, tail = raw[:i], raw[i:i+1]+Mask
	}
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		authority := rest
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			authority = rest[:j]
		}
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			raw = raw[:i+3] + Mask + rest[at:]
		}
	}
	return raw + tail
}

// Parsed is URL for an already parsed URL; u is not modified.
func Parsed(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	if c.User != nil {
		c.User = url.User(Mask)
	}
	if c.Fragment != "" || c.RawFragment != "" {
		c.Fragment, c.RawFragment = Mask, ""
	}
	if c.RawQuery != "" {
		q, err := url.ParseQuery(c.RawQuery)
		if err != nil {
			c.RawQuery = Mask
		} else {
			for name, values := range q {
				if isSensitive(name) {
					for i := range values {
						values[i] = Mask
					}
				}
			}
			c.RawQuery = q.Encode()
		}
	}
	return c.String()
}

func isSensitive(name string) bool {
	n := strings.ToLower(name)
	for _, s := range sensitiveQuery {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// Text masks every URL-looking word inside s: one that starts with http://,
// https://, socks5:// or socks5h:// (a proxy's URL carries credentials too),
// in any case, and ends at white space, a quote or an angle bracket.
func Text(s string) string {
	var b strings.Builder
	for {
		i := indexScheme(s)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		end := strings.IndexAny(s[i:], " \t\n\"'<>")
		if end < 0 {
			end = len(s) - i
		}
		// Punctuation after a URL ends the sentence's clause, not the URL
		// ("dropping URL: why"): it is kept as it is, outside the URL.
		word := s[i : i+end]
		u := strings.TrimRight(word, ".,:;!?)")
		b.WriteString(URL(u))
		b.WriteString(word[len(u):])
		s = s[i+end:]
	}
}

// schemes are the URL prefixes Text looks for.
var schemes = []string{"http://", "https://", "socks5://", "socks5h://"}

// indexScheme finds the first of schemes in s, ignoring ASCII case, as a
// byte offset into s itself.
func indexScheme(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] != 'h' && s[i] != 'H' && s[i] != 's' && s[i] != 'S' {
			continue
		}
		for _, p := range schemes {
			if i+len(p) <= len(s) && strings.EqualFold(s[i:i+len(p)], p) {
				return i
			}
		}
	}
	return -1
}
