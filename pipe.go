package convoy

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"sync/atomic"

	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// maxPipeChunk bounds the ranges handed to connections when streaming to a
// writer: small ranges taken in file order keep the bytes near the cursor.
const maxPipeChunk = 8 << 20

// toWriter streams the file in order into cfg.Writer over many connections,
// holding at most cfg.Buffer bytes out of order. Nothing is kept on disk, so
// nothing resumes.
func (d *download) toWriter(ctx context.Context) (Result, error) {
	d.firstContact = !d.cfg.RetryConnRefused
	remote, err := d.probeFirst(ctx)
	if err != nil {
		return Result{}, err
	}
	if err := d.discover(ctx, remote); err != nil {
		return Result{}, err
	}
	d.mirrors = d.mirrorsFor(ctx, remote)
	want, err := d.expectedChecksum(ctx, remote, RemoteName(remote.ContentDisposition, d.first))
	if err != nil {
		return Result{}, err
	}
	var h hash.Hash
	if want != nil {
		if h, err = merge.NewHash(want.Algo); err != nil {
			return Result{}, err
		}
	}
	out := merge.NewOrderedWriter(d.cfg.Writer, d.cfg.Buffer, h)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopped := context.AfterFunc(ctx, func() { out.Abort(context.Cause(ctx)) })
	defer stopped()

	fetcher := d.newFetcher(remote)
	var fetched atomic.Int64
	fetcher.OnWrite = func(_, n int64) { fetched.Add(n) }
	conns := d.startConnections()
	if oneStream(remote) {
		d.cfg.Logf("%s", noRangesNotice)
		conns = 1
	}
	d.emit(Event{Type: "start", Size: remote.Size, Connections: conns})
	err = d.withCheckpoints(ctx, remote.Size, nil, out.Written, func(ctx context.Context) error {
		if !remote.Ranges || remote.Size < 0 {
			fetcher.IfRange = ""
			_, err := fetcher.Stream(ctx, out)
			return err
		}
		plan, err := segment.NewPlan(remote.Size, pipeChunks(remote.Size, d.cfg.Buffer, conns), conns, d.cfg.MinSplitSize)
		if err != nil {
			return err
		}
		if len(d.mirrors) == 0 {
			return d.runOne(ctx, fetcher, plan, out)
		}
		return d.runMirrors(ctx, remote, fetcher, plan, out, func(segment.Remote) func(off, n int64) { return fetcher.OnWrite })
	})
	res := Result{Path: "-", Size: out.Written(), Fetched: fetched.Load()}
	if err != nil {
		if errors.Is(err, merge.ErrRewind) {
			err = fmt.Errorf("%w: the server cannot resume and part of the file was already written out", err)
		}
		return res, interrupted(ctx, err, false)
	}
	if want != nil {
		if got := h.Sum(nil); want.Sum != nil && string(got) != string(want.Sum) {
			return res, fmt.Errorf("%w: %s expected %x, got %x; the bytes were already written out", merge.ErrChecksum, want.Algo, want.Sum, got)
		}
		res.Checksum, res.Verified = merge.Checksum{Algo: want.Algo, Sum: h.Sum(nil)}.String(), want.Sum != nil
	}
	return res, nil
}

// maxOrderedChunks bounds the ranges of a plan cut in file order, so the
// planner's bookkeeping stays small for a file of any size.
const maxOrderedChunks = 1 << 14

// pipeChunks cuts [0, size) into ranges small enough that every connection
// working on one at a time stays within half the buffer.
func pipeChunks(size, buffer int64, conns int) []segment.Segment {
	return orderedChunks(size, min(max(buffer/int64(2*conns), 64<<10), maxPipeChunk))
}

// orderedChunks cuts [0, size) into ranges of chunk bytes (larger when that
// would make more than maxOrderedChunks of them). Connections take pending
// ranges in file order, so the file fills from the front: what a stream's
// cursor and a checksum's hash wait for.
func orderedChunks(size, chunk int64) []segment.Segment {
	chunk = max(chunk, (size+maxOrderedChunks-1)/maxOrderedChunks, 1)
	if size == 0 {
		return []segment.Segment{{}}
	}
	var segs []segment.Segment
	for at := int64(0); at < size; at += chunk {
		segs = append(segs, segment.Segment{Start: at, End: min(at+chunk, size)})
	}
	return segs
}
