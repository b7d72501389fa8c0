package convoy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/merge"
)

// metalinkFile is one file element of a test document.
type metalinkFile struct {
	name   string
	size   int64 // < 0: no size element
	sha256 []byte
	urls   []string // "URL" or "URL location priority"
	extra  string   // more elements, as written
}

// meta4 writes a Metalink 4 document of files.
func meta4(files ...metalinkFile) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<metalink xmlns="urn:ietf:params:xml:ns:metalink">` + "\n")
	for _, f := range files {
		fmt.Fprintf(&b, "  <file name=%q>\n", f.name)
		if f.size >= 0 {
			fmt.Fprintf(&b, "    <size>%d</size>\n", f.size)
		}
		if f.sha256 != nil {
			fmt.Fprintf(&b, "    <hash type=\"sha-256\">%x</hash>\n", f.sha256)
		}
		for _, u := range f.urls {
			fields := strings.Fields(u)
			switch len(fields) {
			case 1:
				fmt.Fprintf(&b, "    <url>%s</url>\n", fields[0])
			default:
				fmt.Fprintf(&b, "    <url location=%q priority=%q>%s</url>\n", fields[1], fields[2], fields[0])
			}
		}
		b.WriteString(f.extra)
		b.WriteString("  </file>\n")
	}
	b.WriteString("</metalink>\n")
	return []byte(b.String())
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// writeMetalink saves doc as a .meta4 file in a folder of its own.
func writeMetalink(t *testing.T, doc []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "files.meta4")
	if err := os.WriteFile(p, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// recorder collects notices and events of a download.
type recorder struct {
	mu      sync.Mutex
	notices []string
	events  []convoy.Event
}

func (r *recorder) logf(f string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notices = append(r.notices, fmt.Sprintf(f, a...))
}

func (r *recorder) event(e convoy.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) said(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.notices, func(n string) bool { return strings.Contains(n, sub) })
}

// found lists the mirrors of mirror-found events.
func (r *recorder) found() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Type == "mirror-found" {
			out = append(out, e.Mirror)
		}
	}
	return out
}

func metalinkConfig(dir string, rec *recorder) convoy.Config {
	cfg := fastConfig("", dir)
	cfg.Output = ""
	cfg.Logf, cfg.OnEvent = rec.logf, rec.event
	return cfg
}

// TestMetalinkFileDownloads: convoy get x.meta4 fetches the file from the
// addresses listed, into the subfolder its name gives, and verifies the
// hash the document gives; an ftp address and a torrent are skipped with
// a notice.
func TestMetalinkFileDownloads(t *testing.T) {
	const size = 4 << 20
	opts := []testserver.Option{testserver.Size(size), testserver.Rate(4 << 20)}
	a, b := testserver.New(t, opts...), testserver.New(t, opts...)
	doc := meta4(metalinkFile{name: "sub/dir/file.iso", size: size, sha256: sha256Of(a.Content()),
		urls:  []string{"ftp://ftp.example.org/file.iso", a.URL, b.URL},
		extra: `<metaurl mediatype="torrent">http://example.org/file.torrent</metaurl>`})
	dir := t.TempDir()
	rec := &recorder{}
	cfg := metalinkConfig(dir, rec)
	cfg.Metalink = writeMetalink(t, doc)
	cfg.Connections, cfg.MaxPerHost = 4, 4
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "sub", "dir", "file.iso")
	a.Verify(t, out)
	if res.Path != out || !res.Verified || res.Checksum != "sha256:"+hex.EncodeToString(sha256Of(a.Content())) {
		t.Errorf("result %+v: want %s verified against the metalink's sha-256", res, out)
	}
	for i, s := range []*testserver.Server{a, b} {
		if s.Stats().BodyBytes < size/8 {
			t.Errorf("server %d sent only %d bytes: the metalink's addresses did not share the download", i, s.Stats().BodyBytes)
		}
	}
	if !rec.said("ftp://") || !rec.said("metaurl") {
		t.Errorf("no notice of the skipped ftp address and torrent: %q", rec.notices)
	}
}

// TestMetalinkHashIsChecked: a file that does not match the metalink's hash
// is never saved under its name.
func TestMetalinkHashIsChecked(t *testing.T) {
	s := testserver.New(t, testserver.Size(256<<10))
	wrong := sha256Of([]byte("another file"))
	dir := t.TempDir()
	cfg := metalinkConfig(dir, &recorder{})
	cfg.Metalink = writeMetalink(t, meta4(metalinkFile{name: "f.bin", size: 256 << 10, sha256: wrong, urls: []string{s.URL}}))
	_, err := convoy.Download(context.Background(), cfg)
	if !errors.Is(err, merge.ErrChecksum) {
		t.Fatalf("error %v, want a checksum mismatch", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "f.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the bad file was saved under its name (%v)", err)
	}
}

// TestMetalinkSizeIsChecked: an address that serves another size than the
// document says is passed over for the next; with none left, it fails
// saying why.
func TestMetalinkSizeIsChecked(t *testing.T) {
	const size = 256 << 10
	short := testserver.New(t, testserver.Size(size-1))
	good := testserver.New(t, testserver.Size(size))
	dir := t.TempDir()
	rec := &recorder{}
	cfg := metalinkConfig(dir, rec)
	cfg.Metalink = writeMetalink(t, meta4(metalinkFile{name: "f.bin", size: size, urls: []string{short.URL, good.URL}}))
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	good.Verify(t, filepath.Join(dir, "f.bin"))
	if !rec.said("says f.bin has") {
		t.Errorf("no notice of the address of another size: %q", rec.notices)
	}

	cfg = metalinkConfig(t.TempDir(), &recorder{})
	cfg.Metalink = writeMetalink(t, meta4(metalinkFile{name: "f.bin", size: size, urls: []string{short.URL}}))
	if _, err := convoy.Download(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "says f.bin has") {
		t.Errorf("error %v, want one naming the size the metalink gives", err)
	}
}

// TestMetalinkHostileNames: a name that leads out of the folder is refused
// before anything is fetched or written.
func TestMetalinkHostileNames(t *testing.T) {
	s := testserver.New(t, testserver.Size(1024))
	for _, name := range []string{"../escape.bin", "sub/../../escape.bin", "/tmp/escape.bin", "NUL"} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "dl")
			cfg := metalinkConfig(dir, &recorder{})
			cfg.Metalink = writeMetalink(t, meta4(metalinkFile{name: name, size: 1024, urls: []string{s.URL}}))
			before := s.Stats().Requests
			_, err := convoy.Download(context.Background(), cfg)
			if !errors.Is(err, convoy.ErrUsage) || !strings.Contains(err.Error(), "file name") {
				t.Fatalf("error %v, want a usage error about the file name", err)
			}
			if n := s.Stats().Requests - before; n != 0 {
				t.Errorf("%d requests made", n)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Errorf("written: %v", entries)
			}
		})
	}
}

// TestMetalinksOrder: addresses in the countries asked for come first, in
// that order, then by priority; Metalinks gives a Config for each file,
// and Download refuses a document of several.
func TestMetalinksOrder(t *testing.T) {
	doc := meta4(
		metalinkFile{name: "a.bin", size: 10, urls: []string{"http://us.test/a us 1", "http://fr.test/a fr 3", "http://de.test/a de 2", "http://any.test/a"}},
		metalinkFile{name: "b.bin", size: -1, urls: []string{"http://us.test/b us 1"}},
	)
	cfg := metalinkConfig(t.TempDir(), &recorder{})
	cfg.Metalink = writeMetalink(t, doc)
	for _, tt := range []struct {
		locations []string
		want      string
	}{
		{nil, "us de fr any"},
		{[]string{"fr"}, "fr us de any"},
		{[]string{"de", "fr"}, "de fr us any"},
	} {
		cfg.MetalinkLocation = tt.locations
		cfgs, err := convoy.Metalinks(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(cfgs) != 2 || cfgs[0].Output != "a.bin" || cfgs[1].Output != "b.bin" {
			t.Fatalf("configs %+v", cfgs)
		}
		var hosts []string
		for _, u := range append([]string{cfgs[0].URL}, cfgs[0].Mirrors...) {
			hosts = append(hosts, strings.TrimSuffix(strings.TrimPrefix(u, "http://"), ".test/a"))
		}
		if got := strings.Join(hosts, " "); got != tt.want {
			t.Errorf("locations %v: order %s, want %s", tt.locations, got, tt.want)
		}
	}
	if _, err := convoy.Download(context.Background(), cfg); !errors.Is(err, convoy.ErrSeveralFiles) {
		t.Errorf("Download of two files: %v, want ErrSeveralFiles", err)
	}
}

// mirrorCache starts three mirrors of one file behind a MirrorCache
// redirector that names them in Link headers, with a Digest and,
// withMetalink, a Metalink of the file.
func mirrorCache(t *testing.T, size int64, withMetalink bool) (*testserver.MirrorCache, []*testserver.Server) {
	opts := []testserver.Option{testserver.Size(size), testserver.Rate(4 << 20)}
	mirrors := []*testserver.Server{testserver.New(t, opts...), testserver.New(t, opts...), testserver.New(t, opts...)}
	cfg := testserver.MirrorCacheConfig{Content: mirrors[0].Content(), Geo: []string{"de", "fr", "us"}}
	for _, m := range mirrors {
		cfg.Mirrors = append(cfg.Mirrors, m.URL)
	}
	if withMetalink {
		cfg.Metalink = func(self string) []byte {
			return meta4(metalinkFile{name: "file.bin", size: size, sha256: sha256Of(mirrors[0].Content()),
				urls: []string{mirrors[0].URL + " de 1", mirrors[1].URL + " fr 2", mirrors[2].URL + " us 3"}})
		}
	}
	return testserver.NewMirrorCache(t, cfg), mirrors
}

// TestDiscoverMirrorCache: the URL of a redirector finds the mirrors its
// Link headers name (a notice and a mirror-found event each), fetches the
// Metalink it points at once, and verifies the file by its hash.
func TestDiscoverMirrorCache(t *testing.T) {
	const size = 4 << 20
	mc, mirrors := mirrorCache(t, size, true)
	dir := t.TempDir()
	rec := &recorder{}
	cfg := metalinkConfig(dir, rec)
	cfg.URL, cfg.Discover = mc.URL, true
	cfg.Connections, cfg.MaxPerHost = 6, 6
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	mirrors[0].Verify(t, filepath.Join(dir, "file.bin"))
	if !res.Verified || !strings.HasPrefix(res.Checksum, "sha256:") {
		t.Errorf("result %+v: not verified", res)
	}
	if got, want := rec.found(), []string{mirrors[1].URL, mirrors[2].URL}; !slices.Equal(got, want) {
		t.Errorf("mirror-found events %v, want %v", got, want)
	}
	if !rec.said("found mirror " + mirrors[1].URL) {
		t.Errorf("no notice of the mirror found: %q", rec.notices)
	}
	for i, s := range mirrors {
		if s.Stats().BodyBytes < size/8 {
			t.Errorf("mirror %d sent only %d bytes", i, s.Stats().BodyBytes)
		}
	}
	if n := mc.MetalinkFetches.Load(); n != 1 {
		t.Errorf("the metalink was fetched %d times, want once", n)
	}
}

// TestDiscoverDigestOfTheRedirect: the Digest a redirector sends with its
// 302 is checked, without any metalink.
func TestDiscoverDigestOfTheRedirect(t *testing.T) {
	s := testserver.New(t, testserver.Size(256<<10))
	mc := testserver.NewMirrorCache(t, testserver.MirrorCacheConfig{Mirrors: []string{s.URL}, Content: []byte("not the file")})
	cfg := metalinkConfig(t.TempDir(), &recorder{})
	cfg.URL, cfg.Discover = mc.URL, true
	if _, err := convoy.Download(context.Background(), cfg); !errors.Is(err, merge.ErrChecksum) {
		t.Fatalf("error %v, want a checksum mismatch with the redirect's Digest", err)
	}
}

// TestNoDiscover: without Discover the Link headers are not used: no
// mirror found, the metalink not fetched, the other mirrors not asked.
func TestNoDiscover(t *testing.T) {
	mc, mirrors := mirrorCache(t, 1<<20, true)
	dir := t.TempDir()
	rec := &recorder{}
	cfg := metalinkConfig(dir, rec)
	cfg.URL = mc.URL
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	mirrors[0].Verify(t, filepath.Join(dir, "file.bin"))
	if f := rec.found(); len(f) != 0 || mc.MetalinkFetches.Load() != 0 || mirrors[1].Stats().Requests+mirrors[2].Stats().Requests != 0 {
		t.Errorf("found %v, metalink fetched %d times, mirrors asked %d times", f, mc.MetalinkFetches.Load(), mirrors[1].Stats().Requests+mirrors[2].Stats().Requests)
	}
}

// TestDiscoverHostileLinks: links to the file itself, to something not
// http, and a metalink that is the file itself, are passed over with a
// notice; the download goes on from the redirect.
func TestDiscoverHostileLinks(t *testing.T) {
	s := testserver.New(t, testserver.Size(256<<10))
	mc := testserver.NewMirrorCache(t, testserver.MirrorCacheConfig{Mirrors: []string{s.URL},
		Links: func(self string) []string {
			return []string{
				"<" + self + `>; rel=describedby; type="application/metalink4+xml"`,
				"<" + self + ">; rel=duplicate",
				"<file:///etc/passwd>; rel=duplicate",
				"<" + s.URL + ">; rel=duplicate",
			}
		}})
	dir := t.TempDir()
	rec := &recorder{}
	cfg := metalinkConfig(dir, rec)
	cfg.URL, cfg.Discover = mc.URL, true
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	s.Verify(t, filepath.Join(dir, "file.bin"))
	if f := rec.found(); len(f) != 0 {
		t.Errorf("found %v: the file itself, the redirect's target and a file: URL are no mirrors", f)
	}
	if !rec.said("it is the file itself") || !rec.said("file:///etc/passwd") {
		t.Errorf("notices %q", rec.notices)
	}
}

// TestDiscoverMetalinkByContentType: a URL that answers with a Metalink is
// downloaded as the file it describes; the metalink's own address among
// the file's is skipped.
func TestDiscoverMetalinkByContentType(t *testing.T) {
	const size = 1 << 20
	mirrors := []*testserver.Server{testserver.New(t, testserver.Size(size)), testserver.New(t, testserver.Size(size))}
	metaSrv := testserver.NewMirrorCache(t, testserver.MirrorCacheConfig{Mirrors: []string{mirrors[0].URL},
		Metalink: func(self string) []byte {
			return meta4(metalinkFile{name: "described.bin", size: size, sha256: sha256Of(mirrors[0].Content()),
				urls: []string{self + ".meta4", mirrors[1].URL}})
		}})
	dir := t.TempDir()
	rec := &recorder{}
	cfg := metalinkConfig(dir, rec)
	cfg.URL, cfg.Discover = metaSrv.MetalinkURL, true
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	mirrors[1].Verify(t, filepath.Join(dir, "described.bin"))
	if !res.Verified {
		t.Error("not verified by the metalink's hash")
	}
	if !rec.said("it is the metalink itself") {
		t.Errorf("notices %q", rec.notices)
	}
}

// TestDiscoverKeepsCredentials: headers given for the URL's host (-H) are
// not sent to a mirror on another host that the server names: such a
// mirror is not used, and says so.
func TestDiscoverKeepsCredentials(t *testing.T) {
	var leaked sync.Map
	spy := testserver.OnRequest(func(r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Store(r.Host, true)
		}
	})
	a := testserver.New(t, testserver.Size(256<<10))
	b := testserver.New(t, testserver.Size(256<<10), spy)
	other := strings.Replace(b.URL, "127.0.0.1", "localhost", 1)
	mc := testserver.NewMirrorCache(t, testserver.MirrorCacheConfig{Mirrors: []string{a.URL, other}})
	rec := &recorder{}
	cfg := metalinkConfig(t.TempDir(), rec)
	cfg.URL, cfg.Discover = mc.URL, true
	cfg.Header = http.Header{"Authorization": {"Bearer secret"}}
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if f := rec.found(); len(f) != 0 || !rec.said("headers given with -H") {
		t.Errorf("found %v; notices %q", f, rec.notices)
	}
	leaked.Range(func(host, _ any) bool {
		t.Errorf("Authorization sent to %v", host)
		return true
	})

	// Without such headers the mirror is used.
	rec = &recorder{}
	cfg = metalinkConfig(t.TempDir(), rec)
	cfg.URL, cfg.Discover = mc.URL, true
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if f := rec.found(); len(f) != 1 || f[0] != other {
		t.Errorf("found %v, want %s", f, other)
	}
}

// piecesXML is a pieces element of content's SHA-256 piece hashes.
func piecesXML(content []byte, length int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<pieces length=\"%d\" type=\"sha-256\">", length)
	for off := 0; off < len(content); off += length {
		fmt.Fprintf(&b, "<hash>%x</hash>", sha256Of(content[off:min(off+length, len(content))]))
	}
	b.WriteString("</pieces>")
	return b.String()
}

// TestMetalinkPiecesCheckMirrors: with piece hashes, a mirror is checked by
// its first and last pieces too: damage that the sampled bytes miss gets
// it dropped before it sends a byte of the file.
func TestMetalinkPiecesCheckMirrors(t *testing.T) {
	const size, piece = 1 << 20, 256 << 10
	for _, tt := range []struct {
		name       string
		start, end int64
		says       string
	}{
		{"first-piece", 100 << 10, 101 << 10, "piece 0 "},
		{"last-piece", 800 << 10, 801 << 10, "piece 3 "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := testserver.New(t, testserver.Size(size))
			bad := testserver.New(t, testserver.Size(size), testserver.Corrupt(tt.start, tt.end))
			dir := t.TempDir()
			rec := &recorder{}
			cfg := metalinkConfig(dir, rec)
			cfg.Metalink = writeMetalink(t, meta4(metalinkFile{name: "f.bin", size: size, sha256: sha256Of(a.Content()),
				urls: []string{a.URL, bad.URL}, extra: piecesXML(a.Content(), piece)}))
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			a.Verify(t, filepath.Join(dir, "f.bin"))
			dropped := slices.ContainsFunc(rec.events, func(e convoy.Event) bool {
				return e.Type == "mirror-dropped" && e.Mirror == bad.URL && strings.Contains(e.Error, tt.says)
			})
			if !dropped {
				t.Errorf("the damaged mirror was not dropped for its %s: %q", tt.says, rec.notices)
			}
		})
	}
}

// TestDiscoverNeverRecursive: a file that a Metalink described is not
// described again by the Metalink its server names; the mirrors it names
// still join.
func TestDiscoverNeverRecursive(t *testing.T) {
	const size = 512 << 10
	mc, mirrors := mirrorCache(t, size, true)
	outer := testserver.NewMirrorCache(t, testserver.MirrorCacheConfig{Mirrors: []string{mirrors[0].URL},
		Metalink: func(string) []byte {
			return meta4(metalinkFile{name: "outer.bin", size: size, urls: []string{mc.URL}})
		}})
	dir := t.TempDir()
	rec := &recorder{}
	cfg := metalinkConfig(dir, rec)
	cfg.URL, cfg.Discover = outer.MetalinkURL, true
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	mirrors[0].Verify(t, filepath.Join(dir, "outer.bin"))
	if n := mc.MetalinkFetches.Load(); n != 0 {
		t.Errorf("the described file's own metalink was fetched %d times", n)
	}
	if got := rec.found(); len(got) != 2 {
		t.Errorf("found %v, want the two mirrors the redirector names", got)
	}
}

// TestMetalinkHugeOverHTTP: a document of 100 MB is refused after the
// first 4 MiB, without reading the rest.
func TestMetalinkHugeOverHTTP(t *testing.T) {
	var sent atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/metalink4+xml")
		_, _ = io.WriteString(w, `<metalink xmlns="urn:ietf:params:xml:ns:metalink">`)
		chunk := []byte(strings.Repeat(" ", 64<<10))
		for range 100 << 20 / len(chunk) {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(ts.Close)
	cfg := metalinkConfig(t.TempDir(), &recorder{})
	cfg.Metalink = ts.URL + "/huge.meta4"
	_, err := convoy.Metalinks(context.Background(), cfg)
	if !errors.Is(err, convoy.ErrUsage) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("error %v, want a usage error about the size", err)
	}
	ts.CloseClientConnections()
	ts.Close() // waits for the handler
	if n := sent.Load(); n > 40<<20 {
		t.Errorf("the server sent %d bytes: the document was read past its limit", n)
	}
}

// TestDiscoverIsBounded: of the many mirrors a server may name, the first
// 16 by priority are used, and the notice says so.
func TestDiscoverIsBounded(t *testing.T) {
	s := testserver.New(t, testserver.Size(64<<10))
	mc := testserver.NewMirrorCache(t, testserver.MirrorCacheConfig{Mirrors: []string{s.URL},
		Links: func(string) []string {
			var out []string
			for i := range 40 {
				out = append(out, fmt.Sprintf("<%s?m=%d>; rel=duplicate; pri=%d", s.URL, i, 100-i))
			}
			return out
		}})
	rec := &recorder{}
	cfg := metalinkConfig(t.TempDir(), rec)
	cfg.URL, cfg.Discover = mc.URL, true
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	found := rec.found()
	if len(found) != 16 || found[0] != s.URL+"?m=39" || !rec.said("using the first 16") {
		t.Errorf("found %d mirrors, first %v; notices %q", len(found), found[:min(len(found), 1)], rec.notices)
	}
}
