// Package ranges defines the byte range record that the planner and the
// manifest share, and the rule every list of them obeys.
package ranges

import (
	"fmt"
	"sort"
)

// Segment is the state of one byte range [Start, End): the prefix
// [Start, Start+Written) is on disk, the rest is not.
type Segment struct {
	Start   int64 `json:"start"`
	End     int64 `json:"end"`
	Written int64 `json:"written"`
}

// Remaining is the number of bytes of s not yet written.
func (s Segment) Remaining() int64 { return s.End - s.Start - s.Written }

// CheckCover reports whether segs, in order, cover [0, size) exactly with no
// gap and no overlap, every segment non-empty (a single [0,0) for an empty
// file) and every written count within its segment.
func CheckCover(segs []Segment, size int64) error {
	if len(segs) == 0 {
		return fmt.Errorf("no segments")
	}
	var at int64
	for i, s := range segs {
		if s.Start != at {
			return fmt.Errorf("segment %d starts at %d, want %d", i, s.Start, at)
		}
		if s.End < s.Start || (s.End == s.Start && (size != 0 || len(segs) != 1)) {
			return fmt.Errorf("segment %d is empty or reversed: [%d,%d)", i, s.Start, s.End)
		}
		if s.Written < 0 || s.Written > s.End-s.Start {
			return fmt.Errorf("segment %d claims %d bytes written of %d", i, s.Written, s.End-s.Start)
		}
		at = s.End
	}
	if at != size {
		return fmt.Errorf("segments end at %d, size is %d", at, size)
	}
	return nil
}

// WrittenIn counts the written bytes of segs that lie in [start, end); segs
// are in file order without overlap, as CheckCover accepts.
func WrittenIn(segs []Segment, start, end int64) int64 {
	i := sort.Search(len(segs), func(k int) bool { return segs[k].End > start })
	var n int64
	for ; i < len(segs) && segs[i].Start < end; i++ {
		s := segs[i]
		if lo, hi := max(start, s.Start), min(end, s.Start+s.Written); hi > lo {
			n += hi - lo
		}
	}
	return n
}

// Runs returns the maximal runs [start, end) of written bytes of segs, in
// order; segs are in file order without overlap, as CheckCover accepts.
func Runs(segs []Segment) [][2]int64 {
	var out [][2]int64
	for _, s := range segs {
		if s.Written <= 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1][1] == s.Start {
			out[n-1][1] = s.Start + s.Written
			continue
		}
		out = append(out, [2]int64{s.Start, s.Start + s.Written})
	}
	return out
}
