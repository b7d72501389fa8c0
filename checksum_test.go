package convoy_test

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
)

func sums(b []byte) map[string]string {
	m5, s1, s256, s512 := md5.Sum(b), sha1.Sum(b), sha256.Sum256(b), sha512.Sum512(b)
	return map[string]string{
		"md5": hex.EncodeToString(m5[:]), "sha1": hex.EncodeToString(s1[:]),
		"sha256": hex.EncodeToString(s256[:]), "sha512": hex.EncodeToString(s512[:]),
	}
}

func TestChecksumVerified(t *testing.T) {
	for _, opts := range [][]testserver.Option{nil, {testserver.NoRanges()}} {
		srv := testserver.New(t, append([]testserver.Option{testserver.Size(3<<20 + 5)}, opts...)...)
		want := sums(srv.Content())
		for _, algo := range []string{"md5", "sha1", "sha256", "sha512"} {
			t.Run(fmt.Sprintf("%s/ranges=%v", algo, opts == nil), func(t *testing.T) {
				dir := t.TempDir()
				cfg := fastConfig(srv.URL, dir)
				cfg.Checksum = algo + ":" + want[algo]
				res, err := convoy.Download(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				if res.Checksum != cfg.Checksum {
					t.Errorf("result checksum %q, want %q", res.Checksum, cfg.Checksum)
				}
				srv.Verify(t, filepath.Join(dir, "out.bin"))
				onlyOutput(t, dir, "out.bin")
			})
		}
	}
}

func TestChecksumMismatchKeepsBytesAway(t *testing.T) {
	srv := testserver.New(t, testserver.Size(2<<20))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	wrong := sums([]byte("something else"))["sha256"]
	cfg.Checksum = "sha256:" + wrong
	for run := range 2 { // the same answer again, never a commit
		_, err := convoy.Download(context.Background(), cfg)
		if !errors.Is(err, merge.ErrChecksum) || !strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), "out.bin.part") {
			t.Fatalf("run %d: error %v, want a mismatch naming the expected sum and the kept part file", run, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "out.bin")); err == nil {
			t.Fatalf("run %d: bad bytes saved under the final name", run)
		}
	}
	cfg.Checksum = "sha256:" + sums(srv.Content())["sha256"]
	cfg.Restart = true
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
}

// A one-stream download (a server without ranges, or without a length)
// that fails its checksum saves nothing under the final name and keeps
// nothing beside it: a stream cannot resume, so its bytes are discarded.
func TestChecksumMismatchInOneStream(t *testing.T) {
	const size = 1 << 20
	for _, tt := range []struct {
		name string
		opt  testserver.Option
	}{
		{"no-ranges", testserver.NoRanges()},
		{"no-length", testserver.NoContentLength()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(size), tt.opt)
			dir := t.TempDir()
			cfg := fastConfig(srv.URL, dir)
			wrong := sums([]byte("something else"))["sha256"]
			cfg.Checksum = "sha256:" + wrong
			res, err := convoy.Download(context.Background(), cfg)
			if !errors.Is(err, merge.ErrChecksum) || !strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), "nothing was saved as") {
				t.Fatalf("error %v, want a mismatch naming the expected sum and saying nothing was saved", err)
			}
			if res.Fetched != size {
				t.Errorf("fetched %d bytes, want the whole %d-byte stream before the verdict", res.Fetched, size)
			}
			onlyOutput(t, dir) // neither the file, nor its part, nor a manifest
		})
	}
}

// The hash state saved at checkpoints survives an interruption: the resumed
// run hashes the part file again and must reach the same state, which only a
// correctly saved one can.
func TestChecksumStateSurvivesResume(t *testing.T) {
	const size = 4 << 20
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	cfg.Connections = 2
	cfg.Checksum = "sha512:" + sums(srv.Content())["sha512"]
	if err := interruptAfter(t, cfg, size*3/4); !errors.Is(err, convoy.ErrInterrupted) {
		t.Fatalf("error %v, want ErrInterrupted", err)
	}
	m, err := manifest.Load(filepath.Join(dir, "out.bin.convoy"))
	if err != nil {
		t.Fatal(err)
	}
	if m.HashAlgo != "sha512" || m.HashPos == 0 || len(m.HashState) == 0 {
		t.Fatalf("manifest hash %q at %d (%d state bytes): no state saved", m.HashAlgo, m.HashPos, len(m.HashState))
	}
	srv.SetOption(testserver.Rate(0))
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
}

// Bytes of the part file changed between runs never pass as verified: inside
// the prefix an earlier run hashed, the resume stops with ErrPartChanged (and
// does again until --restart); past it, the final hash reads them and fails.
func TestChecksumPartChangedOnDisk(t *testing.T) {
	const size = 4 << 20
	for _, where := range []string{"hashed", "written later"} {
		t.Run(where, func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20))
			dir := t.TempDir()
			cfg := fastConfig(srv.URL, dir)
			cfg.Connections = 2
			cfg.Checksum = "sha256:" + sums(srv.Content())["sha256"]
			if err := interruptAfter(t, cfg, size*3/4); !errors.Is(err, convoy.ErrInterrupted) {
				t.Fatalf("error %v, want ErrInterrupted", err)
			}
			m, err := manifest.Load(filepath.Join(dir, "out.bin.convoy"))
			if err != nil {
				t.Fatal(err)
			}
			if m.HashPos == 0 {
				t.Fatal("no hash state saved")
			}
			at := m.HashPos / 2
			if where != "hashed" {
				at = -1
				for _, s := range m.Segments {
					if s.Start >= m.HashPos && s.Written > 0 {
						at = s.Start
						break
					}
				}
				if at < 0 {
					t.Skipf("no written byte past the hashed %d bytes: %+v", m.HashPos, m.Segments)
				}
			}
			part := filepath.Join(dir, "out.bin.part")
			f, err := os.OpenFile(part, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, werr := f.WriteAt([]byte{^srv.Content()[at]}, at)
			if err := errors.Join(werr, f.Close()); err != nil {
				t.Fatal(err)
			}
			srv.SetOption(testserver.Rate(0))
			for run := range 2 {
				_, err := convoy.Download(context.Background(), cfg)
				if where == "hashed" && !errors.Is(err, convoy.ErrPartChanged) {
					t.Fatalf("run %d: error %v, want ErrPartChanged", run, err)
				}
				if where != "hashed" && !errors.Is(err, merge.ErrChecksum) {
					t.Fatalf("run %d: error %v, want a checksum mismatch", run, err)
				}
				if _, err := os.Stat(filepath.Join(dir, "out.bin")); err == nil {
					t.Fatalf("run %d: changed bytes saved under the final name", run)
				}
			}
			cfg.Restart = true
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			srv.Verify(t, filepath.Join(dir, "out.bin"))
		})
	}
}

// withDigest serves h with a digest header added to every answer.
func withDigest(t *testing.T, h *testserver.Handler, name, value string) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(name, value)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { h.Close(); ts.Close() })
	return ts.URL + h.FilePath()
}

func TestServerDigests(t *testing.T) {
	h := testserver.NewHandler(testserver.Size(1 << 20))
	sum := sha256.Sum256(h.Content())
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	bad := base64.StdEncoding.EncodeToString(make([]byte, 32))
	tests := []struct {
		name, header, value string
		ok                  bool
	}{
		{"repr-digest", "Repr-Digest", "sha-256=:" + b64 + ":", true},
		{"digest-rfc3230", "Digest", "SHA-256=" + b64, true},
		{"repr-digest-wrong", "Repr-Digest", "sha-256=:" + bad + ":", false},
		{"unknown-algorithm-ignored", "Repr-Digest", "crc32c=:AAAAAA==:", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := testserver.NewHandler(testserver.Size(1 << 20))
			dir := t.TempDir()
			_, err := convoy.Download(context.Background(), fastConfig(withDigest(t, h, tt.header, tt.value), dir))
			if tt.ok && err != nil {
				t.Fatal(err)
			}
			if !tt.ok && !errors.Is(err, merge.ErrChecksum) {
				t.Fatalf("error %v, want a checksum mismatch", err)
			}
		})
	}
}

func TestVerifyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := sums([]byte("hello"))
	if _, err := convoy.VerifyFile(path, "md5:"+good["md5"], nil); err != nil {
		t.Error(err)
	}
	if _, err := convoy.VerifyFile(path, "sha1:"+sums([]byte("bye"))["sha1"], nil); !errors.Is(err, merge.ErrChecksum) {
		t.Errorf("error %v, want a mismatch", err)
	}
	if _, err := convoy.VerifyFile(path, "crc:00", nil); !errors.Is(err, convoy.ErrUsage) {
		t.Errorf("error %v, want a usage error", err)
	}
}

func TestChecksumFile(t *testing.T) {
	srv := testserver.New(t, testserver.Size(1<<20), testserver.Path("/dist/image.iso"))
	good := sums(srv.Content())["sha256"]
	list := good + "  image.iso\n" + sums(nil)["sha256"] + "  other.iso\n"
	dir := t.TempDir()
	local := filepath.Join(dir, "SHA256SUMS")
	if err := os.WriteFile(local, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, list)
	}))
	t.Cleanup(remote.Close)
	for _, src := range []string{local, remote.URL + "/SHA256SUMS"} {
		out := t.TempDir()
		cfg := fastConfig(srv.URL, out)
		cfg.Output, cfg.ChecksumFile = "", src
		res, err := convoy.Download(context.Background(), cfg)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if res.Checksum != "sha256:"+good {
			t.Errorf("%s: verified %q, want the image.iso line", src, res.Checksum)
		}
	}
	// Renamed by -o, the file is found under the server's name.
	cfg := fastConfig(srv.URL, t.TempDir())
	cfg.Output, cfg.ChecksumFile = "renamed.iso", local
	if res, err := convoy.Download(context.Background(), cfg); err != nil || res.Checksum != "sha256:"+good {
		t.Errorf("renamed output: %v, verified %q; want the image.iso line", err, res.Checksum)
	}
	// A list with neither name is an error before anything is fetched.
	unlisted := testserver.New(t, testserver.Size(1<<20), testserver.Path("/dist/unlisted.iso"))
	cfg = fastConfig(unlisted.URL, t.TempDir())
	cfg.Output, cfg.ChecksumFile = "renamed.iso", local
	if _, err := convoy.Download(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "no digest for renamed.iso or unlisted.iso") {
		t.Errorf("unlisted names: %v", err)
	}
	if st := unlisted.Stats(); st.RangeGets > 1 {
		t.Errorf("%d ranged GETs before the list was found lacking", st.RangeGets)
	}
}

func TestRemoveOnError(t *testing.T) {
	srv := testserver.New(t, testserver.Size(1<<20))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	cfg.Checksum = "sha256:" + sums(nil)["sha256"]
	cfg.RemoveOnError = true
	if _, err := convoy.Download(context.Background(), cfg); !errors.Is(err, merge.ErrChecksum) {
		t.Fatalf("error %v, want a mismatch", err)
	}
	onlyOutput(t, dir) // nothing kept
}
