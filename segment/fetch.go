package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/time/rate"

	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/internal/units"
)

// ErrRangeIgnored reports a 200 answer to a ranged request sent without
// If-Range: the server stopped honouring ranges, or the file changed and the
// server had no validator to tell. Like ErrRemoteChanged, the bytes on disk
// can no longer be trusted to belong with what comes next.
var ErrRangeIgnored = errors.New("the server ignored the range request")

// ErrRangeSkipped reports a 200 to a ranged request that carries the very
// validator sent in If-Range: the file is the same, the server ignored the
// range this time (as some backends behind one name do). It is retried.
var ErrRangeSkipped = errors.New("the server skipped the range this time")

// flushAfter bounds how long received bytes wait in a connection's buffer
// before they are written: the first read that returns flushAfter or more
// after the oldest of them arrived writes them, full buffer or not. On a
// slow link a full buffer would take long, and bytes not yet written are in
// no checkpoint: a kill loses them. A read blocks while nothing comes, so
// on a slow link the bytes of one read wait for the next; on a fast one the
// buffer fills first.
const flushAfter = 10 * time.Millisecond

// Fetcher fetches byte ranges of one remote file into an io.WriterAt. Its
// fields are read-only once a fetch has started.
type Fetcher struct {
	Client *http.Client
	// URL is where requests go: the final URL after redirects.
	URL string
	// Header holds extra request headers (User-Agent, credentials).
	Header http.Header
	// Size is the file size; every 206 must report it as its total.
	Size int64
	// IfRange is sent as If-Range with every ranged request ("" for none): a
	// strong ETag or a Last-Modified date.
	IfRange string
	// ETag and LastModified are the validators the file had when probed; a
	// 206 that carries different ones is from another version of the file.
	ETag, LastModified string
	// Encoding is the Content-Encoding the probe's answer carried (see
	// Remote.Encoding); an answer with another is refused.
	Encoding string
	// StallTimeout turns a body that sends nothing for this long into a
	// retry (0: 20s).
	StallTimeout time.Duration
	// MaxTries bounds the consecutive attempts without progress (0: 10,
	// or no bound with a Budget; < 0: no bound).
	MaxTries int
	// Budget, if set, ends the retries once the download has gone that long
	// without progress on any connection; shared by all its fetchers.
	Budget *Budget
	// FailFast makes an unreachable server (UnreachableError: no such
	// host, connection refused, no route) final at once instead of retried:
	// right for a first contact, where it is most likely a typo.
	FailFast bool
	// RetryInitial and RetryMax shape the exponential backoff between
	// attempts (0: 500ms and 30s).
	RetryInitial, RetryMax time.Duration
	// BufferSize fixes the copy buffer of each connection (0: each starts
	// small and grows while its reads fill it, up to DefaultBufferSize or
	// its share of BufferBudget).
	BufferSize int
	// OnWrite, if set, is called after every successful WriteAt, from the
	// fetching goroutines concurrently, once the plan counts the bytes.
	OnWrite func(offset, n int64)
	// Record, if set, is called like OnWrite but before the plan counts
	// the bytes: what it records of a byte is there before any snapshot
	// of the plan claims the byte.
	Record func(offset, n int64)
	// OnRegion, if set, is called each time one connection has written
	// RegionSize contiguous bytes (default 8 MiB), with that region, from the
	// writing goroutine: a finished region is a good unit to start writeback.
	OnRegion   func(offset, n int64)
	RegionSize int64
	// Limiter, if set, caps the bytes per second of all connections
	// together; it is shared, so one limiter can serve every Fetcher of a
	// download.
	Limiter *rate.Limiter
	// OnLimit, if set, is told how many connections the server takes
	// once it has refused some (503 or 429) while others worked and the
	// number has settled, and again whenever it changes: using is the
	// number of connections now in use, was the number told before (0 the
	// first time). It is called from the fetching goroutines.
	OnLimit func(using, was int)
	// OnDiscard, if set, is told of received bytes that were not written
	// because another connection took their range meanwhile.
	OnDiscard func(n int64)
	// OnConn, if set, is told what connection id (0 to connections-1) is
	// doing after each write and when it goes idle, from that connection's
	// goroutine.
	OnConn func(id int, state ConnState)
	// Refresh, if set, is called when the URL answers 401, 403 or 410, as a
	// signed URL does once it expires, and returns a fresh URL to use instead
	// (the original address resolved again). Its error is final.
	Refresh func(ctx context.Context) (string, error)

	// OnConnections, if set, is told each change of the connection count
	// of a source whose count adapts (Source.Max): the new count, the one
	// before, and why (ReasonGrew, ReasonPlateau, ReasonShrank,
	// ReasonRefused, ReasonAccepted). It is called from the fetching
	// goroutines and from Run's sampler, one call at a time and in order
	// per source, and must not block.
	OnConnections func(count, was int, reason string)

	// probeEvery is the first wait of a parked connection before it probes
	// (0: firstProbe); tests shorten it.
	probeEvery time.Duration
	// growEvery is how often an adaptive source is sampled (0:
	// DefaultGrowEvery); tests shorten it.
	growEvery time.Duration

	mu        sync.Mutex // guards current and refreshes
	current   string     // the URL in use: URL, or what Refresh gave
	refreshes int
	// left is when (Unix nanoseconds) a connection last left an answer
	// before its end (see leftAnswer).
	left atomic.Int64
	// OnRetry, if set, is called before each wait for another attempt, from
	// the fetching goroutines concurrently.
	OnRetry func(err error, wait time.Duration)
}

// Aborter is implemented by writers whose WriteAt may block, such as an
// ordered stream waiting for an earlier range: Run calls Abort as soon as its
// connections are told to stop, so that none stays blocked in WriteAt.
type Aborter interface {
	Abort(err error)
}

// Run fetches every span of plan into w over up to connections parallel
// connections and returns when the plan is done, ctx ends, or one connection
// meets a permanent error; then every other connection stops too. No
// goroutine started by Run outlives it.
//
// A server that refuses a connection with 503 or 429 while other
// connections to it are not refused has too many connections, and does not
// fail the download: the refused connection parks, its range goes to the
// others, and one parked connection at a time probes now and then (after
// the server's Retry-After, if longer) whether the server takes one more.
// One connection always retries with backoff; when every connection is
// refused, its tries without progress (MaxTries) fail the run. OnLimit is
// told how many connections are in use.
func (f *Fetcher) Run(ctx context.Context, plan *Plan, w io.WriterAt, connections int) error {
	return RunSources(ctx, plan, w, []Source{{Fetcher: f, Connections: max(connections, 1)}}, nil)
}

// Request sizing: a connection asks for at most chunk bytes at a time, so
// that the rest of its span stays free for other connections to take
// without cutting an answer short (whose bytes already on the wire would be
// wasted). The chunk grows with the connection's throughput and the latency
// of a request, so that the pause between two requests stays a few percent
// of the transfer.
const (
	minChunk         = 4 << 20
	maxChunk         = 1 << 30
	requestsPerPause = 20
)

// ConnState is what one connection is doing, for progress displays.
type ConnState struct {
	// Host is the server it talks to.
	Host string
	// Busy is set while it fetches a range; Rate is the speed of its current
	// answer in bytes per second.
	Busy bool
	Rate float64
	// Written counts the bytes it wrote so far.
	Written int64
	// SpanDone of SpanSize bytes of its current range are written.
	SpanDone, SpanSize int64
}

// report tells OnConn what c is doing: fetching s at rate, or idle (nil s).
func (f *Fetcher) report(c *conn, s *Span, rate float64) {
	if f.OnConn == nil {
		return
	}
	st := ConnState{Host: f.host(), Written: c.written}
	if s != nil {
		st.Busy, st.Rate = true, rate
		st.SpanDone, st.SpanSize = s.progress()
	}
	f.OnConn(c.id, st)
}

func (f *Fetcher) host() string {
	if u, err := url.Parse(f.URL); err == nil {
		return u.Host
	}
	return ""
}

// conn is the state one connection keeps across requests.
type conn struct {
	id int
	// lim decides whether the connection parks when the server refuses
	// it; slot is its number there. Nil for a stream.
	lim  *connLimit
	slot int
	// pool admits the connection when the source's count adapts, and
	// meter is its counter there; both nil for a fixed count.
	pool    *pool
	meter   *meter
	written int64
	buf     []byte
	// bufMax is the largest buf may grow to when the count is fixed.
	bufMax int
	chunk  int64
	// last is the throughput and latency of the connection's last answer.
	last Thief
	// credit is limiter tokens taken for a read that returned fewer bytes.
	credit int
	// region is the contiguous run of bytes written since the last OnRegion.
	regionStart, regionLen int64
}

// wrote extends the connection's current region with n bytes at off and
// reports it through f.OnRegion once it reaches f.RegionSize.
func (f *Fetcher) wrote(c *conn, off, n int64) {
	c.written += n
	if f.OnWrite != nil {
		f.OnWrite(off, n)
	}
	if f.OnRegion == nil {
		return
	}
	if off != c.regionStart+c.regionLen {
		c.regionStart, c.regionLen = off, 0
	}
	c.regionLen += n
	size := f.RegionSize
	if size <= 0 {
		size = 8 << 20
	}
	if c.regionLen >= size {
		f.OnRegion(c.regionStart, c.regionLen)
		c.regionStart, c.regionLen = off+n, 0
	}
}

// admitted reports whether c holds a place in its pool, taking a free one
// if it has none; a connection that takes one leaves the held phase of its
// limit, and one that finds none enters it.
func (c *conn) admitted() bool {
	if c.pool.enter(c.slot) {
		c.lim.admit(c.slot)
		return true
	}
	c.lim.hold(c.slot)
	return false
}

// learn adapts the chunk to a request that took latency to answer and then
// moved n bytes in transfer.
func (c *conn) learn(latency, transfer time.Duration, n int64) {
	if transfer <= 0 || n < stealFloor {
		return
	}
	rate := float64(n) / transfer.Seconds()
	c.last = Thief{Rate: rate, Latency: latency}
	if n < minChunk/4 {
		return // too short to tell what a longer request would do
	}
	want := int64(rate * latency.Seconds() * requestsPerPause)
	c.chunk = min(max(want, minChunk), maxChunk)
}

// fetchSpan fetches s until its last byte is written, retrying transient
// failures from the current offset.
func (f *Fetcher) fetchSpan(ctx context.Context, s *Span, w io.WriterAt, c *conn) error {
	defer s.finish()
	pol := f.newPolicy()
	op := func() error {
		for !s.done() {
			if c.pool != nil && c.pool.over(c.slot) {
				c.lim.hold(c.slot)
				return backoff.Permanent(errYield)
			}
			written, err := f.fetchOnce(ctx, s, w, c)
			if written >= minProgress || (written > 0 && !errors.Is(err, ErrStalled)) {
				pol.progressed()
			}
			if errors.Is(err, errYield) {
				s.failed() // the rest of the answer goes back to the plan
				return backoff.Permanent(err)
			}
			if err != nil {
				s.failed()
				if f.park(c, err) {
					return backoff.Permanent(errShed) // its place is given back
				}
				if c.pool != nil {
					c.pool.answered(c.slot, false)
				}
				return f.classify(ctx, err, pol)
			}
		}
		return nil
	}
	err := backoff.RetryNotify(op, backoff.WithContext(pol, ctx), f.OnRetry)
	return pol.wrap(ctx, err)
}

// errShed ends the fetch of a span by a connection that parks: the server
// refused it while other connections work.
var errShed = errors.New("connection parked: the server takes no more connections")

// park tells c's limit how its try ended in err and reports whether c is to
// park: the server refused it (503 or 429) while other connections work.
func (f *Fetcher) park(c *conn, err error) bool {
	if c.lim == nil {
		return false
	}
	var se *StatusError
	if !errors.As(err, &se) || (se.Code != http.StatusServiceUnavailable && se.Code != http.StatusTooManyRequests) {
		c.lim.failed(c.slot)
		return false
	}
	if f.leftLately() {
		// The server may still count the answer left: not a refusal of
		// one connection too many, but a try to make again.
		c.lim.failed(c.slot)
		return false
	}
	park, u := c.lim.refused(c.slot, time.Now(), se.RetryAfter)
	f.tell(u)
	return park
}

// A connection that leaves an answer before its end (a cut, or a place
// given back) closes its TCP connection, and the server goes on counting
// that answer until it notices, on a later write. A refusal within
// leftGrace of that may be the server counting it: it is retried as a
// transient failure and lowers no count.
const leftGrace = time.Second

// leftAnswer records that a connection left an answer before its end.
func (f *Fetcher) leftAnswer() { f.left.Store(time.Now().UnixNano()) }

// leftLately reports whether a connection left an answer within leftGrace.
func (f *Fetcher) leftLately() bool {
	at := f.left.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < leftGrace
}

// tell passes a settled change of the connections in use to OnLimit.
func (f *Fetcher) tell(u usage) {
	if u.Using > 0 && f.OnLimit != nil {
		f.OnLimit(u.Using, u.Was)
	}
}

// fetchOnce sends one ranged GET for the next chunk of s and copies the
// answer into w. It returns the number of bytes written.
func (f *Fetcher) fetchOnce(ctx context.Context, s *Span, w io.WriterAt, c *conn) (written int64, err error) {
	off, end := s.request(c.chunk, c.last)
	if off >= end {
		return 0, nil
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	_, gen := f.target()
	req, err := f.newRequest(rctx)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end-1))
	if f.IfRange != "" {
		req.Header.Set("If-Range", f.IfRange)
	}
	if c.lim != nil {
		c.lim.sending(c.slot)
	}
	sent := time.Now()
	resp, err := f.Client.Do(req)
	if err != nil {
		return 0, transportError(rctx, err)
	}
	defer resp.Body.Close()
	if err := f.checkRange(resp, off, end); err != nil {
		return 0, f.refreshAfter(ctx, err, gen)
	}
	if c.pool != nil {
		c.pool.answered(c.slot, true)
	}
	if c.lim != nil {
		f.tell(c.lim.accepted(c.slot, time.Now()))
	}
	answered := time.Now()
	body := newStallReader(resp.Body, f.stallTimeout(), cancel)
	defer body.stop()

	limit := f.bufferMax(c)
	switch {
	case c.buf == nil: // a connection takes its buffer when it first works
		c.buf = make([]byte, f.firstBuffer(limit))
	case len(c.buf) > limit: // the count grew: down to the new share
		c.buf = make([]byte, limit)
	}
	buf := c.buf
	grow := len(buf) // the size buf takes once it is empty
	want := end - off
	var (
		got     int64         // bytes of the answer read so far
		filled  int           // bytes in buf not yet written
		firstAt time.Time     // when the oldest byte in buf arrived
		writing time.Duration // time spent in WriteAt
	)
	for got < want {
		room, err := f.throttle(rctx, body, c, int(min(int64(len(buf)-filled), want-got)))
		if err != nil {
			return written, err
		}
		n, rerr := body.Read(buf[filled : filled+room])
		if filled == 0 {
			grow = nextBuffer(len(buf), limit, room, n)
		}
		c.credit += room - n
		c.meter.read(n)
		if n > 0 {
			if filled == 0 {
				firstAt = time.Now()
			}
			filled += n
			got += int64(n)
		}
		if filled > 0 && (filled == len(buf) || got == want || rerr != nil || time.Since(firstAt) >= flushAfter) {
			// The plan weighs the network's pace: time blocked in WriteAt
			// is the disk's, shared by every connection, and taking this
			// range would not make the disk faster.
			if d := time.Since(answered) - writing; d > 0 {
				s.observe(float64(got) / d.Seconds())
			}
			at, granted := s.reserve(int64(filled))
			if granted > 0 {
				began := time.Now()
				body.hold() // a slow disk is not a stalled server
				_, werr := w.WriteAt(buf[:granted], at)
				body.resume()
				took := time.Since(began)
				writing += took
				c.meter.wrote(took)
				if werr != nil {
					s.release()
					return written, &WriteError{Offset: at, Err: werr}
				}
				if f.Record != nil {
					f.Record(at, granted) // before the plan counts them
				}
				s.commit(granted)
				written += granted
				f.wrote(c, at, granted)
			}
			if granted < int64(filled) {
				if f.OnDiscard != nil {
					f.OnDiscard(int64(filled) - granted)
				}
				if got < want {
					f.leftAnswer()
				}
				return written, nil // another connection took the rest
			}
			filled = 0
			if grow > len(buf) {
				c.buf = make([]byte, grow)
				buf = c.buf
			}
			if d := time.Since(answered); d > 0 {
				f.report(c, s, float64(got)/d.Seconds())
			}
			if c.pool != nil && got < want && yieldNow(want-got, got, time.Since(answered)-writing) && c.pool.over(c.slot) {
				// The count was lowered and this answer would take a
				// while yet: the connection leaves now, and the rest of
				// its range goes back to the plan.
				c.lim.hold(c.slot)
				f.leftAnswer()
				return written, errYield
			}
		}
		if rerr != nil && got < want {
			return written, bodyError(rctx, rerr, got, want, req)
		}
	}
	c.learn(answered.Sub(sent), time.Since(answered), got)
	if c.lim != nil {
		passed, u := c.lim.answeredTrial(c.slot, time.Now())
		f.tell(u)
		if passed && c.pool != nil {
			c.pool.accepted(c.slot, time.Now())
		}
	}
	return written, nil
}

// A connection whose place was taken away finishes its answer when the
// rest would come within yieldAfter; otherwise it leaves at once, which
// wastes only the bytes already on their way.
const yieldAfter = time.Second

// yieldNow reports whether an answer with left bytes still to come, got
// received in the network time took, would take longer than yieldAfter.
func yieldNow(left, got int64, took time.Duration) bool {
	if got <= 0 || took <= 0 {
		return true
	}
	return time.Duration(float64(left)/float64(got)*float64(took)) > yieldAfter
}

// checkRange accepts only a 206 for exactly [off, end) of a file of f.Size
// bytes, uncompressed.
func (f *Fetcher) checkRange(resp *http.Response, off, end int64) error {
	u := redact.Parsed(resp.Request.URL)
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		if f.IfRange != "" && f.sameFile(resp) {
			// The file did not change: this answer ignored the range, as
			// some servers behind one name do now and then. Try again.
			return fmt.Errorf("%w: %s answered with the whole file (200) under the same validator %s", ErrRangeSkipped, u, f.IfRange)
		}
		if f.IfRange != "" {
			return fmt.Errorf("%w: %s answered a resumed range (If-Range) with the whole file", ErrRemoteChanged, u)
		}
		return fmt.Errorf("%w: %s answered 200 instead of 206", ErrRangeIgnored, u)
	case http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("%w: %s says bytes %d-%d are past its end (416)", ErrRemoteChanged, u, off, end-1)
	default:
		return newStatusError(resp, time.Now())
	}
	if err := f.checkEncoding(resp, u); err != nil {
		return err
	}
	cr, err := ParseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return &ProtocolError{URL: u, Reason: err.Error()}
	}
	if cr.Total != f.Size {
		if cr.Total < 0 {
			return &ProtocolError{URL: u, Reason: "Content-Range does not state the file size"}
		}
		return fmt.Errorf("%w: %s now reports %s, expected %s", ErrRemoteChanged, u, units.FormatExact(cr.Total), units.FormatExact(f.Size))
	}
	if cr.First != off || cr.Last != end-1 {
		return &ProtocolError{URL: u, Reason: fmt.Sprintf("asked for bytes %d-%d, got %s", off, end-1, cr)}
	}
	if et := resp.Header.Get("ETag"); f.ETag != "" && et != "" && et != f.ETag {
		return fmt.Errorf("%w: %s now sends ETag %s, was %s", ErrRemoteChanged, u, et, f.ETag)
	}
	if lm := resp.Header.Get("Last-Modified"); f.LastModified != "" && lm != "" && lm != f.LastModified {
		return fmt.Errorf("%w: %s now sends Last-Modified %s, was %s", ErrRemoteChanged, u, lm, f.LastModified)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != end-off {
		return &ProtocolError{URL: u, Reason: fmt.Sprintf("Content-Length %d does not match the range's %d bytes", resp.ContentLength, end-off)}
	}
	return nil
}

// checkEncoding refuses an answer whose Content-Encoding is not the one the
// probe saw: its bytes would be another representation of the file.
func (f *Fetcher) checkEncoding(resp *http.Response, u string) error {
	if ce := Encoding(resp.Header); ce != f.Encoding {
		return &ProtocolError{URL: u, Reason: fmt.Sprintf("answered with Content-Encoding %q, the file was probed with %q", ce, f.Encoding)}
	}
	return nil
}

// sameFile reports whether a 200 answer describes the very file being
// fetched: it carries the If-Range value itself, the ETag the probe saw
// (none if it saw none) and, if it states one, the known size. A file
// rewritten within the second of its Last-Modified fails the last two.
func (f *Fetcher) sameFile(resp *http.Response) bool {
	return sameValidator(resp.Header, f.IfRange) && resp.Header.Get("ETag") == f.ETag &&
		(resp.ContentLength < 0 || resp.ContentLength == f.Size)
}

// sameValidator reports whether an answer carries the If-Range value
// ifRange itself: the same strong ETag, or for a date the same
// Last-Modified.
func sameValidator(h http.Header, ifRange string) bool {
	if strings.HasPrefix(ifRange, `"`) {
		return h.Get("ETag") == ifRange
	}
	return h.Get("Last-Modified") == ifRange
}

// fill reads into all of p unless r fails first, and returns r's error as it
// is: io.EOF for a body that ended, io.ErrUnexpectedEOF for one cut short.
func fill(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (f *Fetcher) newRequest(ctx context.Context) (*http.Request, error) {
	u, _ := f.target()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, backoff.Permanent(fmt.Errorf("bad URL %s: %w", redact.URL(u), err))
	}
	for k, vs := range f.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Accept-Encoding", "identity")
	return req, nil
}

func (f *Fetcher) stallTimeout() time.Duration {
	if f.StallTimeout > 0 {
		return f.StallTimeout
	}
	return 20 * time.Second
}

// transportError describes a failed round trip, naming a stall when the
// stall timer cut it.
func transportError(rctx context.Context, err error) error {
	if errors.Is(context.Cause(rctx), ErrStalled) {
		return ErrStalled
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			if _, ok := inner.(*RedirectError); ok {
				return inner
			}
		}
	}
	if u := unreachable(err); u != nil {
		return u
	}
	return redactedError{err}
}

// bodyError describes a body that ended after got of want bytes.
func bodyError(rctx context.Context, err error, got, want int64, req *http.Request) error {
	if errors.Is(context.Cause(rctx), ErrStalled) {
		return fmt.Errorf("%w: no data for the stall timeout after %d of %d bytes", ErrStalled, got, want)
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%s closed the connection after %d of %d bytes", redact.Parsed(req.URL), got, want)
	}
	return fmt.Errorf("reading from %s after %d of %d bytes: %w", redact.Parsed(req.URL), got, want, redactedError{err})
}

// redactedError hides secrets in the message of a wrapped net/http error
// while keeping it inspectable with errors.Is and errors.As.
type redactedError struct{ err error }

func (e redactedError) Error() string { return redact.Text(e.err.Error()) }
func (e redactedError) Unwrap() error { return e.err }
