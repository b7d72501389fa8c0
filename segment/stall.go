package segment

import (
	"context"
	"io"
	"time"
)

// minProgress is what a body must deliver within each stall timeout to
// count as moving: a server that trickles a few bytes a second is stalled
// too. An attempt that delivered less and then stalled does not reset the
// count of tries, so a trickle ends in an error instead of going on for ever.
const minProgress = 1 << 10

// stallReader cancels its request when less than minProgress bytes arrive
// within d.
type stallReader struct {
	r        io.Reader
	d        time.Duration
	timer    *time.Timer
	deadline time.Time     // when the timer fires, while it runs
	left     time.Duration // what was left of the timeout at hold
	seen     int           // bytes since the timer was last reset
}

func newStallReader(r io.Reader, d time.Duration, cancel context.CancelCauseFunc) *stallReader {
	return &stallReader{r: r, d: d, deadline: time.Now().Add(d), timer: time.AfterFunc(d, func() { cancel(ErrStalled) })}
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if s.seen += n; s.seen >= minProgress {
		s.reset(s.d)
		s.seen = 0
	}
	return n, err
}

func (s *stallReader) reset(d time.Duration) {
	s.timer.Reset(d)
	s.deadline = time.Now().Add(d)
}

// hold stops the clock while convoy itself is busy (writing to the disk):
// the server is not stalling meanwhile. resume starts it again with what
// was left, so a trickle is still caught.
func (s *stallReader) hold() {
	s.timer.Stop()
	s.left = max(time.Until(s.deadline), 0)
}

func (s *stallReader) resume() { s.reset(s.left) }

// pause stops the stall timer during a wait that is convoy's own.
func (s *stallReader) pause() { s.timer.Stop() }

// touch restarts the stall timeout, after a wait that was convoy's own.
func (s *stallReader) touch() {
	s.reset(s.d)
	s.seen = 0
}

func (s *stallReader) stop() { s.timer.Stop() }

// throttle waits, before a read of up to n bytes, until the limiter allows
// them, and returns how many may be read (at most the limiter's burst).
// Tokens a short read left unused (c.credit) are spent first. The stall
// timer is stopped while it waits: the pause is convoy's own.
func (f *Fetcher) throttle(ctx context.Context, body *stallReader, c *conn, n int) (int, error) {
	if f.Limiter == nil || n <= 0 {
		return n, nil
	}
	n = min(n, f.Limiter.Burst())
	if c.credit >= n {
		c.credit -= n
		return n, nil
	}
	need := n - c.credit
	c.credit = 0
	body.pause()
	defer body.touch()
	if err := f.Limiter.WaitN(ctx, need); err != nil {
		if ctx.Err() != nil {
			return 0, context.Cause(ctx)
		}
		return 0, err
	}
	return n, nil
}
