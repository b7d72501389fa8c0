package convoy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// withCheckpoints runs fetch while saving cp every CheckpointInterval and
// reporting progress (done() of size bytes, -1 unknown) every
// ProgressInterval; after fetch returns it saves a last checkpoint, whatever
// the outcome. A failed checkpoint stops the fetch. cp may be nil (nothing
// to save: a stream, which still has a size when the server gave one).
func (d *download) withCheckpoints(ctx context.Context, size int64, cp *checkpointer, done func() int64, fetch func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	first := done() // bytes from earlier runs do not count towards the rate
	report := func() {
		p := Progress{Output: d.outputPath(), Size: size, Done: done(), Elapsed: time.Since(d.start), Connections: d.connections()}
		if d.cfg.OnProgress != nil {
			d.cfg.OnProgress(p)
		}
		var rate float64
		if s := p.Elapsed.Seconds(); s > 0 {
			rate = float64(p.Done-first) / s
		}
		d.emit(Event{Type: "progress", Size: p.Size, Done: p.Done, Elapsed: p.Elapsed.Seconds(), Rate: rate})
	}
	stopped := make(chan struct{})
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		interval := d.cfg.CheckpointInterval
		checkpoints := time.NewTicker(interval)
		defer checkpoints.Stop()
		progress := time.NewTicker(d.cfg.ProgressInterval)
		defer progress.Stop()
		var due <-chan struct{}
		if cp != nil {
			due = cp.due
		}
		var spacing earlySpacing
		// checkpoint saves cp; false when the fetch must stop.
		checkpoint := func() bool {
			if cp.hash != nil {
				if err := cp.hash.failed(); err != nil {
					cancel(err) // the file cannot be verified: stop fetching it
					return false
				}
			}
			if cp.pieces != nil {
				if err := cp.pieces.v.Err(); err != nil {
					cancel(err) // the pieces cannot be verified
					return false
				}
			}
			began := time.Now()
			if err := cp.save(); err != nil {
				cancel(fmt.Errorf("%w: %w", errSaveFailed, describeFileError(err, cp.path)))
				return false
			}
			spacing.saved(began, time.Now(), interval)
			checkpoints.Reset(interval) // the interval counts from the last checkpoint
			d.emit(Event{Type: "checkpoint", Size: size, Done: cp.durable})
			return true
		}
		for {
			select {
			case <-stopped:
				return
			case <-progress.C:
				report()
			case <-due:
				if cp.unsaved.Load() < checkpointBytes || !spacing.allows(time.Now()) {
					continue // a checkpoint since took them, or the next write asks again
				}
				if !checkpoint() {
					return
				}
			case <-checkpoints.C:
				if cp == nil {
					continue
				}
				if !checkpoint() {
					return
				}
			}
		}
	}()
	err := fetch(ctx)
	close(stopped)
	<-loopDone
	if cause := context.Cause(ctx); err != nil && ctx.Err() != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause // a failed checkpoint or hash stopped the fetch
	}
	if cp != nil {
		if cerr := cp.save(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("%w: %w", errSaveFailed, describeFileError(cerr, cp.path)))
		}
	}
	report()
	return err
}

// checkpointBytes is how many bytes written since the last checkpoint make
// the next one due before its interval is up, so that on a fast link a kill
// loses about this much rather than a whole interval of every connection's
// bytes.
const checkpointBytes = 1 << 20

// Early checkpoints (those checkpointBytes asks for) keep their cost
// bounded: one comes no sooner than a tenth of the interval after the last
// checkpoint ended, nor sooner than earlySpacingCost times as long as that
// checkpoint took, so saving takes at most about 1/earlySpacingCost of the
// time however fast the bytes come. The interval's own checkpoints are not
// held back.
const (
	earlySpacingShare = 10
	earlySpacingCost  = 4
)

// earlySpacing decides when an early checkpoint may come; its zero value
// allows one at once.
type earlySpacing struct {
	next time.Time // no early checkpoint before
}

// saved records a checkpoint of the given interval that ran from began to
// ended.
func (e *earlySpacing) saved(began, ended time.Time, interval time.Duration) {
	gap := max(interval/earlySpacingShare, earlySpacingCost*ended.Sub(began))
	e.next = ended.Add(gap)
}

// allows reports whether an early checkpoint may start at now.
func (e *earlySpacing) allows(now time.Time) bool { return !now.Before(e.next) }

// errSaveFailed marks a checkpoint that could not be written: the progress
// since the previous one is not kept.
var errSaveFailed = errors.New("saving progress")

// checkpointer makes the progress of a plan durable.
type checkpointer struct {
	plan *segment.Plan
	part *merge.PartFile
	path string
	base manifest.Manifest
	hash *follower // nil without a checksum to verify
	// pieces, if set, verifies the pieces; their record is saved.
	pieces *pieceCheck
	// served, if set, is saved as the manifest's served_by.
	served *provenance
	// vet, if set, names the servers on trial, whose bytes are not claimed.
	vet *vetting
	// sourcesMu guards base.Sources, which grows as mirrors pass.
	sourcesMu sync.Mutex
	// durable counts the bytes the last saved manifest claims.
	durable int64
	// unsaved counts the bytes written (see wrote) since the snapshot of
	// the last save; due, if not nil, receives a signal (buffered, never
	// blocking) once they reach checkpointBytes.
	unsaved atomic.Int64
	due     chan struct{}
}

// wrote counts n bytes just written to the part file, and asks for an early
// checkpoint once checkpointBytes or more are not in the last one. It is
// safe for concurrent use and never blocks.
func (c *checkpointer) wrote(n int64) {
	if c.unsaved.Add(n) < checkpointBytes {
		return
	}
	select {
	case c.due <- struct{}{}:
	default: // one is pending already, or no one listens (due is nil)
	}
}

// save snapshots the plan, makes the part file durable, and only then
// replaces the manifest with the snapshot: the manifest never claims a byte
// that is not on disk.
func (c *checkpointer) save() error {
	// Bytes written between the load and the snapshot are in the snapshot
	// and still counted as unsaved: the next early checkpoint comes a
	// little sooner, never later.
	unsaved := c.unsaved.Load()
	segs := c.claimable()
	c.unsaved.Add(-unsaved)
	c.sourcesMu.Lock()
	m := c.base
	m.Sources = slices.Clone(m.Sources)
	c.sourcesMu.Unlock()
	// Pieces verified by now were read from bytes this sync makes durable.
	c.pieces.recordPieces(&m, segs)
	if err := c.part.Sync(); err != nil {
		return err
	}
	m.Segments = segs
	if c.served != nil {
		m.ServedBy = c.served.snapshot()
	}
	if c.hash != nil {
		// Only a hash state within the bytes this manifest claims is saved.
		m.HashAlgo, m.HashPos, m.HashState, _ = c.hash.stateAt(contiguousPrefix(segs))
	}
	if err := manifest.Save(c.path, &m); err != nil {
		return err
	}
	c.durable = m.Done()
	return nil
}

// claimable is a snapshot of the plan without the bytes of servers on
// trial: what a manifest may claim, and a hash may follow.
func (c *checkpointer) claimable() []segment.Segment {
	segs := c.plan.Snapshot()
	return trusted(segs, c.vet.withheld()) // after the snapshot: see withheld
}

// addSource records server r among the manifest's sources, once its bytes
// count.
func (c *checkpointer) addSource(r segment.Remote) {
	c.sourcesMu.Lock()
	defer c.sourcesMu.Unlock()
	u := redact.URL(r.URL)
	for _, s := range c.base.Sources {
		if s.URL == u {
			return
		}
	}
	c.base.Sources = append(c.base.Sources, manifest.Source{URL: u, ETag: r.ETag, LastModified: r.LastModified})
}

// withMirrors is base with a placeholder source for each mirror, whose
// validators take up to a KiB: room for the sources a manifest gains as
// mirrors pass their comparison.
func withMirrors(base manifest.Manifest, mirrors []string) *manifest.Manifest {
	base.Sources = slices.Clone(base.Sources)
	for _, u := range mirrors {
		base.Sources = append(base.Sources, manifest.Source{URL: redact.URL(u), ETag: strings.Repeat("e", 1<<10), LastModified: time.RFC1123})
	}
	return &base
}

// manifestRoom is the free space a download keeps beside its part file for
// the manifest and the temporary copy each save writes before its rename:
// the bound of a manifest like base with the plan's segments, the spans its
// splits may add while it runs (complete spans merge in a snapshot, so they
// stay near the connection count) and, with several servers, the ranges
// each sent; plus a block for each of the two files and their folder entry.
func manifestRoom(base *manifest.Manifest, segments, connections int, servers bool, earlierServed int) int64 {
	spans := segments + 4*connections + 64
	served := 0
	if servers {
		served = earlierServed + 2*spans
	}
	return manifest.SizeBound(base, spans, served) + 3*4096
}
