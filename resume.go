package convoy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/convoy-dl/convoy/internal/units"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/segment"
)

// resumed is what an earlier run left that this one can use.
type resumed struct {
	m    *manifest.Manifest // nil for a fresh start
	segs []segment.Segment  // m's segments, trimmed to the part file
	done int64              // bytes the segments hold
}

// resumeState returns the state of an earlier run that still matches the
// remote file and the part file; the zero value to start fresh. A manifest
// that cannot be read is an error: its download is neither reused nor
// silently thrown away.
func (d *download) resumeState(remote segment.Remote, f files, fresh bool) (resumed, error) {
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
	if why := mismatch(m, remote); why != "" {
		d.cfg.Logf("cannot resume %s: %s; starting over from zero", f.out, why)
		return resumed{}, nil
	}
	segs := m.Segments
	if st, err := os.Stat(f.part); err != nil || st.Size() < m.Size {
		have := int64(0)
		if err == nil {
			have = st.Size()
		}
		d.cfg.Logf("%s is shorter than its manifest says (%d of %d bytes); fetching the missing bytes again", f.part, have, m.Size)
		segs = clampWritten(segs, have)
	}
	var done int64
	for _, s := range segs {
		done += s.Written
	}
	if done > 0 {
		d.cfg.Logf("resuming %s: %s of %s already on disk", f.out, units.FormatBytes(done), units.FormatBytes(m.Size))
	}
	return resumed{m: m, segs: segs, done: done}, nil
}

// mismatch says why a manifest does not describe the remote file, or "".
// A resume needs a validator that If-Range can carry: without one a changed
// file could not be told from the old one.
func mismatch(m *manifest.Manifest, r segment.Remote) string {
	switch {
	case m.Size != r.Size:
		return fmt.Sprintf("the file on the server is now %d bytes, was %d", r.Size, m.Size)
	case !r.Identifiable():
		return "the server sends no strong ETag or Last-Modified to prove the file is unchanged"
	case m.ETag != r.ETag:
		return fmt.Sprintf("the file changed on the server (ETag %s, was %s)", r.ETag, m.ETag)
	case m.LastModified != r.LastModified:
		return fmt.Sprintf("the file changed on the server (Last-Modified %s, was %s)", r.LastModified, m.LastModified)
	}
	return ""
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
