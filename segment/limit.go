package segment

import (
	"sync"
	"time"
)

// A server that caps its connections answers the ones beyond the cap with
// 503 or 429 while the others stream. Such a refusal means "too many
// connections", not "no progress": the refused connection parks (its range
// goes back to the plan for the others), and one parked connection at a
// time asks again now and then whether the server takes one more.
//
// Probes of parked connections wait firstProbe at first, twice as long after
// each refused probe, up to maxProbe, and never less than the server's
// Retry-After.
//
// A probe the server accepts may only have slipped into the moment between
// two answers of another connection, whose next request the server then
// refuses: a swap, not one more connection. So an accepted probe is on
// trial until its first answer is complete: a refusal meanwhile counts as a
// refused probe, and only a probe that passes brings the wait back to
// firstProbe and a new number of connections to report.
const (
	firstProbe = 10 * time.Second
	maxProbe   = 5 * time.Minute
)

// connLimit decides which connections of one source work when the server
// refuses some of them. It is fed what happens to each connection (k, 0 to
// n-1) and the time, and answers park or retry, probe or wait; it starts no
// goroutine and reads no clock. Safe for concurrent use.
//
// A refused connection parks when another connection of the source is not
// itself refused: it is about to send a request, has one in flight or is
// streaming an answer, or already retries the refusals. So at the start,
// when every request goes out together and the refusals may come back before
// the accepted answers, the refused ones park; and the source always keeps
// one connection that retries with its normal backoff. Only that one's tries
// count against the retry budget: when every connection of the source is
// refused, its budget is what fails the source.
type connLimit struct {
	mu        sync.Mutex
	phase     []phase
	first     time.Duration // the wait before a probe after a refusal or an accepted probe
	interval  time.Duration // the wait after the next refusal
	nextProbe time.Time     // no probe before this
	prober    int           // the connection probing, or -1
	trial     int           // the connection whose accepted probe is on trial, or -1
	shed      bool          // some connection was parked
	reported  int           // connections in use when last reported, 0 before
}

// phase is what one connection of a source is doing, as far as refusals go.
type phase uint8

const (
	// asking: about to send a request, or one in flight and not answered.
	// A connection starts here.
	asking phase = iota
	// accepted: its last answer was a 206, and it goes on asking.
	accepted
	// idle: no work to do, or its last try failed otherwise than by a refusal.
	idle
	// retrying: refused, and the one connection of the source that tries
	// again with backoff.
	retrying
	// parked: refused while others work; it waits to probe.
	parked
	// probing: parked, and sending one request to see whether the server
	// takes one more connection.
	probing
	// gone: the connection has ended.
	gone
	// held: the connection count of the source does not admit it now (see
	// growth); it is not in use and does not ask.
	held
)

// newConnLimit returns the limit of a source with n connections whose first
// wait before a probe is first (0: firstProbe).
func newConnLimit(n int, first time.Duration) *connLimit {
	if first <= 0 {
		first = firstProbe
	}
	return &connLimit{phase: make([]phase, n), first: first, interval: first, prober: -1, trial: -1}
}

// sending records that connection k sends a request.
func (l *connLimit) sending(k int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.phase[k] == idle {
		l.phase[k] = asking
	}
}

// accepted records that the server answered connection k with a 206. A
// probe that is accepted brings its connection back, on trial until answered
// says its answer is complete. See settle for the usage.
func (l *connLimit) accepted(k int, now time.Time) usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.phase[k] == probing {
		l.prober, l.trial = -1, k
	}
	l.phase[k] = accepted
	return l.settle()
}

// answered records that connection k received a whole answer. An accepted
// probe on trial has passed: the server took one more connection, and the
// next probe may follow after the first wait. See settle for the usage.
func (l *connLimit) answered(k int, now time.Time) usage {
	_, u := l.answeredTrial(k, now)
	return u
}

// answeredTrial is answered, also reporting whether k's accepted probe
// passed its trial with this answer.
func (l *connLimit) answeredTrial(k int, now time.Time) (passed bool, u usage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.trial != k {
		return false, usage{}
	}
	l.trial = -1
	l.interval = l.first
	l.nextProbe = now.Add(l.first)
	return true, l.settle()
}

// refused records that the server refused connection k (503 or 429) at now,
// asking for retryAfter (0 when it did not say), and reports whether k is to
// park: yes while another connection of the source is not refused itself.
// Otherwise k is the one that retries with backoff. A parked connection
// probes no sooner than the current wait, doubled first if k was probing,
// and no sooner than retryAfter. See settle for the usage.
func (l *connLimit) refused(k int, now time.Time, retryAfter time.Duration) (park bool, u usage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A refusal while an accepted probe is on trial, of that connection or
	// of another, says the probe took a place that was not free for long.
	wasProbe := l.phase[k] == probing || l.trial >= 0
	if l.phase[k] == probing {
		l.prober = -1
	}
	l.trial = -1
	if !l.othersWork(k) {
		l.phase[k] = retrying
		return false, usage{}
	}
	l.phase[k] = parked
	l.shed = true
	if wasProbe {
		l.interval = min(2*l.interval, maxProbe)
	}
	wait := max(l.interval, min(retryAfter, maxRetryAfter))
	if next := now.Add(wait); next.After(l.nextProbe) {
		l.nextProbe = next
	}
	return true, l.settle()
}

// othersWork reports whether a connection other than k is not refused
// itself, or already retries the refusals. Caller holds mu.
func (l *connLimit) othersWork(k int) bool {
	for j, p := range l.phase {
		if j != k && (p == asking || p == accepted || p == retrying) {
			return true
		}
	}
	return false
}

// failed records that connection k's try ended otherwise than by a refusal
// (a reset, a stall): it no longer tells whether the server takes it.
func (l *connLimit) failed(k int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leave(k, idle)
}

// idle records that connection k found no work.
func (l *connLimit) idle(k int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leave(k, idle)
}

// hold records that the connection count no longer admits connection k
// (unless it is parked: it waits to probe). A probe it was making ends, and
// a trial of its probe ends undecided.
func (l *connLimit) hold(k int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leave(k, held)
}

// admit records that the connection count admits held connection k again.
func (l *connLimit) admit(k int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.phase[k] == held {
		l.phase[k] = idle
	}
}

// stopped records that connection k has ended.
func (l *connLimit) stopped(k int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.phase[k] = gone
	if l.prober == k {
		l.prober = -1
	}
	if l.trial == k {
		l.trial = -1
	}
}

// leave moves connection k to phase p unless it is parked; a probe it was
// making ends, and a trial of its probe ends undecided. Caller holds mu.
func (l *connLimit) leave(k int, p phase) {
	switch l.phase[k] {
	case parked, gone:
		return
	case probing:
		l.prober = -1
	}
	if l.trial == k {
		l.trial = -1
	}
	l.phase[k] = p
}

// probe reports whether parked connection k may send a request now to see
// whether the server takes one more connection: the wait is over, no other
// connection probes or is on trial, and none retries (its tries already ask
// the server). If so, k is the prober until accepted, refused, failed or
// unprobe.
func (l *connLimit) probe(k int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.phase[k] != parked || l.prober >= 0 || l.trial >= 0 || now.Before(l.nextProbe) {
		return false
	}
	for _, p := range l.phase {
		if p == retrying {
			return false
		}
	}
	l.phase[k], l.prober = probing, k
	return true
}

// unprobe parks connection k again without a probe (it found no work to
// probe with); the probe stays due.
func (l *connLimit) unprobe(k int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.phase[k] == probing {
		l.phase[k], l.prober = parked, -1
	}
}

// usage is a change of the number of connections a source uses, to report;
// none when Using is 0. Was is the number reported before, 0 the first time.
type usage struct{ Using, Was int }

// settle returns how many connections the source uses once that number is
// known after a shed and differs from the number last reported. It is known
// when no connection waits for an answer, no accepted probe is on trial, and
// at least one was accepted; parked and probing connections are not in use.
// Caller holds mu.
func (l *connLimit) settle() usage {
	if !l.shed || l.trial >= 0 {
		return usage{}
	}
	using, anyAccepted := 0, false
	for _, p := range l.phase {
		switch p {
		case asking:
			return usage{}
		case accepted:
			anyAccepted = true
			using++
		case idle, retrying:
			using++
		}
	}
	if !anyAccepted || using == l.reported {
		return usage{}
	}
	u := usage{Using: using, Was: l.reported}
	l.reported = using
	return u
}
