package segment

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

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
	// changed is closed, and replaced, whenever a span stops being fetched:
	// its owner finished or failed, so idle connections should look again.
	changed chan struct{}
	// cuts counts answers in flight cut short by a split.
	cuts int
	// working counts the connections of each source at work on the plan
	// (see join): a span that avoids a source goes to it only when no
	// other source has any.
	working map[int]int
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
	// requested is the file offset where the request in flight ends, or 0.
	// Bytes past it are not on their way yet, so taking them wastes nothing.
	requested int64
	askedAt   time.Time // when the request in flight was sent
	rate      float64   // bytes per second of the request in flight, 0 before its first bytes
	active    bool      // a connection is fetching it
	source    int       // the server of the connection fetching it
	// avoid has bit k set when source k (k < 64) sent bad bytes of the
	// span: while another source works on the plan, k is not handed it.
	avoid uint64
}

// NewPlan builds a plan for a file of size bytes from the state of earlier
// runs (nil for a fresh download), then splits what is left so that up to
// parts connections can start at once. No split leaves a span with fewer
// than minSplit bytes to fetch. The segments must cover [0, size) exactly.
func NewPlan(size int64, segments []Segment, parts int, minSplit int64) (*Plan, error) {
	if size < 0 {
		return nil, fmt.Errorf("plan: negative size %d", size)
	}
	p := &Plan{size: size, minSplit: max(minSplit, 1), changed: make(chan struct{})}
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
		if _, ok := p.splitLargest(false, Thief{}); !ok {
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

// splitLargest cuts a span in two and returns the new back part, marked
// active when take is set. It prefers the span with the most bytes that no
// request in flight covers and splits those (see splitPoint), so the
// owner's answer is never cut short; only when no span has enough of them
// does it split the answer in flight that would finish last (see slowest),
// and then the owner stops reading at the new end.
func (p *Plan) splitLargest(take bool, t Thief) (*Span, bool) {
	victim, from, most := p.largest(func(s *Span) int64 { return max(s.start+s.reserved, s.requested) }, t)
	mid, ok := p.splitPoint(victim, from, most, t)
	if !ok {
		if t.Probe {
			return nil, false
		}
		if victim, mid = p.slowest(t); victim == nil {
			return nil, false
		}
		p.cuts++
	}
	back := &Span{plan: p, start: mid, end: victim.end, active: take, source: t.Source, avoid: victim.avoid}
	victim.end = mid
	i := slices.Index(p.spans, victim)
	p.spans = slices.Insert(p.spans, i+1, back)
	return back, true
}

// splitPoint is where thief t splits the most bytes that victim has not
// requested yet, from offset from on, and false when no split is worth it.
// Without both paces known, it halves them, leaving each part at least the
// split floor. With them, it cuts so that both end together: the owner
// after its answer in flight and then its part, at its pace; the thief
// after one request latency, at its own. A thief's part under the floor is
// not worth its request; an owner's part under it goes to the thief too,
// when the thief has had an answer (its latency is known), the rest is
// stealFloor or more, and the thief finishes it sooner than the owner
// would. Caller holds mu.
func (p *Plan) splitPoint(victim *Span, from, most int64, t Thief) (int64, bool) {
	if victim == nil {
		return 0, false
	}
	floor := p.splitFloor(victim)
	rv, rt := victim.rate, t.Rate
	if rv <= 0 || rt <= 0 {
		return from + most/2, most >= 2*floor
	}
	inFlight := float64(max(victim.requested-(victim.start+victim.reserved), 0))
	lat := t.Latency.Seconds()
	// (inFlight + keep)/rv = lat + (most - keep)/rt
	keep := int64(math.Round((lat + float64(most)/rt - inFlight/rv) / (1/rv + 1/rt)))
	switch {
	case most-keep < floor && keep > 0:
		return 0, false
	case keep >= floor:
		return from + keep, true
	}
	whole := lat+float64(most)/rt < (inFlight+float64(most))/rv
	if t.Latency > 0 && most >= stealFloor && whole {
		return from, true
	}
	if most >= 2*floor {
		return from + floor, true
	}
	return 0, false
}

// splitFloor is the fewest bytes not yet requested that a split of s
// leaves either part: minSplit, or less when s's answer in flight comes
// slowly, down to what it fetches in splitTime (at least endFloor). Near
// the end, the last mebibytes of a span fetched at a throttled rate would
// otherwise hold the tail while other connections idle. Caller holds mu.
func (p *Plan) splitFloor(s *Span) int64 {
	if s == nil || s.rate <= 0 {
		return p.minSplit
	}
	return min(p.minSplit, max(int64(s.rate*splitTime.Seconds()), endFloor))
}

// splitTime is how long a slow answer's owner must have left to fetch for a
// split to be worth it (see splitFloor).
const splitTime = 250 * time.Millisecond

// largest finds the span with the most bytes between from(span) and its
// end, of those t may take.
func (p *Plan) largest(from func(*Span) int64, t Thief) (victim *Span, at, most int64) {
	for _, s := range p.spans {
		if p.shuns(s, t) {
			continue
		}
		f := from(s)
		if left := s.end - f; left > most {
			victim, at, most = s, f, left
		}
	}
	return victim, at, most
}

// Thief is what an idle connection asking for work knows of itself: the
// throughput and the request latency of its last answer, zero when unknown,
// which server (source) it fetches from, and whether it probes: a parked
// connection asking whether the server takes one more. A probe may well be
// refused, so it never cuts an answer in flight.
type Thief struct {
	Rate    float64 // bytes per second
	Latency time.Duration
	Source  int
	Probe   bool
}

// Splitting an answer in flight cuts it short, which wastes the bytes already
// on the wire and in socket buffers, and the owner's connection. It is done
// only for an answer that would still take stealAfter, when the range then
// finishes at least minGain sooner, leaving the thief minSplit bytes or more.
// Connections to one server share its bottleneck (its link, or the disk they
// all write to), so their rates differ only by noise. An answer from another
// server may also be cut when the thief is fasterBy times as fast (a faster
// mirror), down to stealFloor bytes (minSplit, if smaller). An answer that
// has delivered nothing for stealAfter counts as stalled and is split in half.
const (
	minGain    = 200 * time.Millisecond
	stealFloor = 64 << 10
	stealAfter = time.Second
	fasterBy   = 2
)

// floorFor is the fewest bytes a cut of s for t may leave the thief.
func (p *Plan) floorFor(s *Span, t Thief) int64 {
	if s.source != t.Source {
		return min(p.minSplit, stealFloor)
	}
	return p.minSplit
}

// slowest finds the answer in flight that would finish last and where to cut
// it so that its owner and thief t finish together: the owner at its rate,
// the thief at its own (the owner's, if unknown) after one request latency.
// It returns nil when no cut is worth it (see the constants above).
func (p *Plan) slowest(t Thief) (victim *Span, cut int64) {
	now := time.Now()
	var worst time.Duration
	for _, s := range p.spans {
		from := s.start + s.reserved
		n := s.end - from
		if n < 2*p.floorFor(s, t) || s.askedAt.IsZero() || p.shuns(s, t) {
			continue
		}
		var need time.Duration
		switch {
		case s.rate > 0:
			need = time.Duration(float64(n) / s.rate * float64(time.Second))
		case now.Sub(s.askedAt) > stealAfter:
			need = time.Duration(math.MaxInt64) // nothing arrived for a while
		default:
			continue
		}
		if need > worst {
			victim, worst = s, need
		}
	}
	if victim == nil {
		return nil, 0
	}
	from := victim.start + victim.reserved
	n := victim.end - from
	if victim.rate <= 0 {
		return victim, from + n/2
	}
	rv, rt := victim.rate, t.Rate
	if rt <= 0 {
		rt = rv
	}
	// keep/rv = (n-keep)/rt + latency: both halves end at the same moment.
	floor := p.floorFor(victim, t)
	keep := int64((float64(n)/rt + t.Latency.Seconds()) / (1/rv + 1/rt))
	keep = min(max(keep, 0), n-floor)
	after := time.Duration(float64(keep) / rv * float64(time.Second))
	thief := t.Latency + time.Duration(float64(n-keep)/rt*float64(time.Second))
	fasterMirror := victim.source != t.Source && rt >= fasterBy*rv
	if worst-max(after, thief) < minGain || (worst <= stealAfter && !fasterMirror) {
		return nil, 0
	}
	return victim, from + keep
}

// Next is NextFor a thief that knows nothing of itself yet.
func (p *Plan) Next() (*Span, bool) { return p.NextFor(Thief{}) }

// NextFor hands connection t a span to fetch: one nobody is fetching, else
// part of another span (see splitLargest). It returns false when no work is
// left that is worth a connection.
func (p *Plan) NextFor(t Thief) (*Span, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.spans {
		if !s.active && s.reserved < s.end-s.start && !p.shuns(s, t) {
			s.active, s.source = true, t.Source
			return s, true
		}
	}
	return p.splitLargest(true, t)
}

// shuns reports whether t is to be kept off s: s avoids t's source, and a
// source it does not avoid works on the plan. Caller holds mu.
func (p *Plan) shuns(s *Span, t Thief) bool {
	if s.avoid == 0 || t.Source < 0 || t.Source >= 64 || s.avoid&(1<<t.Source) == 0 {
		return false
	}
	for src, n := range p.working {
		if n > 0 && (src >= 64 || s.avoid&(1<<src) == 0) {
			return true
		}
	}
	return false
}

// join records that n more connections of source work on the plan, each
// until it calls leave.
func (p *Plan) join(source, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.working == nil {
		p.working = map[int]int{}
	}
	p.working[source] += n
}

// leave records that a connection of source stopped working on the plan;
// idle connections look again, since spans that avoided their source may
// now be theirs.
func (p *Plan) leave(source int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.working[source]--; p.working[source] <= 0 {
		delete(p.working, source)
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// recheckEvery is how often an idle connection looks again for an answer
// that has become slow enough to split.
const recheckEvery = 100 * time.Millisecond

// Wait blocks an idle connection until a span stops being fetched, a moment
// has passed (an answer in flight may have become slow enough to split), or
// ctx ends. It returns false when no span is being fetched or waiting: the
// plan is done for this connection.
func (p *Plan) Wait(ctx context.Context) bool {
	return p.waitUntil(ctx, nil, nil)
}

// waitUntil is Wait, except that a plan found done is waited on until
// bytes are reopened (true) or hold is closed (false), a nil hold waiting
// for nothing; and that it also returns (true) when wake is closed.
func (p *Plan) waitUntil(ctx context.Context, hold, wake <-chan struct{}) bool {
	select {
	case <-hold: // closed: waits for nothing
		hold = nil
	default:
	}
	p.mu.Lock()
	busy := false
	for _, s := range p.spans {
		if s.written < s.end-s.start {
			busy = true
			break
		}
	}
	changed := p.changed
	p.mu.Unlock()
	var tick <-chan time.Time
	if busy {
		t := time.NewTimer(recheckEvery)
		defer t.Stop()
		tick = t.C
	} else if hold == nil {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-hold:
		return busy
	case <-changed:
	case <-wake:
	case <-tick:
	}
	return true
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

// Reopen marks the written bytes of [start, end) as not written, so that
// they are fetched again: bytes found bad after they were written. A span
// being fetched keeps its connection for its bytes after end. It returns
// how many written bytes were reopened. Idle connections are woken; but a
// fetch that has already returned (Wait said the plan was done) must be run
// again by the caller to fetch them.
func (p *Plan) Reopen(start, end int64) int64 { return p.ReopenAvoiding(start, end) }

// ReopenAvoiding is Reopen for bytes that the given sources (the indices
// of RunSources, below 64) sent bad: the reopened bytes are not handed to
// them while a connection of another source works on the plan, so another
// server fetches them if one is left. This holds across runs on the plan.
func (p *Plan) ReopenAvoiding(start, end int64, sources ...int) int64 {
	var avoid uint64
	for _, s := range sources {
		if s >= 0 && s < 64 {
			avoid |= 1 << s
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var reopened int64
	out := make([]*Span, 0, len(p.spans)+2)
	for _, s := range p.spans {
		lo, hi := max(start, s.start), min(end, s.start+s.written)
		if lo >= hi {
			out = append(out, s)
			continue
		}
		reopened += hi - lo
		if lo > s.start {
			out = append(out, &Span{plan: p, start: s.start, end: lo, reserved: lo - s.start, written: lo - s.start})
		}
		out = append(out, &Span{plan: p, start: lo, end: hi, avoid: avoid})
		// s keeps [hi, s.end): its offsets move, its absolute positions
		// (and so its owner's request) stay. Emptied, it leaves the plan,
		// and its owner finds it done.
		cut := hi - s.start
		s.start, s.reserved, s.written = hi, s.reserved-cut, s.written-cut
		if s.start < s.end {
			out = append(out, s)
		}
	}
	p.spans = out
	if reopened > 0 {
		close(p.changed)
		p.changed = make(chan struct{})
	}
	return reopened
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

// Cuts returns how many answers in flight were cut short so far: the bytes
// their servers had sent past the cut were wasted.
func (p *Plan) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// Size is the file size the plan covers.
func (p *Plan) Size() int64 { return p.size }

// request starts a request of at most chunk bytes at the next byte to fetch
// and returns its range [offset, end). t is the pace of the connection's
// last answer, zero when unknown: a rest of the span smaller than endFloor
// joins the request unless fetching it takes that connection more than
// restLatencies request latencies and more than restTime; then it is left
// for another connection to take (see splitPoint), so both finish sooner.
func (s *Span) request(chunk int64, t Thief) (offset, end int64) {
	s.plan.mu.Lock()
	defer s.plan.mu.Unlock()
	offset = s.start + s.reserved
	end = min(s.end, offset+min(chunk, s.plan.endShare(s, t)))
	rest := s.end - end
	alone := t.Rate > 0 && float64(rest)/t.Rate > max(restLatencies*t.Latency.Seconds(), restTime.Seconds())
	if rest < min(endFloor, s.plan.minSplit) && !alone {
		end = s.end // a rest this small is not worth a request of its own
	}
	s.requested = end
	s.askedAt, s.rate = time.Now(), 0
	return offset, end
}

// paceAge is how long an answer has come before endShare takes its pace
// for the pace of its connection.
const paceAge = 250 * time.Millisecond

// restLatencies is how many request latencies, and restTime how long, a
// rest of a span must take its owner to fetch for it to be left to another
// connection (see request): one latency is the thief's pause before its
// answer, and a rest fetched in less than restTime costs more in requests
// (on a fast link, a few milliseconds each) than it evens out.
const (
	restLatencies = 1
	restTime      = 50 * time.Millisecond
)

// endFloor is the least endShare asks for: below it, the pause between
// two requests would cost more than the tail it evens out.
const endFloor = 256 << 10

// endShare is the most a request of span s by a connection at pace t
// asks for: what that connection fetches until the moment when all the
// plan's connections, each fetching the bytes not yet requested once its
// answer in flight ends, would finish together (at least endFloor, or
// minSplit if less). Far from the end that is more than any chunk; near
// it, requests shrink so that the connections finish together instead of
// some idling while others fetch the last long answers, which only a cut
// could shorten. Each new request starts after t's latency. A pace not
// known, or of an answer younger than paceAge (its first bytes may come in
// a burst), counts as the mean of those known, or all as one when none is.
// Caller holds mu.
func (p *Plan) endShare(s *Span, t Thief) int64 {
	now := time.Now()
	pace := func(o *Span) float64 {
		if o.rate > 0 && now.Sub(o.askedAt) >= paceAge {
			return o.rate
		}
		return 0
	}
	var known, sum float64
	for _, o := range p.spans {
		if r := pace(o); o.active && r > 0 {
			known, sum = known+1, sum+r
		}
	}
	if t.Rate > 0 {
		known, sum = known+1, sum+t.Rate
	}
	mean := 1.0
	if known > 0 {
		mean = sum / known
	}
	lat := t.Latency.Seconds()
	// The moment each connection may start on bytes not yet requested,
	// and its pace.
	type free struct{ at, rate float64 }
	frees := []free{{lat, cmp.Or(t.Rate, mean)}}
	var open float64 // bytes not yet requested
	for _, o := range p.spans {
		from := max(o.start+o.reserved, o.requested)
		open += float64(o.end - from)
		if !o.active || o == s {
			continue
		}
		r := cmp.Or(pace(o), mean)
		frees = append(frees, free{lat + float64(from-(o.start+o.reserved))/r, r})
	}
	slices.SortFunc(frees, func(a, b free) int { return cmp.Compare(a.at, b.at) })
	// Fill: the end is where the connections free by then fetch open.
	var rate, owed float64
	end := math.Inf(1)
	for i, f := range frees {
		rate, owed = rate+f.rate, owed+f.rate*f.at
		if end = (open + owed) / rate; i+1 == len(frees) || end <= frees[i+1].at {
			break
		}
	}
	share := (end - lat) * cmp.Or(t.Rate, mean)
	if share >= math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	return max(int64(share), min(endFloor, p.minSplit))
}

// observe records the throughput of the answer in flight.
func (s *Span) observe(bytesPerSecond float64) {
	s.plan.mu.Lock()
	s.rate = bytesPerSecond
	s.plan.mu.Unlock()
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
	s.requested, s.askedAt, s.rate = 0, time.Time{}, 0
	s.plan.mu.Unlock()
}

// failed records that the request in flight ended without finishing: until
// the owner tries again nothing is on its way, so the rest of the span is
// free to split without waste.
func (s *Span) failed() {
	s.plan.mu.Lock()
	s.reserved = s.written
	s.requested, s.askedAt, s.rate = 0, time.Time{}, 0
	s.plan.mu.Unlock()
}

// progress returns the bytes written of the span and its current length.
func (s *Span) progress() (done, size int64) {
	s.plan.mu.Lock()
	defer s.plan.mu.Unlock()
	return s.written, s.end - s.start
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
	s.requested, s.askedAt, s.rate = 0, time.Time{}, 0
	close(s.plan.changed)
	s.plan.changed = make(chan struct{})
	s.plan.mu.Unlock()
}
