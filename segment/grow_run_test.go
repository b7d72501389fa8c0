package segment

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/testserver"
)

// RunSources with an adaptive connection count against test servers whose
// per-connection rate, total rate and connection cap are set by options.
// The assertions are on the counts chosen and the changes told, never on
// elapsed time.

// countLog records what OnConnections is told.
type countLog struct {
	mu      sync.Mutex
	changes []change
}

func (l *countLog) add(count, was int, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, change{Count: count, Was: was, Reason: reason})
}

func (l *countLog) get() []change {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]change(nil), l.changes...)
}

// autoRun downloads srv's file over one adaptive source starting at start
// connections, at most most, sampled every 100 ms, bounded by a minute.
func autoRun(t *testing.T, srv *testserver.Server, start, most int) ([]change, *Plan) {
	t.Helper()
	f := newFetcher(t, srv, most)
	f.growEvery = 100 * time.Millisecond // so a change may follow every 400 ms
	f.probeEvery = time.Hour
	var log countLog
	f.OnConnections = log.add
	plan, err := NewPlan(f.Size, nil, start, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, f.Size)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := RunSources(ctx, plan, w, []Source{{Fetcher: f, Connections: start, Max: most}}, nil); err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	checkDone(t, plan)
	changes := log.get()
	t.Logf("changes: %+v; server: %+v", changes, srv.Stats())
	// Each change starts where the one before left the count.
	was := start
	for _, c := range changes {
		if c.Was != was || c.Count < 1 || c.Count > most {
			t.Errorf("change %+v after a count of %d, ceiling %d", c, was, most)
		}
		was = c.Count
	}
	if peak := srv.Stats().Peak; peak > most {
		t.Errorf("%d answers at once, above the ceiling %d", peak, most)
	}
	return changes, plan
}

// Each connection throttled and nothing else: every added connection
// raises the throughput, so the count grows to the ceiling, and the
// server really sees that many answers at once.
func TestAutoGrowsToTheCeiling(t *testing.T) {
	t.Parallel() // mostly waiting for the throttled bodies
	const most = 8
	srv := testserver.New(t, testserver.Size(24*mib), testserver.Rate(mib))
	changes, _ := autoRun(t, srv, 2, most)
	reached := false
	for _, c := range changes {
		reached = reached || c.Count == most
	}
	if !reached {
		t.Errorf("the count never reached the ceiling %d: %+v", most, changes)
	}
	if peak := srv.Stats().Peak; peak != most {
		t.Errorf("%d answers at once, want %d", peak, most)
	}
}

// Each connection throttled to 1 MiB/s and the server's total to 4 MiB/s:
// the throughput stops growing at 4 connections, and the count comes back
// to about that from the step that found the plateau.
func TestAutoPlateauAtTheTotalCap(t *testing.T) {
	t.Parallel() // mostly waiting for the throttled bodies
	const most = 16
	srv := testserver.New(t, testserver.Size(20*mib), testserver.Rate(mib), testserver.TotalRate(4*mib))
	changes, _ := autoRun(t, srv, 2, most)
	plateau := -1
	for i, c := range changes {
		if c.Reason == ReasonPlateau {
			plateau = i
			break
		}
	}
	if plateau < 0 {
		t.Fatalf("no plateau: %+v", changes)
	}
	if n := changes[plateau].Count; n < 3 || n > 6 {
		t.Errorf("plateau at %d connections, want about 4", n)
	}
	for _, c := range changes[plateau:] {
		if c.Count > 6 {
			t.Errorf("after the plateau the count went to %d: %+v", c.Count, changes)
		}
	}
}

// A server that takes 3 connections and refuses more with 503: the count
// drops to 3 at the first refusal and never rises again; the held
// connections do not knock on its door one after another.
func TestAutoRefusedStaysBelow(t *testing.T) {
	t.Parallel() // mostly waiting for the throttled bodies
	for _, tt := range []struct{ limit, start int }{{3, 4}, {1, 2}, {5, 4}} {
		t.Run(fmt.Sprintf("limit=%d/start=%d", tt.limit, tt.start), func(t *testing.T) {
			t.Parallel()
			const most = 12
			srv := testserver.New(t, testserver.Size(8*mib), testserver.Rate(mib), testserver.MaxConcurrent(tt.limit, ""))
			changes, _ := autoRun(t, srv, tt.start, most)
			refused := -1
			for i, c := range changes {
				if c.Reason == ReasonRefused {
					refused = i
					break
				}
			}
			if refused < 0 {
				t.Fatalf("no refusal told: %+v", changes)
			}
			for _, c := range changes[refused:] {
				if c.Reason != ReasonRefused && c.Count > tt.limit {
					t.Errorf("after the refusal the count went to %d, above %d: %+v", c.Count, tt.limit, changes)
				}
			}
			st := srv.Stats()
			if st.Peak != tt.limit {
				t.Errorf("%d answers at once, want %d", st.Peak, tt.limit)
			}
			// Each refusal takes one connection away for good: at most
			// as many as the count ever went above the limit, plus one
			// (a request on a new TCP connection while an answer's
			// handler was still returning).
			over := 0
			for _, c := range changes {
				over = max(over, c.Count-tt.limit, c.Was-tt.limit)
			}
			if st.Refused > over+1 {
				t.Errorf("%d requests refused, want at most %d", st.Refused, over+1)
			}
		})
	}
}

// A file too small to keep the connections busy: the samples are never
// complete, so the count stays where it started. (Each connection's 128 KiB
// take 31 ms; a first-ramp sample is 50 ms.)
func TestAutoHoldsWithoutWork(t *testing.T) {
	srv := testserver.New(t, testserver.Size(256*kib), testserver.Rate(4*mib))
	if changes, _ := autoRun(t, srv, 2, 8); len(changes) > 0 {
		t.Errorf("the count changed with no work to spread: %+v", changes)
	}
}

// Places are taken one after another: a step of the count that a server
// refuses costs one refusal, not one for every connection it added. A
// server that takes 6 connections while each brings its worth gets the
// ramp's big step (6 to the top) and refuses the 7th alone.
func TestAutoBigStepCostsOneRefusal(t *testing.T) {
	t.Parallel() // mostly waiting for the throttled bodies
	srv := testserver.New(t, testserver.Size(16*mib), testserver.Rate(mib), testserver.MaxConcurrent(6, ""))
	changes, _ := autoRun(t, srv, 4, 32)
	big := false
	for _, c := range changes {
		big = big || c.Count > 6
	}
	if !big {
		t.Skipf("the ramp did not step above 6 (changes %+v): nothing to refuse", changes)
	}
	if n := srv.Stats().Refused; n > 2 {
		t.Errorf("%d answers of 503 after a step above the cap, want 1 or 2; changes %+v", n, changes)
	}
}
