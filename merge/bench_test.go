package merge

import (
	"path/filepath"
	"testing"
)

// BenchmarkWriteAt measures 256 KiB writes into a preallocated part file
// (page cache, no sync).
func BenchmarkWriteAt(b *testing.B) {
	const size = 256 << 20
	p, err := Open(filepath.Join(b.TempDir(), "f.part"), size, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(buf)))
	var off int64
	for b.Loop() {
		if _, err := p.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
		off = (off + int64(len(buf))) % size
	}
}
