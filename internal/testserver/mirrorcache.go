package testserver

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// MirrorCache is a redirector as openSUSE's MirrorCache (formerly
// MirrorBrain) runs one, speaking Metalink/HTTP (RFC 6249): a GET or HEAD
// of the file answers 302 to the first mirror, with a Link header naming
// each other mirror (rel=duplicate, with pri and geo), one naming the
// file's Metalink (rel=describedby) and a Digest of the file. The
// Metalink is served at the file's path plus ".meta4".
type MirrorCache struct {
	// URL is the file's address at the redirector; MetalinkURL its
	// Metalink's.
	URL, MetalinkURL string
	// MetalinkFetches counts the GETs of the Metalink.
	MetalinkFetches atomic.Int64

	ts *httptest.Server
}

// MirrorCacheConfig describes a MirrorCache.
type MirrorCacheConfig struct {
	// Mirrors are the file's addresses; the first is where the redirect
	// goes, each other is named in a Link header with pri i and the
	// country Geo[i] when given.
	Mirrors []string
	Geo     []string
	// Content is the file, for the Digest header (none when nil).
	Content []byte
	// Metalink is the document served at MetalinkURL; nil serves none
	// and names none.
	Metalink func(self string) []byte
	// Links, when set, replaces the Link headers of the redirect; self
	// is the file's address at the redirector.
	Links func(self string) []string
}

// NewMirrorCache starts a MirrorCache on loopback; t.Cleanup closes it.
func NewMirrorCache(t testing.TB, cfg MirrorCacheConfig) *MirrorCache {
	t.Helper()
	m := &MirrorCache{}
	const path = "/dl/file.bin"
	mux := http.NewServeMux()
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		links := m.links(cfg)
		if cfg.Links != nil {
			links = cfg.Links(m.URL)
		}
		for _, l := range links {
			w.Header().Add("Link", l)
		}
		if cfg.Content != nil {
			sum := sha256.Sum256(cfg.Content)
			w.Header().Set("Digest", "SHA-256="+base64.StdEncoding.EncodeToString(sum[:]))
		}
		http.Redirect(w, r, cfg.Mirrors[0], http.StatusFound)
	})
	mux.HandleFunc(path+".meta4", func(w http.ResponseWriter, r *http.Request) {
		m.MetalinkFetches.Add(1)
		if cfg.Metalink == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/metalink4+xml")
		_, _ = w.Write(cfg.Metalink(m.URL))
	})
	m.ts = httptest.NewServer(mux)
	t.Cleanup(m.ts.Close)
	m.URL = m.ts.URL + path
	m.MetalinkURL = m.URL + ".meta4"
	return m
}

// links are the Link headers of a redirect: the other mirrors, then the
// Metalink.
func (m *MirrorCache) links(cfg MirrorCacheConfig) []string {
	var out []string
	for i, u := range cfg.Mirrors[1:] {
		l := fmt.Sprintf("<%s>; rel=duplicate; pri=%d", u, i+1)
		if i+1 < len(cfg.Geo) {
			l += "; geo=" + strings.ToLower(cfg.Geo[i+1])
		}
		out = append(out, l)
	}
	if cfg.Metalink != nil {
		out = append(out, fmt.Sprintf(`<%s>; rel=describedby; type="application/metalink4+xml"`, m.MetalinkURL))
	}
	return out
}
