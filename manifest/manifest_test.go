package manifest

import (
	"bufio"
	"bytes"
	"crypto/sha512"
	"encoding"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/convoy-dl/convoy/internal/ranges"
)

// helperEnv names the environment variable that turns the test binary into a
// helper process (see TestMain); its value is the role.
const helperEnv = "CONVOY_MANIFEST_TEST_HELPER"

// TestMain lets the tests re-execute their own binary as a second process:
// a lock is only worth testing against another process, and a crash only by
// killing one.
func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(runHelper(role, os.Getenv("CONVOY_TEST_PATH")))
	}
	os.Exit(m.Run())
}

// helperCmd returns a command running this test binary as the helper role
// on path.
func helperCmd(t *testing.T, role, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// GORACE: a -race child otherwise sleeps a second at exit.
	cmd.Env = append(os.Environ(), helperEnv+"="+role, "CONVOY_TEST_PATH="+path, "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	return cmd
}

func runHelper(role, path string) int {
	switch role {
	case "lock":
		// Take the lock, say so, hold it until stdin closes.
		l, err := Acquire(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper: acquire:", err)
			return 2
		}
		fmt.Println("locked")
		_, _ = bufio.NewReader(os.Stdin).ReadString(0) // until EOF
		if err := l.Release(); err != nil {
			fmt.Fprintln(os.Stderr, "helper: release:", err)
			return 2
		}
		return 0
	case "save-fsize":
		// With a file-size limit far below the manifest, the temp file's
		// write fails half way.
		lim := syscall.Rlimit{Cur: 64, Max: 64}
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			fmt.Fprintln(os.Stderr, "helper: setrlimit:", err)
			return 2
		}
		err := Save(path, sample(1<<20, 64))
		if err == nil {
			fmt.Fprintln(os.Stderr, "helper: Save succeeded past RLIMIT_FSIZE")
			return 3
		}
		fmt.Println(err)
		return 0
	case "save-loop":
		// Save two alternating manifests, reporting each, until killed.
		a, b := sample(1000, 3), sample(5000, 7)
		for i := range 100000 {
			m := a
			if i%2 == 1 {
				m = b
			}
			if err := Save(path, m); err != nil {
				fmt.Fprintln(os.Stderr, "helper: save:", err)
				return 2
			}
			fmt.Println(i)
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "helper: unknown role", role)
	return 2
}

// sample returns a consistent manifest of size bytes in n segments (n >= 1,
// size >= n), every segment half written.
func sample(size int64, n int) *Manifest {
	m := &Manifest{
		Version:      Version,
		Kind:         kind,
		URL:          "https://example.com/big.iso?token=" + "REDACTED",
		FinalURL:     "https://cdn.example.com/big.iso",
		Size:         size,
		ETag:         `"abc123"`,
		LastModified: "Mon, 02 Jan 2006 15:04:05 GMT",
	}
	step := size / int64(n)
	for i := range n {
		s := Segment{Start: int64(i) * step, End: int64(i+1) * step}
		if i == n-1 {
			s.End = size
		}
		s.Written = (s.End - s.Start) / 2
		m.Segments = append(m.Segments, s)
	}
	return m
}

// seg is a Segment literal without field names.
func seg(start, end, written int64) Segment {
	return Segment{Start: start, End: end, Written: written}
}

func emptyFile() *Manifest {
	return &Manifest{Version: Version, Kind: kind, URL: "https://example.com/empty", Segments: []Segment{seg(0, 0, 0)}}
}

func mustEncode(t *testing.T, m *Manifest) []byte {
	t.Helper()
	data, err := Encode(m)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return data
}

// tempFiles lists the names in dir that look like Save's temporary files.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var tmp []string
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			tmp = append(tmp, e.Name())
		}
	}
	return tmp
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	unicodeURL := sample(10, 1)
	unicodeURL.URL = "https://example.com/файл-日本語-\u2028.bin"
	unicodeURL.ETag = `W/"weak<&>"`
	huge := &Manifest{Version: Version, Kind: kind, Size: math.MaxInt64, Segments: []Segment{
		seg(0, math.MaxInt64/2, math.MaxInt64/2),
		seg(math.MaxInt64/2, math.MaxInt64, 0),
	}}
	complete := sample(100, 4)
	for i := range complete.Segments {
		s := &complete.Segments[i]
		s.Written = s.End - s.Start
	}
	tests := []struct {
		name string
		m    *Manifest
	}{
		{"size=0/segments=1", emptyFile()},
		{"size=1/segments=1", sample(1, 1)},
		{"size=1MiB/segments=8", sample(1<<20, 8)},
		{"size=100/segments=4/complete", complete},
		{"size=10/unicode-strings", unicodeURL},
		{"size=maxint64/segments=2", huge},
		{"size=1000/segments=1000", sample(1000, 1000)},
		{"size=30/served-by-two", servedSample()},
		{"size=30/pieces", piecesSample()},
		{"size=30/piece-length-only", func() *Manifest { m := piecesSample(); m.PiecesVerified = nil; return m }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(mustEncode(t, tt.m))
			if err != nil {
				t.Fatalf("Decode(Encode(m)): %v", err)
			}
			if !reflect.DeepEqual(got, tt.m) {
				t.Fatalf("round trip changed the manifest:\n got %+v\nwant %+v", got, tt.m)
			}
		})
	}
}

// servedSample is a manifest of 30 bytes whose first 20 came from two
// servers.
func servedSample() *Manifest {
	m := sample(30, 3)
	m.Sources = []Source{{URL: "http://a/f", ETag: `"a"`}, {URL: "http://b/f", LastModified: "Mon, 02 Jan 2006 15:04:05 GMT"}}
	m.ServedBy = []Served{{URL: "http://a/f", Start: 0, End: 8}, {URL: "http://b/f", Start: 8, End: 12}, {URL: "http://a/f", Start: 15, End: 20}}
	return m
}

// piecesSample is a manifest of 30 bytes in pieces of 4, [0,16) and
// [20,25) written, pieces 0, 1, 3 and 5 verified.
func piecesSample() *Manifest {
	m := sample(30, 1)
	m.Segments = []Segment{seg(0, 10, 10), seg(10, 20, 6), seg(20, 30, 5)}
	m.PieceLength, m.PiecesVerified = 4, []byte{0b00101011}
	return m
}

// withPieces is validJSON (30 bytes, [0,15) written) with a piece length
// and verified pieces, as JSON values.
func withPieces(length, verified string) string {
	return strings.Replace(validJSON, `"size": 30`, `"size": 30, "piece_length": `+length+`, "pieces_verified": `+verified, 1)
}

// withServed is validJSON (30 bytes) with served_by set to the JSON list.
func withServed(list string) string {
	return strings.Replace(validJSON, `"size": 30`, `"size": 30, "served_by": `+list, 1)
}

func TestEncodeStampsVersionAndKind(t *testing.T) {
	m := sample(10, 2)
	m.Version, m.Kind = 0, "something else"
	got, err := Decode(mustEncode(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != Version || got.Kind != kind {
		t.Fatalf("decoded version %d kind %q, want %d %q", got.Version, got.Kind, Version, kind)
	}
	if m.Version != 0 || m.Kind != "something else" {
		t.Fatalf("Encode modified its argument: version %d kind %q", m.Version, m.Kind)
	}
}

func TestEncodeRefusesInconsistent(t *testing.T) {
	tests := []struct {
		name string
		size int64
		segs []Segment
	}{
		{"no-segments", 10, nil},
		{"gap", 20, []Segment{seg(0, 5, 0), seg(6, 20, 0)}},
		{"overlap", 20, []Segment{seg(0, 10, 0), seg(9, 20, 0)}},
		{"written>length", 10, []Segment{seg(0, 10, 11)}},
		{"short", 20, []Segment{seg(0, 10, 0)}},
		{"negative-size", -1, []Segment{seg(0, 0, 0)}},
	}
	m := piecesSample()
	m.PiecesVerified[0] |= 1 << 4 // piece 4, [16,20), is not written
	if data, err := Encode(m); err == nil {
		t.Errorf("Encode accepted a verified piece that is not written:\n%s", data)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Manifest{Size: tt.size, Segments: tt.segs}
			if data, err := Encode(m); err == nil {
				t.Fatalf("Encode accepted an inconsistent manifest:\n%s", data)
			}
		})
	}
}

// validJSON is a hand-written valid manifest the rejection cases start from.
const validJSON = `{
  "version": 1,
  "kind": "convoy-manifest",
  "url": "https://example.com/f",
  "size": 30,
  "segments": [
    {"start": 0, "end": 10, "written": 10},
    {"start": 10, "end": 30, "written": 5}
  ]
}`

// withSegments returns validJSON with size and segments replaced.
func withSegments(size string, segs string) string {
	return `{"version":1,"kind":"convoy-manifest","url":"u","size":` + size + `,"segments":` + segs + `}`
}

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		size int64
		done int64
	}{
		{"hand-written", validJSON, 30, 15},
		{"trailing-whitespace", validJSON + "\n\t \n", 30, 15},
		{"leading-whitespace", "\n  " + validJSON, 30, 15},
		{"empty-file/[0,0)", withSegments("0", `[{"start":0,"end":0,"written":0}]`), 0, 0},
		{"optional-fields-absent", `{"version":1,"kind":"convoy-manifest","size":1,"segments":[{"start":0,"end":1,"written":1}]}`, 1, 1},
		{"size=maxint64", withSegments("9223372036854775807", `[{"start":0,"end":9223372036854775807,"written":0}]`), math.MaxInt64, 0},
		// Pieces of 8: [0,8) is written, [8,16) is not all written.
		{"piece-0-verified", withPieces("8", `"AQ=="`), 30, 15},
		{"piece-length-only", strings.Replace(validJSON, `"size": 30`, `"size": 30, "piece_length": 8`, 1), 30, 15},
		{"no-piece-verified", withPieces("8", `""`), 30, 15},
		{"last-piece-verified", `{"version":1,"kind":"convoy-manifest","size":10,"segments":[{"start":0,"end":10,"written":10}],"piece_length":3,"pieces_verified":"CA=="}`, 10, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if m.Size != tt.size || m.Done() != tt.done {
				t.Fatalf("size %d done %d, want %d %d", m.Size, m.Done(), tt.size, tt.done)
			}
			if err := ranges.CheckCover(m.Segments, m.Size); err != nil {
				t.Fatalf("Decode returned segments that fail CheckCover: %v", err)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty-input", ""},
		{"whitespace-only", "  \n"},
		{"not-json", "hello, world"},
		{"json-null", "null"},
		{"json-array", "[]"},
		{"json-string", `"convoy-manifest"`},
		{"json-number", "1"},
		{"empty-object", "{}"},
		{"truncated", validJSON[:len(validJSON)/2]},
		{"trailing-garbage", validJSON + "x"},
		{"trailing-second-object", validJSON + validJSON},
		{"trailing-brace", validJSON + "}"},
		{"trailing-null", validJSON + " null"},
		{"unknown-top-field", strings.Replace(validJSON, `"size": 30`, `"size": 30, "sha256": "00"`, 1)},
		{"unknown-segment-field", strings.Replace(validJSON, `"written": 5`, `"written": 5, "done": true`, 1)},
		{"foreign-object", `{"name":"left-pad","version":"1.3.0"}`},
		{"foreign-object-same-keys-no-kind", `{"version":1,"size":1,"segments":[{"start":0,"end":1,"written":0}]}`},
		{"wrong-kind", strings.Replace(validJSON, `"convoy-manifest"`, `"aria2-control"`, 1)},
		{"version=0", strings.Replace(validJSON, `"version": 1`, `"version": 0`, 1)},
		{"version=2", strings.Replace(validJSON, `"version": 1`, `"version": 2`, 1)},
		{"version=-1", strings.Replace(validJSON, `"version": 1`, `"version": -1`, 1)},
		{"version-string", strings.Replace(validJSON, `"version": 1`, `"version": "1"`, 1)},
		{"size-string", withSegments(`"30"`, `[{"start":0,"end":30,"written":0}]`)},
		{"size-float", withSegments("1.5", `[{"start":0,"end":1,"written":0}]`)},
		{"negative-size", withSegments("-1", `[{"start":0,"end":0,"written":0}]`)},
		{"negative-size-no-segments", withSegments("-10", `[]`)},
		{"size=1e30", withSegments("1e30", `[{"start":0,"end":10,"written":0}]`)},
		{"size=2^63", withSegments("9223372036854775808", `[{"start":0,"end":9223372036854775807,"written":0}]`)},
		{"end=2^64", withSegments("10", `[{"start":0,"end":18446744073709551616,"written":0}]`)},
		{"written=1e400", withSegments("10", `[{"start":0,"end":10,"written":1e400}]`)},
		{"segments-null", withSegments("10", `null`)},
		{"segments-missing", `{"version":1,"kind":"convoy-manifest","size":10}`},
		{"segments-empty-list", withSegments("10", `[]`)},
		{"segments-empty-list/size=0", withSegments("0", `[]`)},
		{"segments-gap", withSegments("30", `[{"start":0,"end":10,"written":0},{"start":11,"end":30,"written":0}]`)},
		{"segments-overlap", withSegments("30", `[{"start":0,"end":11,"written":0},{"start":10,"end":30,"written":0}]`)},
		{"segments-out-of-order", withSegments("30", `[{"start":10,"end":30,"written":0},{"start":0,"end":10,"written":0}]`)},
		{"segments-not-from-0", withSegments("30", `[{"start":5,"end":30,"written":0}]`)},
		{"segments-short-of-size", withSegments("30", `[{"start":0,"end":10,"written":0},{"start":10,"end":20,"written":0}]`)},
		{"segments-past-size", withSegments("30", `[{"start":0,"end":40,"written":0}]`)},
		{"segment-reversed", withSegments("30", `[{"start":0,"end":20,"written":0},{"start":20,"end":10,"written":0},{"start":10,"end":30,"written":0}]`)},
		{"segment-empty-in-middle", withSegments("30", `[{"start":0,"end":10,"written":0},{"start":10,"end":10,"written":0},{"start":10,"end":30,"written":0}]`)},
		{"written>length", withSegments("30", `[{"start":0,"end":10,"written":11},{"start":10,"end":30,"written":0}]`)},
		{"written<0", withSegments("30", `[{"start":0,"end":30,"written":-1}]`)},
		{"written-on-empty-file", withSegments("0", `[{"start":0,"end":0,"written":1}]`)},
		{"[0,0)/size=10", withSegments("10", `[{"start":0,"end":0,"written":0}]`)},
		{"segment-not-object", withSegments("10", `[[0,10,0]]`)},
		{"source-no-url", strings.Replace(validJSON, `"size": 30`, `"size": 30, "sources": [{"url":"","etag":"\"e\""}]`, 1)},
		{"source-unknown-field", strings.Replace(validJSON, `"size": 30`, `"size": 30, "sources": [{"url":"a","digest":"x"}]`, 1)},
		{"served-no-url", withServed(`[{"url":"","start":0,"end":10}]`)},
		{"served-empty-range", withServed(`[{"url":"a","start":5,"end":5}]`)},
		{"served-reversed", withServed(`[{"url":"a","start":9,"end":5}]`)},
		{"served-past-size", withServed(`[{"url":"a","start":20,"end":31}]`)},
		{"served-negative", withServed(`[{"url":"a","start":-1,"end":5}]`)},
		{"served-overlap", withServed(`[{"url":"a","start":0,"end":10},{"url":"b","start":9,"end":20}]`)},
		{"served-out-of-order", withServed(`[{"url":"a","start":10,"end":20},{"url":"b","start":0,"end":10}]`)},
		{"served-unknown-field", withServed(`[{"url":"a","start":0,"end":10,"mirror":1}]`)},
		{"served-not-list", withServed(`{"url":"a","start":0,"end":10}`)},
		{"piece-length-negative", withPieces("-8", `"AQ=="`)},
		{"pieces-without-length", withPieces("0", `"AQ=="`)},
		{"pieces-too-many-bytes", withPieces("8", `"AQA="`)},
		{"pieces-past-the-last", withPieces("8", `"EQ=="`)},
		{"piece-not-written", withPieces("8", `"Ag=="`)},
		{"piece-partly-written", withPieces("10", `"Ag=="`)},
		{"pieces-not-base64", withPieces("8", `"*"`)},
		{"piece-length-string", withPieces(`"8"`, `"AQ=="`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode accepted %q as %+v", tt.in, m)
			}
			if m != nil {
				t.Fatalf("Decode returned %+v along with error %v", m, err)
			}
		})
	}
}

// TestDecodeEveryPrefix cuts a valid manifest at every byte: a torn write
// must never be read as a manifest.
func TestDecodeEveryPrefix(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    *Manifest
	}{
		{"size=30/segments=3", sample(30, 3)},
		{"size=0", emptyFile()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := mustEncode(t, tt.m)
			for n := range len(data) {
				if m, err := Decode(data[:n]); err == nil {
					t.Fatalf("Decode accepted the first %d of %d bytes: %+v", n, len(data), m)
				}
			}
		})
	}
}

func TestDoneComplete(t *testing.T) {
	tests := []struct {
		name     string
		m        *Manifest
		done     int64
		complete bool
	}{
		{"empty-file", emptyFile(), 0, true},
		{"half", sample(100, 4), 48, false},
		{"full", &Manifest{Size: 10, Segments: []Segment{seg(0, 4, 4), seg(4, 10, 6)}}, 10, true},
		{"nothing", &Manifest{Size: 10, Segments: []Segment{seg(0, 10, 0)}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Done(); got != tt.done {
				t.Errorf("Done() = %d, want %d", got, tt.done)
			}
			if got := tt.m.Complete(); got != tt.complete {
				t.Errorf("Complete() = %v, want %v", got, tt.complete)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.convoy")
	m, err := Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %+v, %v; want fs.ErrNotExist", m, err)
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		t.Fatalf("a missing manifest is reported as corrupt: %v", err)
	}
}

func TestLoadCorrupt(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"garbage", []byte("\x00\x01\x02 not json")},
		{"truncated", []byte(validJSON[:40])},
		{"foreign", []byte(`{"hello":"world"}`)},
		{"version=2", []byte(strings.Replace(validJSON, `"version": 1`, `"version": 2`, 1))},
		{"inconsistent", []byte(withSegments("30", `[{"start":0,"end":10,"written":0}]`))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.convoy")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			m, err := Load(path)
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %+v, %v; want a *CorruptError", m, err)
			}
			if ce.Path != path || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q (Path %q) does not name %s", err, ce.Path, path)
			}
			if ce.Reason == "" {
				t.Fatalf("error %q gives no reason", err)
			}
			if errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a corrupt manifest is reported as missing: %v", err)
			}
		})
	}
}

func TestLoadDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.convoy")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if m, err := Load(path); err == nil {
		t.Fatalf("Load(a folder) = %+v", m)
	}
}

// TestLoadSizeLimit pads a valid manifest with whitespace (still valid
// JSON) to just at and just over the 16 MiB bound.
func TestLoadSizeLimit(t *testing.T) {
	t.Parallel() // decoding 16 MiB is the slowest step of the package under -race
	valid := mustEncode(t, sample(100, 2))
	tests := []struct {
		name  string
		total int
		ok    bool
	}{
		{"16MiB", maxSize, true},
		{"16MiB+1", maxSize + 1, false},
		{"17MiB", 17 << 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := append(bytes.Clone(valid), bytes.Repeat([]byte(" "), tt.total-len(valid))...)
			path := filepath.Join(t.TempDir(), "f.convoy")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			m, err := Load(path)
			if tt.ok {
				if err != nil {
					t.Fatalf("Load(%d bytes): %v", tt.total, err)
				}
				if m.Size != 100 {
					t.Fatalf("Load(%d bytes) size %d", tt.total, m.Size)
				}
				return
			}
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Path != path {
				t.Fatalf("Load(%d bytes) = %v, want a *CorruptError for %s", tt.total, err, path)
			}
		})
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.convoy")
	want := sample(1<<20, 5)
	if err := Save(path, want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load after Save:\n got %+v\nwant %+v", got, want)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Fatalf("manifest mode %v, want 0600", perm)
	}
	if !st.Mode().IsRegular() {
		t.Fatalf("manifest is not a regular file: %v", st.Mode())
	}
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Fatalf("temp files left behind: %v", tmp)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Fatalf("folder holds %d entries after one Save, want 1", len(ents))
	}
}

func TestSaveReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.convoy")
	// An older file, world-readable, longer than the new one.
	if err := os.WriteFile(path, mustEncode(t, sample(1000, 50)), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, want := range []*Manifest{sample(10, 1), emptyFile(), sample(1<<30, 3)} {
		if err := Save(path, want); err != nil {
			t.Fatalf("Save #%d: %v", i, err)
		}
		got, err := Load(path)
		if err != nil {
			t.Fatalf("Load after Save #%d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Load after Save #%d:\n got %+v\nwant %+v", i, got, want)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := st.Mode().Perm(); perm != 0o600 {
			t.Fatalf("manifest mode %v after Save #%d, want 0600", perm, i)
		}
	}
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Fatalf("temp files left behind: %v", tmp)
	}
}

func TestSaveRefusesInconsistentKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.convoy")
	old := sample(100, 2)
	if err := Save(path, old); err != nil {
		t.Fatal(err)
	}
	bad := sample(100, 2)
	bad.Segments[1].Written = 1000
	if err := Save(path, bad); err == nil {
		t.Fatal("Save accepted an inconsistent manifest")
	}
	assertManifest(t, path, old)
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Fatalf("temp files left behind: %v", tmp)
	}
}

func assertManifest(t *testing.T, path string, want *Manifest) {
	t.Helper()
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("manifest changed:\n got %+v\nwant %+v", got, want)
	}
}

func TestSaveFailures(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the manifest path
	}{
		{"parent-is-a-file", func(t *testing.T, dir string) string {
			f := filepath.Join(dir, "notadir")
			if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(f, "f.convoy")
		}},
		{"parent-missing", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "missing", "f.convoy")
		}},
		{"path-is-a-nonempty-folder", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "f.convoy")
			if err := os.MkdirAll(filepath.Join(p, "child"), 0o700); err != nil {
				t.Fatal(err)
			}
			return p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.setup(t, dir)
			before := listTree(t, dir)
			if err := Save(path, sample(100, 2)); err == nil {
				t.Fatalf("Save(%s) succeeded", path)
			}
			if after := listTree(t, dir); !reflect.DeepEqual(after, before) {
				t.Fatalf("a failed Save changed the folder:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// listTree returns every path under dir with its size, for before/after
// comparisons.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %v %d", p, info.Mode(), info.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSaveReadOnlyFolder makes the folder unwritable. root ignores the mode
// bits, so there the test skips; TestSaveWriteFailsKeepsOld covers a failed
// write for every user.
func TestSaveReadOnlyFolder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.convoy")
	old := sample(100, 2)
	if err := Save(path, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	probe := filepath.Join(dir, "probe")
	if f, err := os.Create(probe); err == nil {
		_ = f.Close()
		_ = os.Remove(probe)
		t.Skip("a 0500 folder is writable for this user (root): see TestSaveWriteFailsKeepsOld")
	}
	if err := Save(path, sample(200, 3)); err == nil {
		t.Fatal("Save into a read-only folder succeeded")
	}
	assertManifest(t, path, old)
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Fatalf("temp files left behind: %v", tmp)
	}
}

// TestSaveWriteFailsKeepsOld makes the temp file's write fail in a child
// process limited by RLIMIT_FSIZE (which binds root too): the old manifest
// must survive and no temp file may remain.
func TestSaveWriteFailsKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.convoy")
	old := sample(100, 2)
	if err := Save(path, old); err != nil {
		t.Fatal(err)
	}
	cmd := helperCmd(t, "save-fsize", path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v (stdout %q)", err, out)
	}
	if len(bytes.TrimSpace(out)) == 0 {
		t.Fatal("helper reported no error")
	}
	t.Logf("Save under RLIMIT_FSIZE: %s", bytes.TrimSpace(out))
	assertManifest(t, path, old)
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Fatalf("temp files left behind: %v", tmp)
	}
}

// TestSaveKilled kills a process that saves in a loop at some instant: the
// manifest left behind is always one of the two it was writing, whole.
func TestSaveKilled(t *testing.T) {
	for _, after := range []int{1, 25, 200} {
		t.Run("after="+strconv.Itoa(after), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f.convoy")
			cmd := helperCmd(t, "save-loop", path)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stdout)
			for i := 0; i < after && sc.Scan(); i++ {
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait() // killed: the error is expected
			got, err := Load(path)
			if err != nil {
				t.Fatalf("Load after kill: %v", err)
			}
			a, b := sample(1000, 3), sample(5000, 7)
			if !reflect.DeepEqual(got, a) && !reflect.DeepEqual(got, b) {
				t.Fatalf("manifest after kill is neither of the two saved: %+v", got)
			}
			// A kill between CreateTemp and Rename leaves a temp file: Save
			// never cleans those up (documented here, not asserted).
			if tmp := tempFiles(t, dir); len(tmp) > 0 {
				t.Logf("temp files left by the killed process: %v", tmp)
			}
		})
	}
}

func TestSaveConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.convoy")
	const n = 8
	want := make([]*Manifest, n)
	for i := range n {
		want[i] = sample(int64(100*(i+1)), i+1)
	}
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- Save(path, want[i]) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Save: %v", err)
		}
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	found := false
	for _, w := range want {
		found = found || reflect.DeepEqual(got, w)
	}
	if !found {
		t.Fatalf("manifest after concurrent saves is none of those saved: %+v", got)
	}
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Fatalf("temp files left behind: %v", tmp)
	}
}

func TestRemove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.convoy")
	if err := Remove(path); err != nil {
		t.Fatalf("Remove(missing) = %v, want nil", err)
	}
	if err := Save(path, sample(10, 1)); err != nil {
		t.Fatal(err)
	}
	if err := Remove(path); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("manifest still there after Remove: %v", err)
	}
	if err := Remove(path); err != nil {
		t.Fatalf("second Remove = %v, want nil", err)
	}
	// A folder in the way is a real error, not "missing".
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Remove(path); err == nil {
		t.Fatal("Remove of a non-empty folder succeeded")
	}
}

func TestCorruptErrorMessage(t *testing.T) {
	e := &CorruptError{Path: "/tmp/x.convoy", Reason: "bad"}
	if got, want := e.Error(), "manifest /tmp/x.convoy is unusable: bad"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestRemoveTemps(t *testing.T) {
	for _, name := range []string{"out.bin", "odd[*?].bin"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name+".convoy")
			keep := []string{name + ".convoy", name + ".part", "other.convoy.tmp-1", name}
			stale := []string{name + ".convoy.tmp-123", name + ".convoy.tmp-abc"}
			for _, f := range append(append([]string{}, keep...), stale...) {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := RemoveTemps(path); err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			slices.Sort(got)
			slices.Sort(keep)
			if !slices.Equal(got, keep) {
				t.Errorf("left %v, want %v", got, keep)
			}
		})
	}
}

// SizeBound holds for a manifest of any values, hash state included, and is
// not so loose that a nearly full disk is refused for a small manifest.
func TestSizeBound(t *testing.T) {
	withHash := sample(1<<40, 16384)
	h := sha512.New()
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	withHash.HashAlgo, withHash.HashPos, withHash.HashState = "sha512", 0, state
	escaped := servedSample()
	for i := range escaped.ServedBy {
		escaped.ServedBy[i].URL = "http://a/f?x=1&y=<2>&z=\u2028" // each escaped byte takes six
	}
	escaped.Sources = nil
	escaped.URL = "http://a/f?x=1&y=<2>&z=\u2028"
	// Numbers as wide as they go, a hash state and escaped URLs: little
	// slack is left, so a bound that misses a part fails here.
	widest := &Manifest{Size: math.MaxInt64, Segments: []Segment{
		seg(0, math.MaxInt64-1, math.MaxInt64-1),
		seg(math.MaxInt64-1, math.MaxInt64, 1),
	}, HashAlgo: "sha512", HashPos: math.MaxInt64 - 1, HashState: state,
		URL: escaped.URL,
	}
	withPieces := sample(1<<30, 1) // pieces of 16 KiB: 8 KiB of bits
	withPieces.PieceLength = 16 << 10
	withPieces.PiecesVerified = make([]byte, (1<<30)/(16<<10)/8)
	withPieces.PiecesVerified[0] = 0xff
	for i := range int64(40) {
		widest.ServedBy = append(widest.ServedBy, Served{URL: escaped.URL, Start: math.MaxInt64 - 100 + 2*i, End: math.MaxInt64 - 99 + 2*i})
	}
	for _, tt := range []struct {
		name string
		m    *Manifest
	}{
		{"size=1/segments=1", sample(1, 1)},
		{"size=1000/segments=1000", sample(1000, 1000)},
		{"size=1TiB/segments=16384/sha512", withHash},
		{"served-by-two", servedSample()},
		{"escaped-urls", escaped},
		{"widest-numbers", widest},
		{"pieces", withPieces},
	} {
		t.Run(tt.name, func(t *testing.T) {
			actual := int64(len(mustEncode(t, tt.m)))
			bare := *tt.m
			bare.Segments, bare.ServedBy, bare.HashState, bare.HashAlgo, bare.PiecesVerified = nil, nil, nil, "", nil
			bound := SizeBound(&bare, len(tt.m.Segments), len(tt.m.ServedBy))
			if bound < actual {
				t.Fatalf("bound %d for an encoding of %d bytes", bound, actual)
			}
			if bound > 2*actual+4096 {
				t.Errorf("bound %d for an encoding of %d bytes: too loose", bound, actual)
			}
		})
	}
}
