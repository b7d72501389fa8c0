package segment

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultGrowEvery is how often the throughput of a source whose
// connection count adapts is sampled. Its count changes at most every
// growHold samples: about 2 s.
const (
	DefaultGrowEvery = 500 * time.Millisecond
	growHold         = 4
)

// errYield ends the fetch of a span by a connection that gives its place
// back: the source's connection count was lowered. It finished its last
// request, or left it when the rest would take more than yieldAfter; the
// rest of the span goes back to the plan.
var errYield = errors.New("connection given back: the source's connection count was lowered")

// pool admits the connections of a source whose count adapts: a
// connection works only while it holds one of count places (see growth);
// the others wait. Parked connections (refused by the server) hold no
// place; one that probes takes a place outside the count until the server
// has accepted it. It also meters each connection's bytes and time spent
// writing, and turns them into the source's throughput every interval.
// Safe for concurrent use.
type pool struct {
	mu       sync.Mutex
	g        *growth
	working  int // connections holding a place, probes included
	probing  int // of them, probes outside the count
	meters   []*meter
	last     time.Time // the end of the last sample
	moved    bool      // a place was taken or given back since the last sample
	onChange func(change)
}

// meter counts what one connection did, for the samples of its pool.
type meter struct {
	bytes   atomic.Int64 // bytes received
	writing atomic.Int64 // nanoseconds spent in WriteAt
	// The rest is guarded by the pool's mu.
	place, probe bool  // holds a place; outside the count, as a probe
	fresh        bool  // took its place and has had no answer yet
	idled        bool  // it ran out of work since the last sample
	lastBytes    int64 // bytes and writing at the last sample
	lastWriting  int64
}

// read counts n bytes received; m may be nil (a fixed count).
func (m *meter) read(n int) {
	if m != nil && n > 0 {
		m.bytes.Add(int64(n))
	}
}

// wrote counts time spent in WriteAt; m may be nil (a fixed count).
func (m *meter) wrote(d time.Duration) {
	if m != nil {
		m.writing.Add(int64(d))
	}
}

// newPool returns the pool of slots connections, start of them admitted at
// first, at most ceiling, whose count changes are told to onChange.
func newPool(slots, start int, now time.Time, hold time.Duration, onChange func(change)) *pool {
	p := &pool{g: newGrowth(start, slots, hold), meters: make([]*meter, slots), last: now, onChange: onChange}
	for i := range p.meters {
		p.meters[i] = &meter{}
	}
	return p
}

// tell passes c to onChange. Caller holds mu, so that changes are told one
// at a time and in order.
func (p *pool) tell(c change, ok bool) {
	if ok && p.onChange != nil {
		p.onChange(c)
	}
}

// enter gives connection k a place if the count has one free, and no
// other connection that took one is still waiting for its first answer:
// places are taken one after another, so that a server that refuses one
// more connection refuses one, not all those a step of the count added.
func (p *pool) enter(k int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.meters[k]
	if m.place || p.working-p.probing >= p.g.count {
		return m.place
	}
	for _, o := range p.meters {
		if o.fresh {
			return false
		}
	}
	p.working++
	m.place, m.fresh, p.moved = true, true, true
	return true
}

// size is the number of connections the pool holds places for: the count,
// or more while connections over it have yet to give theirs back.
func (p *pool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(p.g.count, p.working)
}

// answered records that connection k had an answer (or none is coming: it
// found no work): the next connection may take a place.
func (p *pool) answered(k int) {
	p.mu.Lock()
	p.meters[k].fresh = false
	p.mu.Unlock()
}

// leave gives connection k's place back. Caller holds mu.
func (p *pool) leave(k int) {
	m := p.meters[k]
	if !m.place {
		return
	}
	if m.probe {
		p.probing--
	}
	p.working--
	m.place, m.probe, m.fresh, p.moved = false, false, false, true
}

// over reports whether connection k is to give its place back because the
// count was lowered; if so it has. A probe is outside the count.
func (p *pool) over(k int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.meters[k]
	if !m.place || m.probe || p.working-p.probing <= p.g.count {
		return false
	}
	p.leave(k)
	return true
}

// probe gives parked connection k a place outside the count, to probe.
func (p *pool) probe(k int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.meters[k]
	if m.place {
		return
	}
	p.working++
	p.probing++
	m.place, m.probe, p.moved = true, true, true
}

// unprobe ends connection k's probe: refused or without work, it gives
// the place back; otherwise (its trial ended undecided) it counts as one
// of the count, and gives its place back at the next look if there is no
// room for it.
func (p *pool) unprobe(k int, keep bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.meters[k]
	if !m.probe {
		return
	}
	if !keep {
		p.leave(k)
		return
	}
	m.probe = false
	p.probing--
}

// parked records that the server refused connection k while others work:
// it gives its place back and, unless it was a probe, the count drops to
// the connections working, for good (see growth.refused).
func (p *pool) parked(k int, now time.Time) {
	p.mu.Lock()
	m := p.meters[k]
	probe := m.probe
	p.leave(k)
	var c change
	var ok bool
	if !probe {
		c, ok = p.g.refused(now, p.working-p.probing)
	}
	p.tell(c, ok)
	p.mu.Unlock()
}

// accepted records that connection k's probe passed its trial: its place
// joins the count, which grows by one (see growth.accepted).
func (p *pool) accepted(k int, now time.Time) {
	p.mu.Lock()
	m := p.meters[k]
	if !m.probe {
		p.mu.Unlock()
		return
	}
	m.probe = false
	p.probing--
	c, ok := p.g.accepted(now)
	p.tell(c, ok)
	p.mu.Unlock()
}

// idle records that connection k found no work.
func (p *pool) idle(k int) {
	p.mu.Lock()
	p.meters[k].idled = true
	p.meters[k].fresh = false
	p.mu.Unlock()
}

// sample measures the source's throughput since the last sample and feeds
// it to the controller. The throughput is the sum over the connections
// with a place of bytes over network time (the interval less the time the
// connection spent in WriteAt). The sample is complete when every place of
// the count was held through the whole interval by a connection that never
// ran out of work.
func (p *pool) sample(now time.Time) {
	p.mu.Lock()
	window := now.Sub(p.last)
	complete := !p.moved && window > 0 && p.working-p.probing == p.g.count
	var rate float64
	for _, m := range p.meters {
		b, w := m.bytes.Load(), m.writing.Load()
		db, dw := b-m.lastBytes, time.Duration(w-m.lastWriting)
		m.lastBytes, m.lastWriting = b, w
		idled := m.idled
		m.idled = false
		if !m.place || m.probe {
			continue
		}
		if idled { // a place taken mid-window already set p.moved
			complete = false
		}
		if net := window - dw; net > 0 {
			rate += float64(db) / net.Seconds()
		}
	}
	p.last, p.moved = now, false
	c, ok := p.g.sample(now, rate, complete)
	p.tell(c, ok)
	p.mu.Unlock()
}
