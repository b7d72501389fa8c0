package segment

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/convoy-dl/convoy/internal/ranges"
)

// spanRange returns the bounds of s as they are now.
func spanRange(s *Span) (start, end int64) {
	s.plan.mu.Lock()
	defer s.plan.mu.Unlock()
	return s.start, s.end
}

// nextByte returns the file offset of the first byte of s not yet handed to
// its writer.
func nextByte(s *Span) int64 {
	s.plan.mu.Lock()
	defer s.plan.mu.Unlock()
	return s.start + s.reserved
}

// checkPlan fails the test unless the plan's spans are in file order, cover
// [0, size) exactly, and keep written <= reserved <= length, and its
// snapshot covers [0, size) exactly.
func checkPlan(t testing.TB, p *Plan) {
	t.Helper()
	p.mu.Lock()
	var at int64
	for i, s := range p.spans {
		if s.start != at || s.end < s.start || (s.end == s.start && p.size != 0) {
			p.mu.Unlock()
			t.Fatalf("span %d is [%d,%d), want it to start at %d and be non-empty", i, s.start, s.end, at)
		}
		if s.written < 0 || s.written > s.reserved || s.start+s.reserved > s.end {
			p.mu.Unlock()
			t.Fatalf("span %d [%d,%d) has written %d, reserved %d", i, s.start, s.end, s.written, s.reserved)
		}
		at = s.end
	}
	p.mu.Unlock()
	if at != p.size {
		t.Fatalf("spans end at %d, size %d", at, p.size)
	}
	snap := p.Snapshot()
	if err := ranges.CheckCover(snap, p.size); err != nil {
		t.Fatalf("snapshot %v: %v", snap, err)
	}
	var w int64
	for _, s := range snap {
		w += s.Written
	}
	if got := p.Written(); got != w {
		t.Fatalf("Written() = %d, snapshot counts %d", got, w)
	}
}

func TestNewPlan(t *testing.T) {
	const (
		kib = 1 << 10
		mib = 1 << 20
		gib = 1 << 30
	)
	tests := []struct {
		size     int64
		parts    int
		minSplit int64
		want     []int64 // span lengths; nil: only the count matters
		count    int
	}{
		{size: 0, parts: 4, minSplit: 1, want: []int64{0}},
		{size: 1, parts: 4, minSplit: 1, want: []int64{1}},
		{size: 1, parts: 4, minSplit: 0, want: []int64{1}},
		{size: 2, parts: 4, minSplit: 0, want: []int64{1, 1}},
		{size: 100, parts: 0, minSplit: 1, want: []int64{100}},
		{size: 100, parts: 1, minSplit: 1, want: []int64{100}},
		{size: 100, parts: 8, minSplit: 1000, want: []int64{100}},
		{size: 100, parts: 8, minSplit: 51, want: []int64{100}},
		{size: 100, parts: 8, minSplit: 50, want: []int64{50, 50}},
		{size: 1000, parts: 4, minSplit: 0, want: []int64{250, 250, 250, 250}},
		{size: 1000, parts: 4, minSplit: 300, want: []int64{500, 500}},
		{size: 10, parts: 3, minSplit: 1, count: 3},
		{size: 1000003, parts: 7, minSplit: 1, count: 7},
		{size: 1000003, parts: 64, minSplit: 64 * kib, count: 8},
		{size: gib, parts: 16, minSplit: mib, want: slices.Repeat([]int64{64 * mib}, 16)},
		{size: gib + 1, parts: 16, minSplit: mib, count: 16},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("size=%d/parts=%d/minSplit=%d", tt.size, tt.parts, tt.minSplit), func(t *testing.T) {
			p, err := NewPlan(tt.size, nil, tt.parts, tt.minSplit)
			if err != nil {
				t.Fatal(err)
			}
			checkPlan(t, p)
			if p.Size() != tt.size {
				t.Errorf("Size() = %d, want %d", p.Size(), tt.size)
			}
			snap := p.Snapshot()
			var lens []int64
			for _, s := range snap {
				if s.Written != 0 {
					t.Errorf("fresh plan has written bytes: %+v", s)
				}
				lens = append(lens, s.End-s.Start)
			}
			if tt.want != nil && !slices.Equal(lens, tt.want) {
				t.Fatalf("span lengths %v, want %v", lens, tt.want)
			}
			if tt.count != 0 && len(lens) != tt.count {
				t.Fatalf("%d spans %v, want %d", len(lens), lens, tt.count)
			}
			minSplit := max(tt.minSplit, 1)
			shortest, longest := slices.Min(lens), slices.Max(lens)
			if len(lens) > 1 && shortest < minSplit {
				t.Errorf("a span of %d bytes is below minSplit %d", shortest, minSplit)
			}
			if longest > 2*shortest+1 {
				t.Errorf("spans are unbalanced: %v", lens)
			}
			// The first len(lens) calls of Next hand out exactly these spans,
			// in file order, without splitting anything.
			for i, s := range snap {
				if s.End == s.Start {
					break
				}
				got, ok := p.Next()
				if !ok {
					t.Fatalf("Next %d: no span", i)
				}
				if start, end := spanRange(got); start != s.Start || end != s.End {
					t.Fatalf("Next %d = [%d,%d), want [%d,%d)", i, start, end, s.Start, s.End)
				}
			}
			if n := len(p.Snapshot()); n != len(snap) {
				t.Fatalf("handing out the initial spans changed the plan to %d spans", n)
			}
		})
	}
}

func TestNewPlanEmptyFile(t *testing.T) {
	p, err := NewPlan(0, nil, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := p.Next(); ok {
		t.Fatalf("Next on an empty file = %+v, want none", s)
	}
	if snap := p.Snapshot(); !slices.Equal(snap, []Segment{{Start: 0, End: 0, Written: 0}}) {
		t.Fatalf("Snapshot = %v", snap)
	}
}

func TestNewPlanInvalid(t *testing.T) {
	tests := []struct {
		name string
		size int64
		segs []Segment
	}{
		{"negative size", -1, nil},
		{"empty list", 10, []Segment{}},
		{"gap", 10, []Segment{seg(0, 4, 0), seg(5, 10, 0)}},
		{"overlap", 10, []Segment{seg(0, 6, 0), seg(5, 10, 0)}},
		{"not from 0", 10, []Segment{seg(1, 10, 0)}},
		{"short", 10, []Segment{seg(0, 9, 0)}},
		{"long", 10, []Segment{seg(0, 11, 0)}},
		{"reversed", 10, []Segment{seg(0, 5, 0), seg(5, 4, 0), seg(4, 10, 0)}},
		{"empty segment", 10, []Segment{seg(0, 5, 0), seg(5, 5, 0), seg(5, 10, 0)}},
		{"written past end", 10, []Segment{seg(0, 5, 6), seg(5, 10, 0)}},
		{"written negative", 10, []Segment{seg(0, 5, -1), seg(5, 10, 0)}},
		{"out of order", 10, []Segment{seg(5, 10, 0), seg(0, 5, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := NewPlan(tt.size, tt.segs, 4, 1); err == nil {
				t.Fatalf("NewPlan(%d, %v) = %v, want an error", tt.size, tt.segs, p.Snapshot())
			}
		})
	}
}

// drain takes every span the plan hands out, reserves and commits all its
// bytes, and returns the ranges it reserved in the order they came.
func drain(t *testing.T, p *Plan) []Segment {
	t.Helper()
	var got []Segment
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("Next keeps handing out work")
		}
		s, ok := p.Next()
		if !ok {
			break
		}
		for j := 0; ; j++ {
			if j > 1000 {
				t.Fatal("reserve keeps granting bytes")
			}
			off, n := s.reserve(7)
			if n == 0 {
				break
			}
			got = append(got, Segment{Start: off, End: off + n})
			s.commit(n)
		}
		if !s.done() {
			t.Fatalf("span %+v not done after reserving all of it", s)
		}
		s.finish()
		checkPlan(t, p)
	}
	return got
}

// merged sorts and joins adjacent ranges.
func merged(rs []Segment) []Segment {
	slices.SortFunc(rs, func(a, b Segment) int { return int(a.Start - b.Start) })
	var out []Segment
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].End == r.Start {
			out[n-1].End = r.End
			continue
		}
		out = append(out, Segment{Start: r.Start, End: r.End})
	}
	return out
}

func TestNewPlanResume(t *testing.T) {
	tests := []struct {
		name    string
		size    int64
		segs    []Segment
		parts   int
		missing []Segment // what is left to fetch
	}{
		{"all written", 100, []Segment{seg(0, 100, 100)}, 4, nil},
		{"none written", 100, []Segment{seg(0, 50, 0), seg(50, 100, 0)}, 4, []Segment{seg(0, 100, 0)}},
		{"prefixes", 1000, []Segment{seg(0, 100, 100), seg(100, 200, 50), seg(200, 1000, 0)}, 4,
			[]Segment{seg(150, 1000, 0)}},
		{"holes", 1000, []Segment{seg(0, 300, 10), seg(300, 600, 300), seg(600, 1000, 399)}, 8,
			[]Segment{seg(10, 300, 0), seg(999, 1000, 0)}},
		{"one byte left", 1000, []Segment{seg(0, 1000, 999)}, 8, []Segment{seg(999, 1000, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(tt.size, tt.segs, tt.parts, 10)
			if err != nil {
				t.Fatal(err)
			}
			checkPlan(t, p)
			var written int64
			for _, s := range tt.segs {
				written += s.Written
			}
			if got := p.Written(); got != written {
				t.Fatalf("Written() = %d, want %d", got, written)
			}
			got := merged(drain(t, p))
			if !slices.Equal(got, tt.missing) {
				t.Fatalf("fetched %v, want exactly the missing bytes %v", got, tt.missing)
			}
			if p.Written() != tt.size {
				t.Fatalf("Written() = %d after draining, want %d", p.Written(), tt.size)
			}
			if snap := p.Snapshot(); !slices.Equal(snap, []Segment{seg(0, tt.size, tt.size)}) {
				t.Fatalf("Snapshot after draining = %v, want one complete segment", snap)
			}
		})
	}
}

func TestNextStealsBackHalf(t *testing.T) {
	p, err := NewPlan(1000, nil, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := p.Next()
	if !ok {
		t.Fatal("no first span")
	}
	if off, n := a.reserve(200); off != 0 || n != 200 {
		t.Fatalf("reserve(200) = %d, %d", off, n)
	}
	b, ok := p.Next()
	if !ok {
		t.Fatal("no steal")
	}
	// The back half of the 800 unreserved bytes.
	if start, end := spanRange(b); start != 600 || end != 1000 {
		t.Fatalf("stolen span [%d,%d), want [600,1000)", start, end)
	}
	if start, end := spanRange(a); start != 0 || end != 600 {
		t.Fatalf("victim now [%d,%d), want [0,600)", start, end)
	}
	checkPlan(t, p)
	// The victim's writer is cut off at the new end.
	if off, n := a.reserve(1000); off != 200 || n != 400 {
		t.Fatalf("victim reserve(1000) = %d, %d; want 200, 400", off, n)
	}
	if off, n := a.reserve(1); n != 0 {
		t.Fatalf("victim reserve past its end = %d, %d", off, n)
	}
	// The next thief takes from the span with the most left: b.
	c, ok := p.Next()
	if !ok {
		t.Fatal("no second steal")
	}
	if start, end := spanRange(c); start != 800 || end != 1000 {
		t.Fatalf("second steal [%d,%d), want [800,1000)", start, end)
	}
	checkPlan(t, p)
}

func TestNextStealThreshold(t *testing.T) {
	const size, minSplit = 100, 30
	tests := []struct {
		reserved  int64
		wantSteal bool
	}{
		{0, true},
		{39, true},
		{40, true}, // 60 left = 2*minSplit
		{41, false},
		{70, false},
		{100, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("reserved=%d", tt.reserved), func(t *testing.T) {
			p, err := NewPlan(size, nil, 1, minSplit)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := p.Next()
			a.reserve(tt.reserved)
			b, ok := p.Next()
			if ok != tt.wantSteal {
				t.Fatalf("Next stole = %v, want %v", ok, tt.wantSteal)
			}
			if !ok {
				return
			}
			as, ae := spanRange(a)
			bs, be := spanRange(b)
			if ae != bs || be != size || as != 0 {
				t.Fatalf("after steal [%d,%d) + [%d,%d)", as, ae, bs, be)
			}
			if left := ae - tt.reserved; left < minSplit {
				t.Errorf("victim left with %d bytes, below minSplit", left)
			}
			if be-bs < minSplit {
				t.Errorf("thief got %d bytes, below minSplit", be-bs)
			}
		})
	}
}

// A thief takes the back half of the bytes no request in flight covers, so
// the owner's answer is never cut short while such bytes exist.
func TestNextSparesRequestInFlight(t *testing.T) {
	p, err := NewPlan(1000, nil, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Next()
	if off, end := a.request(300, Thief{}); off != 0 || end != 300 {
		t.Fatalf("request(300) = [%d,%d)", off, end)
	}
	a.reserve(100)
	b, ok := p.Next()
	if !ok {
		t.Fatal("no steal")
	}
	if start, end := spanRange(b); start != 650 || end != 1000 {
		t.Fatalf("stolen [%d,%d), want [650,1000): half of what lies past the request", start, end)
	}
	if n := p.Cuts(); n != 0 {
		t.Fatalf("Cuts() = %d after a split past the request in flight, want 0", n)
	}
	// The owner's whole answer still fits in its span.
	if off, n := a.reserve(200); off != 100 || n != 200 {
		t.Fatalf("owner reserve(200) = %d, %d; want 100, 200", off, n)
	}
	checkPlan(t, p)
}

// When every byte left is covered by a request in flight, only an answer
// that would still take long is split; a fast one is left alone.
func TestNextSplitsOnlySlowRequestInFlight(t *testing.T) {
	tests := []struct {
		rate      float64 // observed bytes per second of the answer in flight
		wantSteal bool
	}{
		{rate: 1e9, wantSteal: false}, // done in a microsecond
		{rate: 100, wantSteal: true},  // 10 s for the 1000 bytes left
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("rate=%g", tt.rate), func(t *testing.T) {
			p, err := NewPlan(1000, nil, 1, 10)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := p.Next()
			a.request(1000, Thief{})
			a.observe(tt.rate)
			b, ok := p.Next()
			if ok != tt.wantSteal {
				t.Fatalf("Next stole = %v, want %v", ok, tt.wantSteal)
			}
			if !ok {
				return
			}
			if start, end := spanRange(b); start != 500 || end != 1000 {
				t.Fatalf("stolen [%d,%d), want [500,1000)", start, end)
			}
			// The owner stops at the new end, mid-answer.
			if off, n := a.reserve(1000); off != 0 || n != 500 {
				t.Fatalf("owner reserve(1000) = %d, %d; want 0, 500", off, n)
			}
			checkPlan(t, p)
		})
	}
}

// A span that was handed out and given back unfinished is handed out again
// before anything is stolen.
func TestNextReturnsFinishedIncompleteSpan(t *testing.T) {
	p, err := NewPlan(1000, nil, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Next()
	a.reserve(300)
	a.commit(100)
	a.finish() // 200 reserved bytes were never written: they are free again
	b, ok := p.Next()
	if !ok || b != a {
		t.Fatalf("Next = %p, %v; want the unfinished span %p", b, ok, a)
	}
	if off := nextByte(b); off != 100 {
		t.Fatalf("next byte %d, want 100", off)
	}
	checkPlan(t, p)
}

func TestSnapshotMerges(t *testing.T) {
	tests := []struct {
		name string
		segs []Segment
		want []Segment
	}{
		{"complete then partial", []Segment{seg(0, 10, 10), seg(10, 20, 5), seg(20, 30, 10), seg(30, 40, 0)},
			[]Segment{seg(0, 20, 15), seg(20, 40, 10)}},
		{"partial then complete", []Segment{seg(0, 10, 5), seg(10, 20, 10)},
			[]Segment{seg(0, 10, 5), seg(10, 20, 10)}},
		{"all complete", []Segment{seg(0, 10, 10), seg(10, 20, 10), seg(20, 30, 10)},
			[]Segment{seg(0, 30, 30)}},
		{"none written", []Segment{seg(0, 10, 0), seg(10, 20, 0)},
			[]Segment{seg(0, 10, 0), seg(10, 20, 0)}},
		{"complete run then empty", []Segment{seg(0, 1, 1), seg(1, 2, 1), seg(2, 3, 0), seg(3, 4, 1)},
			[]Segment{seg(0, 3, 2), seg(3, 4, 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := tt.segs[len(tt.segs)-1].End
			p, err := NewPlan(size, tt.segs, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Snapshot(); !slices.Equal(got, tt.want) {
				t.Fatalf("Snapshot = %v, want %v", got, tt.want)
			}
			checkPlan(t, p)
		})
	}
}

// Snapshot counts only committed bytes: reserved ones are on their way, not
// on disk.
func TestSnapshotCountsOnlyCommitted(t *testing.T) {
	p, err := NewPlan(100, nil, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Next()
	a.reserve(30)
	a.commit(10)
	want := []Segment{seg(0, 50, 10), seg(50, 100, 0)}
	if got := p.Snapshot(); !slices.Equal(got, want) {
		t.Fatalf("Snapshot = %v, want %v", got, want)
	}
	if p.Written() != 10 {
		t.Fatalf("Written() = %d, want 10", p.Written())
	}
}

// Many connections take, reserve, commit and finish spans at once while
// snapshots are taken; every byte ends up reserved exactly once.
func TestPlanConcurrent(t *testing.T) {
	const size, workers = 1 << 16, 8
	p, err := NewPlan(size, nil, 3, 16)
	if err != nil {
		t.Fatal(err)
	}
	owner := make([]int32, size)
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	snapErr := make(chan error, 1)
	go func() {
		defer close(snapErr)
		var last int64
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			snap := p.Snapshot()
			if err := ranges.CheckCover(snap, size); err != nil {
				snapErr <- err
				return
			}
			var w int64
			for _, s := range snap {
				w += s.Written
			}
			if w < last {
				snapErr <- fmt.Errorf("written went down from %d to %d", last, w)
				return
			}
			last = w
		}
	}()
	for id := int32(1); id <= workers; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < size; i++ {
				s, ok := p.Next()
				if !ok {
					return
				}
				for j := 0; j < size; j++ {
					off, n := s.reserve(int64(1 + (i+j)%97))
					if n == 0 {
						break
					}
					mu.Lock()
					for k := off; k < off+n; k++ {
						if owner[k] != 0 {
							t.Errorf("byte %d reserved by %d and %d", k, owner[k], id)
						}
						owner[k] = id
					}
					mu.Unlock()
					s.commit(n)
				}
				s.finish()
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-snapErr; err != nil {
		t.Fatal(err)
	}
	for k, o := range owner {
		if o == 0 {
			t.Fatalf("byte %d never reserved", k)
		}
	}
	if p.Written() != size {
		t.Fatalf("Written() = %d, want %d", p.Written(), size)
	}
}

// Byte states of the FuzzPlan model.
const (
	byteFree     = iota // not reserved by anyone
	byteReserved        // handed to a writer, not yet committed
	byteWritten         // committed
)

// fuzzSpan is the model's view of a span a connection holds.
type fuzzSpan struct {
	s          *Span
	wEnd, rEnd int64 // file offsets where the written and reserved prefixes end
}

// FuzzPlan drives a random sequence of Next, request, observe, reserve,
// commit, release and finish on a plan and checks after each step that the plan
// covers the file exactly, that no byte is reserved twice, that the
// snapshot claims only committed bytes, and that the written total never
// goes down. It ends by finishing everything and checks the file is done.
func FuzzPlan(f *testing.F) {
	f.Add(uint16(1000), uint8(4), uint16(10), []byte{}, []byte{0, 0, 0, 1, 0, 50, 0, 0, 0, 2, 0, 20, 0, 1, 1, 200})
	f.Add(uint16(100), uint8(1), uint16(30), []byte{}, []byte{0, 0, 0, 1, 0, 40, 0, 0, 0, 1, 1, 255, 3, 0, 0, 0, 0, 0})
	f.Add(uint16(0), uint8(3), uint16(1), []byte{}, []byte{0, 0, 0, 0, 0, 0})
	f.Add(uint16(1), uint8(3), uint16(0), []byte{}, []byte{0, 0, 0, 1, 0, 1, 2, 0, 1})
	f.Add(uint16(4096), uint8(8), uint16(1), []byte{10, 255, 20, 0, 30, 128}, []byte{0, 0, 0, 0, 0, 0, 5, 0, 16, 1, 1, 9, 0, 0, 0, 2, 1, 3, 4, 1, 0, 0, 0, 0})
	f.Add(uint16(8000), uint8(2), uint16(100), []byte{128, 200}, []byte{0, 0, 0, 5, 0, 100, 1, 0, 30, 0, 0, 0, 1, 0, 255, 2, 0, 255, 3, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, size16 uint16, parts uint8, minSplit16 uint16, resume, ops []byte) {
		size := int64(size16) % 8193
		minSplit := int64(minSplit16) % 1024
		state := make([]uint8, size)

		// Optional earlier progress: segment lengths and written fractions.
		var segs []Segment
		if len(resume) >= 2 && size > 0 {
			var at int64
			for i := 0; i+1 < len(resume) && at < size; i += 2 {
				l := min(1+int64(resume[i])*size/256, size-at)
				if i+3 >= len(resume) {
					l = size - at
				}
				w := int64(resume[i+1]) * l / 255
				segs = append(segs, Segment{Start: at, End: at + l, Written: w})
				for k := at; k < at+w; k++ {
					state[k] = byteWritten
				}
				at += l
			}
			if at < size {
				segs = append(segs, Segment{Start: at, End: size})
			}
		}
		p, err := NewPlan(size, segs, int(parts%17), minSplit)
		if err != nil {
			t.Fatalf("NewPlan(%d, %v, %d, %d): %v", size, segs, parts%17, minSplit, err)
		}

		var held []*fuzzSpan
		known := map[*Span]bool{} // spans that existed before the step
		remember := func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, s := range p.spans {
				known[s] = true
			}
		}
		remember()
		lastWritten := p.Written()
		amount := func(b byte) int64 { return 1 + int64(b)*int64(b)*size/65025 }
		free := func(fs *fuzzSpan) { // reserved, uncommitted bytes go back
			for k := fs.wEnd; k < fs.rEnd; k++ {
				if state[k] != byteReserved {
					t.Fatalf("byte %d of a held reservation is in state %d", k, state[k])
				}
				state[k] = byteFree
			}
			fs.rEnd = fs.wEnd
		}
		verify := func(step int) {
			t.Helper()
			checkPlan(t, p)
			var written int64
			for _, st := range state {
				if st == byteWritten {
					written++
				}
			}
			w := p.Written()
			if w != written {
				t.Fatalf("step %d: Written() = %d, model has %d", step, w, written)
			}
			if w < lastWritten {
				t.Fatalf("step %d: Written() went down from %d to %d", step, lastWritten, w)
			}
			lastWritten = w
			for _, seg := range p.Snapshot() {
				for k := seg.Start; k < seg.Start+seg.Written; k++ {
					if state[k] != byteWritten {
						t.Fatalf("step %d: snapshot %+v claims byte %d, which is in state %d", step, seg, k, state[k])
					}
				}
			}
			for _, fs := range held {
				start, end := spanRange(fs.s)
				if fs.s.written != fs.wEnd-start || fs.s.reserved != fs.rEnd-start {
					t.Fatalf("step %d: span [%d,%d) has written %d reserved %d, model %d %d",
						step, start, end, fs.s.written, fs.s.reserved, fs.wEnd-start, fs.rEnd-start)
				}
				if fs.rEnd > end {
					t.Fatalf("step %d: span [%d,%d) lost reserved bytes up to %d", step, start, end, fs.rEnd)
				}
			}
		}
		verify(-1)

		const maxOps = 400
		for i := 0; i+2 < len(ops) && i/3 < maxOps; i += 3 {
			op, arg := ops[i]%7, ops[i+2]
			var fs *fuzzSpan
			if len(held) > 0 {
				fs = held[int(ops[i+1])%len(held)]
			}
			switch {
			case op == 0:
				s, ok := p.Next()
				if !ok {
					// No span is waiting for a connection.
					p.mu.Lock()
					pending := p.pending()
					p.mu.Unlock()
					if pending != 0 {
						t.Fatalf("step %d: Next found no work with %d spans pending", i, pending)
					}
					break
				}
				for _, h := range held {
					if h.s == s {
						t.Fatalf("step %d: Next handed out a span already held", i)
					}
				}
				start, end := spanRange(s)
				off := nextByte(s)
				if off >= end {
					t.Fatalf("step %d: Next handed out [%d,%d) with nothing left (next %d)", i, start, end, off)
				}
				if !known[s] {
					// A steal: both halves keep at least minSplit bytes to fetch.
					p.mu.Lock()
					j := slices.Index(p.spans, s)
					victim := p.spans[j-1]
					victimLeft := victim.end - (victim.start + victim.reserved)
					p.mu.Unlock()
					if end-start < max(minSplit, 1) || victimLeft < max(minSplit, 1) {
						t.Fatalf("step %d: steal left the thief %d and the victim %d bytes, minSplit %d",
							i, end-start, victimLeft, minSplit)
					}
				}
				held = append(held, &fuzzSpan{s: s, wEnd: off, rEnd: off})
			case fs == nil:
			case op == 1:
				off, n := fs.s.reserve(amount(arg))
				if off != fs.rEnd || n < 0 {
					t.Fatalf("step %d: reserve = %d, %d; the reserved prefix ends at %d", i, off, n, fs.rEnd)
				}
				for k := off; k < off+n; k++ {
					if state[k] != byteFree {
						t.Fatalf("step %d: reserve granted byte %d, which is in state %d", i, k, state[k])
					}
					state[k] = byteReserved
				}
				fs.rEnd += n
			case op == 2:
				n := min(amount(arg), fs.rEnd-fs.wEnd)
				fs.s.commit(n)
				for k := fs.wEnd; k < fs.wEnd+n; k++ {
					state[k] = byteWritten
				}
				fs.wEnd += n
			case op == 3:
				fs.s.finish()
				free(fs)
				held = slices.DeleteFunc(held, func(h *fuzzSpan) bool { return h == fs })
			case op == 4:
				fs.s.release()
				free(fs)
			case op == 5:
				off, end := fs.s.request(amount(arg), Thief{})
				if off != fs.rEnd || end < off {
					t.Fatalf("step %d: request = [%d,%d), reserved prefix ends at %d", i, off, end, fs.rEnd)
				}
			case op == 6:
				// A slow answer (arg/4 bytes per second) invites a steal of
				// bytes already requested.
				fs.s.observe(float64(arg) / 4)
			}
			verify(i)
			remember()
		}

		// Every connection stops; then one connection does all that is left.
		for _, fs := range held {
			fs.s.finish()
			free(fs)
		}
		held = nil
		verify(maxOps)
		for i := 0; ; i++ {
			if i > int(size)+2 {
				t.Fatal("Next keeps handing out work")
			}
			s, ok := p.Next()
			if !ok {
				break
			}
			off, n := s.reserve(size)
			for k := off; k < off+n; k++ {
				if state[k] != byteFree {
					t.Fatalf("drain: reserve granted byte %d in state %d", k, state[k])
				}
				state[k] = byteWritten
			}
			s.commit(n)
			if !s.done() {
				t.Fatal("drain: span not done after reserving all of it")
			}
			s.finish()
			verify(maxOps + i)
		}
		if w := p.Written(); w != size {
			t.Fatalf("plan ends with %d of %d bytes written", w, size)
		}
		if snap := p.Snapshot(); !slices.Equal(snap, []Segment{{Start: 0, End: size, Written: size}}) {
			t.Fatalf("final snapshot %v, want one complete segment", snap)
		}
	})
}

// seg is a Segment literal.
func seg(start, end, written int64) Segment {
	return Segment{Start: start, End: end, Written: written}
}

func TestPlanWait(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		setup func(p *Plan)
		ctx   context.Context
		want  bool
	}{
		{"all written", func(p *Plan) {
			s, _ := p.Next()
			s.reserve(p.Size())
			s.commit(p.Size())
			s.finish()
		}, context.Background(), false},
		{"span in flight", func(p *Plan) {
			s, _ := p.Next()
			s.reserve(10)
		}, context.Background(), true},
		{"span in flight, context ended", func(p *Plan) { p.Next() }, canceled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(100, nil, 1, 100)
			if err != nil {
				t.Fatal(err)
			}
			tt.setup(p)
			if got := p.Wait(tt.ctx); got != tt.want {
				t.Fatalf("Wait = %v, want %v", got, tt.want)
			}
		})
	}
}

// An idle connection waiting on the plan while another gives up its span
// unfinished comes back and finds the work that span left behind.
func TestPlanWaitWakesOnFinish(t *testing.T) {
	// In a bubble time stands still until every goroutine is blocked, so
	// the waiter is seen blocked in Wait before the span is given up, and a
	// return through Wait's recheck timer would show as time passed.
	synctest.Test(t, func(t *testing.T) {
		p, err := NewPlan(100, nil, 1, 100)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := p.Next()
		a.reserve(40)
		a.commit(40)
		if _, ok := p.Next(); ok {
			t.Fatal("a span too small to split was split")
		}
		began := time.Now()
		done := make(chan bool, 1)
		go func() { done <- p.Wait(context.Background()) }()
		synctest.Wait() // the waiter is blocked, or has returned
		select {
		case ok := <-done:
			t.Fatalf("Wait = %v before the span was given up: it did not wait", ok)
		default:
		}
		a.finish() // the owner gives up the span with 60 bytes left
		synctest.Wait()
		select {
		case ok := <-done:
			if !ok {
				t.Fatal("Wait = false with 60 bytes left")
			}
		default:
			ok := <-done // lets the recheck timer fire, so the bubble ends
			t.Fatalf("Wait did not wake when the span was given up; it returned %v %v later, through its recheck timer", ok, time.Since(began))
		}
		if d := time.Since(began); d != 0 {
			t.Fatalf("Wait returned %v after it began: through its timer, not the wake-up", d)
		}
		b, ok := p.Next()
		if !ok || b != a || nextByte(b) != 40 {
			t.Fatalf("after the wait Next = %v, %v; want the span given up, from byte 40", b, ok)
		}
	})
}

// An answer in flight is cut where its owner and the thief finish together:
// a thief four times as fast takes four fifths of what is left, less what
// its request latency costs it.
func TestNextForCutsByRate(t *testing.T) {
	tests := []struct {
		name      string
		thief     Thief
		ownerRate float64
		wantCut   int64 // -1: no steal
	}{
		{"faster thief", Thief{Rate: 400}, 100, 200},
		{"faster thief with latency", Thief{Rate: 400, Latency: time.Second}, 100, 280},
		{"unknown thief takes half", Thief{}, 100, 500},
		{"equal rates take half", Thief{Rate: 100}, 100, 500},
		{"slower thief takes less", Thief{Rate: 25}, 100, 800},
		// 1000 bytes at 10 kB/s need 100 ms: no cut can gain minGain.
		{"owner nearly done", Thief{Rate: 1e6}, 1e4, -1},
		// 1000 bytes at 2 kB/s need 500 ms, under stealAfter: a cut in half
		// would gain 250 ms, but a thief no faster than the owner is not
		// worth the bytes a cut wastes; one of another mirror four times
		// as fast is.
		{"short answer, equal thief", Thief{Rate: 2000, Source: 1}, 2000, -1},
		{"short answer, faster mirror", Thief{Rate: 8000, Source: 1}, 2000, 200},
		// Connections to one server share its bottleneck: a faster
		// recent answer there is noise, not a faster path.
		{"short answer, faster thief of the same server", Thief{Rate: 8000}, 2000, -1},
		// A probe may be refused: the cut would waste the owner's bytes
		// in flight for nothing.
		{"probe", Thief{Rate: 400, Probe: true}, 100, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(1000, nil, 1, 10)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := p.Next()
			a.request(1000, Thief{})
			a.observe(tt.ownerRate)
			b, ok := p.NextFor(tt.thief)
			if ok != (tt.wantCut >= 0) {
				t.Fatalf("NextFor stole = %v, want cut at %d", ok, tt.wantCut)
			}
			if cuts, want := p.Cuts(), map[bool]int{true: 1, false: 0}[ok]; cuts != want {
				t.Fatalf("Cuts() = %d, want %d", cuts, want)
			}
			if !ok {
				return
			}
			if start, end := spanRange(b); start != tt.wantCut || end != 1000 {
				t.Fatalf("stolen [%d,%d), want [%d,1000)", start, end, tt.wantCut)
			}
			if off, n := a.reserve(1000); off != 0 || n != tt.wantCut {
				t.Fatalf("owner reserve(1000) = %d, %d; want 0, %d", off, n, tt.wantCut)
			}
			checkPlan(t, p)
		})
	}
}

func TestReopen(t *testing.T) {
	tests := []struct {
		name       string
		segs       []Segment
		start, end int64
		want       []Segment
		reopened   int64
	}{
		{"middle of a complete span", []Segment{seg(0, 100, 100)}, 40, 60,
			[]Segment{seg(0, 60, 40), seg(60, 100, 40)}, 20},
		{"across two spans", []Segment{seg(0, 50, 50), seg(50, 100, 30)}, 40, 70,
			[]Segment{seg(0, 50, 40), seg(50, 70, 0), seg(70, 100, 10)}, 30},
		{"only unwritten bytes", []Segment{seg(0, 50, 10), seg(50, 100, 0)}, 20, 80,
			[]Segment{seg(0, 50, 10), seg(50, 100, 0)}, 0},
		{"a whole span", []Segment{seg(0, 50, 50), seg(50, 100, 50)}, 0, 50,
			[]Segment{seg(0, 50, 0), seg(50, 100, 50)}, 50},
		{"the end of a written prefix", []Segment{seg(0, 100, 60)}, 50, 60,
			[]Segment{seg(0, 60, 50), seg(60, 100, 0)}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(100, tt.segs, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Reopen(tt.start, tt.end); got != tt.reopened {
				t.Fatalf("Reopen = %d, want %d", got, tt.reopened)
			}
			checkPlan(t, p)
			if got := p.Snapshot(); !slices.Equal(got, tt.want) {
				t.Fatalf("Snapshot = %v, want %v", got, tt.want)
			}
		})
	}
}

// A span being fetched keeps its connection for the bytes after the
// reopened ones, and the reopened bytes go to the next connection asking.
func TestReopenSpanInFlight(t *testing.T) {
	p, err := NewPlan(100, nil, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Next()
	off, n := a.reserve(60)
	if off != 0 || n != 60 {
		t.Fatalf("reserve = %d, %d", off, n)
	}
	a.commit(50) // 10 bytes on their way to disk
	changed := p.changed
	if got := p.Reopen(20, 30); got != 10 {
		t.Fatalf("Reopen = %d, want 10", got)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Reopen did not wake idle connections")
	}
	checkPlan(t, p)
	a.commit(10)
	if off, n := a.reserve(100); off != 60 || n != 40 {
		t.Fatalf("the owner continues at %d with %d bytes, want 60 and 40", off, n)
	}
	a.commit(40)
	a.finish()
	b, ok := p.Next()
	if !ok {
		t.Fatal("no work handed out for the reopened bytes")
	}
	if s, e := spanRange(b); s != 20 || e != 30 {
		t.Fatalf("next span is [%d,%d), want [20,30)", s, e)
	}
	b.reserve(10)
	b.commit(10)
	b.finish()
	checkPlan(t, p)
	if got, want := p.Snapshot(), []Segment{seg(0, 100, 100)}; !slices.Equal(got, want) {
		t.Fatalf("Snapshot = %v, want %v", got, want)
	}
}

// An owner whose every byte is reopened finds its span done and empty; the
// bytes belong to a new span.
func TestReopenWholeSpanInFlight(t *testing.T) {
	p, err := NewPlan(100, nil, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Next()
	a.reserve(100)
	a.commit(100)
	p.Reopen(0, 100)
	checkPlan(t, p)
	if !a.done() {
		t.Fatal("the emptied span is not done")
	}
	a.finish()
	if got, want := p.Snapshot(), []Segment{seg(0, 100, 0)}; !slices.Equal(got, want) {
		t.Fatalf("Snapshot = %v, want %v", got, want)
	}
}

// A thief gets a share of the bytes not yet requested by its rate and the
// owner's, so that both end together, the owner after its answer in
// flight: a much slower thief gets nothing, a much faster one all but
// minSplit.
func TestNextSharesByRate(t *testing.T) {
	tests := []struct {
		name      string
		thief     float64
		wantSteal bool
		wantStart int64
	}{
		// The owner has 200 bytes in flight (0.2 s) before the 800
		// not requested: it keeps what it fetches in the time the thief
		// takes for the rest.
		{"as fast", 1000, true, 500},             // both end at 0.5 s
		{"three times as fast", 3000, true, 250}, // both at 0.25 s
		{"much faster", 1e9, true, 210},          // all but minSplit
		{"much slower", 1, false, 0},             // less than minSplit
		{"unknown rate", 0, true, 600},           // half
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(1000, nil, 1, 10)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := p.Next()
			a.request(200, Thief{})
			a.observe(1000)
			b, ok := p.NextFor(Thief{Rate: tt.thief, Source: 1})
			if ok != tt.wantSteal {
				t.Fatalf("steal = %v, want %v", ok, tt.wantSteal)
			}
			if !ok {
				if s, e := spanRange(a); s != 0 || e != 1000 {
					t.Fatalf("the owner's span is [%d,%d), want it whole", s, e)
				}
				return
			}
			if s, e := spanRange(b); s != tt.wantStart || e != 1000 {
				t.Fatalf("stolen span [%d,%d), want [%d,1000)", s, e, tt.wantStart)
			}
			checkPlan(t, p)
		})
	}
}

// Reopened bytes that source 0 sent bad go to no connection of source 0,
// not even by a split, while source 1 works on the plan; the halves split
// off them avoid it too. Once source 1 has left, source 0 takes them.
func TestReopenAvoiding(t *testing.T) {
	p, err := NewPlan(100, []Segment{seg(0, 100, 100)}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	p.join(0, 2)
	p.join(1, 1)
	p.join(2, 1)
	if got := p.ReopenAvoiding(20, 60, 0); got != 40 {
		t.Fatalf("ReopenAvoiding = %d, want 40", got)
	}
	checkPlan(t, p)
	if s, ok := p.NextFor(Thief{Source: 0}); ok {
		a, b := spanRange(s)
		t.Fatalf("source 0 was handed [%d,%d)", a, b)
	}
	one, ok := p.NextFor(Thief{Source: 1})
	if a, b := spanRange(one); !ok || a != 20 || b != 60 {
		t.Fatalf("source 1 was handed [%d,%d), %v; want [20,60)", a, b, ok)
	}
	if s, ok := p.NextFor(Thief{Source: 0}); ok {
		a, b := spanRange(s)
		t.Fatalf("source 0 split off [%d,%d) of a span that avoids it", a, b)
	}
	two, ok := p.NextFor(Thief{Source: 2})
	if !ok {
		t.Fatal("source 2 could not split the span of source 1")
	}
	two.finish() // source 2's connection failed: its half waits for another
	if s, ok := p.NextFor(Thief{Source: 0}); ok {
		a, b := spanRange(s)
		t.Fatalf("source 0 was handed [%d,%d), split off a span that avoids it", a, b)
	}
	changed := p.changed
	p.leave(1)
	p.leave(2)
	select {
	case <-changed:
	default:
		t.Fatal("leave did not wake idle connections")
	}
	if _, ok := p.NextFor(Thief{Source: 0}); !ok {
		t.Fatal("source 0, alone, was not handed the bytes that avoid it")
	}
	checkPlan(t, p)
}

// Bytes that avoid a source go to it when no other source works on the
// plan at all (a lone server), and Reopen avoids nobody.
func TestReopenAvoidingLoneSource(t *testing.T) {
	p, err := NewPlan(100, []Segment{seg(0, 100, 100)}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	p.join(0, 4)
	p.ReopenAvoiding(0, 10, 0)
	if _, ok := p.NextFor(Thief{Source: 0}); !ok {
		t.Fatal("the lone source was not handed the bytes it sent bad")
	}
	p.join(1, 1)
	p.Reopen(50, 60)
	if _, ok := p.NextFor(Thief{Source: 0}); !ok {
		t.Fatal("bytes reopened without a source to avoid were kept from source 0")
	}
}

// Near the end, a request asks for no more than an even share of the bytes
// not yet received among the connections fetching, so that they finish
// together; a rest too small for a request of its own joins the last one,
// unless the connection would take longer over it than over a request.
func TestRequestTakesAnEvenShareNearTheEnd(t *testing.T) {
	segs := []Segment{{Start: 0, End: 8 * mib}, {Start: 8 * mib, End: 12 * mib}, {Start: 12 * mib, End: 16 * mib}}
	for _, tt := range []struct {
		name string
		pace Thief
		rest bool // the half floor is left for another connection
	}{
		{"pace unknown", Thief{}, false},
		{"fast", Thief{Rate: 100 * mib, Latency: 10 * time.Millisecond}, false},                 // 1.25 ms < 10 ms
		{"fast, short latency", Thief{Rate: 100 * mib, Latency: 100 * time.Microsecond}, false}, // 1.25 ms < restTime
		{"slow", Thief{Rate: mib, Latency: 10 * time.Millisecond}, true},                        // 125 ms > 10 ms
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(16*mib, segs, 3, mib)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := p.Next()
			p.Next()
			p.Next()
			if off, end := a.request(16*mib/3, Thief{}); off != 0 || end != 16*mib/3 {
				t.Fatalf("request = [%d,%d), want [0,%d): a third of what is left", off, end, 16*mib/3)
			}
			// Once a has 4 MiB and three quarters of a floor left, its
			// share, a third of that and the others' 8 MiB, would leave
			// half a floor behind.
			a.request(4*mib-endFloor*3/4, Thief{})
			a.reserve(4*mib - endFloor*3/4)
			want := int64(8 * mib)
			if tt.rest {
				want -= endFloor / 2
			}
			off, end := a.request(64*mib, tt.pace)
			if off != 4*mib-endFloor*3/4 || end < want-2 || end > want+2 {
				t.Fatalf("request = [%d,%d), want it to end at %d", off, end, want)
			}
			checkPlan(t, p)
		})
	}
}

// An answer in flight that ends late keeps its connection from the bytes
// not yet requested: the others' shares are larger than an even split. The
// pace of an answer younger than paceAge is not its own yet: its first
// bytes may come in a burst.
func TestRequestShareCountsAnswersInFlight(t *testing.T) {
	for _, tt := range []struct {
		name string
		age  time.Duration // of b's answer
		want int64
	}{
		// Free now: a at 1 MiB/s, c at the mean pace, 0.75 MiB/s; they
		// share a's 8 MiB and c's 4 MiB and end at 12/1.75 s, before b.
		{"settled", time.Second, 12 * mib * 4 / 7},
		// b's pace counts as a's: all three end together, at 16/3 s.
		{"young", 0, 16 * mib / 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			segs := []Segment{{Start: 0, End: 8 * mib}, {Start: 8 * mib, End: 12 * mib}, {Start: 12 * mib, End: 16 * mib}}
			p, err := NewPlan(16*mib, segs, 3, mib)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := p.Next()
			b, _ := p.Next()
			p.Next()
			b.request(4*mib, Thief{})
			b.askedAt = b.askedAt.Add(-tt.age)
			b.observe(mib / 2) // 8 s in flight, at its own pace
			if off, end := a.request(64*mib, Thief{Rate: mib}); off != 0 || end < tt.want-2 || end > tt.want+2 {
				t.Fatalf("request = [%d,%d), want [0,%d)", off, end, tt.want)
			}
			checkPlan(t, p)
		})
	}
}

// A slow answer's bytes not yet requested are split finer than minSplit,
// down to what it fetches in splitTime: near the end, a throttled
// connection's last mebibyte would otherwise hold the tail alone. A fast
// answer's are not: its owner fetches them sooner than a new request.
func TestSplitFloorFollowsTheOwnersRate(t *testing.T) {
	for _, tt := range []struct {
		name  string
		rate  float64
		steal bool
	}{
		{"slow", mib, true},        // 1.5 MiB left: 1.5 s at 1 MiB/s
		{"fast", 100 * mib, false}, // 15 ms at 100 MiB/s
		{"unknown", 0, false},      // no rate yet: minSplit holds
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(2*mib, nil, 1, mib)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := p.Next()
			a.request(mib/2, Thief{}) // 1.5 MiB not requested
			a.observe(tt.rate)
			b, ok := p.NextFor(Thief{Source: 0})
			if ok != tt.steal {
				t.Fatalf("steal = %v, want %v", ok, tt.steal)
			}
			if ok {
				if s, e := spanRange(b); e != 2*mib || e-s < endFloor || s < mib/2+endFloor {
					t.Fatalf("stolen [%d,%d): want the back of the unrequested 1.5 MiB, each part %d or more", s, e, endFloor)
				}
				if p.cuts != 0 {
					t.Fatal("the answer in flight was cut: the bytes not yet requested were enough")
				}
			}
			checkPlan(t, p)
		})
	}
}

// A rest of a span too small to split goes whole to an idle connection
// while its owner is busy with a long answer in flight, without cutting
// that answer; not when the owner would fetch it sooner.
func TestThiefTakesAWholeRestWhileTheOwnerIsBusy(t *testing.T) {
	for _, tt := range []struct {
		name  string
		owner float64 // the pace of the owner's answer in flight
		whole bool
	}{
		{"slow owner", mib, true},        // 1.75 s in flight; the thief needs 0.26 s
		{"fast owner", 100 * mib, false}, // it ends everything in 20 ms
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(2*mib, nil, 1, mib)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := p.Next()
			a.request(7*mib/4, Thief{}) // a quarter MiB not requested: under two floors
			a.observe(tt.owner)
			b, ok := p.NextFor(Thief{Rate: mib, Latency: 10 * time.Millisecond})
			if ok != tt.whole {
				t.Fatalf("steal = %v, want %v", ok, tt.whole)
			}
			if ok {
				if s, e := spanRange(b); s != 7*mib/4 || e != 2*mib {
					t.Fatalf("stolen [%d,%d), want the whole rest [%d,%d)", s, e, 7*mib/4, 2*mib)
				}
				if p.cuts != 0 {
					t.Fatal("the answer in flight was cut")
				}
			}
			checkPlan(t, p)
		})
	}
}
