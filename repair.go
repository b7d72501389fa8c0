package convoy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/convoy-dl/convoy/internal/fsx"
	"github.com/convoy-dl/convoy/internal/units"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
)

// Piece is one piece of a file, by its index and its bytes [Start, End).
type Piece struct {
	Index      int
	Start, End int64
}

// String is the piece as "INDEX (bytes FIRST-LAST)".
func (p Piece) String() string { return fmt.Sprintf("%d (bytes %d-%d)", p.Index, p.Start, p.End-1) }

// RepairResult describes a repair, or a check of a file's pieces.
type RepairResult struct {
	// Path is the file.
	Path string
	// Size is its length, Pieces the count of its pieces of PieceLength
	// bytes (the last may be shorter).
	Size        int64
	Pieces      int
	PieceLength int64
	// Bad are the pieces that failed their hash: those fetched again, or
	// for a check, those that would be.
	Bad []Piece
	// Intact is set when every piece matched: nothing was changed.
	Intact bool
	// Continued is set when an interrupted repair (or download) was
	// finished: the file was found as its part file.
	Continued bool
	// Fetched counts the bytes fetched.
	Fetched int64
	// Elapsed is the wall time of the whole repair, the check included.
	Elapsed time.Duration
	// Download is the result of the download that fetched the bad pieces
	// (the zero value when none ran).
	Download Result
}

// Repair mends the file cfg.Output (inside cfg.Dir when relative) with
// the piece hashes of the Metalink cfg.Metalink: it hashes every piece of
// the file in parallel and, unless all match (then nothing is changed),
// turns the file into the part file of a download (an atomic rename, the
// folder synced) that keeps the good pieces and fetches only the others
// from the Metalink's addresses, then gives it its name back. Like a
// download it is crash-safe: an interruption at any moment leaves either
// the file untouched or its part file, which Repair (or Download with the
// same Metalink) finishes. A Metalink without piece hashes, or of another
// size than the file, is an error.
func Repair(ctx context.Context, cfg Config) (RepairResult, error) {
	return repair(ctx, cfg, true)
}

// CheckPieces hashes every piece of the file cfg.Output, in parallel,
// against the piece hashes of the Metalink cfg.Metalink, and changes
// nothing. Bad pieces are an error matching merge.ErrChecksum that names
// them; the result lists them too.
func CheckPieces(ctx context.Context, cfg Config) (RepairResult, error) {
	return repair(ctx, cfg, false)
}

func repair(ctx context.Context, cfg Config, fix bool) (res RepairResult, err error) {
	start := time.Now()
	defer func() { res.Elapsed = time.Since(start) }()
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Metalink == "" {
		return res, fmt.Errorf("%w: a repair needs the Metalink that gives the file's piece hashes", ErrUsage)
	}
	if cfg.Output == "" || cfg.Output == "-" || cfg.Writer != nil {
		return res, fmt.Errorf("%w: a repair needs the file to repair", ErrUsage)
	}
	out := cfg.Output
	if !filepath.IsAbs(out) && cfg.Dir != "" {
		out = filepath.Join(cfg.Dir, out)
	}
	res.Path = out
	c, err := metalinkOf(ctx, cfg, out)
	if err != nil {
		return res, err
	}
	m := c.meta
	p, ok := m.piecesOf(m.size)
	if !ok {
		return res, fmt.Errorf("%w: %s gives no piece hashes for %s, and a repair needs them to find the damaged pieces; fetch the whole file again with convoy get --overwrite", ErrUsage, m.source, m.name)
	}
	res.Size, res.Pieces, res.PieceLength = m.size, len(p.Sums), p.Length
	f := files{out: out, part: out + PartSuffix, manifest: out + ManifestSuffix}

	st, err := os.Lstat(f.out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if pst, perr := os.Lstat(f.part); perr == nil && pst.Mode().IsRegular() {
			if !fix {
				return res, fmt.Errorf("%s does not exist, but %s does: an interrupted repair or download, which convoy repair finishes", f.out, f.part)
			}
			return finishRepair(ctx, c, f, p, res)
		}
		return res, fmt.Errorf("%s does not exist: nothing to repair (convoy get --metalink %s fetches it)", f.out, cfg.Metalink)
	case err != nil:
		return res, fsx.Plain(err)
	case !st.Mode().IsRegular():
		return res, fmt.Errorf("%s is not a regular file", f.out)
	case st.Size() != m.size:
		return res, fmt.Errorf("%s has %s; %s says %s has %s: it is not a copy of that file, so there is nothing to repair piece by piece (convoy get --overwrite fetches it anew)",
			f.out, units.FormatExact(st.Size()), m.source, m.name, units.FormatExact(m.size))
	}
	if _, err := os.Lstat(f.part); err == nil && fix {
		return res, fmt.Errorf("%s exists beside %s: a download of the file is under way or was interrupted; finish it with convoy get, or remove %s, then repair again", f.part, f.out, f.part)
	}

	file, err := lockExisting(f.out, fix)
	if err != nil {
		return res, err
	}
	held, bad, err := checkFile(ctx, c, file, p)
	if err == nil {
		res.Bad = piecesAt(p, m.size, bad)
		err = settle(c, f, bad, fix, &res)
	}
	// Closing drops the lock: from the rename on, the download's lock on
	// the part file (the same inode) guards the file.
	if cerr := file.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil || res.Intact || !fix {
		return res, err
	}
	c.checked = &checkedPieces{file: held, bad: bad}
	err = repairDownload(ctx, c, f, p, &res)
	return res, err
}

// settle acts on the check of the file f.out, which the caller holds locked:
// an intact file is left as it is; a check alone names the bad pieces in
// its error; a repair turns the file into the download's part file (an
// atomic rename, the folder synced) while it is still locked.
func settle(c Config, f files, bad []int, fix bool, res *RepairResult) error {
	if len(bad) == 0 {
		res.Intact = true
		if fix {
			// A manifest without its part file describes nothing: the
			// leftover of a run that stopped after its last rename.
			if err := manifest.Remove(f.manifest); err != nil {
				return fmt.Errorf("removing %s, which describes nothing: %w", f.manifest, err)
			}
		}
		return nil
	}
	if !fix {
		return fmt.Errorf("%w: %s: %s of %d %s match %s: %s", merge.ErrChecksum, f.out,
			nPieces(len(bad)), res.Pieces, doNot(len(bad)), c.meta.source, listPieces(res.Bad))
	}
	c.Logf("%s: %s of %d %s match the metalink: fetching them again", f.out, nPieces(len(bad)), res.Pieces, doNot(len(bad)))
	// Nothing may claim bytes of the part file it becomes but this run.
	if err := manifest.Remove(f.manifest); err != nil {
		return fmt.Errorf("removing %s, which describes nothing: %w", f.manifest, err)
	}
	if err := renameNoReplace(f.out, f.part); err != nil {
		return describeFileError(err, f.part)
	}
	return describeFileError(fsx.SyncDir(filepath.Dir(f.out)), f.out)
}

// finishRepair finishes a repair (or download) interrupted after its
// rename: the bad pieces are those its manifest does not claim, or, with
// none, those the download does not keep.
func finishRepair(ctx context.Context, c Config, f files, p merge.Pieces, res RepairResult) (RepairResult, error) {
	res.Continued = true
	c.Logf("%s does not exist, but %s does: finishing the interrupted repair", f.out, f.part)
	if mf, err := manifest.Load(f.manifest); err == nil && mf.Size == res.Size {
		var bad []int
		for i := range p.Sums {
			s, e := p.Bounds(i, res.Size)
			if !claims(mf, s, e) {
				bad = append(bad, i)
			}
		}
		res.Bad = piecesAt(p, res.Size, bad)
	}
	c.onAdopt = func(p merge.Pieces, good []bool) {
		var bad []int
		for i, g := range good {
			if !g {
				bad = append(bad, i)
			}
		}
		res.Bad = piecesAt(p, res.Size, bad)
	}
	err := repairDownload(ctx, c, f, p, &res)
	return res, err
}

// claims reports whether m claims every byte of [start, end).
func claims(m *manifest.Manifest, start, end int64) bool {
	for _, s := range m.Segments {
		if s.Start <= start && end <= s.Start+s.Written {
			return true
		}
	}
	return false
}

// repairDownload fetches the bad pieces of the part file of f and commits
// it. The download checks every piece against its hash before the commit
// (as it lands, and every piece on disk after an interrupted run), so a
// repaired file is never under its name before each of its pieces
// matches; the whole-file hash would only read it all once more. The
// pieces it finds bad on the way join res.Bad. A download that fails
// before it changed the file gives it its name back (see restore).
func repairDownload(ctx context.Context, c Config, f files, p merge.Pieces, res *RepairResult) error {
	c.Checksum, c.ChecksumFile = "", ""
	var mu sync.Mutex
	onEvent := c.OnEvent
	c.OnEvent = func(e Event) {
		if e.Type == "piece-bad" && e.Piece != nil {
			mu.Lock()
			res.Bad = addPiece(res.Bad, Piece{Index: e.Piece.Index, Start: e.Piece.Start, End: e.Piece.End})
			mu.Unlock()
		}
		if onEvent != nil {
			onEvent(e)
		}
	}
	dres, err := Download(ctx, c)
	res.Download, res.Fetched = dres, dres.Fetched
	if err != nil {
		if c.checked != nil && restore(f, c.checked.file) {
			return fmt.Errorf("%w; nothing was changed", err)
		}
		if _, serr := os.Stat(f.part); serr == nil {
			err = fmt.Errorf("%w; the file is kept as %s: run the same repair again to finish it", err, f.part)
		}
		return err
	}
	return nil
}

// addPiece is ps with p in index order, unless it holds p already.
func addPiece(ps []Piece, p Piece) []Piece {
	i, found := slices.BinarySearchFunc(ps, p.Index, func(q Piece, i int) int { return q.Index - i })
	if found {
		return ps
	}
	return slices.Insert(ps, i, p)
}

// restore gives the part file f.part its name back after a download that
// failed before it changed a byte: no manifest was saved (the first
// checkpoint precedes every write) and it is still the file that was
// checked, held, with the same size and modification time. It takes the
// download's lock first, so a part file another process works on stays.
// It reports whether the file is back under its name.
func restore(f files, held fs.FileInfo) bool {
	if _, err := os.Lstat(f.part); err != nil {
		return false // Acquire would make one
	}
	lock, err := manifest.Acquire(f.part)
	if err != nil {
		return false
	}
	defer func() { _ = lock.Release() }()
	st, err := os.Stat(f.part)
	if err != nil || !os.SameFile(st, held) || st.Size() != held.Size() || !st.ModTime().Equal(held.ModTime()) {
		return false
	}
	if _, err := os.Lstat(f.manifest); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if renameNoReplace(f.part, f.out) != nil {
		return false
	}
	return fsx.SyncDir(filepath.Dir(f.out)) == nil
}

// metalinkOf reads the Metalink of cfg and returns the Config of the file
// to repair at out: the document's only file, or the one of out's name.
func metalinkOf(ctx context.Context, cfg Config, out string) (Config, error) {
	all := cfg
	all.Output, all.Checksum, all.ChecksumFile = "", "", "" // a repair goes by the pieces
	cfgs, err := Metalinks(ctx, all)
	if err != nil {
		return Config{}, err
	}
	var c *Config
	for i := range cfgs {
		if len(cfgs) == 1 || path.Base(cfgs[i].meta.name) == filepath.Base(out) {
			c = &cfgs[i]
			break
		}
	}
	if c == nil {
		return Config{}, fmt.Errorf("%w: %s describes %d files, none named %s", ErrUsage, cfg.Metalink, len(cfgs), filepath.Base(out))
	}
	c.Output, c.Dir = out, "."
	return *c, nil
}

// lockExisting opens the file at path, which must exist, and locks it as
// a download locks its part file; for writing when write is set, so that
// a file convoy could not write is refused before anything changes, and
// otherwise with a shared lock, which checks of the file may hold at once.
func lockExisting(path string, write bool) (*os.File, error) {
	flag, how := os.O_RDONLY, unix.LOCK_SH
	if write {
		flag, how = os.O_RDWR, unix.LOCK_EX
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, describeFileError(fsx.Plain(err), path)
	}
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
		cerr := f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errors.Join(fmt.Errorf("%w (%s is locked)", manifest.ErrLocked, path), cerr)
		}
		return nil, errors.Join(fmt.Errorf("locking %s: %w", path, err), cerr)
	}
	held, err := f.Stat()
	if err == nil {
		var now fs.FileInfo
		if now, err = os.Lstat(path); err == nil && !os.SameFile(held, now) {
			err = fmt.Errorf("%w (%s was replaced while it was locked)", manifest.ErrLocked, path)
		}
	}
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}

// checkFile hashes every piece of file, as many at once as there are
// processors, reporting the progress to c.OnProgress; it returns the
// file's state when checked and the bad pieces.
func checkFile(ctx context.Context, c Config, file *os.File, p merge.Pieces) (fs.FileInfo, []int, error) {
	held, err := file.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := held.Size()
	var done atomic.Int64
	stop := make(chan struct{})
	reported := make(chan struct{})
	start := time.Now()
	report := func() {
		if c.OnProgress != nil {
			c.OnProgress(Progress{Output: file.Name(), Size: size, Done: done.Load(), Elapsed: time.Since(start)})
		}
	}
	go func() {
		defer close(reported)
		every := c.ProgressInterval
		if every <= 0 {
			every = 250 * time.Millisecond
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				report()
			}
		}
	}()
	bad, err := p.CheckAll(ctx, file, size, runtime.GOMAXPROCS(0), func(n int64) { done.Add(n) })
	close(stop)
	<-reported
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("%w while checking the pieces of %s; nothing was changed", ErrInterrupted, file.Name())
		}
		return nil, nil, fmt.Errorf("checking the pieces of %s: %w", file.Name(), err)
	}
	report()
	return held, bad, nil
}

// piecesAt describes the pieces of indices in a file of size bytes.
func piecesAt(p merge.Pieces, size int64, indices []int) []Piece {
	out := make([]Piece, len(indices))
	for k, i := range indices {
		s, e := p.Bounds(i, size)
		out[k] = Piece{Index: i, Start: s, End: e}
	}
	return out
}

// maxListed bounds the pieces a message names.
const maxListed = 10

// listPieces names pieces for a message: the first few, then how many
// more.
func listPieces(ps []Piece) string {
	var b strings.Builder
	for i, p := range ps {
		if i == maxListed {
			fmt.Fprintf(&b, " and %d more", len(ps)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// nPieces is "1 piece", "2 pieces".
func nPieces(n int) string {
	if n == 1 {
		return "1 piece"
	}
	return fmt.Sprintf("%d pieces", n)
}

// doNot is the verb for n pieces: "does not", "do not".
func doNot(n int) string {
	if n == 1 {
		return "does not"
	}
	return "do not"
}

// renameNoReplace moves from to to, atomically and only when nothing is
// at to (renameat2 RENAME_NOREPLACE, else a check just before a plain
// rename on file systems without it).
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%s appeared meanwhile: %w", to, fs.ErrExist)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		if _, err := os.Lstat(to); err == nil {
			return fmt.Errorf("%s appeared meanwhile: %w", to, fs.ErrExist)
		}
		return os.Rename(from, to)
	}
	return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
}
