package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Source is one server of a file, with the connections it may use.
type Source struct {
	Fetcher *Fetcher
	// Connections is how many connections the source uses; with Max, how
	// many it starts with (0: StartConnections).
	Connections int
	// Max, when above 0, makes the count adapt between 1 and Max: it grows
	// while added connections raise the source's throughput, shrinks when
	// the throughput does not miss them, and drops when the server refuses
	// some (see growth). Fetcher.OnConnections is told each change.
	Max int
	// Stop, if set, drops the source once it ends, as if one of its
	// connections had failed with context.Cause(Stop): onDrop is told, its
	// requests in flight are cancelled, its connections return, and the
	// bytes they wrote stay written. A source stopped before the run starts
	// fetches nothing.
	Stop context.Context
}

// RunSources is Run over several servers of the same file sharing one plan.
// A source whose connection meets an error of its own (a refused status, a
// broken answer, another version of the file, tries exhausted) is dropped:
// onDrop is told, its connections stop, and the other sources take over its
// ranges. A source that refuses connections with 503 or 429 while others
// work keeps fewer of them, as Run says. A source whose Stop ends is dropped
// too. A failure of the writer, the end of ctx, or the loss of the last
// source ends the run with that error.
func RunSources(ctx context.Context, plan *Plan, w io.WriterAt, sources []Source, onDrop func(source int, err error)) error {
	return runSources(ctx, plan, w, sources, onDrop)
}

// runSources runs the connections of every source on plan (see RunSources).
// With one source it is Run: the first error of a connection ends the run.
func runSources(ctx context.Context, plan *Plan, w io.WriterAt, sources []Source, onDrop func(source int, err error)) error {
	g, ctx := errgroup.WithContext(ctx)
	if a, ok := w.(Aborter); ok {
		stop := context.AfterFunc(ctx, func() { a.Abort(context.Cause(ctx)) })
		defer stop()
	}
	var (
		mu      sync.Mutex
		dropped = make([]bool, len(sources))
		alive   = len(sources)
	)
	// dropNow drops source i, unless it already was (news is false), and
	// reports whether it was the last.
	dropNow := func(i int, err error) (news, last bool) {
		mu.Lock()
		if dropped[i] {
			mu.Unlock()
			return false, false
		}
		dropped[i] = true
		alive--
		last = alive == 0
		mu.Unlock()
		if onDrop != nil {
			onDrop(i, err)
		}
		return true, last
	}
	drop := func(i int, err error) (last bool) {
		_, last = dropNow(i, err)
		return last
	}
	isDropped := func(i int) bool {
		mu.Lock()
		defer mu.Unlock()
		return dropped[i]
	}
	for i, src := range sources {
		if src.Stop != nil && src.Stop.Err() != nil {
			if cause := context.Cause(src.Stop); drop(i, cause) {
				return cause
			}
		}
	}
	// Every connection counts as working on the plan before any asks for
	// work, so that no span meant for another source goes to the first.
	for i, src := range sources {
		if !isDropped(i) {
			plan.join(i, src.slots())
		}
	}
	// A source stopped while the run goes on is dropped by its AfterFunc,
	// which Run waits for: onDrop is never called after Run returns.
	var unwatch []func()
	defer func() {
		for _, u := range unwatch {
			u()
		}
	}()
	id := 0
	var pools []*pool
	every := DefaultGrowEvery
	for i, src := range sources {
		if isDropped(i) {
			continue
		}
		f := src.Fetcher
		n := src.slots()
		sctx, stopped := ctx, func() (bool, error) { return false, nil }
		if src.Stop != nil {
			sctx, stopped, unwatch = watchStop(ctx, src.Stop, func(err error) (bool, bool) { return dropNow(i, err) }, unwatch)
		}
		var pl *pool
		if src.Max > 0 {
			start := src.Connections
			if start <= 0 {
				start = StartConnections
			}
			if f.growEvery > 0 {
				every = f.growEvery
			}
			pl = newPool(n, start, time.Now(), growHold*every, f.tellConnections)
			pools = append(pools, pl)
		}
		lim := newConnLimit(n, f.probeEvery)
		for k := range n {
			c := &conn{id: id, lim: lim, slot: k, chunk: minChunk, pool: pl} // buf: at its first request
			if pl != nil {
				c.meter = pl.meters[k]
			}
			id++
			g.Go(func() error {
				defer plan.leave(i)
				defer f.report(c, nil, 0)
				defer lim.stopped(k)
				err := f.connection(sctx, plan, w, c, i, isDropped, drop)
				var we *WriteError
				if by, last := stopped(); by && !errors.As(err, &we) {
					return last // nil unless it was the last source
				}
				return err
			})
		}
	}
	if len(pools) == 0 {
		return g.Wait()
	}
	// The sampler ends once every connection has.
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				for _, pl := range pools {
					pl.sample(now)
				}
			}
		}
	})
	err := g.Wait()
	close(stop)
	sampler.Wait()
	return err
}

// watchStop drops a source once stop ends: it returns the context the
// source's connections run under, cancelled then, and stopped, which
// reports whether the source was dropped so, not for an error of its own
// before (and the cause if that lost the run its last source). drop drops
// the source and reports whether it was news and whether it was the last.
// The returned unwatch list gains the function that stops the watch,
// waiting for a drop under way.
func watchStop(ctx, stop context.Context, drop func(error) (news, last bool), unwatch []func()) (context.Context, func() (bool, error), []func()) {
	sctx, cancel := context.WithCancelCause(ctx)
	var (
		mu   sync.Mutex
		by   bool
		last error
	)
	done := make(chan struct{})
	after := context.AfterFunc(stop, func() {
		defer close(done)
		cause := context.Cause(stop)
		news, wasLast := drop(cause)
		if !news {
			return // dropped already: its connections return as they would
		}
		mu.Lock()
		by = true
		if wasLast {
			last = cause
		}
		mu.Unlock()
		cancel(cause)
	})
	unwatch = append(unwatch, func() {
		if !after() {
			<-done
		}
		cancel(nil)
	})
	stopped := func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return by, last
	}
	return sctx, stopped, unwatch
}

// slots is how many connections src runs: Connections, or Max when the
// count adapts.
func (src Source) slots() int {
	if src.Max > 0 {
		return src.Max
	}
	return max(src.Connections, 0)
}

// tellConnections passes a change of an adaptive source's connection count
// to OnConnections.
func (f *Fetcher) tellConnections(c change) {
	if f.OnConnections != nil {
		f.OnConnections(c.Count, c.Was, c.Reason)
	}
}

// connection is the loop of one connection c to source i: take a span,
// fetch it, again, until the plan is done, ctx ends or the source is
// dropped. A connection the server refused while others work parks: it
// waits until its limit lets it probe, then takes a span like the others.
// With an adaptive count (c.pool), a connection works only while it holds
// a place, and gives it back between two requests when the count drops.
func (f *Fetcher) connection(ctx context.Context, plan *Plan, w io.WriterAt, c *conn, i int,
	isDropped func(int) bool, drop func(int, error) bool) error {
	parked := false
	for !isDropped(i) {
		if c.pool != nil && !parked && !c.admitted() {
			// Not admitted by the source's connection count: wait, holding
			// no copy buffer meanwhile.
			c.buf = nil
			f.report(c, nil, 0)
			if !plan.Wait(ctx) {
				return context.Cause(ctx)
			}
			continue
		}
		if parked {
			if !plan.Wait(ctx) {
				return context.Cause(ctx)
			}
			if !c.lim.probe(c.slot, time.Now()) {
				continue
			}
			if c.pool != nil {
				c.pool.probe(c.slot)
			}
		}
		span, ok := plan.NextFor(Thief{Rate: c.last.Rate, Latency: c.last.Latency, Source: i, Probe: parked})
		if !ok {
			if parked {
				c.lim.unprobe(c.slot)
				if c.pool != nil {
					c.pool.unprobe(c.slot, false)
				}
				continue
			}
			c.lim.idle(c.slot)
			if c.pool != nil {
				c.pool.idle(c.slot)
			}
			f.report(c, nil, 0)
			if plan.Wait(ctx) {
				continue
			}
			return context.Cause(ctx)
		}
		err := f.fetchSpan(ctx, span, w, c)
		parked = errors.Is(err, errShed)
		if c.pool != nil {
			if parked {
				c.pool.parked(c.slot, time.Now())
			} else {
				c.pool.unprobe(c.slot, true)
			}
		}
		if parked || errors.Is(err, errYield) {
			f.report(c, nil, 0)
		}
		if err == nil || parked || errors.Is(err, errYield) {
			continue
		}
		var we *WriteError
		if ctx.Err() != nil || errors.As(err, &we) {
			return err
		}
		if drop(i, err) {
			return err
		}
		return nil
	}
	return nil
}

// Sample fetches bytes [off, off+n) of the file in one ranged request, with
// the same checks as a download, for comparing servers.
func (f *Fetcher) Sample(ctx context.Context, off, n int64) ([]byte, error) {
	req, err := f.newRequest(ctx)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	if f.IfRange != "" {
		req.Header.Set("If-Range", f.IfRange)
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	if err := f.checkRange(resp, off, off+n); err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		return nil, err
	}
	return buf, nil
}
