package convoy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"runtime"
	"slices"

	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/internal/units"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// resumed is what an earlier run left that this one can use.
type resumed struct {
	m    *manifest.Manifest // nil for a fresh start
	segs []segment.Segment  // m's segments, trimmed to the part file
	done int64              // bytes the segments hold
	// verified marks the pieces found good by hashing them just now (a
	// part file adopted without its manifest), as merge.VerifierOptions.
	verified []byte
}

// resumeState returns the state of an earlier run that still matches the
// remote file and the part file; the zero value to start fresh. A manifest
// that cannot be read is an error: its download is neither reused nor
// silently thrown away.
func (d *download) resumeState(ctx context.Context, remote segment.Remote, f files, fresh bool) (resumed, error) {
	if fresh {
		return resumed{}, nil
	}
	m, err := manifest.Load(f.manifest)
	if errors.Is(err, fs.ErrNotExist) {
		return resumed{}, nil
	}
	if err != nil {
		return resumed{}, fmt.Errorf("%w: %v; run again with --restart to discard it and start over", ErrNotResumable, err)
	}
	segs := m.Segments
	if st, err := os.Stat(f.part); err != nil || st.Size() < m.Size {
		have := int64(0)
		if err == nil {
			have = st.Size()
		}
		d.cfg.Logf("%s is shorter than its manifest says (%s of %s); fetching the missing bytes again", f.part, units.FormatExact(have), units.FormatExact(m.Size))
		segs = clampWritten(segs, have)
	}
	why := mismatch(m, remote)
	if errors.Is(why, errUnknownServer) {
		why = d.agreesWithDisk(ctx, remote, f.part, segs)
		if why == nil {
			d.cfg.Logf("resuming from %s, a server this download has not used before: its bytes agree with those on disk", redact.URL(remote.URL))
		}
	}
	if why != nil {
		if _, known := recorded(m, remote); !known && written(segs) > 0 && !sameFileName(m, remote) {
			// Most likely -o named another download's file: keep its bytes.
			return resumed{}, fmt.Errorf("%w: %s holds %s of a download from %s, and %s, under another file name, serves another file (%v); choose another output name, or run with --restart to discard it",
				ErrNotResumable, f.part, units.FormatExact(written(segs)), m.URL, redact.URL(remote.URL), why)
		}
		d.startOver(fmt.Sprintf("cannot resume %s: %v", f.out, why))
		return resumed{}, nil
	}
	done := written(segs)
	if done > 0 {
		d.cfg.Logf("resuming %s: %s of %s already on disk", f.out, units.FormatBytes(done), units.FormatBytes(m.Size))
	}
	return resumed{m: m, segs: segs, done: done}, nil
}

// written counts the bytes segs hold.
func written(segs []segment.Segment) int64 {
	var n int64
	for _, s := range segs {
		n += s.Written
	}
	return n
}

// sameFileName reports whether r's address ends in the same file name as
// one the manifest recorded: a mirror of the file, perhaps of another
// version of it, rather than some other file. An address without a file
// name (a root path) names nothing, so it matches nothing.
func sameFileName(m *manifest.Manifest, r segment.Remote) bool {
	name := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			return raw
		}
		switch base := path.Base(u.Path); base {
		case "/", ".":
			return ""
		default:
			return base
		}
	}
	names := []string{name(r.URL), name(r.FinalURL)}
	for _, s := range append([]manifest.Source{{URL: m.URL}, {URL: m.FinalURL}}, m.Sources...) {
		if n := name(s.URL); n != "" && slices.Contains(names, n) {
			return true
		}
	}
	return false
}

// errUnknownServer is mismatch's answer for a server the manifest does not
// know: its validators prove nothing about the bytes on disk.
var errUnknownServer = errors.New("the server is not one this download used")

// mismatch says why a manifest does not describe the remote file, or nil.
// The validators that count are those the manifest recorded for the same
// server (servers of one file send ETags of their own); for a server it
// does not know, mismatch returns errUnknownServer. A resume needs a
// validator that If-Range can carry: without one a changed file could not
// be told from the old one.
func mismatch(m *manifest.Manifest, r segment.Remote) error {
	if m.Size != r.Size {
		return fmt.Errorf("the file on the server is now %s, was %s", units.FormatExact(r.Size), units.FormatExact(m.Size))
	}
	if !r.Identifiable() {
		return errors.New("the server sends no strong ETag or Last-Modified to prove the file is unchanged")
	}
	was, ok := recorded(m, r)
	switch {
	case !ok:
		return errUnknownServer
	case was.ETag != r.ETag:
		return fmt.Errorf("the file changed on the server (ETag %s, was %s)", r.ETag, was.ETag)
	case was.LastModified != r.LastModified:
		return fmt.Errorf("the file changed on the server (Last-Modified %s, was %s)", r.LastModified, was.LastModified)
	}
	return nil
}

// recorded returns what m holds of server r, matched by its redacted
// address as given or after redirects.
func recorded(m *manifest.Manifest, r segment.Remote) (manifest.Source, bool) {
	addrs := []string{redact.URL(r.URL), redact.URL(r.FinalURL)}
	if slices.Contains(addrs, m.URL) || (m.FinalURL != "" && slices.Contains(addrs, m.FinalURL)) {
		return manifest.Source{URL: m.URL, ETag: m.ETag, LastModified: m.LastModified}, true
	}
	for _, s := range m.Sources {
		if slices.Contains(addrs, s.URL) {
			return s, true
		}
	}
	return manifest.Source{}, false
}

// sourcesFor lists the servers of this run with their validators, after
// those of the earlier run m (nil for none) that this run does not use
// again: the bytes on disk may have come from any of them.
func sourcesFor(m *manifest.Manifest, remotes []segment.Remote) []manifest.Source {
	var out []manifest.Source
	seen := map[string]bool{}
	for _, r := range remotes {
		u := redact.URL(r.URL)
		if !seen[u] {
			seen[u] = true
			out = append(out, manifest.Source{URL: u, ETag: r.ETag, LastModified: r.LastModified})
		}
	}
	if m == nil {
		return out
	}
	var earlier []manifest.Source
	for _, s := range append([]manifest.Source{{URL: m.URL, ETag: m.ETag, LastModified: m.LastModified}}, m.Sources...) {
		if !seen[s.URL] {
			seen[s.URL] = true
			earlier = append(earlier, s)
		}
	}
	return append(earlier, out...)
}

// agreesWithDisk compares what r sends with the bytes on disk at up to three
// written places (the first, middle and last written segment), as mirrors
// are compared with the primary. It returns why r cannot be trusted with
// the rest of the file, or nil.
func (d *download) agreesWithDisk(ctx context.Context, r segment.Remote, part string, segs []segment.Segment) (err error) {
	var written []segment.Segment
	for _, s := range segs {
		if s.Written > 0 {
			written = append(written, s)
		}
	}
	if len(written) == 0 {
		return nil // nothing on disk to mix with
	}
	picks := []segment.Segment{written[0], written[len(written)/2], written[len(written)-1]}
	file, err := os.Open(part)
	if err != nil {
		return fmt.Errorf("cannot read %s to compare: %w", part, err)
	}
	defer func() { err = errors.Join(err, file.Close()) }()
	ctx, cancel := context.WithTimeout(ctx, sampleTimeout)
	defer cancel()
	f := d.newFetcher(r)
	for _, s := range slices.Compact(picks) {
		n := min(s.Written, sampleSize)
		disk := make([]byte, n)
		if _, err := file.ReadAt(disk, s.Start); err != nil {
			return fmt.Errorf("cannot read %s to compare: %w", part, err)
		}
		got, err := f.Sample(ctx, s.Start, n)
		if err != nil {
			return fmt.Errorf("%s is not one this download used, and sampling it failed: %v", redact.URL(r.URL), redact.Text(err.Error()))
		}
		if !bytes.Equal(got, disk) {
			return fmt.Errorf("%s is not one this download used, and its bytes at offset %d differ from those on disk", redact.URL(r.URL), s.Start)
		}
	}
	return nil
}

// clampWritten drops the written bytes that lie at or past have, the length
// of a part file that was truncated behind convoy's back.
func clampWritten(segs []segment.Segment, have int64) []segment.Segment {
	out := make([]segment.Segment, len(segs))
	for i, s := range segs {
		s.Written = max(0, min(s.Written, have-s.Start))
		out[i] = s
	}
	return out
}

// piecesOf returns the Metalink's piece hashes for a file of size bytes
// as merge.Pieces; ok is false when there are none, or when they do not
// describe a file of that size.
func (m *metaFile) piecesOf(size int64) (p merge.Pieces, ok bool) {
	if m == nil || m.pieces == nil || len(m.pieces.Hashes) == 0 || m.size != size {
		return merge.Pieces{}, false
	}
	p = merge.Pieces{Algo: m.pieces.Algo, Length: m.pieces.Length, Sums: m.pieces.Hashes}
	if p.CheckSize(size) != nil {
		return merge.Pieces{}, false
	}
	return p, true
}

// checkedPieces is what Repair learned of a file before it became the part
// file of a download: which pieces failed their hash. It stands for a
// check of the part file only while the part file is that very file,
// unchanged (same inode, size and modification time).
type checkedPieces struct {
	file fs.FileInfo
	bad  []int
}

// adoptPart decides what becomes of a part file with bytes in it that no
// manifest describes. With the Metalink's piece hashes, every piece lying
// wholly inside it is hashed (in parallel) and those that match are kept
// as written, so that only the others are fetched: the hash vouches for
// them, as the manifest would. Without piece hashes nothing vouches for
// its bytes, and the download overwrites them (and says so). ordered cuts
// what is left to fetch into chunks in file order, for a download whose
// whole-file hash follows it. The zero value means a fresh start.
func (d *download) adoptPart(ctx context.Context, remote segment.Remote, f files, ordered bool) (resumed, error) {
	st, err := os.Stat(f.part)
	if err != nil || st.Size() == 0 || !st.Mode().IsRegular() {
		return resumed{}, nil
	}
	if _, err := os.Stat(f.manifest); !errors.Is(err, fs.ErrNotExist) {
		return resumed{}, nil // a manifest that did not fit: it was said why
	}
	p, ok := d.cfg.meta.piecesOf(remote.Size)
	if !ok {
		d.noteUnclaimedPart(f)
		return resumed{}, nil
	}
	// Only the pieces wholly inside the file can be kept; a part file that
	// is too long has its tail cut by the preallocation.
	inside := len(p.Sums)
	if st.Size() < remote.Size {
		inside = int(st.Size() / p.Length)
	}
	bad, err := d.badPieces(ctx, f.part, st, p, inside, remote.Size)
	if err != nil {
		return resumed{}, err
	}
	good := make([]bool, len(p.Sums))
	for i := range inside {
		good[i] = true
	}
	for _, i := range bad {
		good[i] = false
	}
	chunk := int64(0)
	if ordered {
		chunk = hashChunk
	}
	segs := adoptedSegments(p, remote.Size, good, chunk)
	done := written(segs)
	if d.cfg.onAdopt != nil {
		d.cfg.onAdopt(p, good)
	}
	if done == 0 {
		d.cfg.Logf("%s exists without a manifest, and none of its %d pieces matches the metalink: overwriting it", f.part, len(p.Sums))
		return resumed{}, nil
	}
	kept := inside - len(bad)
	d.cfg.Logf("kept %d of %d pieces (%s) of %s, verified against the metalink; fetching the rest", kept, len(p.Sums), units.FormatBytes(done), f.part)
	verified := make([]byte, (len(good)+7)/8)
	for i, g := range good {
		if g {
			verified[i/8] |= 1 << (i % 8)
		}
	}
	return resumed{segs: segs, done: done, verified: verified}, nil
}

// badPieces returns the pieces among the first inside of the file at path
// (described by st) that fail their hash: from the check Repair made of
// the same file, else by hashing them, as many at once as there are
// processors.
func (d *download) badPieces(ctx context.Context, path string, st fs.FileInfo, p merge.Pieces, inside int, size int64) (bad []int, err error) {
	if c := d.cfg.checked; c != nil && inside == len(p.Sums) && os.SameFile(c.file, st) &&
		c.file.Size() == st.Size() && c.file.ModTime().Equal(st.ModTime()) {
		return c.bad, nil
	}
	if inside < len(p.Sums) {
		p.Sums, size = p.Sums[:inside], int64(inside)*p.Length
	}
	if inside == 0 {
		return nil, nil
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, describeFileError(err, path)
	}
	defer func() { err = errors.Join(err, file.Close()) }()
	bad, err = p.CheckAll(ctx, file, size, runtime.GOMAXPROCS(0), nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w while checking the pieces of %s", ErrInterrupted, path)
		}
		return nil, fmt.Errorf("checking the pieces of %s: %w", path, err)
	}
	return bad, nil
}

// adoptedSegments covers a file of size bytes with segments: a run of
// good pieces is one segment, all written; a run of the others is one
// segment to fetch, or chunks of at most chunk bytes when chunk > 0.
func adoptedSegments(p merge.Pieces, size int64, good []bool, chunk int64) []segment.Segment {
	var segs []segment.Segment
	for i := 0; i < len(good); {
		j := i
		for j < len(good) && good[j] == good[i] {
			j++
		}
		start, _ := p.Bounds(i, size)
		_, end := p.Bounds(j-1, size)
		switch {
		case good[i]:
			segs = append(segs, segment.Segment{Start: start, End: end, Written: end - start})
		case chunk > 0:
			for at := start; at < end; at += chunk {
				segs = append(segs, segment.Segment{Start: at, End: min(at+chunk, end)})
			}
		default:
			segs = append(segs, segment.Segment{Start: start, End: end})
		}
		i = j
	}
	return segs
}
