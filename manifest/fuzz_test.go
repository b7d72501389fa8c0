package manifest

import (
	"reflect"
	"testing"

	"github.com/convoy-dl/convoy/internal/ranges"
)

// fuzzSeeds are also stored under testdata/fuzz/FuzzDecode.
var fuzzSeeds = []string{
	validJSON,
	`{"version":1,"kind":"convoy-manifest","url":"https://example.com/empty","size":0,"segments":[{"start":0,"end":0,"written":0}]}`,
	`{"version":1,"kind":"convoy-manifest","url":"u","final_url":"f","size":10,"etag":"\"e\"","last_modified":"Mon, 02 Jan 2006 15:04:05 GMT","segments":[{"start":0,"end":4,"written":4},{"start":4,"end":10,"written":1}]}`,
	validJSON[:len(validJSON)/2],
	validJSON + "x",
	`{"version":2,"kind":"convoy-manifest","size":0,"segments":[{"start":0,"end":0,"written":0}]}`,
	`{"version":1,"kind":"convoy-manifest","size":-1,"segments":[{"start":0,"end":0,"written":0}]}`,
	`{"version":1,"kind":"convoy-manifest","size":30,"segments":[{"start":0,"end":10,"written":0},{"start":11,"end":30,"written":0}]}`,
	`{"version":1,"kind":"convoy-manifest","size":0,"segments":[{"start":0,"end":0,"written":0},{"start":0,"end":0,"written":0}]}`,
	`{"name":"left-pad","version":"1.3.0"}`,
	`{"version":1,"kind":"convoy-manifest","url":"u","size":10,"segments":[{"start":0,"end":10,"written":6}],"served_by":[{"url":"http://a/f","start":0,"end":4},{"url":"http://b/f","start":4,"end":6}]}`,
	`{"version":1,"kind":"convoy-manifest","url":"u","size":10,"segments":[{"start":0,"end":10,"written":6}],"served_by":[{"url":"http://a/f","start":4,"end":6},{"url":"http://b/f","start":0,"end":4}]}`,
	`{"version":1,"kind":"convoy-manifest","url":"u","size":30,"segments":[{"start":0,"end":10,"written":10},{"start":10,"end":30,"written":5}],"piece_length":8,"pieces_verified":"AQ=="}`,
	`{"version":1,"kind":"convoy-manifest","url":"u","size":30,"segments":[{"start":0,"end":30,"written":30}],"piece_length":4,"pieces_verified":"/38="}`,
	`{"version":1,"kind":"convoy-manifest","url":"u","size":30,"segments":[{"start":0,"end":10,"written":10},{"start":10,"end":30,"written":5}],"piece_length":8,"pieces_verified":"Ag=="}`,
	`null`,
	``,
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if m != nil {
				t.Fatalf("Decode returned a manifest with error %v", err)
			}
			return
		}
		if m.Version != Version || m.Kind != kind {
			t.Fatalf("Decode accepted version %d kind %q", m.Version, m.Kind)
		}
		if m.Size < 0 {
			t.Fatalf("Decode accepted size %d", m.Size)
		}
		if err := ranges.CheckCover(m.Segments, m.Size); err != nil {
			t.Fatalf("Decode accepted segments that fail CheckCover: %v", err)
		}
		if err := checkServed(m.ServedBy, m.Size); err != nil {
			t.Fatalf("Decode accepted served_by that fails checkServed: %v", err)
		}
		for i := range m.Pieces() {
			// Each verified piece is written, as counted another way.
			start := i * m.PieceLength
			end := min(start+min(m.PieceLength, m.Size-start), m.Size)
			if m.PieceVerified(i) && ranges.WrittenIn(m.Segments, start, end) != end-start {
				t.Fatalf("Decode accepted verified piece %d, bytes [%d,%d), not all written", i, start, end)
			}
		}
		if d := m.Done(); d < 0 || d > m.Size {
			t.Fatalf("Done() = %d outside [0, %d]", d, m.Size)
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode of a decoded manifest: %v", err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(m)): %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the manifest:\n got %+v\nwant %+v", m2, m)
		}
	})
}
