package segment

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultGrowEvery is the length of a sample of the throughput of a source
// whose connection count adapts. Its count changes at most every growHold
// samples (about 2 s), except in the first ramp, where one complete sample
// of a rampShare of that length decides each step (see growth): each is
// time spent below the top. The pool looks samplesPerWindow times a
// sample, so that a sample starts again soon after the connections
// settle.
const (
	DefaultGrowEvery = 250 * time.Millisecond
	growHold         = 8
	rampShare        = 2
	samplesPerWindow = 25
	// diskShare is the share of a sample's time that its connections spent
	// blocked in WriteAt from which the disk, not the network, sets the
	// pace: the count then grows one connection at a time (see
	// growth.diskBound).
	diskShare = 0.2
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
	mu      sync.Mutex
	g       *growth
	working int // connections holding a place, probes included
	probing int // of them, probes outside the count
	meters  []*meter
	window  time.Duration // the length of a sample
	last    time.Time     // the start of the sample under way
	// moved is set when a place was taken or given back, or a connection
	// that took one had its first answer, since the sample under way
	// started: the sample then starts again.
	moved bool
	// took is how many connections had their first answer since the count
	// last changed: 1 + took of them may wait for one at once (see enter).
	took int
	// turned is closed, and replaced, when a connection waiting for a
	// place may find one: a place was given back, a connection had its
	// first answer, or the count changed.
	turned   chan struct{}
	onChange func(change)
	// ceil, when set, is the budget the pool shares with other sources'.
	ceil *ceiling
	// perConn is the throughput per connection of the last complete
	// sample, 0 before one.
	perConn float64
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
// first, whose throughput is sampled over windows of window, whose count
// changes at most every hold (see growth) and are told to onChange.
func newPool(slots, start int, now time.Time, window, hold time.Duration, onChange func(change)) *pool {
	p := &pool{g: newGrowth(start, slots, hold), meters: make([]*meter, slots), window: window, last: now, turned: make(chan struct{}), onChange: onChange}
	for i := range p.meters {
		p.meters[i] = &meter{}
	}
	return p
}

// turn returns a channel closed when a connection not admitted now may be
// (see enter): take it before asking.
func (p *pool) turn() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.turned
}

// wake closes the turn of the connections waiting for a place. Caller
// holds mu.
func (p *pool) wake() {
	close(p.turned)
	p.turned = make(chan struct{})
}

// tell passes c to onChange. Caller holds mu, so that changes are told one
// at a time and in order.
func (p *pool) tell(c change, ok bool) {
	if !ok {
		return
	}
	p.took = 0
	p.wake()
	if p.ceil != nil {
		p.ceil.set(p, c.Count)
	}
	if p.onChange != nil {
		p.onChange(c)
	}
}

// enter gives connection k a place if the count has one free and fewer
// than 1 + took connections that took one are still waiting for their
// first answer. Places are taken as a slow start takes packets: one, then
// two more for the one answered, and so on. A step of the count that
// adds many is taken in a few round trips, not one per connection, and a
// server that refuses one more connection refuses about as many as it
// accepted since the change, not all the step added.
func (p *pool) enter(k int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.meters[k]
	if m.place || p.working-p.probing >= p.g.count {
		return m.place
	}
	waiting := 0
	for _, o := range p.meters {
		if o.fresh {
			waiting++
		}
	}
	if waiting > p.took {
		return false
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

// answered records that connection k had its answer, a good one (took) or
// a failure other than a refusal (a refused connection gives its place
// back instead): more connections may take a place, and after a good one,
// one more at once.
func (p *pool) answered(k int, took bool) {
	p.mu.Lock()
	if m := p.meters[k]; m.fresh {
		m.fresh = false
		if took {
			p.took++
		}
		p.moved = true
		p.wake()
	}
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
	p.wake()
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
	p.g.room = p.room()
	c, ok := p.g.accepted(now)
	p.tell(c, ok)
	p.mu.Unlock()
}

// idle records that connection k found no work.
func (p *pool) idle(k int) {
	p.mu.Lock()
	m := p.meters[k]
	m.idled = true
	if m.fresh {
		m.fresh = false
		p.wake()
	}
	p.mu.Unlock()
}

// sample is called often (a fraction of window apart). It measures the
// source's throughput over the sample under way once that is window long
// (in the first ramp, a rampShare of it), and feeds it to the controller; a sample during which a place moved
// starts again, as an incomplete one. The throughput is the sum over the
// connections with a place of bytes over network time (the window less
// the time the connection spent in WriteAt). The sample is complete when
// every place of the count was held through the whole window by a
// connection that never ran out of work.
func (p *pool) sample(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.moved {
		for _, m := range p.meters {
			m.lastBytes, m.lastWriting, m.idled = m.bytes.Load(), m.writing.Load(), false
		}
		p.last, p.moved = now, false
		c, ok := p.g.sample(now, 0, false)
		p.tell(c, ok)
		return
	}
	window := now.Sub(p.last)
	due := p.window
	if p.g.ramping() {
		due /= rampShare
	}
	if window < due {
		return
	}
	complete := p.working-p.probing == p.g.count
	var rate float64
	var writing time.Duration
	places := 0
	for _, m := range p.meters {
		b, w := m.bytes.Load(), m.writing.Load()
		db, dw := b-m.lastBytes, time.Duration(w-m.lastWriting)
		m.lastBytes, m.lastWriting = b, w
		idled := m.idled
		m.idled = false
		if !m.place || m.probe {
			continue
		}
		if idled {
			complete = false
		}
		if net := window - dw; net > 0 {
			rate += float64(db) / net.Seconds()
		}
		writing += dw
		places++
	}
	p.last = now
	if places > 0 && writing >= time.Duration(diskShare*float64(window*time.Duration(places))) {
		p.g.diskBound()
	}
	if complete && places > 0 {
		p.perConn = rate / float64(places)
	}
	p.g.room = p.room()
	c, ok := p.g.sample(now, rate, complete)
	p.tell(c, ok)
}

// room is how many connections the pool may add: -1 for any number
// within its own ceiling. Caller holds mu.
func (p *pool) room() int {
	if p.ceil == nil {
		return -1
	}
	return p.ceil.room()
}

// share makes p one of the pools that share c, at its current count.
func (p *pool) share(c *ceiling) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ceil = c
	c.set(p, p.g.count)
}

// unshare takes p out of the budget it shares, for good: its source was
// dropped, and whatever its count does next takes nothing from the others.
func (p *pool) unshare() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ceil != nil {
		p.ceil.remove(p)
		p.ceil = nil
	}
}

// perConnection returns the count and the throughput per connection of
// the last complete sample.
func (p *pool) perConnection() (int, float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.g.count, p.perConn
}

// canGrow reports whether the count is below the pool's own cap.
func (p *pool) canGrow() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.g.count < p.g.top()
}

// force changes the count by d for reason, from outside the controller
// (see ceiling.rebalance); the controller holds it as after a plateau.
func (p *pool) force(d int, reason string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := min(max(p.g.count+d, 1), p.g.top())
	if n == p.g.count {
		return
	}
	p.perConn = 0 // measured again at the new count
	p.tell(p.g.forced(n, reason, now), true)
}
