package segment

import (
	"fmt"
	"testing"
	"time"
)

// The tests of connLimit feed it events and times, as a connection loop
// would, and check its answers; no server is involved.

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// at is t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// mustPark fails t unless refusing k parks it (park) or makes it the retrier.
func mustPark(t *testing.T, l *connLimit, k int, now time.Time, retryAfter time.Duration, park bool) usage {
	t.Helper()
	got, u := l.refused(k, now, retryAfter)
	if got != park {
		t.Fatalf("refused(%d): park %v, want %v", k, got, park)
	}
	return u
}

// All requests go out together; the server (4 connections at most) refuses
// 8 of 12, and the refusals may come back before, after or among the
// accepted answers. Every refused connection parks, because the others
// have requests in flight, and the number in use is reported once, when
// every answer is in: 4.
func TestLimitRefusalsAtTheStart(t *testing.T) {
	for _, order := range []string{"RRRRRRRRAAAA", "AAAARRRRRRRR", "RARARARARRRR", "RRRRRRRAAAAR"} {
		t.Run(order, func(t *testing.T) {
			l := newConnLimit(len(order), 0)
			for k := range order {
				l.sending(k)
			}
			var reports []usage
			for k, ev := range order {
				var u usage
				if ev == 'R' {
					u = mustPark(t, l, k, t0, 0, true)
				} else {
					u = l.accepted(k, t0)
				}
				if u.Using > 0 {
					reports = append(reports, u)
					if k != len(order)-1 {
						t.Errorf("reported %v at answer %d, before every answer was in", u, k)
					}
				}
			}
			if len(reports) != 1 || reports[0] != (usage{Using: 4}) {
				t.Errorf("reports %v, want one of 4 connections", reports)
			}
		})
	}
}

// A server that refuses everything: every connection parks but the last,
// which retries with backoff; nothing is reported (none was accepted), and
// no parked connection probes while that one retries.
func TestLimitEveryConnectionRefused(t *testing.T) {
	l := newConnLimit(6, 0)
	for k := range 5 {
		mustPark(t, l, k, t0, 0, true)
	}
	for try := range 3 {
		if u := mustPark(t, l, 5, at(time.Duration(try)*time.Second), 0, false); u.Using != 0 {
			t.Errorf("reported %v with no connection accepted", u)
		}
	}
	if l.probe(0, at(time.Hour)) {
		t.Error("a parked connection probes while another retries")
	}
	// The retrier gets through: the others may probe again, in turn.
	l.accepted(5, at(time.Minute))
	if !l.probe(0, at(time.Hour)) {
		t.Error("no probe once the retrier was accepted")
	}
}

// The retrier parks once another connection works again, and a connection
// that is idle or gone does not count as working.
func TestLimitWhoCountsAsWorking(t *testing.T) {
	t.Run("retrier parks", func(t *testing.T) {
		l := newConnLimit(3, 0)
		mustPark(t, l, 0, t0, 0, true)  // 1 and 2 are about to ask
		l.idle(1)                       // no work for 1
		mustPark(t, l, 2, t0, 0, false) // 0 parked, 1 idle: 2 retries
		if l.probe(0, at(time.Hour)) {
			t.Fatal("probe while a connection retries")
		}
		l.sending(1) // 1 took work and asks
		mustPark(t, l, 2, at(time.Second), 0, true)
	})
	t.Run("gone", func(t *testing.T) {
		l := newConnLimit(2, 0)
		l.accepted(0, t0)
		l.stopped(0)
		mustPark(t, l, 1, t0, 0, false)
	})
	t.Run("failed", func(t *testing.T) {
		l := newConnLimit(2, 0)
		l.accepted(0, t0)
		l.failed(0) // a reset: no longer tells whether the server takes it
		mustPark(t, l, 1, t0, 0, false)
		l.sending(0) // its retry asks again
		mustPark(t, l, 1, t0, 0, true)
	})
	t.Run("accepted", func(t *testing.T) {
		l := newConnLimit(2, 0)
		l.accepted(0, t0)
		l.sending(0) // its next request keeps it accepted
		mustPark(t, l, 1, t0, 0, true)
	})
}

// Parked connections probe one at a time, after the first wait; a refused
// probe doubles the wait, up to maxProbe; an accepted one brings its
// connection back, and once its answer is complete the next probe follows
// after the first wait again.
func TestLimitProbes(t *testing.T) {
	const first = 10 * time.Second
	l := newConnLimit(3, first)
	l.accepted(0, t0)
	mustPark(t, l, 1, t0, 0, true)
	mustPark(t, l, 2, t0, 0, true)
	if l.probe(1, at(first-time.Nanosecond)) {
		t.Fatal("probe before the first wait")
	}
	if !l.probe(1, at(first)) {
		t.Fatal("no probe after the first wait")
	}
	if l.probe(2, at(first)) {
		t.Fatal("two probes at once")
	}
	now := at(first)
	wait := first
	for i := range 8 {
		if u := mustPark(t, l, 1, now, 0, true); u.Using != 0 {
			t.Errorf("refused probe %d reported %v: nothing changed", i, u)
		}
		wait = min(2*wait, maxProbe)
		if l.probe(2, now.Add(wait-time.Nanosecond)) {
			t.Fatalf("after %d refused probes: a probe before %v", i+1, wait)
		}
		now = now.Add(wait)
		if !l.probe(2, now) {
			t.Fatalf("after %d refused probes: no probe after %v", i+1, wait)
		}
		// 2 probes now; swap the roles for the next round.
		l.unprobe(2)
		if !l.probe(1, now) {
			t.Fatal("after unprobe, another connection may not probe")
		}
	}
	if wait != maxProbe {
		t.Fatalf("the wait grew to %v only", wait)
	}
	if u := l.accepted(1, now); u.Using != 0 {
		t.Errorf("reported %v while the accepted probe is on trial", u)
	}
	if l.probe(2, now.Add(time.Hour)) {
		t.Error("a probe while another is on trial")
	}
	now = now.Add(time.Second)
	if u := l.answered(1, now); u != (usage{Using: 2, Was: 1}) {
		t.Errorf("the accepted probe's answer is complete: reported %v, want 2 connections, was 1", u)
	}
	if l.probe(2, now.Add(first-time.Nanosecond)) || !l.probe(2, now.Add(first)) {
		t.Fatal("after an accepted probe the next one does not follow after the first wait")
	}
	// The waits start over: a refusal of this probe doubles the first.
	now = now.Add(first)
	mustPark(t, l, 2, now, 0, true)
	if l.probe(2, now.Add(2*first-time.Nanosecond)) || !l.probe(2, now.Add(2*first)) {
		t.Error("after an accepted probe the waits do not start over")
	}
}

// A probe accepted in the moment between two answers of another connection
// is followed by a refusal of that one's next request: a swap. It counts as
// a refused probe (the wait doubles) and changes nothing to report.
func TestLimitProbeSwap(t *testing.T) {
	const first = 10 * time.Second
	for _, refused := range []int{1, 4} { // another connection, or the probe's own next request
		t.Run(fmt.Sprint("refused=", refused), func(t *testing.T) {
			l := newConnLimit(5, first)
			for k := range 4 {
				l.accepted(k, t0)
			}
			if u := mustPark(t, l, 4, t0, 0, true); u != (usage{Using: 4}) {
				t.Fatalf("reported %v, want 4", u)
			}
			if !l.probe(4, at(first)) {
				t.Fatal("no probe")
			}
			l.accepted(4, at(first))
			now := at(first + time.Second)
			if u := mustPark(t, l, refused, now, 0, true); u.Using != 0 {
				t.Errorf("a swap reported %v", u)
			}
			// The refused connection is the one parked now.
			if l.probe(refused, now.Add(2*first-time.Nanosecond)) || !l.probe(refused, now.Add(2*first)) {
				t.Error("after a swap the next probe is not due after twice the wait")
			}
		})
	}
}

// A probe on trial whose connection fails otherwise (a reset) proves
// nothing: no report, and the wait stays as it was.
func TestLimitProbeTrialUndecided(t *testing.T) {
	const first = 10 * time.Second
	l := newConnLimit(3, first)
	l.accepted(0, t0)
	mustPark(t, l, 1, t0, 0, true)
	mustPark(t, l, 2, t0, 0, true)
	if !l.probe(1, at(first)) {
		t.Fatal("no probe")
	}
	l.accepted(1, at(first))
	l.failed(1)
	if u := l.answered(1, at(first+time.Second)); u.Using != 0 {
		t.Errorf("reported %v after a trial that ended undecided", u)
	}
	if !l.probe(2, at(first+time.Second)) {
		t.Error("no probe after a trial that ended undecided")
	}
}

// A parked connection waits at least the server's Retry-After, up to
// maxRetryAfter.
func TestLimitRetryAfter(t *testing.T) {
	for _, ra := range []time.Duration{0, time.Second, 30 * time.Second, time.Hour} {
		t.Run(fmt.Sprint(ra), func(t *testing.T) {
			l := newConnLimit(2, 10*time.Second)
			l.accepted(0, t0)
			mustPark(t, l, 1, t0, ra, true)
			want := max(10*time.Second, min(ra, maxRetryAfter))
			if l.probe(1, at(want-time.Nanosecond)) || !l.probe(1, at(want)) {
				t.Errorf("Retry-After %v: the probe is not due at %v", ra, want)
			}
		})
	}
}

// The number in use is reported when it changes after a shed: down when the
// server takes fewer, up when a probe is accepted, never while an answer is
// awaited, never twice the same.
func TestLimitReports(t *testing.T) {
	l := newConnLimit(3, time.Second)
	for k := range 3 {
		if u := l.accepted(k, t0); u.Using != 0 {
			t.Fatalf("reported %v before any refusal", u)
		}
	}
	if u := mustPark(t, l, 2, t0, 0, true); u != (usage{Using: 2}) {
		t.Fatalf("cap lowered to 2: reported %v", u)
	}
	if !l.probe(2, at(time.Second)) {
		t.Fatal("no probe")
	}
	l.sending(2)
	if u := l.accepted(2, at(time.Second)); u.Using != 0 {
		t.Fatalf("probe accepted, on trial: reported %v", u)
	}
	if u := l.answered(2, at(2*time.Second)); u != (usage{Using: 3, Was: 2}) {
		t.Fatalf("probe answered: reported %v", u)
	}
	l.idle(0) // no work left for 0: still in use, nothing to report
	l.sending(0)
	if u := mustPark(t, l, 1, at(2*time.Second), 0, true); u.Using != 0 {
		t.Fatalf("reported %v while 0 waits for its answer", u)
	}
	if u := l.accepted(0, at(2*time.Second)); u != (usage{Using: 2, Was: 3}) {
		t.Fatalf("once 0 is answered: reported %v", u)
	}
}
