package convoy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"github.com/convoy-dl/convoy/internal/units"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

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
