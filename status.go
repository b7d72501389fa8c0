package convoy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/convoy-dl/convoy/manifest"
)

// Status describes a partial download from its manifest.
type Status struct {
	// Output is the final file's path; Manifest and Part the files beside it.
	Output, Manifest, Part string
	// URL and FinalURL as recorded, secrets already redacted.
	URL, FinalURL      string
	Size, Done         int64
	ETag, LastModified string
	Segments           []SegmentStatus
	// HashAlgo and HashPos tell how far a checksum has been computed.
	HashAlgo string
	HashPos  int64
	// PartSize is the part file's length on disk, -1 when it is missing.
	PartSize int64
	// Servers are the mirrors the download used, the first URL first, with
	// their validators and the bytes each sent that are recorded; empty for
	// a download from one server.
	Servers []ServerStatus
	// Connections is the connection count it ran with (0: not recorded).
	Connections int
	// Running is set while a process holds the download's lock; PID names
	// it where the system tells (0 otherwise).
	Running bool
	PID     int
}

// ServerStatus is one server of a download from several.
type ServerStatus struct {
	URL, ETag, LastModified string
	Sent                    int64
}

// SegmentStatus is one range of the file and how much of it is on disk.
type SegmentStatus struct {
	Start, End, Written int64
}

// ReadStatus reads the manifest of the download whose output is path (the
// manifest's own path, ending in ".convoy", works too).
func ReadStatus(path string) (Status, error) {
	out := strings.TrimSuffix(path, ManifestSuffix)
	out = strings.TrimSuffix(out, PartSuffix)
	st := Status{Output: out, Manifest: out + ManifestSuffix, Part: out + PartSuffix, PartSize: -1}
	m, err := manifest.Load(st.Manifest)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(out); serr == nil {
			return st, fmt.Errorf("%s has no download in progress (%s is not there; the file looks complete)", out, st.Manifest)
		}
		return st, fmt.Errorf("no download in progress for %s (%s is not there)", out, st.Manifest)
	}
	if err != nil {
		return st, err
	}
	st.URL, st.FinalURL = m.URL, m.FinalURL
	st.Size, st.Done = m.Size, m.Done()
	st.ETag, st.LastModified = m.ETag, m.LastModified
	st.HashAlgo, st.HashPos = m.HashAlgo, m.HashPos
	for _, s := range m.Segments {
		st.Segments = append(st.Segments, SegmentStatus{Start: s.Start, End: s.End, Written: s.Written})
	}
	sent := map[string]int64{}
	for _, r := range m.ServedBy {
		sent[r.URL] += r.End - r.Start
	}
	for _, src := range m.Sources {
		st.Servers = append(st.Servers, ServerStatus{URL: src.URL, ETag: src.ETag, LastModified: src.LastModified, Sent: sent[src.URL]})
	}
	if fi, err := os.Stat(st.Part); err == nil {
		st.PartSize = fi.Size()
	}
	st.Connections = m.Connections
	if pid, locked, err := manifest.Holder(st.Part); err == nil {
		st.Running, st.PID = locked, pid
	}
	return st, nil
}
