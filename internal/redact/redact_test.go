package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		secrets []string // must not appear in the output
		keep    []string // must appear in the output
	}{
		{
			name:    "userinfo/user+password",
			in:      "https://alice:s3cretpw@example.com/file.iso",
			secrets: []string{"alice", "s3cretpw"},
			keep:    []string{"https://", "example.com/file.iso", Mask + "@"},
		},
		{
			name:    "userinfo/user-only",
			in:      "https://ghp_usertoken123@example.com/file.iso",
			secrets: []string{"ghp_usertoken123"},
			keep:    []string{"example.com/file.iso"},
		},
		{
			name:    "query/X-Amz-Signature",
			in:      "https://bucket.s3.amazonaws.com/obj?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abcdef0123456789&X-Amz-Expires=3600",
			secrets: []string{"abcdef0123456789"},
			keep:    []string{"X-Amz-Signature=" + Mask, "X-Amz-Expires=3600", "X-Amz-Algorithm=AWS4-HMAC-SHA256", "/obj"},
		},
		{
			name:    "query/X-Goog-Credential",
			in:      "https://storage.googleapis.com/b/o?X-Goog-Credential=svc%40proj.iam%2F20240101%2Fauto&X-Goog-Date=20240101T000000Z",
			secrets: []string{"svc%40proj", "svc@proj", "proj.iam"},
			keep:    []string{"X-Goog-Credential=" + Mask, "X-Goog-Date=20240101T000000Z"},
		},
		{
			name:    "query/token",
			in:      "https://example.com/f?token=tok_0123456789&page=2",
			secrets: []string{"tok_0123456789"},
			keep:    []string{"token=" + Mask, "page=2"},
		},
		{
			name:    "query/sig",
			in:      "https://acct.blob.core.windows.net/c/f?sv=2020-08-04&sig=AbCdEf%2BgH%3D&se=2030-01-01",
			secrets: []string{"AbCdEf", "%2BgH"},
			keep:    []string{"sig=" + Mask, "sv=2020-08-04", "se=2030-01-01"},
		},
		{
			name:    "query/key",
			in:      "https://api.example.com/dl?key=AIzaSyA-secret-key-value",
			secrets: []string{"AIzaSyA-secret-key-value"},
			keep:    []string{"key=" + Mask},
		},
		{
			name:    "query/access_token",
			in:      "https://example.com/f?access_token=ya29.a0AfH6SMBsecret",
			secrets: []string{"ya29.a0AfH6SMBsecret"},
			keep:    []string{"access_token=" + Mask},
		},
		{
			name:    "query/Signature",
			in:      "https://d111111abcdef8.cloudfront.net/img.jpg?Expires=1700000000&Signature=Zm9vYmFyYmF6&Key-Pair-Id=APKAEXAMPLE",
			secrets: []string{"Zm9vYmFyYmF6", "APKAEXAMPLE"},
			keep:    []string{"Signature=" + Mask, "Expires=1700000000"},
		},
		{
			name:    "query/name-case-and-escapes",
			in:      "https://example.com/f?TOKEN=upper_secret_1&to%6Ben=escaped_secret_2",
			secrets: []string{"upper_secret_1", "escaped_secret_2"},
		},
		{
			name:    "query/repeated-param",
			in:      "https://example.com/f?token=first_secret&token=second_secret",
			secrets: []string{"first_secret", "second_secret"},
		},
		{
			name:    "query/unparsable-query",
			in:      "https://example.com/f?token=semi_secret;page=2",
			secrets: []string{"semi_secret"},
			keep:    []string{"example.com/f?"},
		},
		{
			name: "query/nothing-sensitive",
			in:   "https://example.com/a/b.tar.gz?page=2&lang=en",
			keep: []string{"https://example.com/a/b.tar.gz?", "page=2", "lang=en"},
		},
		{
			name: "no-query",
			in:   "https://example.com/a/b.tar.gz",
			keep: []string{"https://example.com/a/b.tar.gz"},
		},
		{
			name:    "malformed/bad-host-with-query",
			in:      "http://a b.com/f?token=hostbad_secret&page=2",
			secrets: []string{"hostbad_secret", "page=2"},
			keep:    []string{"http://a b.com/f?" + Mask},
		},
		{
			name:    "malformed/control-char-with-query",
			in:      "https://example.com/f?sig=ctl_secret\x7f",
			secrets: []string{"ctl_secret"},
			keep:    []string{"https://example.com/f?" + Mask},
		},
		{
			name: "malformed/no-query",
			in:   "http://a b.com/f",
			keep: []string{"http://a b.com/f"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := URL(tt.in)
			for _, s := range tt.secrets {
				if strings.Contains(got, s) {
					t.Errorf("URL(%q) = %q, still contains %q", tt.in, got, s)
				}
			}
			for _, k := range tt.keep {
				if !strings.Contains(got, k) {
					t.Errorf("URL(%q) = %q, want it to contain %q", tt.in, got, k)
				}
			}
		})
	}
}

// TestURLMalformedUserinfo covers URLs that url.Parse rejects but that carry
// a password before the host. The fallback masks only what follows '?', so
// the password leaks.
func TestURLMalformedUserinfo(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		secret string
	}{
		{"bad-port", "http://alice:pw_badport@example.com:port/file", "pw_badport"},
		{"bad-escape-in-path", "https://alice:pw_badescape@example.com/100%zz.iso", "pw_badescape"},
		{"bad-escape-in-path+query", "https://alice:pw_withquery@example.com/100%zz.iso?page=2", "pw_withquery"},
		{"control-char", "https://alice:pw_ctl@example.com/f\x01", "pw_ctl"},
	}
	var leaked []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := url.Parse(tt.in); err == nil {
				t.Fatalf("url.Parse(%q) succeeded; this case needs a malformed URL", tt.in)
			}
			if got := URL(tt.in); strings.Contains(got, tt.secret) {
				leaked = append(leaked, got)
			}
		})
	}
	if len(leaked) > 0 {
		t.Errorf("URL falls back to masking only after '?', so an unparsable URL keeps its userinfo password: %q", leaked)
	}
}

func TestParsed(t *testing.T) {
	if got := Parsed(nil); got != "" {
		t.Errorf("Parsed(nil) = %q, want \"\"", got)
	}
	u, err := url.Parse("https://alice:pw@example.com/f?token=tok_secret&page=2")
	if err != nil {
		t.Fatal(err)
	}
	before := *u
	beforeUser := u.User.String()
	got := Parsed(u)
	if strings.Contains(got, "tok_secret") || strings.Contains(got, "pw") || strings.Contains(got, "alice") {
		t.Errorf("Parsed = %q, leaks a secret", got)
	}
	if u.RawQuery != before.RawQuery || u.User.String() != beforeUser || u.String() != before.String() {
		t.Errorf("Parsed modified its argument: %q, was %q", u.String(), before.String())
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		secrets []string
		keep    []string
	}{
		{
			name: "no-url",
			in:   "connection reset by peer",
			keep: []string{"connection reset by peer"},
		},
		{
			name:    "url-in-sentence",
			in:      "GET https://example.com/f?token=tok_secret_1 failed: 403",
			secrets: []string{"tok_secret_1"},
			keep:    []string{"GET https://example.com/f?token=" + Mask + " failed: 403"},
		},
		{
			name:    "url-at-end",
			in:      "fetching http://example.com/f?sig=sig_secret_2",
			secrets: []string{"sig_secret_2"},
			keep:    []string{"fetching http://example.com/f?sig=" + Mask},
		},
		{
			name:    "url-at-start",
			in:      "https://alice:pw_secret_3@example.com/f: EOF",
			secrets: []string{"pw_secret_3", "alice"},
			keep:    []string{": EOF"},
		},
		{
			name:    "several-urls/http+https",
			in:      "redirect from http://a.example/x?token=tok_a_secret to https://b.example/y?X-Amz-Signature=sig_b_secret&page=2 then http://c.example/z",
			secrets: []string{"tok_a_secret", "sig_b_secret"},
			keep:    []string{"redirect from http://a.example/x?token=" + Mask + " to https://b.example/y?", "page=2", " then http://c.example/z"},
		},
		{
			name:    "url-followed-by-double-quote",
			in:      `Get "https://example.com/f?key=key_secret_4": context deadline exceeded`,
			secrets: []string{"key_secret_4"},
			keep:    []string{`Get "https://example.com/f?key=` + Mask + `": context deadline exceeded`},
		},
		{
			name:    "url-followed-by-single-quote",
			in:      "url 'https://example.com/f?token=tok_secret_5' refused",
			secrets: []string{"tok_secret_5"},
			keep:    []string{"url 'https://example.com/f?token=" + Mask + "' refused"},
		},
		{
			name:    "url-in-angle-brackets",
			in:      "<https://example.com/f?token=tok_secret_6>",
			secrets: []string{"tok_secret_6"},
			keep:    []string{"<https://example.com/f?token=" + Mask + ">"},
		},
		{
			name:    "url-then-newline-and-tab",
			in:      "a\thttps://example.com/f?token=tok_secret_7\nb",
			secrets: []string{"tok_secret_7"},
			keep:    []string{"a\thttps://example.com/f?token=" + Mask + "\nb"},
		},
		{
			name:    "malformed-url-in-sentence",
			in:      "bad http://example.com:port/f?token=tok_secret_8 here",
			secrets: []string{"tok_secret_8"},
			keep:    []string{"bad http://example.com:port/f?" + Mask + " here"},
		},
		{
			name:    "proxy/http-userinfo",
			in:      `Get "https://example.com/f": proxy http://bob:px_secret_11@127.0.0.1:3128: dial tcp: connection refused`,
			secrets: []string{"px_secret_11", "bob"},
			keep:    []string{"proxy http://" + Mask + "@127.0.0.1:3128: dial tcp: connection refused"},
		},
		{
			name:    "proxy/socks5-userinfo",
			in:      "proxy socks5://carol:px_secret_12@127.0.0.1:1080: socks connect: EOF",
			secrets: []string{"px_secret_12", "carol"},
			keep:    []string{"proxy socks5://" + Mask + "@127.0.0.1:1080: socks connect: EOF"},
		},
		{
			name:    "proxy/socks5h-upper-case",
			in:      "via SOCKS5H://dave:px_secret_13@proxy.example:1080 failed",
			secrets: []string{"px_secret_13", "dave"},
			keep:    []string{"via ", "proxy.example:1080 failed"},
		},
		{
			name:    "proxy/unparsable-socks5",
			in:      "bad socks5://erin:px_secret_14@host:port here",
			secrets: []string{"px_secret_14", "erin"},
			keep:    []string{"bad socks5://" + Mask + "@host:port here"},
		},
		{
			// A notice puts ": why" right after the URL: the colon is the
			// sentence's, not part of the last query value.
			name:    "query-then-colon-or-comma",
			in:      "dropping http://me:pw_secret_11@example.com/f?token=tok_secret_12: HTTP 404, then https://example.com/g?sig=sig_secret_13, and more",
			secrets: []string{"pw_secret_11", "tok_secret_12", "sig_secret_13"},
			keep:    []string{"?token=" + Mask + ": HTTP 404, then https://example.com/g?sig=" + Mask + ", and more"},
		},
		{
			name:    "adjacent-urls-without-space",
			in:      "x https://a.example/?token=tok_secret_9https://b.example/?token=tok_secret_10",
			secrets: []string{"tok_secret_9", "tok_secret_10"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Text(tt.in)
			for _, s := range tt.secrets {
				if strings.Contains(got, s) {
					t.Errorf("Text(%q) = %q, still contains %q", tt.in, got, s)
				}
			}
			for _, k := range tt.keep {
				if !strings.Contains(got, k) {
					t.Errorf("Text(%q) = %q, want it to contain %q", tt.in, got, k)
				}
			}
		})
	}
}

// isAlnum reports whether s is made of ASCII letters and digits only.
func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// secretName is the fuzz test's own reading of which query parameters carry
// secrets: those whose name contains a word of sensitiveQuery, in any case.
func secretName(name string) bool {
	name = strings.ToLower(name)
	for _, w := range sensitiveQuery {
		if strings.Contains(name, strings.ToLower(w)) {
			return true
		}
	}
	return false
}

// FuzzURL checks that URL shows no secret of any kind: the user name and
// password, the value of every parameter named as a secret, the fragment,
// and, when the query does not parse, every value in it. A secret is looked
// for only when it is long and alphanumeric (so that its encoded and
// decoded forms are one) and does not also show in what the URL keeps
// without any secret part (its host, path or another parameter).
func FuzzURL(f *testing.F) {
	for _, s := range []string{
		"https://example.com/f?token=abcdefgh12345678",
		"https://alice:pw@example.com/f?token=abcdefgh&page=2",
		"https://example.com/f?page=2",
		"http://a b.com/?token=abcdefghij",
		"https://example.com/f?token=abcdefgh;x=1",
		"mailto:x?token=abcdefghij",
		"https://example.com/abcdefgh?token=abcdefgh",
		"https://example.com/f?token=REDACTED",
		"%zz?token=abcdefghij",
		"",
		// Every secret-bearing part, each on its own.
		"https://alice:s3cretpassw0rd@example.com/f",
		"https://ghpusertoken12345@example.com/f",
		"https://example.com/f#accesstoken12345",
		"https://example.com/f?X-Amz-Signature=abcdef0123456789&X-Amz-Expires=3600",
		"https://example.com/f?access_token=abcdefgh12345678&SessionId=zyxwvuts98765432",
		"https://example.com/f?token=abcdefgh12345678&token=ijklmnop12345678",
		"https://example.com/f?x=abcdefgh12345678;y=1",
		"http://us3rname1234:passw0rd1234@a b.com/f",
		"socks5h://proxyuser1234:proxypassw0rd@proxy.example:1080",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := URL(in)
		_ = Text(in)
		_ = Text("GET " + in + " failed")

		// leaks fails t if out shows secret v of the named part, unless v
		// also shows in rest, what the URL keeps without secrets.
		leaks := func(part, v, rest string) {
			t.Helper()
			// "REDACTED" itself is the mask.
			if len(v) < 8 || !isAlnum(v) || strings.Contains(Mask, v) || strings.Contains(rest, v) {
				return
			}
			if strings.Contains(out, v) {
				t.Fatalf("URL(%q) = %q, leaks the %s %q", in, out, part, v)
			}
		}

		u, err := url.Parse(in)
		if err != nil {
			// Everything after the first '?' or '#' is masked.
			if i := strings.IndexAny(in, "?#"); i >= 0 && !strings.HasSuffix(out, in[i:i+1]+Mask) {
				t.Fatalf("URL(%q) = %q, want everything after %q masked", in, out, in[i])
			}
			// So is the userinfo of the authority.
			head, _, _ := strings.Cut(in, "?")
			head, _, _ = strings.Cut(head, "#")
			if scheme, rest, ok := strings.Cut(head, "://"); ok {
				authority, path, _ := strings.Cut(rest, "/")
				if at := strings.LastIndexByte(authority, '@'); at >= 0 {
					kept := scheme + "://" + authority[at+1:] + "/" + path
					for _, v := range strings.FieldsFunc(authority[:at], func(r rune) bool { return r == ':' }) {
						leaks("userinfo", v, kept)
					}
				}
			}
			return
		}

		// What the URL keeps once every secret part is gone: its scheme,
		// host, path, the names of all parameters and the values of those
		// that are no secret.
		stripped := *u
		stripped.User, stripped.Fragment, stripped.RawFragment = nil, "", ""
		q, qerr := url.ParseQuery(u.RawQuery)
		var secrets []string
		if qerr != nil {
			// A query that does not parse is masked whole.
			stripped.RawQuery = ""
			for _, vs := range q {
				secrets = append(secrets, vs...)
			}
		} else {
			for name, vs := range q {
				if secretName(name) {
					secrets = append(secrets, vs...)
					q[name] = []string{Mask} // the name stays in sight
				}
			}
			stripped.RawQuery = q.Encode()
		}
		rest := stripped.String()
		for _, v := range secrets {
			leaks("query value", v, rest)
		}
		if u.User != nil {
			leaks("user name", u.User.Username(), rest)
			if pw, ok := u.User.Password(); ok {
				leaks("password", pw, rest)
			}
		}
		leaks("fragment", u.Fragment, rest)
	})
}
