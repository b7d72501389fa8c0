package segment

import (
	"fmt"
	"slices"
	"sync"

	"github.com/convoy-dl/convoy/internal/ranges"
)

// Segment is the state of one byte range; see ranges.Segment.
type Segment = ranges.Segment

// Plan shares the byte ranges of one file among the connections fetching it.
// Every byte of [0, size) belongs to exactly one span at any time. A
// connection that runs out of work takes the back half of the span with the
// most bytes left (work stealing), so a slow connection never holds the tail.
// A Plan is safe for concurrent use.
type Plan struct {
	mu       sync.Mutex
	size     int64
	minSplit int64
	spans    []*Span
}

// Span is one connection's share of a Plan. Its end may move down while it is
// fetched, when another connection steals its back half; its writer reserves
// bytes before writing them, so a steal never takes a byte being written.
type Span struct {
	plan     *Plan
	start    int64
	end      int64
	reserved int64 // bytes from start handed to the writer
	written  int64 // bytes from start written; written <= reserved
	active   bool  // a connection is fetching it
}

// NewPlan builds a plan for a file of size bytes from the state of earlier
// runs (nil for a fresh download), then splits what is left so that up to
// parts connections can start at once. No split leaves a span with fewer
// than minSplit bytes to fetch. The segments must cover [0, size) exactly.
func NewPlan(size int64, segments []Segment, parts int, minSplit int64) (*Plan, error) {
	if size < 0 {
		return nil, fmt.Errorf("plan: negative size %d", size)
	}
	p := &Plan{size: size, minSplit: max(minSplit, 1)}
	if segments == nil {
		segments = []Segment{{Start: 0, End: size}}
	}
	if err := ranges.CheckCover(segments, size); err != nil {
		return nil, err
	}
	for _, s := range segments {
		p.spans = append(p.spans, &Span{plan: p, start: s.Start, end: s.End, reserved: s.Written, written: s.Written})
	}
	for p.pending() < parts {
		if _, ok := p.splitLargest(false); !ok {
			break
		}
	}
	return p, nil
}

// pending counts spans with work left and no connection. Caller holds mu or
// owns p exclusively.
func (p *Plan) pending() int {
	n := 0
	for _, s := range p.spans {
		if !s.active && s.reserved < s.end-s.start {
			n++
		}
	}
	return n
}

// splitLargest cuts the span with the most unreserved bytes in two and
// returns the new back half; the back half is marked active when take is set.
// It fails when no span has at least twice minSplit left.
func (p *Plan) splitLargest(take bool) (*Span, bool) {
	var victim *Span
	var most int64
	for _, s := range p.spans {
		if left := s.end - s.start - s.reserved; left > most {
			victim, most = s, left
		}
	}
	if victim == nil || most < 2*p.minSplit {
		return nil, false
	}
	mid := victim.start + victim.reserved + most/2
	back := &Span{plan: p, start: mid, end: victim.end, active: take}
	victim.end = mid
	i := slices.Index(p.spans, victim)
	p.spans = slices.Insert(p.spans, i+1, back)
	return back, true
}

// Next hands the caller a span to fetch: one nobody is fetching, else the
// back half of the span with the most bytes left. It returns false when no
// work is left that is worth a connection.
func (p *Plan) Next() (*Span, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.spans {
		if !s.active && s.reserved < s.end-s.start {
			s.active = true
			return s, true
		}
	}
	return p.splitLargest(true)
}

// Snapshot returns the state of every span in file order, adjacent spans
// merged where the first is complete. It is consistent: every byte it counts
// as written was written before the call.
func (p *Plan) Snapshot() []Segment {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Segment, 0, len(p.spans))
	for _, s := range p.spans {
		seg := Segment{Start: s.start, End: s.end, Written: s.written}
		if n := len(out); n > 0 && out[n-1].Remaining() == 0 {
			prev := out[n-1]
			out[n-1] = Segment{Start: prev.Start, End: seg.End, Written: prev.End - prev.Start + seg.Written}
			continue
		}
		out = append(out, seg)
	}
	return out
}

// Written returns the number of bytes written so far.
func (p *Plan) Written() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, s := range p.spans {
		n += s.written
	}
	return n
}

// Size is the file size the plan covers.
func (p *Plan) Size() int64 { return p.size }

// next returns the file offset of the next byte to fetch and the span's
// current end (exclusive).
func (s *Span) next() (offset, end int64) {
	s.plan.mu.Lock()
	defer s.plan.mu.Unlock()
	return s.start + s.reserved, s.end
}

// reserve hands the writer up to n bytes starting at the returned offset;
// fewer (possibly none) when the span's end has moved down.
func (s *Span) reserve(n int64) (offset, granted int64) {
	s.plan.mu.Lock()
	defer s.plan.mu.Unlock()
	offset = s.start + s.reserved
	granted = min(n, s.end-offset)
	s.reserved += granted
	return offset, granted
}

// commit records that the n reserved bytes after the written prefix are on
// their way to disk (WriteAt returned).
func (s *Span) commit(n int64) {
	s.plan.mu.Lock()
	s.written += n
	s.plan.mu.Unlock()
}

// release returns reserved but unwritten bytes to the span, after a failed
// write or a restart of a stream.
func (s *Span) release() {
	s.plan.mu.Lock()
	s.reserved = s.written
	s.plan.mu.Unlock()
}

// rewind forgets everything written to the span (a stream that cannot
// resume starts again from its first byte).
func (s *Span) rewind() {
	s.plan.mu.Lock()
	s.reserved, s.written = 0, 0
	s.plan.mu.Unlock()
}

// done reports whether every byte of the span is written.
func (s *Span) done() bool {
	s.plan.mu.Lock()
	defer s.plan.mu.Unlock()
	return s.written >= s.end-s.start
}

// finish marks the span as no longer fetched.
func (s *Span) finish() {
	s.plan.mu.Lock()
	s.active = false
	s.reserved = s.written
	s.plan.mu.Unlock()
}
