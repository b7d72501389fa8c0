package convoy_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
)

const (
	repairSize  = 2 << 20
	repairPiece = 64 << 10
)

// repairSetup serves a file, writes a copy of it to dir/f.bin with one
// byte flipped at each of flips, and a Metalink with its piece hashes (and
// its whole-file hash with whole) beside it; it returns the server, the
// config of a repair of that copy, and the copy's path.
func repairSetup(t *testing.T, whole bool, flips []int64, opts ...testserver.Option) (*rangeLog, convoy.Config, string) {
	t.Helper()
	srv := newRangeLog(t, append([]testserver.Option{testserver.Size(repairSize)}, opts...)...)
	content := srv.h.Content()
	dir := t.TempDir()
	file := filepath.Join(dir, "f.bin")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, off := range flips {
		flip(t, file, off)
	}
	doc := metalinkFile{name: "f.bin", size: repairSize, urls: []string{srv.url()}, extra: piecesXML(content, repairPiece)}
	if whole {
		doc.sha256 = sha256Of(content)
	}
	cfg := metalinkConfig(dir, &recorder{})
	cfg.Metalink = writeMetalink(t, meta4(doc))
	cfg.Output = file
	return srv, cfg, file
}

// pieceBytes is the byte range of piece i.
func pieceBytes(i int64) [2]int64 { return [2]int64{i * repairPiece, (i + 1) * repairPiece} }

// TestRepairFetchesOnlyBadPieces: three flipped bytes in three pieces:
// exactly those three pieces are fetched, the file is byte-identical
// afterwards, and nothing is left beside it.
func TestRepairFetchesOnlyBadPieces(t *testing.T) {
	for _, whole := range []bool{true, false} {
		t.Run(map[bool]string{true: "whole-file-hash", false: "pieces-only"}[whole], func(t *testing.T) {
			srv, cfg, file := repairSetup(t, whole, []int64{0, 5*repairPiece + 77, repairSize - 1})
			res, err := convoy.Repair(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.h.Verify(t, file)
			want := []convoy.Piece{{Index: 0, Start: 0, End: repairPiece}, {Index: 5, Start: 5 * repairPiece, End: 6 * repairPiece},
				{Index: 31, Start: repairSize - repairPiece, End: repairSize}}
			if len(res.Bad) != 3 || res.Bad[0] != want[0] || res.Bad[1] != want[1] || res.Bad[2] != want[2] {
				t.Errorf("bad pieces %v, want %v", res.Bad, want)
			}
			if res.Fetched != 3*repairPiece || res.Intact || res.Continued || res.Pieces != 32 {
				t.Errorf("result %+v: want 3 pieces fetched (%d bytes) of 32", res, 3*repairPiece)
			}
			if out := srv.outside(pieceBytes(0), pieceBytes(5), pieceBytes(31)); len(out) > 0 {
				t.Errorf("asked for %v, outside the bad pieces", out)
			}
			onlyOutput(t, filepath.Dir(file), "f.bin")
		})
	}
}

// TestRepairIntactFile: a file whose pieces all match is left alone: not
// renamed, not touched, and the server is not asked anything.
func TestRepairIntactFile(t *testing.T) {
	srv, cfg, file := repairSetup(t, true, nil)
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(file)
	res, err := convoy.Repair(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Intact || len(res.Bad) != 0 || res.Fetched != 0 {
		t.Errorf("result %+v, want intact", res)
	}
	after, err := os.Stat(file)
	if err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(old) {
		t.Errorf("the intact file was changed: %v", err)
	}
	if st := srv.h.Stats(); st.Requests != 0 {
		t.Errorf("the server was asked %d requests for an intact file", st.Requests)
	}
	srv.h.Verify(t, file)
}

// TestCheckPieces: a check names the bad pieces as a checksum mismatch
// and changes nothing.
func TestCheckPieces(t *testing.T) {
	srv, cfg, file := repairSetup(t, true, []int64{3*repairPiece + 1})
	before, _ := os.Stat(file)
	res, err := convoy.CheckPieces(context.Background(), cfg)
	if !errors.Is(err, merge.ErrChecksum) || !strings.Contains(err.Error(), "1 piece of 32 does not match") || !strings.Contains(err.Error(), "3 (bytes 196608-262143)") {
		t.Fatalf("error %v, want a checksum mismatch naming piece 3", err)
	}
	if len(res.Bad) != 1 || res.Bad[0].Index != 3 {
		t.Errorf("bad pieces %v, want piece 3", res.Bad)
	}
	after, _ := os.Stat(file)
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) || srv.h.Stats().Requests != 0 {
		t.Error("a check changed the file or asked the server")
	}
}

// TestRepairContinues: a repair stopped after its rename leaves the file
// as its part file, with or without a manifest; the next repair finishes
// it, fetching only the pieces still bad.
func TestRepairContinues(t *testing.T) {
	for _, withManifest := range []bool{false, true} {
		t.Run(map[bool]string{false: "no-manifest", true: "manifest"}[withManifest], func(t *testing.T) {
			srv, cfg, file := repairSetup(t, true, []int64{7 * repairPiece, 20*repairPiece + 9})
			if err := os.Rename(file, file+".part"); err != nil {
				t.Fatal(err)
			}
			if withManifest {
				// What a first checkpoint of the stopped run would say.
				st := srv.h
				m := &manifest.Manifest{URL: srv.url(), Size: repairSize, ETag: st.ETag(), LastModified: st.LastModified(),
					Segments: []manifest.Segment{
						{Start: 0, End: 7 * repairPiece, Written: 7 * repairPiece},
						{Start: 7 * repairPiece, End: 8 * repairPiece},
						{Start: 8 * repairPiece, End: 20 * repairPiece, Written: 12 * repairPiece},
						{Start: 20 * repairPiece, End: 21 * repairPiece},
						{Start: 21 * repairPiece, End: repairSize, Written: repairSize - 21*repairPiece},
					}}
				if err := manifest.Save(file+".convoy", m); err != nil {
					t.Fatal(err)
				}
			}
			res, err := convoy.Repair(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.h.Verify(t, file)
			if !res.Continued || len(res.Bad) != 2 || res.Bad[0].Index != 7 || res.Bad[1].Index != 20 || res.Fetched != 2*repairPiece {
				t.Errorf("result %+v: want pieces 7 and 20 fetched, continued", res)
			}
			if out := srv.outside(pieceBytes(7), pieceBytes(20)); len(out) > 0 {
				t.Errorf("asked for %v, outside the bad pieces", out)
			}
			onlyOutput(t, filepath.Dir(file), "f.bin")
		})
	}
}

// TestRepairServerStillWrong: a server that sends a piece other than the
// Metalink describes makes the repair fail as a checksum mismatch naming
// the piece, before the file gets its name back: the part file stays for
// another run, and nothing under the file's name claims to be repaired.
func TestRepairServerStillWrong(t *testing.T) {
	_, cfg, file := repairSetup(t, false, []int64{4 * repairPiece}, testserver.Corrupt(4*repairPiece+10, 4*repairPiece+11))
	_, err := convoy.Repair(context.Background(), cfg)
	if !errors.Is(err, merge.ErrChecksum) || !strings.Contains(err.Error(), "piece 4, bytes") {
		t.Fatalf("error %v, want a checksum mismatch naming piece 4", err)
	}
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s is there after a failed repair: %v", file, err)
	}
	if _, err := os.Stat(file + convoy.PartSuffix); err != nil {
		t.Error(err)
	}
}

// TestRepairRefuses: what a repair cannot do fails with a clear error and
// changes nothing.
func TestRepairRefuses(t *testing.T) {
	t.Run("no-piece-hashes", func(t *testing.T) {
		srv, cfg, file := repairSetup(t, true, []int64{9})
		cfg.Metalink = writeMetalink(t, meta4(metalinkFile{name: "f.bin", size: repairSize, sha256: sha256Of(srv.h.Content()), urls: []string{srv.url()}}))
		_, err := convoy.Repair(context.Background(), cfg)
		if !errors.Is(err, convoy.ErrUsage) || !strings.Contains(err.Error(), "no piece hashes") {
			t.Errorf("error %v, want a usage error saying there are no piece hashes", err)
		}
		assertUntouched(t, file, srv)
	})
	t.Run("size-mismatch", func(t *testing.T) {
		srv, cfg, file := repairSetup(t, true, nil)
		if err := os.Truncate(file, repairSize-1); err != nil {
			t.Fatal(err)
		}
		_, err := convoy.Repair(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "not a copy of that file") {
			t.Errorf("error %v, want one saying the sizes differ", err)
		}
		if st, _ := os.Stat(file); st.Size() != repairSize-1 || srv.h.Stats().Requests != 0 {
			t.Error("the file or the server was touched")
		}
	})
	t.Run("no-file", func(t *testing.T) {
		srv, cfg, file := repairSetup(t, true, nil)
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
		_, err := convoy.Repair(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "nothing to repair") {
			t.Errorf("error %v, want nothing to repair", err)
		}
		if srv.h.Stats().Requests != 0 {
			t.Error("the server was asked")
		}
	})
	t.Run("part-beside", func(t *testing.T) {
		srv, cfg, file := repairSetup(t, true, []int64{9})
		if err := os.WriteFile(file+".part", []byte("another download"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := convoy.Repair(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "exists beside") {
			t.Errorf("error %v, want one naming the part file beside", err)
		}
		assertUntouched(t, file, srv)
	})
	t.Run("locked", func(t *testing.T) {
		srv, cfg, file := repairSetup(t, true, []int64{9})
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		_, err = convoy.Repair(context.Background(), cfg)
		if !errors.Is(err, manifest.ErrLocked) {
			t.Errorf("error %v, want ErrLocked", err)
		}
		assertUntouched(t, file, srv)
	})
	t.Run("several-files", func(t *testing.T) {
		srv, cfg, file := repairSetup(t, true, []int64{9})
		content := srv.h.Content()
		cfg.Metalink = writeMetalink(t, meta4(
			metalinkFile{name: "other.bin", size: 10, urls: []string{srv.url() + "?other"}},
			metalinkFile{name: "sub/f.bin", size: repairSize, urls: []string{srv.url()}, extra: piecesXML(content, repairPiece)}))
		res, err := convoy.Repair(context.Background(), cfg)
		if err != nil || len(res.Bad) != 1 {
			t.Fatalf("the file of the same name in a document of two: %v, %+v", err, res)
		}
		srv.h.Verify(t, file)
		cfg.Output = filepath.Join(filepath.Dir(file), "g.bin")
		if _, err := convoy.Repair(context.Background(), cfg); !errors.Is(err, convoy.ErrUsage) || !strings.Contains(err.Error(), "none named g.bin") {
			t.Errorf("a name the document does not have: %v", err)
		}
	})
}

// assertUntouched fails t unless file is still the damaged copy under its
// name, alone, and the server was not asked for any of it.
func assertUntouched(t *testing.T, file string, srv *rangeLog) {
	t.Helper()
	if _, err := os.Stat(file); err != nil {
		t.Errorf("the file is gone: %v", err)
	}
	if _, err := os.Stat(file + ".convoy"); err == nil {
		t.Error("a manifest appeared")
	}
	if st := srv.h.Stats(); st.Gets != 0 {
		t.Errorf("the server was asked %d GETs", st.Gets)
	}
}

// TestRepairIgnoresStaleManifest: a manifest beside the file, without its
// part file (left by a run stopped between its last rename and the
// manifest's removal), describes nothing: the repair must not let it
// vouch for the damaged pieces once the file becomes the part file.
func TestRepairIgnoresStaleManifest(t *testing.T) {
	srv, cfg, file := repairSetup(t, false, []int64{6 * repairPiece})
	m := &manifest.Manifest{URL: srv.url(), Size: repairSize, ETag: srv.h.ETag(), LastModified: srv.h.LastModified(),
		Segments: []manifest.Segment{{Start: 0, End: repairSize, Written: repairSize}}}
	if err := manifest.Save(file+".convoy", m); err != nil {
		t.Fatal(err)
	}
	res, err := convoy.Repair(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.h.Verify(t, file)
	if len(res.Bad) != 1 || res.Fetched != repairPiece {
		t.Errorf("result %+v, want piece 6 fetched", res)
	}
	onlyOutput(t, filepath.Dir(file), "f.bin")
}

// TestRepairServerDown: a repair whose download fails before it changed a
// byte (here the server cannot be reached) gives the file its name back.
func TestRepairServerDown(t *testing.T) {
	srv, cfg, file := repairSetup(t, true, []int64{9})
	srv.srv.Close()
	before, _ := os.Stat(file)
	_, err := convoy.Repair(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("error %v, want one saying nothing was changed", err)
	}
	after, err := os.Stat(file)
	if err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the file is not back as it was: %v", err)
	}
	onlyOutput(t, filepath.Dir(file), "f.bin")
}

// TestRepairContinuedChecksEveryPiece: after an interrupted repair, the
// bytes its manifest claims were fetched by a run that never checked
// them: the repair that continues it checks every piece before the
// commit, fetches again the one that fails as well as those missing, and
// names both.
func TestRepairContinuedChecksEveryPiece(t *testing.T) {
	srv, cfg, file := repairSetup(t, true, []int64{3*repairPiece + 1, 7 * repairPiece})
	if err := os.Rename(file, file+".part"); err != nil {
		t.Fatal(err)
	}
	// The stopped run claims piece 3 (as if a server had sent it wrong).
	m := &manifest.Manifest{URL: srv.url(), Size: repairSize, ETag: srv.h.ETag(), LastModified: srv.h.LastModified(),
		Segments: []manifest.Segment{
			{Start: 0, End: 7 * repairPiece, Written: 7 * repairPiece},
			{Start: 7 * repairPiece, End: 8 * repairPiece},
			{Start: 8 * repairPiece, End: repairSize, Written: repairSize - 8*repairPiece},
		}}
	if err := manifest.Save(file+".convoy", m); err != nil {
		t.Fatal(err)
	}
	res, err := convoy.Repair(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.h.Verify(t, file)
	if len(res.Bad) != 2 || res.Bad[0].Index != 3 || res.Bad[1].Index != 7 || res.Fetched != 2*repairPiece {
		t.Fatalf("result %+v: want pieces 3 and 7 named and fetched", res)
	}
	if out := srv.outside(pieceBytes(3), pieceBytes(7)); len(out) > 0 {
		t.Errorf("asked for %v, outside the bad pieces", out)
	}
}

// TestCheckPiecesSharesTheFile: checks of one file may run at once (a
// shared lock), but not beside a repair of it (which holds it alone).
func TestCheckPiecesSharesTheFile(t *testing.T) {
	_, cfg, file := repairSetup(t, true, []int64{9})
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	if _, err := convoy.CheckPieces(context.Background(), cfg); !errors.Is(err, merge.ErrChecksum) {
		t.Errorf("a check beside another check: %v, want the bad piece", err)
	}
	if _, err := convoy.Repair(context.Background(), cfg); !errors.Is(err, manifest.ErrLocked) {
		t.Errorf("a repair beside a check: %v, want ErrLocked", err)
	}
}
