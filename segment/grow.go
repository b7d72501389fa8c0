package segment

import "time"

// The connection count of a server adapts to what it gives (see growth):
// connections are added while each added one raises the server's measured
// throughput by a useful amount, given back when the throughput does not
// drop without them, and taken away when the server refuses them.
//
// The constants are in units of the throughput one connection brought
// before the change (the server's throughput over its connections).
const (
	// StartConnections is how many connections a server starts with.
	StartConnections = 4
	// An added connection is useful when the throughput grew by
	// usefulGain connections' worth or more; a step of several is linear
	// (so the next step may double the count again) when each brought
	// linearGain or more.
	usefulGain = 0.3
	linearGain = 0.7
	// A connection given back is missed when the throughput fell by
	// usefulGain connections' worth or more; it is then taken back.
	// exploreAfter is how many steady samples pass before the count is
	// tried one lower (or, the time after, one higher); measurements, see
	// perMeasure.
	exploreAfter = 15
	// perMeasure is how many complete samples are averaged into one
	// measurement of the throughput.
	perMeasure = 4
)

// Reasons for a change of the connection count.
const (
	ReasonGrew     = "grew"     // an added connection raised the throughput, or one given back was missed
	ReasonPlateau  = "plateau"  // added connections did not raise it: they are given back
	ReasonShrank   = "shrank"   // a connection is given back to see whether it is missed
	ReasonRefused  = "refused"  // the server refused a connection (503 or 429)
	ReasonAccepted = "accepted" // the server accepted a probe connection after refusing some
)

// change is a new connection count and why.
type change struct {
	Count, Was int
	Reason     string
}

// growPhase is what a growth is finding out.
type growPhase uint8

const (
	measuring growPhase = iota // the throughput at the current count, with nothing to compare
	growing                    // whether the connections just added raised it
	shrinking                  // whether the connection just given back is missed
	steady                     // nothing: the count holds until the next exploration
)

// growth decides how many connections one server gets. It is fed, about
// every sampling interval, the server's throughput over the last interval
// (network time only) and whether that sample is complete: every admitted
// connection fetched through the whole interval, none ran out of work. It
// is told of refusals and of accepted probes. It reads no clock and starts
// no goroutine; it is not safe for concurrent use.
//
// Hill climbing: from the start count it measures, adds half as many
// again, then, when each added one brought nearly a connection's worth,
// goes to the top at once (the first ramp: one sample decides each of its
// steps); one at a time after the first plateau or refusal, or once the
// disk sets the pace (diskBound). On a plateau it goes back to where the
// gain stopped: a top too high costs one hold at it, while every step
// below the top costs a sample at a fraction of the throughput. When
// steady it tries, now and then, one connection fewer (kept while the
// throughput does not drop, given back otherwise) and then one more. Each judgement takes the
// average of perMeasure complete samples; after every change the next
// sample is skipped (the new connections are still starting), so outside
// the first ramp the count changes at most every perMeasure+1 samples, and
// never faster than hold. A refusal lowers the count at once and caps it
// for good; only an accepted probe raises the cap.
type growth struct {
	ceiling int           // never more connections than this
	limit   int           // the most the server accepted after refusing some; 0 before
	count   int           // connections admitted now
	hold    time.Duration // the least time between two changes decided from samples

	phase    growPhase
	skip     int       // samples still to skip after a change
	last     time.Time // when the count last changed
	refCount int       // the count the current test compares with
	refRate  float64   // the throughput at refCount
	acc      float64   // the sum of the complete samples of the measurement under way
	accN     int       // and how many they are
	quiet    int       // steady measurements since the last change
	up       bool      // the next exploration tries one more, not one fewer
	// found is set once the count met a plateau or a refusal: from then on
	// connections are added one at a time, never doubled.
	found bool
	// room is how many connections a budget shared with other servers
	// lets this one add, -1 for no such budget; its pool sets it before
	// each sample.
	room int
}

// newGrowth returns the controller of a server that starts at start
// connections (within 1 and ceiling) and never goes above ceiling; changes
// decided from samples are at least hold apart.
func newGrowth(start, ceiling int, hold time.Duration) *growth {
	ceiling = max(ceiling, 1)
	return &growth{ceiling: ceiling, count: min(max(start, 1), ceiling), hold: hold, room: -1}
}

// top is the most connections the server may get now.
func (g *growth) top() int {
	if g.limit > 0 {
		return min(g.ceiling, g.limit)
	}
	return g.ceiling
}

// set changes the count to n for reason at now and starts a new test.
func (g *growth) set(n int, reason string, now time.Time) change {
	c := change{Count: n, Was: g.count, Reason: reason}
	g.count, g.last, g.skip, g.quiet = n, now, 1, 0
	g.acc, g.accN = 0, 0
	return c
}

// sample takes the throughput rate (bytes per second) of the last
// interval, complete or not, and returns a change of the count, if any.
// An incomplete sample says nothing of the count and does not count: the
// test under way waits for a complete one (the sample right after a change
// is incomplete, since connections joined or left during it).
func (g *growth) sample(now time.Time, rate float64, complete bool) (change, bool) {
	if !complete || rate <= 0 {
		// The connections that joined or left are settled by the end of
		// this one: the next complete sample counts.
		if g.ramping() {
			g.skip = 0
		}
		return change{}, false
	}
	if g.skip > 0 {
		g.skip--
		return change{}, false
	}
	g.acc += rate
	need, hold := perMeasure, g.hold
	if g.ramping() {
		// The first ramp only ever adds connections (a plateau is held
		// as long as any change): one sample after the skipped one says
		// enough, and every second of it is a second below the top.
		need, hold = 1, 0
	}
	if g.accN++; g.accN < need || now.Sub(g.last) < hold {
		return change{}, false
	}
	rate = g.acc / float64(g.accN)
	g.acc, g.accN = 0, 0
	switch g.phase {
	case measuring:
		// The first step adds half as many again: enough to see whether
		// connections bring their worth, few enough that a server the
		// start count already fills gets a handful more, not double.
		g.refCount, g.refRate = g.count, rate
		return g.grow(now, max(1, (g.count+1)/2))
	case growing:
		return g.grew(now, rate)
	case shrinking:
		return g.shrank(now, rate)
	}
	// steady
	g.refCount, g.refRate = g.count, rate
	if g.quiet++; g.quiet < exploreAfter {
		return change{}, false
	}
	g.up = !g.up
	if !g.up && g.count > 1 {
		g.phase = shrinking
		return g.set(g.count-1, ReasonShrank, now), true
	}
	if g.count < g.top() {
		return g.grow(now, 1)
	}
	g.quiet = 0
	return change{}, false
}

// ramping reports whether the count is in its first ramp: growing, and
// neither a plateau, a refusal nor the disk has stopped it yet.
func (g *growth) ramping() bool {
	return !g.found && (g.phase == measuring || g.phase == growing)
}

// grow adds up to step connections, within the cap; at the cap it holds.
// The caller has set the reference.
func (g *growth) grow(now time.Time, step int) (change, bool) {
	n := min(g.count+step, g.top())
	if g.room >= 0 {
		n = min(n, g.count+g.room)
	}
	if n <= g.count {
		g.phase = steady
		return change{}, false
	}
	g.phase = growing
	return g.set(n, ReasonGrew, now), true
}

// grew judges the connections added since the reference by the
// throughput rate they brought.
func (g *growth) grew(now time.Time, rate float64) (change, bool) {
	added := g.count - g.refCount
	worth := (rate - g.refRate) / (g.refRate / float64(g.refCount))
	switch {
	case worth >= linearGain*float64(added):
		g.refCount, g.refRate = g.count, rate
		if g.found {
			return g.grow(now, 1)
		}
		return g.grow(now, g.top())
	case worth >= usefulGain && added == 1:
		g.refCount, g.refRate = g.count, rate
		return g.grow(now, 1)
	}
	if now.Sub(g.last) < g.hold {
		return change{}, false // a step back waits as long as any change
	}
	// A plateau: keep the connections whose worth the gain covers.
	keep := g.refCount + min(max(int(worth+0.5), 0), added-1)
	g.phase, g.found = steady, true
	c := g.set(keep, ReasonPlateau, now)
	g.refCount, g.refRate = 0, 0
	return c, true
}

// shrank judges the connection given back since the reference: missed,
// it is taken back; else the next one is tried.
func (g *growth) shrank(now time.Time, rate float64) (change, bool) {
	loss := (g.refRate - rate) / (g.refRate / float64(g.refCount))
	if loss >= usefulGain {
		g.phase = steady
		return g.set(g.refCount, ReasonGrew, now), true
	}
	g.refCount, g.refRate = g.count, rate
	if g.count > 1 {
		return g.set(g.count-1, ReasonShrank, now), true
	}
	g.phase = steady
	return change{}, false
}

// forced sets the count to n for reason from outside (a shared ceiling
// moved a connection): the count holds as after a plateau, and the next
// judgement starts from a new measurement.
func (g *growth) forced(n int, reason string, now time.Time) change {
	g.phase, g.found, g.refCount, g.refRate = steady, true, 0, 0
	return g.set(n, reason, now)
}

// diskBound records that the connections spent much of a sample blocked
// in WriteAt: the disk sets the pace, and a sample's throughput over
// network time swings with its writeback, so the first ramp ends and the
// count grows one connection at a time, as after a plateau.
func (g *growth) diskBound() { g.found = true }

// refused records that the server refused a connection while working
// others worked: that one is gone, the count falls to those the server
// took (a step that added several is undone at its first refusal), and
// the server never gets more unless it accepts a probe.
func (g *growth) refused(now time.Time, working int) (change, bool) {
	n := max(min(g.count-1, working), 1)
	g.limit, g.found = n, true
	g.phase, g.refCount, g.refRate = steady, 0, 0
	if n == g.count {
		return change{}, false
	}
	return g.set(n, ReasonRefused, now), true
}

// accepted records that the server took a probe connection after it had
// refused some: the cap rises by one, and so does the count.
func (g *growth) accepted(now time.Time) (change, bool) {
	if g.count >= g.ceiling || g.room == 0 {
		return change{}, false
	}
	g.limit = max(g.limit, g.count+1)
	g.phase, g.refCount, g.refRate = steady, 0, 0
	return g.set(g.count+1, ReasonAccepted, now), true
}
