package ranges

import (
	"math"
	"testing"
)

func TestCheckCover(t *testing.T) {
	tests := []struct {
		name string
		segs []Segment
		size int64
		ok   bool
	}{
		{"one/full/size=10", []Segment{{0, 10, 10}}, 10, true},
		{"one/none-written/size=10", []Segment{{0, 10, 0}}, 10, true},
		{"three/contiguous/size=30", []Segment{{0, 10, 10}, {10, 20, 3}, {20, 30, 0}}, 30, true},
		{"empty-file/[0,0)/size=0", []Segment{{0, 0, 0}}, 0, true},
		{"huge/size=maxint64", []Segment{{0, math.MaxInt64 / 2, 7}, {math.MaxInt64 / 2, math.MaxInt64, math.MaxInt64 - math.MaxInt64/2}}, math.MaxInt64, true},

		{"nil-list/size=0", nil, 0, false},
		{"empty-list/size=10", []Segment{}, 10, false},
		{"first-not-at-0/size=10", []Segment{{1, 10, 0}}, 10, false},
		{"negative-start/size=10", []Segment{{-1, 10, 0}}, 10, false},
		{"gap/size=30", []Segment{{0, 10, 0}, {11, 30, 0}}, 30, false},
		{"overlap/size=30", []Segment{{0, 10, 0}, {9, 30, 0}}, 30, false},
		{"out-of-order/size=30", []Segment{{10, 30, 0}, {0, 10, 0}}, 30, false},
		{"duplicate/size=10", []Segment{{0, 10, 0}, {0, 10, 0}}, 10, false},
		{"reversed/size=10", []Segment{{0, 5, 0}, {5, 3, 0}}, 10, false},
		{"empty-segment-in-middle/size=10", []Segment{{0, 5, 0}, {5, 5, 0}, {5, 10, 0}}, 10, false},
		{"[0,0)/size=10", []Segment{{0, 0, 0}}, 10, false},
		{"written>length/size=10", []Segment{{0, 10, 11}}, 10, false},
		{"negative-written/size=10", []Segment{{0, 10, -1}}, 10, false},
		{"written-on-empty-file/size=0", []Segment{{0, 0, 1}}, 0, false},
		{"short-of-size/size=30", []Segment{{0, 10, 0}, {10, 20, 0}}, 30, false},
		{"past-size/size=10", []Segment{{0, 20, 0}}, 10, false},
		{"negative-size/size=-1", []Segment{{0, 0, 0}}, -1, false},
		{"negative-size-reversed/size=-5", []Segment{{0, -5, 0}}, -5, false},
		{"written-minint/size=10", []Segment{{0, 10, math.MinInt64}}, 10, false},
		{"written-maxint/size=10", []Segment{{0, 10, math.MaxInt64}}, 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCover(tt.segs, tt.size)
			if tt.ok && err != nil {
				t.Fatalf("CheckCover(%v, %d) = %v, want nil", tt.segs, tt.size, err)
			}
			if !tt.ok && err == nil {
				t.Fatalf("CheckCover(%v, %d) = nil, want an error", tt.segs, tt.size)
			}
		})
	}
}

// TestCheckCoverEmptyFileSingleSegment checks the documented rule "a single
// [0,0) for an empty file": more than one empty segment is not a cover.
func TestCheckCoverEmptyFileSingleSegment(t *testing.T) {
	for _, n := range []int{2, 3} {
		segs := make([]Segment, n)
		if err := CheckCover(segs, 0); err == nil {
			t.Errorf("CheckCover accepts %d [0,0) segments for an empty file; the doc allows a single one", n)
		}
	}
}

func TestRemaining(t *testing.T) {
	tests := []struct {
		s    Segment
		want int64
	}{
		{Segment{0, 10, 0}, 10},
		{Segment{0, 10, 10}, 0},
		{Segment{5, 10, 2}, 3},
		{Segment{0, 0, 0}, 0},
	}
	for _, tt := range tests {
		if got := tt.s.Remaining(); got != tt.want {
			t.Errorf("%+v.Remaining() = %d, want %d", tt.s, got, tt.want)
		}
	}
}

func TestWrittenIn(t *testing.T) {
	segs := []Segment{{0, 10, 10}, {10, 20, 3}, {20, 30, 0}, {30, 40, 10}}
	for _, tt := range []struct {
		start, end, want int64
	}{
		{0, 40, 23},
		{0, 10, 10},
		{5, 15, 8},
		{12, 13, 1},
		{13, 30, 0},
		{10, 13, 3},
		{25, 35, 5},
		{39, 40, 1},
		{40, 50, 0},
		{7, 7, 0},
	} {
		if got := WrittenIn(segs, tt.start, tt.end); got != tt.want {
			t.Errorf("WrittenIn(%d, %d) = %d, want %d", tt.start, tt.end, got, tt.want)
		}
	}
}

func TestRuns(t *testing.T) {
	segs := []Segment{{0, 10, 10}, {10, 20, 3}, {20, 30, 0}, {30, 40, 10}, {40, 50, 10}, {50, 60, 2}}
	want := [][2]int64{{0, 13}, {30, 52}}
	got := Runs(segs)
	if len(got) != len(want) {
		t.Fatalf("Runs = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Runs = %v, want %v", got, want)
		}
	}
}
