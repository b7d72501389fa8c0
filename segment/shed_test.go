package segment

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/testserver"
)

// Run against a lone server that caps its concurrent answers (503 beyond):
// the download completes over the connections the server takes.

// limitLog records what a Fetcher tells OnLimit and OnRetry.
type limitLog struct {
	mu      sync.Mutex
	reports []usage
	retries []string
}

func (l *limitLog) watch(f *Fetcher) {
	f.OnLimit = func(using, was int) {
		l.mu.Lock()
		l.reports = append(l.reports, usage{Using: using, Was: was})
		l.mu.Unlock()
	}
	f.OnRetry = func(err error, _ time.Duration) {
		l.mu.Lock()
		l.retries = append(l.retries, err.Error())
		l.mu.Unlock()
	}
}

func (l *limitLog) get() ([]usage, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]usage(nil), l.reports...), append([]string(nil), l.retries...)
}

// cappedRun runs conns connections on a fresh plan of srv's file, with
// parked connections probing every probeEvery, bounded by a minute so a
// connection that never ends fails the test instead of hanging it.
func cappedRun(t *testing.T, srv *testserver.Server, conns int, probeEvery time.Duration, log *limitLog) (*memWriter, error) {
	t.Helper()
	f := newFetcher(t, srv, conns)
	f.probeEvery = probeEvery
	log.watch(f)
	plan, err := NewPlan(f.Size, nil, conns, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, f.Size)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return w, f.Run(ctx, plan, w, conns)
}

// The connections beyond the cap are refused once each at the start and
// park; the others fetch the whole file; OnLimit is told the cap once, and
// no connection retries with backoff. No probe is due during the download.
func TestRunShedsToTheServersCap(t *testing.T) {
	t.Parallel() // mostly waiting for the throttled bodies
	for _, tt := range []struct{ limit, conns int }{{1, 3}, {2, 6}, {3, 4}} {
		t.Run(fmt.Sprintf("cap=%d/conns=%d", tt.limit, tt.conns), func(t *testing.T) {
			t.Parallel()
			srv := testserver.New(t, testserver.Size(int64(tt.limit)*mib), testserver.Rate(mib),
				testserver.MaxConcurrent(tt.limit, ""))
			var log limitLog
			w, err := cappedRun(t, srv, tt.conns, time.Hour, &log)
			if err != nil {
				t.Fatal(err)
			}
			w.check(t, srv.Content())
			checkShed(t, srv, &log, tt.limit, tt.conns)
		})
	}
}

// checkShed fails t unless srv refused conns-limit requests (one more at
// most: a request that took a new TCP connection while an answer's handler
// was still returning), ran limit answers at once, OnLimit was told limit
// once, and nothing was retried.
func checkShed(t *testing.T, srv *testserver.Server, log *limitLog, limit, conns int) {
	t.Helper()
	st := srv.Stats()
	if st.Refused < conns-limit || st.Refused > conns-limit+1 {
		t.Errorf("the server refused %d requests, want %d", st.Refused, conns-limit)
	}
	if st.Peak != limit {
		t.Errorf("at most %d answers at once, want %d", st.Peak, limit)
	}
	reports, retries := log.get()
	if len(reports) != 1 || reports[0] != (usage{Using: limit}) {
		t.Errorf("OnLimit told %v, want once %d connections", reports, limit)
	}
	if len(retries) > 0 {
		t.Errorf("retried: %q", retries)
	}
}

// All requests go out together and the refusals come back before the
// accepted answers' headers: the refused connections still park, since the
// others have requests in flight.
func TestRunShedsWhenRefusalsComeFirst(t *testing.T) {
	t.Parallel() // mostly waiting for the throttled bodies
	const limit, conns = 2, 6
	srv := testserver.New(t, testserver.Size(2*mib), testserver.Rate(2*mib),
		testserver.MaxConcurrent(limit, ""), testserver.StallHeaders(300*time.Millisecond, limit))
	var log limitLog
	w, err := cappedRun(t, srv, conns, time.Hour, &log)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	checkShed(t, srv, &log, limit, conns)
}

// A parked connection waits for the server's Retry-After before it probes,
// however short its own wait: with an hour's Retry-After, no probe during
// the download.
func TestRunParkedHonourRetryAfter(t *testing.T) {
	t.Parallel() // mostly waiting for the throttled bodies
	const limit, conns = 2, 5
	srv := testserver.New(t, testserver.Size(2*mib), testserver.Rate(mib), testserver.MaxConcurrent(limit, "3600"))
	var log limitLog
	w, err := cappedRun(t, srv, conns, 10*time.Millisecond, &log)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	checkShed(t, srv, &log, limit, conns)
}

// Parked connections probe one at a time and back off while the server
// still refuses: a download of about three seconds with a first wait of
// 50 ms sees a handful of probes (after 50, 150, 350, 750, 1550 ms), not one
// every 50 ms, nor one per connection.
func TestRunProbesBackOff(t *testing.T) {
	t.Parallel() // mostly waiting for the throttled bodies
	const limit, conns = 2, 6
	srv := testserver.New(t, testserver.Size(6*mib), testserver.Rate(mib), testserver.MaxConcurrent(limit, ""))
	var log limitLog
	w, err := cappedRun(t, srv, conns, 50*time.Millisecond, &log)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	st := srv.Stats()
	// The waits of 10 probes add up to 50 ms × (2^10 - 1), over 50 s: the
	// bound holds for any download shorter than that.
	probes := st.Refused - (conns - limit)
	t.Logf("%d refused probes", probes)
	if probes < 1 || probes > 10 {
		t.Errorf("%d refused probes, want 1 to 10", probes)
	}
	if st.Peak != limit {
		t.Errorf("at most %d answers at once, want %d", st.Peak, limit)
	}
}

// When the server takes more connections again, the probes bring the parked
// connections back, one at a time, and OnLimit is told the new number.
func TestRunProbeBringsConnectionsBack(t *testing.T) {
	t.Parallel() // mostly waiting for the throttled bodies
	const limit, conns = 2, 6
	srv := testserver.New(t, testserver.Size(8*mib), testserver.Rate(mib), testserver.MaxConcurrent(limit, ""))
	var log limitLog
	f := newFetcher(t, srv, conns)
	f.probeEvery = 10 * time.Millisecond
	log.watch(f)
	var once sync.Once
	f.OnLimit = func(using, was int) {
		once.Do(func() { srv.SetOption(testserver.MaxConcurrent(conns, "")) }) // the cap is lifted
		log.mu.Lock()
		log.reports = append(log.reports, usage{Using: using, Was: was})
		log.mu.Unlock()
	}
	w, plan, err := runPlan(t, f, conns, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	checkDone(t, plan)
	st := srv.Stats()
	if st.Peak <= limit {
		t.Errorf("at most %d answers at once: no parked connection came back", st.Peak)
	}
	if st.Refused > conns-limit+1 {
		t.Errorf("%d refusals: the probes after the cap was lifted were refused", st.Refused)
	}
	reports, _ := log.get()
	if len(reports) < 2 || reports[0] != (usage{Using: limit}) || reports[1].Using <= limit || reports[1].Was != limit {
		t.Errorf("OnLimit told %v, want %d and then more", reports, limit)
	}
}

// A server that refuses everything still fails the run, after the retry
// budget of the one connection that retries; the others park at their
// first refusal.
func TestRunEveryRequestRefused(t *testing.T) {
	const conns, tries = 6, 3
	codes := make([]int, 100)
	for i := range codes {
		codes[i] = 503
	}
	srv := testserver.New(t, testserver.Size(mib), testserver.Statuses(codes...))
	var log limitLog
	f := newFetcher(t, srv, conns)
	f.MaxTries = tries
	f.probeEvery = time.Hour
	log.watch(f)
	plan, err := NewPlan(f.Size, nil, conns, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = f.Run(ctx, plan, newMemWriter(t, f.Size), conns)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 503 || !strings.Contains(err.Error(), fmt.Sprintf("giving up after %d tries", tries)) {
		t.Fatalf("Run = %v, want giving up after %d tries with the 503", err, tries)
	}
	if n := srv.Stats().Statuses[503]; n != conns-1+tries {
		t.Errorf("%d answers of 503, want %d: %d parked at their first, one tried %d times", n, conns-1+tries, conns-1, tries)
	}
	if reports, retries := log.get(); len(reports) > 0 || len(retries) != tries-1 {
		t.Errorf("OnLimit told %v, %d retries; want nothing and %d", reports, len(retries), tries-1)
	}
}

// A refusal soon after a connection left an answer before its end may be
// the server still counting that answer: it parks no connection and lowers
// no count; the same refusal without it parks the connection.
func TestRefusalAfterALeftAnswerIsRetried(t *testing.T) {
	for _, left := range []bool{false, true} {
		t.Run(fmt.Sprint("left=", left), func(t *testing.T) {
			l := newConnLimit(3, 0)
			l.accepted(0, time.Now())
			l.accepted(1, time.Now())
			l.sending(2)
			f := &Fetcher{}
			if left {
				f.leftAnswer()
			}
			c := &conn{lim: l, slot: 2}
			if park := f.park(c, &StatusError{Code: http.StatusServiceUnavailable}); park == left {
				t.Fatalf("park = %v, want %v", park, !left)
			}
		})
	}
}
