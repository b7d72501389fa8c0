package segment

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/testserver"
)

// A source added after the run started takes its share of the plan, and
// the run ends only after Close.
func TestSourcesAddJoinsARun(t *testing.T) {
	t.Parallel()
	const size = 8 * mib
	slow := testserver.New(t, testserver.Size(size), testserver.TotalRate(256*kib))
	fast := testserver.New(t, testserver.Size(size))
	plan, err := NewPlan(size, nil, 2, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, size)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := StartSources(ctx, plan, w, []Source{{Fetcher: newFetcher(t, slow, 2), Connections: 2}}, nil)
	if !run.Add(1, Source{Fetcher: newFetcher(t, fast, 2), Connections: 2}) {
		t.Fatal("Add failed")
	}
	run.Close()
	if err := run.Wait(); err != nil {
		t.Fatal(err)
	}
	w.check(t, slow.Content())
	if got := fast.Stats().BodyBytes; got < size/2 {
		t.Errorf("the added source sent %d bytes of %d", got, size)
	}
	if run.Add(2, Source{Fetcher: newFetcher(t, fast, 1), Connections: 1}) {
		t.Error("Add after Close succeeded")
	}
}

// Dropped from outside, a source stops at once, answers in flight
// included: once Drop returns it sends nothing more, and a source added
// later fetches the rest.
func TestSourcesDropStopsASource(t *testing.T) {
	t.Parallel()
	const size = 4 * mib
	bad := testserver.New(t, testserver.Size(size), testserver.Rate(256*kib))
	good := testserver.New(t, testserver.Size(size))
	plan, err := NewPlan(size, nil, 2, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, size)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var dropped []int
	run := StartSources(ctx, plan, w, []Source{{Fetcher: newFetcher(t, bad, 2), Connections: 2}},
		func(i int, _ error) { dropped = append(dropped, i) })
	waitUntil(t, func() bool { return bad.Stats().BodyBytes >= 64*kib })
	before := bad.Stats().BodyBytes
	run.Drop(0, errors.New("its bytes differ"))
	after := bad.Stats().BodyBytes
	if during := after - before; during > 512*kib {
		t.Errorf("the dropped server sent %d bytes while Drop waited for its connections", during)
	}
	if !run.Add(1, Source{Fetcher: newFetcher(t, good, 2), Connections: 2}) {
		t.Fatal("Add failed")
	}
	run.Close()
	if err := run.Wait(); err != nil {
		t.Fatal(err)
	}
	w.check(t, good.Content())
	if len(dropped) != 1 || dropped[0] != 0 {
		t.Errorf("onDrop told %v, want [0]", dropped)
	}
	if more := bad.Stats().BodyBytes - after; more > 64*kib { // a write racing the close
		t.Errorf("the dropped server sent %d more bytes after Drop", more)
	}
}

// Until Close, connections without work wait: bytes reopened after the
// plan was done are fetched again by them.
func TestSourcesFetchReopenedBytesUntilClose(t *testing.T) {
	t.Parallel()
	const size = 2 * mib
	srv := testserver.New(t, testserver.Size(size))
	plan, err := NewPlan(size, nil, 2, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, size)
	w.overlap = true // the reopened bytes are written twice
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := StartSources(ctx, plan, w, []Source{{Fetcher: newFetcher(t, srv, 2), Connections: 2}}, nil)
	waitUntil(t, func() bool { return plan.Written() == size })
	before := srv.Stats().BodyBytes
	// Spoil a range in the writer, and give it back to the plan.
	w.mu.Lock()
	copy(w.buf[mib:mib+100], bytes.Repeat([]byte{0}, 100))
	w.mu.Unlock()
	if n := plan.Reopen(mib, mib+64*kib); n != 64*kib {
		t.Fatalf("Reopen = %d", n)
	}
	waitUntil(t, func() bool { return plan.Written() == size })
	run.Close()
	if err := run.Wait(); err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	if got := srv.Stats().BodyBytes - before; got != 64*kib {
		t.Errorf("fetched %d bytes again, want %d", got, 64*kib)
	}
}

// When every source is dropped before Close, the run waits for one to be
// added; at Close with none left it ends with the last source's error.
func TestSourcesLastDropEndsAtClose(t *testing.T) {
	t.Parallel()
	const size = 1 * mib
	srv := testserver.New(t, testserver.Size(size), testserver.Statuses(404))
	plan, err := NewPlan(size, nil, 1, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, size)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dropped := make(chan struct{})
	run := StartSources(ctx, plan, w, []Source{{Fetcher: newFetcher(t, srv, 1), Connections: 1}},
		func(int, error) { close(dropped) })
	<-dropped
	run.Close()
	var se *StatusError
	if err := run.Wait(); !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("Wait = %v, want the 404", err)
	}
}

// SampleWithin returns what a slow server sent in time, not an error.
func TestSampleWithinReturnsThePrefix(t *testing.T) {
	t.Parallel()
	srv := testserver.New(t, testserver.Size(mib), testserver.Rate(64*kib))
	f := newFetcher(t, srv, 1)
	got, err := f.SampleWithin(context.Background(), 1000, 256*kib, 1, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(got) >= 256*kib {
		t.Fatalf("got %d bytes, want a prefix", len(got))
	}
	if !bytes.Equal(got, srv.Content()[1000:1000+len(got)]) {
		t.Fatal("the prefix differs from the file")
	}
	full, err := f.SampleWithin(context.Background(), 0, 1000, 1, 10*time.Second)
	if err != nil || !bytes.Equal(full, srv.Content()[:1000]) {
		t.Fatalf("a sample in time: %d bytes, %v", len(full), err)
	}
	// Past the limit, it waits for the least it was asked for.
	most, err := f.SampleWithin(context.Background(), 0, 256*kib, 100*kib, time.Millisecond)
	if err != nil || len(most) < 100*kib || !bytes.Equal(most, srv.Content()[:len(most)]) {
		t.Fatalf("a sample of at least 100 KiB: %d bytes, %v", len(most), err)
	}
}

// waitUntil polls cond until it holds, failing t after 20 s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
	}
}

// A connection whose place is taken away in the middle of a long answer
// leaves at once rather than at the end of its request: its range goes
// back to the plan, and what it left of the answer was never sent.
func TestConnectionLeavesMidAnswerWhenTheCountDrops(t *testing.T) {
	t.Parallel()
	const size = 4 * mib
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(256*kib))
	f := newFetcher(t, srv, 2)
	plan, err := NewPlan(size, nil, 1, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	pl := newPool(2, 2, time.Now(), time.Hour, time.Hour, nil)
	ok := pl.enter(0)
	pl.answered(0, true)
	if !ok || !pl.enter(1) {
		t.Fatal("test setup: no places")
	}
	c := &conn{id: 0, lim: newConnLimit(2, time.Hour), slot: 0, chunk: size, pool: pl, meter: pl.meters[0]}
	span, _ := plan.Next()
	w := newMemWriter(t, size)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.fetchSpan(ctx, span, w, c) }()
	waitUntil(t, func() bool { return srv.Stats().BodyBytes >= 128*kib })
	pl.mu.Lock()
	pl.g.count = 1 // as a plateau would
	pl.mu.Unlock()
	if err := <-done; !errors.Is(err, errYield) {
		t.Fatalf("fetchSpan = %v, want errYield", err)
	}
	if !f.leftLately() {
		t.Error("the answer left was not recorded (see leftLately)")
	}
	if _, n := w.stats(); n >= 2*mib {
		t.Errorf("the connection wrote %d bytes of its 4 MiB answer before leaving", n)
	}
	if sent := srv.Stats().BodyBytes; sent >= 2*mib {
		t.Errorf("the server sent %d bytes of the 4 MiB answer", sent)
	}
	if _, ok := plan.Next(); !ok {
		t.Error("the rest of the range did not go back to the plan")
	}
}
