package convoy

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"

	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// The whole-file hash follows only verified pieces: with every byte
// written but no piece checked yet, it may not read past the start, so it
// never hashes bytes that a bad piece's refetch replaces later.
func TestHashFollowsVerifiedPieces(t *testing.T) {
	const size, length = 4000, 1000
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	p := merge.Pieces{Algo: "sha256", Length: length}
	for off := 0; off < size; off += length {
		sum := sha256.Sum256(data[off : off+length])
		p.Sums = append(p.Sums, sum[:])
	}
	part, err := merge.Open(filepath.Join(t.TempDir(), "f.part"), size, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer part.Close()
	if _, err := part.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	plan, err := segment.NewPlan(size, []segment.Segment{{Start: 0, End: size, Written: size}}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := &download{cfg: Config{Logf: func(string, ...any) {}}}
	pc, err := d.newPieceCheck(p, part, plan, resumed{}, segment.Remote{URL: "http://a/f", Size: size}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.close()
	prefix := pc.hashPrefix(func() int64 { return contiguousPrefix(plan.Snapshot()) })
	if got := prefix(); got != 0 {
		t.Fatalf("the hash may follow %d bytes before any piece is verified", got)
	}
	pc.v.Wrote(0, size)
	if err := pc.v.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := prefix(); got != size {
		t.Fatalf("the hash may follow %d bytes of %d verified", got, size)
	}
}
