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
	"slices"

	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/internal/units"
	"github.com/convoy-dl/convoy/manifest"
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
