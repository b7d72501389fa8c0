package convoy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
)

// rangeLog serves h and records the byte ranges of the GET requests it
// answers, as asked for ("bytes=A-B"; a GET without a Range is the whole
// file).
type rangeLog struct {
	h    *testserver.Handler
	mu   sync.Mutex
	gets [][2]int64 // [start, end) asked for
	srv  *httptest.Server
}

func newRangeLog(t *testing.T, opts ...testserver.Option) *rangeLog {
	l := &rangeLog{h: testserver.NewHandler(opts...)}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			var a, b int64
			if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &a, &b); err == nil {
				l.add(a, b+1)
			} else if r.Header.Get("Range") == "" {
				l.add(0, l.h.Size())
			}
		}
		l.h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { l.srv.Close(); l.h.Close() })
	return l
}

func (l *rangeLog) add(a, b int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gets = append(l.gets, [2]int64{a, b})
}

func (l *rangeLog) url() string { return l.srv.URL + l.h.FilePath() }

// outside returns the ranges asked for that reach outside every one of
// allowed, ignoring the probe's one byte at 0.
func (l *rangeLog) outside(allowed ...[2]int64) [][2]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][2]int64
	for _, g := range l.gets {
		if g == [2]int64{0, 1} {
			continue // the probe
		}
		in := false
		for _, a := range allowed {
			in = in || (g[0] >= a[0] && g[1] <= a[1])
		}
		if !in {
			out = append(out, g)
		}
	}
	return out
}

// flip inverts one byte of the file at path.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAdoptPartWithoutManifest: a part file without a manifest, when the
// Metalink gives piece hashes, keeps the pieces that match them; only the
// damaged pieces and those past its end are fetched, and the whole-file
// hash, which follows the download from byte zero, still verifies.
func TestAdoptPartWithoutManifest(t *testing.T) {
	const size, piece = 1 << 20, 64 << 10
	for _, tt := range []struct {
		name  string
		have  int64   // bytes of the part file (its length)
		flips []int64 // offsets of damaged bytes in it
		fetch [][2]int64
		kept  int64
		whole bool // the Metalink gives the whole-file hash too
	}{
		{"two-bad-pieces", size, []int64{3*piece + 5, 9*piece + piece - 1}, [][2]int64{{3 * piece, 4 * piece}, {9 * piece, 10 * piece}}, size - 2*piece, true},
		{"pieces-only", size, []int64{0, size - 1}, [][2]int64{{0, piece}, {size - piece, size}}, size - 2*piece, false},
		{"short-part", 4*piece + 100, nil, [][2]int64{{4 * piece, size}}, 4 * piece, true},
		{"short-and-bad", 4*piece + 100, []int64{piece}, [][2]int64{{piece, 2 * piece}, {4 * piece, size}}, 3 * piece, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRangeLog(t, testserver.Size(size))
			content := srv.h.Content()
			dir := t.TempDir()
			part := filepath.Join(dir, "f.bin.part")
			if err := os.WriteFile(part, content[:tt.have], 0o644); err != nil {
				t.Fatal(err)
			}
			for _, off := range tt.flips {
				flip(t, part, off)
			}
			rec := &recorder{}
			cfg := metalinkConfig(dir, rec)
			doc := metalinkFile{name: "f.bin", size: size, urls: []string{srv.url()}, extra: piecesXML(content, piece)}
			if tt.whole {
				doc.sha256 = sha256Of(content)
			}
			cfg.Metalink = writeMetalink(t, meta4(doc))
			res, err := convoy.Download(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.h.Verify(t, filepath.Join(dir, "f.bin"))
			if out := srv.outside(tt.fetch...); len(out) > 0 {
				t.Errorf("asked for %v, outside the pieces to fetch %v", out, tt.fetch)
			}
			if res.Resumed != tt.kept {
				t.Errorf("resumed %d bytes, want the %d of the good pieces", res.Resumed, tt.kept)
			}
			if tt.whole && !res.Verified {
				t.Errorf("the whole-file hash was not verified: %+v", res)
			}
			if !rec.said("verified against the metalink") {
				t.Errorf("no notice said the pieces were kept: %q", rec.notices)
			}
		})
	}
}

// TestAdoptNothingToKeep: without piece hashes, or with none that
// matches, a part file without a manifest is overwritten, as before, and
// a notice says so.
func TestAdoptNothingToKeep(t *testing.T) {
	const size, piece = 512 << 10, 64 << 10
	for _, tt := range []struct {
		name   string
		pieces bool
		part   func(content []byte) []byte
		says   string
	}{
		{"no-piece-hashes", false, func(c []byte) []byte { return c }, "nothing vouches"},
		{"no-piece-matches", true, func(c []byte) []byte { return make([]byte, len(c)) }, "none of its 8 pieces"},
		{"shorter-than-a-piece", true, func(c []byte) []byte { return c[:piece-1] }, "none of its 8 pieces"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRangeLog(t, testserver.Size(size))
			content := srv.h.Content()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "f.bin.part"), tt.part(content), 0o644); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			cfg := metalinkConfig(dir, rec)
			doc := metalinkFile{name: "f.bin", size: size, sha256: sha256Of(content), urls: []string{srv.url()}}
			if tt.pieces {
				doc.extra = piecesXML(content, piece)
			}
			cfg.Metalink = writeMetalink(t, meta4(doc))
			res, err := convoy.Download(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.h.Verify(t, filepath.Join(dir, "f.bin"))
			if res.Resumed != 0 || res.Fetched != size {
				t.Errorf("resumed %d and fetched %d bytes, want 0 and all %d", res.Resumed, res.Fetched, size)
			}
			if !rec.said(tt.says) || rec.said("verified against the metalink") {
				t.Errorf("notices %q, want one saying %q", rec.notices, tt.says)
			}
		})
	}
}

// TestAdoptNotWithRestart: --restart discards a part file even when its
// pieces would match.
func TestAdoptNotWithRestart(t *testing.T) {
	const size, piece = 256 << 10, 64 << 10
	srv := newRangeLog(t, testserver.Size(size))
	content := srv.h.Content()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.bin.part"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	cfg := metalinkConfig(dir, rec)
	cfg.Restart = true
	cfg.Metalink = writeMetalink(t, meta4(metalinkFile{name: "f.bin", size: size, urls: []string{srv.url()}, extra: piecesXML(content, piece)}))
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Fetched != size || strings.Contains(strings.Join(rec.notices, "\n"), "kept") {
		t.Errorf("fetched %d of %d bytes with --restart; notices %q", res.Fetched, size, rec.notices)
	}
}

// TestAdoptablePartSurvivesAFailure: a download that fails before its
// first checkpoint keeps a part file whose pieces a later run can adopt
// (before, nothing vouching for it, it was removed).
func TestAdoptablePartSurvivesAFailure(t *testing.T) {
	const size, piece = 256 << 10, 64 << 10
	srv := newRangeLog(t, testserver.Size(size))
	content := srv.h.Content()
	dir := t.TempDir()
	part := filepath.Join(dir, "f.bin.part")
	if err := os.WriteFile(part, content[:3*piece], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, pieces := range []bool{true, false} {
		cfg := metalinkConfig(dir, &recorder{})
		cfg.ChecksumFile = filepath.Join(dir, "no-such-list") // fails before the first checkpoint
		doc := metalinkFile{name: "f.bin", size: size, urls: []string{srv.url()}}
		if pieces {
			doc.extra = piecesXML(content, piece)
		}
		cfg.Metalink = writeMetalink(t, meta4(doc))
		if _, err := convoy.Download(context.Background(), cfg); err == nil {
			t.Fatal("a missing checksum list did not fail the download")
		}
		_, err := os.Stat(part)
		if kept := err == nil; kept != pieces {
			t.Errorf("with piece hashes %v: part file kept %v", pieces, kept)
		}
	}
}
