package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Source is one server of a file, with the connections it may use.
type Source struct {
	Fetcher     *Fetcher
	Connections int
}

// RunSources is Run over several servers of the same file sharing one plan.
// A source whose connection meets an error of its own (a refused status, a
// broken answer, another version of the file, tries exhausted) is dropped:
// onDrop is told, its connections stop, and the other sources take over its
// ranges. A source that answers 503 or 429 sheds connections, down to one
// that backs off (RunSources sets each Fetcher's ShedOnBusy). A failure of
// the writer, the end of ctx, or the loss of the last source ends the run
// with that error.
func RunSources(ctx context.Context, plan *Plan, w io.WriterAt, sources []Source, onDrop func(source int, err error)) error {
	return runSources(ctx, plan, w, sources, onDrop, true)
}

// runSources runs the connections of every source on plan; with shed, a
// busy source gives up connections (see RunSources). With one source and no
// shedding it is Run: the first error of a connection ends the run.
func runSources(ctx context.Context, plan *Plan, w io.WriterAt, sources []Source, onDrop func(source int, err error), shed bool) error {
	g, ctx := errgroup.WithContext(ctx)
	if a, ok := w.(Aborter); ok {
		stop := context.AfterFunc(ctx, func() { a.Abort(context.Cause(ctx)) })
		defer stop()
	}
	var (
		mu      sync.Mutex
		dropped = make([]bool, len(sources))
		alive   = len(sources)
		conns   = make([]int, len(sources)) // connections still working per source
	)
	for i, src := range sources {
		conns[i] = max(src.Connections, 0)
	}
	drop := func(i int, err error) (last bool) {
		mu.Lock()
		if dropped[i] {
			mu.Unlock()
			return false
		}
		dropped[i] = true
		alive--
		last = alive == 0
		mu.Unlock()
		if onDrop != nil {
			onDrop(i, err)
		}
		return last
	}
	isDropped := func(i int) bool {
		mu.Lock()
		defer mu.Unlock()
		return dropped[i]
	}
	id := 0
	for i, src := range sources {
		f := src.Fetcher
		if shed {
			// A busy source sheds connections down to one; that one backs off
			// and honours Retry-After.
			f.ShedOnBusy = func() bool {
				mu.Lock()
				defer mu.Unlock()
				if conns[i] <= 1 {
					return false
				}
				conns[i]--
				return true
			}
		}
		for range max(src.Connections, 0) {
			c := &conn{id: id, buf: make([]byte, f.bufferSize()), chunk: minChunk}
			id++
			g.Go(func() error {
				defer f.report(c, nil, 0)
				for !isDropped(i) {
					span, ok := plan.NextFor(Thief{Rate: c.last.Rate, Latency: c.last.Latency, Source: i})
					if !ok {
						f.report(c, nil, 0)
						if plan.Wait(ctx) {
							continue
						}
						return context.Cause(ctx)
					}
					err := f.fetchSpan(ctx, span, w, c)
					if err == nil {
						continue
					}
					if errors.Is(err, errShed) {
						return nil
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
			})
		}
	}
	return g.Wait()
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
