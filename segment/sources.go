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
}

// RunSources is Run over several servers of the same file sharing one plan.
// A source whose connection meets an error of its own (a refused status, a
// broken answer, another version of the file, tries exhausted) is dropped:
// onDrop is told, its connections stop, and the other sources take over its
// ranges. A source that refuses connections with 503 or 429 while others
// work keeps fewer of them, as Run says. A failure of the writer, the end of
// ctx, or the loss of the last source ends the run with that error.
func RunSources(ctx context.Context, plan *Plan, w io.WriterAt, sources []Source, onDrop func(source int, err error)) error {
	r := StartSources(ctx, plan, w, sources, onDrop)
	r.Close()
	return r.Wait()
}

// runSources is RunSources; with one source it is Run: the first error of
// a connection ends the run.
func runSources(ctx context.Context, plan *Plan, w io.WriterAt, sources []Source, onDrop func(source int, err error)) error {
	return RunSources(ctx, plan, w, sources, onDrop)
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
}

// running is the state of one source of a Sources.
type running struct {
	cancel  context.CancelCauseFunc // ends the source's connections
	conns   sync.WaitGroup
	dropped bool
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
	for _, src := range sources {
		r.Add(src)
	}
	r.sampler.Go(r.sample)
	return r
}

// Add starts the connections of one more source and returns its index (the
// one onDrop and Drop use), or -1 when the run is closed or has ended.
func (r *Sources) Add(src Source) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isClosed || r.ctx.Err() != nil {
		return -1
	}
	i := len(r.sources)
	sctx, scancel := context.WithCancelCause(r.ctx)
	rs := &running{cancel: scancel}
	r.sources = append(r.sources, rs)
	r.alive++
	f := src.Fetcher
	n := max(src.Connections, 0)
	var pl *pool
	if src.Max > 0 {
		start := src.Connections
		if start <= 0 {
			start = StartConnections
		}
		n = src.Max
		pl = newPool(n, start, time.Now(), growHold*r.every, f.tellConnections)
		r.pools = append(r.pools, pl)
	}
	lim := newConnLimit(n, f.probeEvery)
	for k := range n {
		c := &conn{id: r.nextID, lim: lim, slot: k, chunk: minChunk, pool: pl} // buf: at its first request
		if pl != nil {
			c.meter = pl.meters[k]
		}
		r.nextID++
		rs.conns.Add(1)
		r.g.Go(func() error {
			defer rs.conns.Done()
			defer f.report(c, nil, 0)
			defer lim.stopped(k)
			err := f.connection(sctx, r.plan, r.w, c, i, r)
			if err != nil && r.ctx.Err() == nil && sctx.Err() != nil {
				return nil // dropped from outside: not the run's error
			}
			return err
		})
	}
	return i
}

// Drop stops source i's connections, answers in flight included, and
// returns once none of them will write again; the plan keeps every byte
// they wrote. onDrop is told, with err.
func (r *Sources) Drop(i int, err error) {
	r.mu.Lock()
	if i < 0 || i >= len(r.sources) {
		r.mu.Unlock()
		return
	}
	rs := r.sources[i]
	r.mu.Unlock()
	r.drop(i, err)
	rs.cancel(err)
	rs.conns.Wait()
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
	r.mu.Lock()
	rs := r.sources[i]
	if rs.dropped {
		r.mu.Unlock()
		return false
	}
	rs.dropped = true
	r.alive--
	r.lastErr = err
	last = r.alive == 0 && r.isClosed
	r.mu.Unlock()
	if r.onDrop != nil {
		r.onDrop(i, err)
	}
	return last
}

// isDropped reports whether source i was dropped.
func (r *Sources) isDropped(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sources[i].dropped
}

// idle waits, for a connection without work, until there may be some: it
// reports false when the connection is to end (the plan is done and the
// run closed, or ctx ended).
func (r *Sources) idle(ctx context.Context) bool {
	return r.plan.waitUntil(ctx, r.closed)
}

// sample feeds the adaptive sources their throughput every interval,
// until the run ends.
func (r *Sources) sample() {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.mu.Lock()
			pools := r.pools
			r.mu.Unlock()
			for _, pl := range pools {
				pl.sample(now)
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
		if c.pool != nil && !parked && !c.admitted() {
			// Not admitted by the source's connection count: wait, holding
			// no copy buffer meanwhile.
			c.buf = nil
			f.report(c, nil, 0)
			if !r.idle(ctx) {
				return context.Cause(ctx)
			}
			continue
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
