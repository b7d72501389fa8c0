package segment

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/testserver"
)

var errSentBadBytes = errors.New("sent bad bytes (test)")

// dropLog records what RunSources tells onDrop.
type dropLog struct {
	mu    sync.Mutex
	drops []int
	errs  []error
}

func (l *dropLog) onDrop(i int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drops = append(l.drops, i)
	l.errs = append(l.errs, err)
}

func (l *dropLog) get() ([]int, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.drops...), append([]error(nil), l.errs...)
}

// A source whose Stop ends mid-run is dropped at once: its answer in
// flight, stalled for an hour, is cancelled, and the other source fetches
// the rest. The run is bounded by 30 s, far below the stalled answer's
// stall timer, so a request left running fails the test.
func TestRunSourcesStopMidRun(t *testing.T) {
	const size = 2 * mib
	stalling := testserver.New(t, testserver.Size(size), testserver.StallAfter(64*kib, time.Hour, -1))
	good := testserver.New(t, testserver.Size(size))
	fa, fb := newFetcher(t, stalling, 2), newFetcher(t, good, 2)
	fa.StallTimeout, fa.BufferSize = time.Hour, 16*kib // the buffer fills before the stall
	stop, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var once sync.Once
	fa.OnWrite = func(_, _ int64) { once.Do(func() { cancel(errSentBadBytes) }) }
	plan, err := NewPlan(size, nil, 4, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, size)
	ctx, done := context.WithTimeout(context.Background(), 30*time.Second)
	defer done()
	var log dropLog
	err = RunSources(ctx, plan, w, []Source{{Fetcher: fa, Connections: 2, Stop: stop}, {Fetcher: fb, Connections: 2}}, log.onDrop)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, good.Content())
	checkDone(t, plan)
	drops, errs := log.get()
	if len(drops) != 1 || drops[0] != 0 || !errors.Is(errs[0], errSentBadBytes) {
		t.Fatalf("onDrop told %v %v, want source 0 once, for its Stop's cause", drops, errs)
	}
}

// A source stopped before the run starts sends no request; onDrop is told
// once.
func TestRunSourcesStoppedBeforeStart(t *testing.T) {
	const size = mib
	a := testserver.New(t, testserver.Size(size))
	b := testserver.New(t, testserver.Size(size))
	stop, cancel := context.WithCancelCause(context.Background())
	cancel(errSentBadBytes)
	plan, err := NewPlan(size, nil, 4, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, size)
	var log dropLog
	err = RunSources(context.Background(), plan, w, []Source{{Fetcher: newFetcher(t, a, 2), Connections: 2, Stop: stop},
		{Fetcher: newFetcher(t, b, 2), Connections: 2}}, log.onDrop)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, b.Content())
	if n := a.Stats().Gets; n != 0 {
		t.Errorf("the stopped source got %d requests", n)
	}
	if drops, errs := log.get(); len(drops) != 1 || drops[0] != 0 || !errors.Is(errs[0], errSentBadBytes) {
		t.Fatalf("onDrop told %v %v, want source 0 once", drops, errs)
	}
}

// Stopping the last source ends the run with the Stop's cause, whether it
// happens before the run or during it.
func TestRunSourcesStopLastSource(t *testing.T) {
	for _, before := range []bool{true, false} {
		name := "during"
		if before {
			name = "before"
		}
		t.Run(name, func(t *testing.T) {
			const size = mib
			srv := testserver.New(t, testserver.Size(size), testserver.StallAfter(64*kib, time.Hour, -1))
			f := newFetcher(t, srv, 2)
			f.StallTimeout, f.BufferSize = time.Hour, 16*kib
			stop, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			if before {
				cancel(errSentBadBytes)
			}
			var once sync.Once
			f.OnWrite = func(_, _ int64) { once.Do(func() { cancel(errSentBadBytes) }) }
			plan, err := NewPlan(size, nil, 2, 64*kib)
			if err != nil {
				t.Fatal(err)
			}
			ctx, done := context.WithTimeout(context.Background(), 30*time.Second)
			defer done()
			var log dropLog
			err = RunSources(ctx, plan, newMemWriter(t, size), []Source{{Fetcher: f, Connections: 2, Stop: stop}}, log.onDrop)
			if !errors.Is(err, errSentBadBytes) {
				t.Fatalf("run ended with %v, want the Stop's cause", err)
			}
			if drops, _ := log.get(); len(drops) != 1 {
				t.Fatalf("onDrop told %v, want one drop", drops)
			}
		})
	}
}

// A source dropped for an error of its own whose Stop onDrop then ends (as
// a caller that keeps dropped sources stopped for later runs does) still
// ends the run with its error when it was the last.
func TestRunSourcesStopAfterOwnFailure(t *testing.T) {
	for range 5 {
		srv := testserver.New(t, testserver.Size(mib), testserver.Statuses(http.StatusNotFound))
		stop, cancel := context.WithCancelCause(context.Background())
		plan, err := NewPlan(mib, nil, 1, 64*kib)
		if err != nil {
			t.Fatal(err)
		}
		err = RunSources(context.Background(), plan, newMemWriter(t, mib), []Source{{Fetcher: newFetcher(t, srv, 1), Connections: 1, Stop: stop}},
			func(int, error) {
				cancel(errSentBadBytes)
				time.Sleep(5 * time.Millisecond) // lets the Stop's drop run first, as it may
			})
		var se *StatusError
		if !errors.As(err, &se) || se.Code != http.StatusNotFound {
			t.Fatalf("run ended with %v, want the source's 404", err)
		}
	}
}
