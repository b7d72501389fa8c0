package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/convoy-dl/convoy/internal/fsx"
	"github.com/convoy-dl/convoy/internal/ranges"
)

// Version is the format version this package writes and reads.
const Version = 1

// kind marks a file as a convoy manifest, so a foreign JSON file is never
// mistaken for one.
const kind = "convoy-manifest"

// maxSize bounds the manifest file read from disk.
const maxSize = 16 << 20

// Manifest is the durable state of one download. Every byte it counts as
// written is on disk in the part file; nothing else is claimed.
type Manifest struct {
	Version int    `json:"version"`
	Kind    string `json:"kind"`
	// URL is the address the user gave and FinalURL where redirects ended,
	// both with secrets redacted: they are for people, not for requests.
	URL      string `json:"url"`
	FinalURL string `json:"final_url,omitempty"`
	// Size of the remote file; ETag and LastModified as the server sent them.
	Size         int64  `json:"size"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	// Segments cover [0, Size) in order, without gap or overlap.
	Segments []Segment `json:"segments"`
	// Connections is the connection count the download ran with, for the
	// command that resumes it (0: not recorded).
	Connections int `json:"connections,omitempty"`
	// HashAlgo names the checksum being computed as the file arrives;
	// HashState is that hash's saved state after the first HashPos bytes.
	HashAlgo  string `json:"hash_algo,omitempty"`
	HashPos   int64  `json:"hash_pos,omitempty"`
	HashState []byte `json:"hash_state,omitempty"`
	// Sources are the servers the download used, with the validators each
	// sent (servers of one file carry ETags of their own); a resume from one
	// of them checks its validators against these.
	Sources []Source `json:"sources,omitempty"`
	// ServedBy names the server that sent each byte range, where a download
	// used several; ranges are in file order and do not overlap, and bytes
	// not listed are unattributed (not yet written, or from a single server).
	ServedBy []Served `json:"served_by,omitempty"`
	// PieceLength is the length of the pieces a download with piece hashes
	// (a Metalink's) checks, 0 without; the last piece may be shorter.
	// PiecesVerified has bit i%8 of byte i/8 set when piece i, bytes
	// [i*PieceLength, min((i+1)*PieceLength, Size)), matched its hash; the
	// segments count every byte of such a piece as written. It holds a bit
	// for each piece, those past the last clear, or nothing when no piece
	// is verified. A resume checks the pieces again before trusting them.
	PieceLength    int64  `json:"piece_length,omitempty"`
	PiecesVerified []byte `json:"pieces_verified,omitempty"`
}

// Source is one server of the file and the validators it sent.
type Source struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// Served records that URL (redacted) sent bytes [Start, End).
type Served struct {
	URL   string `json:"url"`
	Start int64  `json:"start"`
	End   int64  `json:"end"`
}

// Segment records that [Start, Start+Written) of [Start, End) is on disk.
type Segment = ranges.Segment

// Done returns the number of bytes the manifest counts as written.
func (m *Manifest) Done() int64 {
	var n int64
	for _, s := range m.Segments {
		n += s.Written
	}
	return n
}

// Complete reports whether every byte is written.
func (m *Manifest) Complete() bool { return m.Done() == m.Size }

// CorruptError is a manifest file that cannot be trusted: unreadable,
// truncated, of another version or another program, or inconsistent.
type CorruptError struct {
	Path   string
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("manifest %s is unusable: %s", e.Path, e.Reason)
}

// Decode parses and checks a manifest: known version and kind, no unknown
// fields, segments that cover [0, Size) exactly with written counts inside
// their segments.
func Decode(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	if m.Kind != kind {
		return nil, errors.New("not a convoy manifest")
	}
	if m.Version != Version {
		return nil, fmt.Errorf("format version %d, this convoy reads version %d", m.Version, Version)
	}
	if m.Size < 0 {
		return nil, fmt.Errorf("negative size %d", m.Size)
	}
	if err := ranges.CheckCover(m.Segments, m.Size); err != nil {
		return nil, err
	}
	if err := checkHash(&m); err != nil {
		return nil, err
	}
	if err := checkServed(m.ServedBy, m.Size); err != nil {
		return nil, err
	}
	if err := checkSources(m.Sources); err != nil {
		return nil, err
	}
	if err := checkPieces(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

// checkHash accepts a saved hash state only within the file and with an
// algorithm named.
func checkHash(m *Manifest) error {
	switch {
	case m.HashPos < 0 || m.HashPos > m.Size:
		return fmt.Errorf("hash position %d outside the file's %d bytes", m.HashPos, m.Size)
	case m.HashAlgo == "" && (m.HashPos != 0 || len(m.HashState) != 0):
		return errors.New("hash state without an algorithm")
	case m.HashAlgo != "" && len(m.HashState) == 0:
		return errors.New("hash algorithm without a state")
	}
	return nil
}

// Pieces returns the number of pieces of m's file, 0 without a piece
// length.
func (m *Manifest) Pieces() int64 {
	if m.PieceLength <= 0 || m.Size <= 0 {
		return 0
	}
	n := m.Size / m.PieceLength
	if m.Size%m.PieceLength != 0 {
		n++
	}
	return n
}

// PieceVerified reports whether PiecesVerified marks piece i.
func (m *Manifest) PieceVerified(i int64) bool {
	return i >= 0 && i/8 < int64(len(m.PiecesVerified)) && m.PiecesVerified[i/8]&(1<<(i%8)) != 0
}

// checkPieces accepts verified pieces only with a piece length, a bit for
// each piece and none past the last, and each one's bytes written.
func checkPieces(m *Manifest) error {
	switch {
	case m.PieceLength < 0:
		return fmt.Errorf("negative piece length %d", m.PieceLength)
	case len(m.PiecesVerified) == 0:
		return nil
	case m.PieceLength == 0:
		return errors.New("verified pieces without a piece length")
	}
	n := m.Pieces()
	if want := (n + 7) / 8; int64(len(m.PiecesVerified)) != want {
		return fmt.Errorf("pieces_verified holds %d bytes for %d pieces, want %d", len(m.PiecesVerified), n, want)
	}
	if r := n % 8; r != 0 && m.PiecesVerified[len(m.PiecesVerified)-1]>>r != 0 {
		return fmt.Errorf("pieces_verified marks pieces past the last of %d", n)
	}
	// Each run of verified pieces must lie in one run of written bytes;
	// both are in file order, so one pass over each does.
	written := ranges.Runs(m.Segments)
	j := 0
	for i := int64(0); i < n; {
		if m.PiecesVerified[i/8] == 0 {
			i += 8 - i%8
			continue
		}
		if !m.PieceVerified(i) {
			i++
			continue
		}
		first := i
		for i < n && m.PieceVerified(i) {
			i++
		}
		start, end := first*m.PieceLength, m.Size
		if m.Size/m.PieceLength >= i { // i*PieceLength does not overflow
			end = min(i*m.PieceLength, m.Size)
		}
		for j < len(written) && written[j][1] <= start {
			j++
		}
		if j == len(written) || written[j][0] > start || written[j][1] < end {
			return fmt.Errorf("pieces %d to %d, bytes [%d,%d), are marked verified but not all written", first, i-1, start, end)
		}
	}
	return nil
}

// checkSources accepts sources that each name a server.
func checkSources(sources []Source) error {
	for i, s := range sources {
		if s.URL == "" {
			return fmt.Errorf("source %d names no server", i)
		}
	}
	return nil
}

// checkServed accepts attributions in file order, non-empty, without
// overlap, within the file, each naming a server.
func checkServed(served []Served, size int64) error {
	var prevEnd int64
	for i, s := range served {
		switch {
		case s.URL == "":
			return fmt.Errorf("served_by entry %d names no server", i)
		case s.Start < prevEnd || s.Start >= s.End || s.End > size:
			return fmt.Errorf("served_by entry %d, bytes [%d,%d), is out of order or outside the file's %d bytes", i, s.Start, s.End, size)
		}
		prevEnd = s.End
	}
	return nil
}

// hashStateBound is more than the saved state of any hash the manifest
// records (SHA-512's is about 200 bytes), as base64 in JSON.
const hashStateBound = 1 << 10

// SizeBound returns an upper bound on the encoded size of m once it holds
// segments segments and served served ranges in place of its own, a hash
// state and verified pieces (of its piece length), whatever their values:
// the space a Save needs for its temporary copy. Its URLs and validators
// are taken as they are now; a served range is taken to name the longest
// of them.
func SizeBound(m *Manifest, segments, served int) int64 {
	c := *m
	c.Version, c.Kind = Version, kind
	c.Segments, c.ServedBy, c.HashState = nil, nil, nil
	c.PiecesVerified = bytes.Repeat([]byte{0xff}, int((c.Pieces()+7)/8))
	longest := longestEncoded(c.URL, c.FinalURL)
	for _, s := range c.Sources {
		longest = longestEncoded(longest, s.URL)
	}
	// Each entry is measured as the growth it causes in a list encoded at its
	// own depth, with the widest numbers: the commas and indentation count.
	widest := int64(math.MaxInt64)
	seg := listGrowth(func(n int) any {
		return slices.Repeat([]Segment{{Start: widest, End: widest, Written: widest}}, n)
	})
	srv := listGrowth(func(n int) any {
		return slices.Repeat([]Served{{URL: longest, Start: widest, End: widest}}, n)
	})
	base, _ := json.MarshalIndent(&c, "", "  ")
	// The lists' own keys and brackets, with slack for the hash fields.
	const lists = 256 + hashStateBound
	return int64(len(base)) + lists + int64(segments)*seg + int64(served)*srv
}

// longestEncoded returns whichever of a and b takes more bytes in JSON.
func longestEncoded(a, b string) string {
	ea, _ := json.Marshal(a)
	eb, _ := json.Marshal(b)
	if len(eb) > len(ea) {
		return b
	}
	return a
}

// listGrowth is how many bytes one more element adds to the indented
// encoding of a list at the depth of the manifest's lists.
func listGrowth(list func(n int) any) int64 {
	one, _ := json.MarshalIndent(map[string]any{"l": list(1)}, "", "  ")
	two, _ := json.MarshalIndent(map[string]any{"l": list(2)}, "", "  ")
	return int64(len(two) - len(one))
}

// Encode returns m as JSON, stamped with the current version and kind.
func Encode(m *Manifest) ([]byte, error) {
	c := *m
	c.Version, c.Kind = Version, kind
	if err := ranges.CheckCover(c.Segments, c.Size); err != nil {
		return nil, fmt.Errorf("refusing to encode an inconsistent manifest: %w", err)
	}
	if err := checkHash(&c); err != nil {
		return nil, fmt.Errorf("refusing to encode an inconsistent manifest: %w", err)
	}
	if err := checkServed(c.ServedBy, c.Size); err != nil {
		return nil, fmt.Errorf("refusing to encode an inconsistent manifest: %w", err)
	}
	if err := checkSources(c.Sources); err != nil {
		return nil, fmt.Errorf("refusing to encode an inconsistent manifest: %w", err)
	}
	if err := checkPieces(&c); err != nil {
		return nil, fmt.Errorf("refusing to encode an inconsistent manifest: %w", err)
	}
	return json.MarshalIndent(&c, "", "  ")
}

// Load reads the manifest at path. A missing file gives an error satisfying
// errors.Is(err, fs.ErrNotExist); anything unusable gives a *CorruptError.
func Load(path string) (m *Manifest, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	data, rerr := io.ReadAll(io.LimitReader(f, maxSize+1))
	if cerr := f.Close(); rerr == nil {
		rerr = cerr
	}
	if rerr != nil {
		return nil, &CorruptError{Path: path, Reason: rerr.Error()}
	}
	if len(data) > maxSize {
		return nil, &CorruptError{Path: path, Reason: "larger than any manifest convoy writes"}
	}
	m, err = Decode(data)
	if err != nil {
		return nil, &CorruptError{Path: path, Reason: err.Error()}
	}
	return m, nil
}

// Save replaces the manifest at path atomically and durably: it writes a
// temporary file in the same folder (mode 0600), fsyncs and closes it,
// renames it over path and fsyncs the folder. A crash at any point leaves
// either the old manifest or the new one, never a mix.
func Save(path string, m *Manifest) (err error) {
	data, err := Encode(m)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			err = errors.Join(err, tmp.Close())
		}
		if rerr := os.Remove(tmp.Name()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	closed = true
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return fsx.SyncDir(dir)
}

// RemoveTemps deletes temporary files that a Save for path left behind when
// its process was killed between creating and renaming them. Call it only
// while holding the download's lock.
func RemoveTemps(path string) error {
	stale, err := filepath.Glob(filepath.Join(filepath.Dir(path), escapeGlob(filepath.Base(path))+".tmp-*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range stale {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// escapeGlob quotes the characters filepath.Match treats specially.
func escapeGlob(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		if r == '*' || r == '?' || r == '[' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Remove deletes the manifest at path durably; a missing file is not an
// error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return fsx.SyncDir(filepath.Dir(path))
}
