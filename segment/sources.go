package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
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
	// Ceiling, when above 0 with Max, bounds the counts of every such
	// source of the run together (the largest Ceiling given): a server
	// grows only into connections the others leave, and at the ceiling
	// the one that brings the least per connection gives one every few
	// seconds to one that brings fasterBy times as much.
	Ceiling int
	// Stop, if set, drops the source once it ends, as Sources.Drop does,
	// with context.Cause(Stop): onDrop is told, its requests in flight are
	// cancelled, its connections return, and the bytes they wrote stay
	// written. A source stopped before the run starts fetches nothing.
	Stop context.Context
}

// slots is how many connections src runs: Connections, or Max when the
// count adapts.
func (src Source) slots() int {
	if src.Max > 0 {
		return src.Max
	}
	return max(src.Connections, 0)
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
	r := StartSources(ctx, plan, w, sources, onDrop)
	r.Close()
	return r.Wait()
}

// Sources is a run of RunSources whose set of sources may change while it
// runs: Add brings in a server found good after the run started, Drop
// takes out one found bad, and Close says that no more will come. Until
// Close, connections that run out of work wait for more (bytes given back
// with Plan.Reopen, say) instead of ending, and the loss of every source
// does not end the run: one may still be added.
type Sources struct {
	ctx    context.Context // the run's; ends with its first error
	cancel context.CancelCauseFunc
	g      *errgroup.Group
	plan   *Plan
	w      io.WriterAt
	onDrop func(source int, err error)
	// unabort stops the abort of an Aborter writer when the run ends.
	unabort func() bool

	closed   chan struct{} // closed by Close
	stop     chan struct{} // ends the sampler
	sampler  sync.WaitGroup
	mu       sync.Mutex
	sources  []*running
	alive    int
	lastErr  error // why the last source to go was dropped
	isClosed bool
	nextID   int     // the id of the next connection
	pools    []*pool // of adaptive sources, sampled every `every`
	every    time.Duration
	ceil     *ceiling // shared by the sources with a Ceiling, or nil
	failed   error    // why the run ended: its last source dropped from outside
	// unwatch stops watching the sources' Stop, waiting for a drop under
	// way; watching counts the drops under way.
	unwatch  []func()
	watching sync.WaitGroup
}

// running is the state of one source of a Sources.
type running struct {
	cancel  context.CancelCauseFunc // ends the source's connections
	pool    *pool                   // with an adaptive count
	conns   sync.WaitGroup
	dropped bool
	outside bool // dropped by Drop, not for an error of its own
}

// StartSources starts the connections of sources on plan and returns the
// run; see RunSources for what ends it, and Sources for what changes it.
// The caller must Close it, then Wait for it.
func StartSources(ctx context.Context, plan *Plan, w io.WriterAt, sources []Source, onDrop func(source int, err error)) *Sources {
	ctx, cancel := context.WithCancelCause(ctx)
	g, gctx := errgroup.WithContext(ctx)
	r := &Sources{ctx: gctx, cancel: cancel, g: g, plan: plan, w: w, onDrop: onDrop,
		closed: make(chan struct{}), stop: make(chan struct{}), every: DefaultGrowEvery}
	if a, ok := w.(Aborter); ok {
		r.unabort = context.AfterFunc(gctx, func() { a.Abort(context.Cause(gctx)) })
	}
	// The keeper holds the run open until Close, and ends it then if no
	// source is left.
	g.Go(func() error {
		select {
		case <-gctx.Done():
			return context.Cause(gctx)
		case <-r.closed:
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.alive == 0 && r.lastErr != nil {
			return r.lastErr
		}
		return nil
	})
	for _, src := range sources {
		if src.Fetcher != nil && src.Fetcher.growEvery > 0 {
			r.every = src.Fetcher.growEvery
		}
	}
	// Every connection counts as working on the plan before any asks for
	// work, so that no span meant for another source goes to the first.
	r.mu.Lock()
	for i, src := range sources {
		r.plan.join(i, src.slots())
	}
	for i, src := range sources {
		r.add(i, src, true)
	}
	r.mu.Unlock()
	r.sampler.Go(r.sample)
	return r
}

// Add starts the connections of one more source, numbered i (for onDrop,
// Drop and the plan's Thief.Source), a number no source of the run has.
// It reports false when the run is closed or has ended.
func (r *Sources) Add(i int, src Source) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isClosed || r.ctx.Err() != nil || r.at(i) != nil {
		return false
	}
	r.add(i, src, false)
	return true
}

// at is source i, nil when there is none. Caller holds mu.
func (r *Sources) at(i int) *running {
	if i < 0 || i >= len(r.sources) {
		return nil
	}
	return r.sources[i]
}

// add is Add; joined says the plan already counts the source's
// connections. Caller holds mu.
func (r *Sources) add(i int, src Source, joined bool) {
	sctx, scancel := context.WithCancelCause(r.ctx)
	rs := &running{cancel: scancel}
	for len(r.sources) <= i {
		r.sources = append(r.sources, nil)
	}
	r.sources[i] = rs
	r.alive++
	n := src.slots()
	if !joined {
		r.plan.join(i, n)
	}
	if src.Stop != nil {
		if src.Stop.Err() != nil {
			for range n {
				r.plan.leave(i)
			}
			r.mu.Unlock()
			r.drop(i, context.Cause(src.Stop))
			r.mu.Lock()
			return
		}
		r.watching.Add(1)
		stop := context.AfterFunc(src.Stop, func() {
			defer r.watching.Done()
			r.Drop(i, context.Cause(src.Stop))
		})
		r.unwatch = append(r.unwatch, func() {
			if stop() {
				r.watching.Done() // it never ran
			}
		})
	}
	f := src.Fetcher
	var pl *pool
	if src.Max > 0 {
		start := src.Connections
		if start <= 0 {
			start = StartConnections
		}
		pl = newPool(n, start, time.Now(), r.every, growHold*r.every, f.tellConnections)
		r.pools = append(r.pools, pl)
		rs.pool = pl
		if src.Ceiling > 0 {
			if r.ceil == nil {
				r.ceil = newCeiling(src.Ceiling)
			}
			r.ceil.raise(src.Ceiling)
			pl.share(r.ceil)
		}
	}
	lim := newConnLimit(n, f.probeEvery)
	bufMax := f.bufferLimit(n)
	for k := range n {
		c := &conn{id: r.nextID, lim: lim, slot: k, chunk: minChunk, pool: pl, bufMax: bufMax} // buf: at its first request
		if pl != nil {
			c.meter = pl.meters[k]
		}
		r.nextID++
		rs.conns.Add(1)
		r.g.Go(func() error {
			defer rs.conns.Done()
			defer r.plan.leave(i)
			defer f.report(c, nil, 0)
			defer lim.stopped(k)
			err := f.connection(sctx, r.plan, r.w, c, i, r)
			var we *WriteError
			if err != nil && r.ctx.Err() == nil && r.droppedOutside(i) && !errors.As(err, &we) {
				return nil // not the run's error
			}
			return err
		})
	}
}

// Drop stops source i's connections, answers in flight included, and
// returns once none of them will write again; the plan keeps every byte
// they wrote. onDrop is told, with err. When no source is left and none
// may come, the run ends with err.
func (r *Sources) Drop(i int, err error) {
	r.mu.Lock()
	rs := r.at(i)
	r.mu.Unlock()
	if rs == nil {
		return
	}
	news, last := r.dropNews(i, err)
	if news {
		r.mu.Lock()
		rs.outside = true
		if last {
			r.failed = err
		}
		r.mu.Unlock()
		if last {
			r.cancel(err)
		}
	}
	rs.cancel(err)
	rs.conns.Wait()
}

// droppedOutside reports whether source i was dropped by Drop.
func (r *Sources) droppedOutside(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sources[i].outside
}

// Context is the run's context: it ends when the run fails, and once Wait
// has returned.
func (r *Sources) Context() context.Context { return r.ctx }

// Close says that no source will be added or dropped from outside: from
// now on, connections without work end, and so does the run once the
// plan is done or no source is left.
func (r *Sources) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.isClosed {
		r.isClosed = true
		close(r.closed)
	}
}

// Wait waits for every connection, and returns the run's error. Call it
// after Close.
func (r *Sources) Wait() error {
	err := r.g.Wait()
	r.mu.Lock()
	unwatch := r.unwatch
	r.mu.Unlock()
	for _, u := range unwatch {
		u()
	}
	r.watching.Wait() // no onDrop after Wait
	r.mu.Lock()
	if r.failed != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = r.failed
	}
	r.mu.Unlock()
	if r.unabort != nil {
		r.unabort()
	}
	close(r.stop)
	r.sampler.Wait()
	r.cancel(nil)
	return err
}

// drop marks source i dropped and tells onDrop; it reports whether the
// run is to end: no source is left and none may come.
func (r *Sources) drop(i int, err error) (last bool) {
	_, last = r.dropNews(i, err)
	return last
}

// dropNews is drop, and reports too whether the source was not dropped
// already.
func (r *Sources) dropNews(i int, err error) (news, last bool) {
	r.mu.Lock()
	rs := r.sources[i]
	if rs == nil || rs.dropped {
		r.mu.Unlock()
		return false, false
	}
	rs.dropped = true
	if rs.pool != nil {
		rs.pool.unshare()
	}
	r.alive--
	r.lastErr = err
	last = r.alive == 0 && r.isClosed
	r.mu.Unlock()
	if r.onDrop != nil {
		r.onDrop(i, err)
	}
	return true, last
}

// isDropped reports whether source i was dropped.
func (r *Sources) isDropped(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sources[i] == nil || r.sources[i].dropped
}

// idle waits, for a connection without work, until there may be some: it
// reports false when the connection is to end (the plan is done and the
// run closed, or ctx ended).
func (r *Sources) idle(ctx context.Context) bool {
	return r.plan.waitUntil(ctx, r.closed, nil)
}

// waitTurn is idle for a connection waiting for a place in its pool: it
// also returns when turn is closed (see pool.turn).
func (r *Sources) waitTurn(ctx context.Context, turn <-chan struct{}) bool {
	return r.plan.waitUntil(ctx, r.closed, turn)
}

// sample feeds the adaptive sources their throughput every interval,
// until the run ends.
func (r *Sources) sample() {
	t := time.NewTicker(r.every / samplesPerWindow)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.mu.Lock()
			pools, ceil := r.pools, r.ceil
			r.mu.Unlock()
			for _, pl := range pools {
				pl.sample(now)
			}
			if ceil != nil {
				ceil.rebalance(now, growHold*r.every)
			}
		}
	}
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
func (f *Fetcher) connection(ctx context.Context, plan *Plan, w io.WriterAt, c *conn, i int, r *Sources) error {
	parked := false
	for !r.isDropped(i) {
		if c.pool != nil && !parked {
			turn := c.pool.turn()
			if !c.admitted() {
				// Not admitted by the source's connection count: wait,
				// holding no copy buffer meanwhile.
				c.buf = nil
				f.report(c, nil, 0)
				if !r.waitTurn(ctx, turn) {
					return context.Cause(ctx)
				}
				continue
			}
		}
		if parked {
			if !r.idle(ctx) {
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
			if r.idle(ctx) {
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
		if r.drop(i, err) {
			return err
		}
		return nil
	}
	return nil
}

// Sample fetches bytes [off, off+n) of the file in one ranged request, with
// the same checks as a download, for comparing servers.
func (f *Fetcher) Sample(ctx context.Context, off, n int64) ([]byte, error) {
	return f.sample(ctx, off, n, n, 0)
}

// SampleWithin is Sample bounded in time: once limit has passed since the
// answer began, it returns the bytes from off it has, when they are at
// least least; fewer than n, then, from a slow server.
func (f *Fetcher) SampleWithin(ctx context.Context, off, n, least int64, limit time.Duration) ([]byte, error) {
	return f.sample(ctx, off, n, least, limit)
}

// sample is SampleWithin; a limit of 0 waits for all n bytes.
func (f *Fetcher) sample(ctx context.Context, off, n, least int64, limit time.Duration) ([]byte, error) {
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
	var late atomic.Bool
	if limit > 0 {
		t := time.AfterFunc(limit, func() { late.Store(true) })
		defer t.Stop()
	}
	buf := make([]byte, n)
	var got int64
	for got < n {
		k, err := resp.Body.Read(buf[got:])
		got += int64(k)
		if got >= min(least, n) && late.Load() {
			break
		}
		if err == io.EOF && got < n {
			return nil, io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
	}
	return buf[:got], nil
}
