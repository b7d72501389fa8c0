package manifest

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkSave measures one checkpoint's manifest replacement (encode, temp
// file, fsync, rename, folder fsync) for several segment counts.
func BenchmarkSave(b *testing.B) {
	for _, n := range []int{16, 256} {
		b.Run(fmt.Sprintf("segments=%d", n), func(b *testing.B) {
			const seg = 1 << 20
			m := &Manifest{URL: "https://example.com/file.iso", Size: int64(n) * seg}
			for i := range n {
				m.Segments = append(m.Segments, Segment{Start: int64(i) * seg, End: int64(i+1) * seg, Written: seg / 2})
			}
			path := filepath.Join(b.TempDir(), "f.convoy")
			for b.Loop() {
				if err := Save(path, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
