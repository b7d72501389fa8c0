package testserver

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

const (
	bodyChunk      = 64 << 10 // body write size without Rate
	rateChunk      = 16 << 10 // largest body write size with Rate
	redirectToPath = "/redirect"
)

// Stats counts what a Handler has answered.
type Stats struct {
	Requests  int         // all requests, on any path
	Heads     int         // HEAD requests for the file
	Gets      int         // GET requests for the file
	RangeGets int         // GET requests for the file carrying a Range header
	BodyBytes int64       // body bytes written to clients (compressed ones with Gzip)
	Statuses  map[int]int // status code sent -> count
	Refused   int         // requests answered 503 by MaxConcurrent
	Peak      int         // most GET answers with a body in flight at once
}

// Handler is the http.Handler behind Server, usable without a testing.TB.
// All methods are safe for concurrent use.
type Handler struct {
	mu     sync.Mutex
	cfg    config
	stats  Stats
	active int // GET answers with a body in flight now

	stop     chan struct{} // closed by Close
	stopOnce sync.Once
}

// NewHandler returns a Handler configured by opts. The initial content has
// Last-Modified 2024-01-02 03:04:05 UTC.
func NewHandler(opts ...Option) *Handler {
	h := &Handler{
		cfg:   defaultConfig(),
		stats: Stats{Statuses: map[int]int{}},
		stop:  make(chan struct{}),
	}
	h.cfg.apply(opts)
	h.cfg.gen = 0
	return h
}

// SetOption applies opts while the handler is running.
func (h *Handler) SetOption(opts ...Option) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cfg.apply(opts)
}

// Close makes requests that are stalled or throttled abort promptly, now and
// later; the handler keeps answering other requests.
func (h *Handler) Close() {
	h.stopOnce.Do(func() { close(h.stop) })
}

// Size returns the current content length.
func (h *Handler) Size() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cfg.size
}

// Seed returns the current content seed.
func (h *Handler) Seed() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cfg.seed
}

// ETag returns the ETag currently sent, or "" with NoETag.
func (h *Handler) ETag() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cfg.etagValue()
}

// LastModified returns the Last-Modified value currently sent, or "" with
// NoLastModified.
func (h *Handler) LastModified() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cfg.lastModified()
}

// FilePath returns the URL path the file is served at.
func (h *Handler) FilePath() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cfg.path
}

// StartPath returns the URL path a client should start from: the first
// redirect with RedirectTo or Redirects, else the file path.
func (h *Handler) StartPath() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.cfg.redirectTo != "":
		return redirectToPath
	case h.cfg.redirects > 0:
		return "/r/" + strconv.Itoa(h.cfg.redirects)
	}
	return h.cfg.path
}

// Content returns a fresh copy of the current full content.
func (h *Handler) Content() []byte {
	h.mu.Lock()
	seed, size := h.cfg.seed, h.cfg.size
	h.mu.Unlock()
	p := make([]byte, size)
	Pattern(seed, 0, p)
	return p
}

// Stats returns a snapshot of the counters.
func (h *Handler) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.stats
	s.Statuses = make(map[int]int, len(h.stats.Statuses))
	for k, v := range h.stats.Statuses {
		s.Statuses[k] = v
	}
	return s
}

// Verify fails t (with Errorf) unless the file at path is byte-identical to
// the current content, reporting the first differing offset.
func (h *Handler) Verify(t testing.TB, path string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("testserver: verify: %v", err)
		return
	}
	want := h.Content()
	if bytes.Equal(got, want) {
		return
	}
	n := min(len(got), len(want))
	for i := 0; i < n; i++ {
		if got[i] != want[i] {
			t.Errorf("testserver: verify %s: first difference at offset %d (got %#02x, want %#02x); size %d, want %d",
				path, i, got[i], want[i], len(got), len(want))
			return
		}
	}
	t.Errorf("testserver: verify %s: size %d, want %d (the common prefix matches)", path, len(got), len(want))
}

func (c *config) etagValue() string {
	switch {
	case c.noETag:
		return ""
	case c.etag != "":
		return c.etag
	}
	return fmt.Sprintf(`"%x-%x"`, c.seed, c.size)
}

func (c *config) lastModified() string {
	if c.noLastModified {
		return ""
	}
	// The initial content dates from 2024-01-02 03:04:05 UTC; each content
	// change moves it one hour forward.
	base := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	return base.Add(time.Duration(c.gen) * time.Hour).Format(http.TimeFormat)
}

// reply is everything needed to answer one request. It is decided with the
// lock held so that the answer itself is written without it.
type reply struct {
	status      int
	header      http.Header
	text        string        // body of an error answer
	waitHeaders time.Duration // pause before writing the header

	// counted is set when the answer counts as in flight for MaxConcurrent
	// until its handler returns.
	counted bool

	// The body: n pattern bytes for seed starting at content offset off.
	seed   uint64
	off, n int64
	gzip   bool
	early  bool          // flush the header before the body, forcing chunked encoding
	rate   int64         // body bytes per second; 0 = unlimited
	total  *rate.Limiter // shared by all answers (TotalRate); nil = none
	// corrupt: content offsets [c[0], c[1]) of each c are sent inverted.
	corrupt [][2]int64

	cutAt    int64 // drop the connection after this many body bytes; < 0 = never
	stallAt  int64 // pause for stallFor after this many body bytes; < 0 = never
	stallFor time.Duration
}

// ServeHTTP answers r as the options describe.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	hook := h.cfg.onRequest
	h.mu.Unlock()
	if hook != nil {
		hook(r)
	}
	rep := h.plan(r)
	if rep.counted {
		defer h.finished()
	}
	rw := &recorder{ResponseWriter: w, h: h}
	if rep.waitHeaders > 0 && !h.sleep(r.Context(), rep.waitHeaders) {
		abort()
	}
	for k, v := range rep.header {
		rw.Header()[k] = v
	}
	rw.WriteHeader(rep.status)
	if rep.text != "" {
		io.WriteString(rw, rep.text)
		return
	}
	h.writeBody(r.Context(), rw, rep)
}

// plan counts r in the stats, consumes the faults it triggers and decides
// its answer.
func (h *Handler) plan(r *http.Request) reply {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := &h.cfg
	h.stats.Requests++
	rep := reply{header: http.Header{}, cutAt: -1, stallAt: -1}

	if r.URL.Path != c.path {
		if loc, ok := c.redirect(r); ok {
			rep.status = http.StatusFound
			rep.header.Set("Location", loc)
			return rep
		}
		return errorReply(rep, http.StatusNotFound)
	}

	isGet, isHead := r.Method == http.MethodGet, r.Method == http.MethodHead
	switch {
	case isHead:
		h.stats.Heads++
	case isGet:
		h.stats.Gets++
		if r.Header.Get("Range") != "" {
			h.stats.RangeGets++
		}
	}
	for name, v := range c.require {
		if r.Header.Get(name) != v[0] {
			return errorReply(rep, http.StatusUnauthorized)
		}
	}
	if !isGet && !isHead {
		rep.header.Set("Allow", "GET, HEAD")
		return errorReply(rep, http.StatusMethodNotAllowed)
	}
	if c.maxActive > 0 && h.active >= c.maxActive {
		h.stats.Refused++
		if c.maxActiveRetry != "" {
			rep.header.Set("Retry-After", c.maxActiveRetry)
		}
		return errorReply(rep, http.StatusServiceUnavailable)
	}
	if isHead && c.headStatus != 0 {
		rep.status = c.headStatus
		return rep
	}

	seed, size, etag, lastMod := c.seed, c.size, c.etagValue(), c.lastModified()
	if isGet {
		if take(&c.stallHeadersLeft) {
			rep.waitHeaders = c.stallHeaders
		}
		injected := 0
		if len(c.statuses) > 0 {
			injected, c.statuses = c.statuses[0], c.statuses[1:]
		}
		if c.changeLeft > 0 {
			c.changeLeft--
			if c.changeLeft == 0 {
				c.change() // later requests see it; this one keeps the snapshot
			}
		}
		if injected != 0 {
			if (injected == http.StatusTooManyRequests || injected == http.StatusServiceUnavailable) && c.retryAfter != "" {
				rep.header.Set("Retry-After", c.retryAfter)
			}
			if (injected >= 200 && injected < 300) || injected == http.StatusNotModified {
				rep.status = injected
				return rep
			}
			return errorReply(rep, injected)
		}
	}

	hd := rep.header
	hd.Set("Content-Type", "application/octet-stream")
	if etag != "" {
		hd.Set("ETag", etag)
	}
	if lastMod != "" {
		hd.Set("Last-Modified", lastMod)
	}
	if c.disposition != "" {
		hd.Set("Content-Disposition", c.disposition)
	}
	ranges := !c.noRanges && !c.noContentLength
	if ranges {
		hd.Set("Accept-Ranges", "bytes")
	}
	rep.gzip = c.gzip && strings.Contains(strings.ToLower(r.Header.Get("Accept-Encoding")), "gzip")
	if rep.gzip {
		hd.Set("Content-Encoding", "gzip")
		hd.Set("Vary", "Accept-Encoding")
	}
	rep.status, rep.seed, rep.n = http.StatusOK, seed, size
	rep.corrupt = slices.Clone(c.corrupt)
	if rh := r.Header.Get("Range"); ranges && isGet && rh != "" && ifRangeMatches(r.Header.Get("If-Range"), etag, lastMod) {
		start, end, res := parseRange(rh, size)
		switch res {
		case rangeUnsatisfiable:
			hd.Del("Content-Encoding")
			hd.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			hd.Set("Content-Length", "0")
			rep.status, rep.gzip, rep.n = http.StatusRequestedRangeNotSatisfiable, false, 0
			return rep
		case rangeOK:
			cr := fmt.Sprintf("bytes %d-%d/%d", start, end, size)
			if c.contentRange != nil {
				cr = c.contentRange(start, end, size)
			}
			hd.Set("Content-Range", cr)
			rep.status, rep.off, rep.n = http.StatusPartialContent, start, end-start+1
		}
	}
	sized := !c.noContentLength && !rep.gzip
	if rep.status == http.StatusPartialContent && c.extraBody > 0 {
		rep.n += c.extraBody
		sized = false
	}
	if sized {
		hd.Set("Content-Length", strconv.FormatInt(rep.n, 10))
	}
	if isHead {
		rep.n, rep.gzip = 0, false
		return rep
	}
	if rep.n > 0 {
		rep.counted = true
		h.active++
		h.stats.Peak = max(h.stats.Peak, h.active)
	}
	rep.early = c.noContentLength
	rep.rate, rep.total = c.rate, c.total
	if take(&c.cutLeft) {
		rep.cutAt = min(c.cutAt, rep.n)
	}
	if take(&c.stallLeft) {
		rep.stallAt, rep.stallFor = min(c.stallAt, rep.n), c.stallFor
	}
	return rep
}

// finished ends an answer counted by MaxConcurrent.
func (h *Handler) finished() {
	h.mu.Lock()
	h.active--
	h.mu.Unlock()
}

// errorReply makes rep a status answer with a short text body.
func errorReply(rep reply, code int) reply {
	rep.status = code
	rep.header.Set("Content-Type", "text/plain; charset=utf-8")
	rep.text = fmt.Sprintf("%d %s\n", code, http.StatusText(code))
	return rep
}

// redirect returns the Location for a redirect path, if r asks for one.
func (c *config) redirect(r *http.Request) (string, bool) {
	base := "http://" + r.Host
	if r.TLS != nil {
		base = "https://" + r.Host
	}
	if c.redirectTo != "" && r.URL.Path == redirectToPath {
		return c.redirectTo, true
	}
	hop, ok := strings.CutPrefix(r.URL.Path, "/r/")
	if !ok {
		return "", false
	}
	k, err := strconv.Atoi(hop)
	if err != nil || k < 1 || k > c.redirects {
		return "", false
	}
	switch {
	case k > 1 && c.relative:
		return "/r/" + strconv.Itoa(k-1), true
	case k > 1:
		return base + "/r/" + strconv.Itoa(k-1), true
	case c.relative:
		return ".." + c.path, true // from /r/1, "../file.bin" resolves to /file.bin
	}
	return base + c.path, true
}

// ifRangeMatches reports whether a Range may be honoured given the If-Range
// value v: v is absent, or equals the current strong ETag or Last-Modified.
func ifRangeMatches(v, etag, lastMod string) bool {
	switch {
	case v == "":
		return true
	case strings.HasPrefix(v, "W/"):
		return false
	case etag != "" && !strings.HasPrefix(etag, "W/") && v == etag:
		return true
	}
	return lastMod != "" && v == lastMod
}

type rangeResult int

const (
	rangeIgnored       rangeResult = iota // malformed or multiple ranges: serve 200
	rangeOK                               // serve [start, end] as 206
	rangeUnsatisfiable                    // serve 416
)

// parseRange interprets a Range header for a file of the given size. Only a
// single "bytes=a-b", "bytes=a-" or "bytes=-n" is supported; end is inclusive
// and clamped to the file.
func parseRange(h string, size int64) (start, end int64, res rangeResult) {
	unit, spec, ok := strings.Cut(h, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") || strings.Contains(spec, ",") {
		return 0, 0, rangeIgnored
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, rangeIgnored
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" { // suffix range: the last n bytes
		n, ok := parseDigits(last)
		switch {
		case !ok:
			return 0, 0, rangeIgnored
		case n == 0 || size == 0:
			return 0, 0, rangeUnsatisfiable
		}
		return size - min(n, size), size - 1, rangeOK
	}
	start, ok = parseDigits(first)
	if !ok {
		return 0, 0, rangeIgnored
	}
	end = size - 1
	if last != "" {
		if end, ok = parseDigits(last); !ok || end < start {
			return 0, 0, rangeIgnored
		}
	}
	if start >= size {
		return 0, 0, rangeUnsatisfiable
	}
	return start, min(end, size-1), rangeOK
}

// parseDigits parses a non-empty string of ASCII digits.
func parseDigits(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// writeBody streams the body rep describes, applying its faults. Whenever
// the body cannot be completed it drops the connection, so that a client
// never mistakes a partial body for a whole one.
func (h *Handler) writeBody(ctx context.Context, w *recorder, rep reply) {
	var out io.Writer = w
	var gz *gzip.Writer
	if rep.gzip {
		gz = gzip.NewWriter(w)
		out = gz
	}
	flush := func() {
		if gz != nil {
			gz.Flush() // a failure shows on the next write
		}
		w.Flush()
	}
	if rep.early {
		w.Flush()
	}
	chunk := int64(bodyChunk)
	if rep.rate > 0 {
		chunk = max(min(rateChunk, rep.rate/20), 1)
	}
	if rep.total != nil {
		chunk = min(chunk, int64(rep.total.Burst()))
	}
	buf := make([]byte, max(min(chunk, rep.n), 1))
	began := time.Now()
	var pos int64
	for {
		if pos == rep.stallAt {
			flush()
			rep.stallAt = -1
			paused := time.Now()
			if !h.sleep(ctx, rep.stallFor) {
				abort()
			}
			began = began.Add(time.Since(paused)) // the stall does not earn Rate credit
		}
		if pos == rep.cutAt {
			flush()
			abort()
		}
		if pos == rep.n {
			break
		}
		k := min(int64(len(buf)), rep.n-pos)
		if rep.stallAt > pos {
			k = min(k, rep.stallAt-pos)
		}
		if rep.cutAt > pos {
			k = min(k, rep.cutAt-pos)
		}
		if rep.rate > 0 { // the chunk may only leave once the rate allows its last byte
			due := began.Add(time.Duration(float64(pos+k) / float64(rep.rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 && !h.sleep(ctx, d) {
				abort()
			}
		}
		if rep.total != nil { // and once the shared rate allows it
			res := rep.total.ReserveN(time.Now(), int(k))
			if d := res.Delay(); d > 0 && !h.sleep(ctx, d) {
				res.Cancel()
				abort()
			}
		}
		Pattern(rep.seed, rep.off+pos, buf[:k])
		invert(buf[:k], rep.off+pos, rep.corrupt)
		if _, err := out.Write(buf[:k]); err != nil {
			abort()
		}
		pos += k
		if rep.rate > 0 || rep.total != nil {
			flush()
		}
	}
	if gz != nil && gz.Close() != nil {
		abort()
	}
}

// invert flips the bits of the bytes of p, which holds content from offset
// off, that fall in one of spans ([start, end) each).
func invert(p []byte, off int64, spans [][2]int64) {
	for _, span := range spans {
		from, to := max(span[0]-off, 0), min(span[1]-off, int64(len(p)))
		for i := from; i < to; i++ {
			p[i] ^= 0xff
		}
	}
}

// sleep waits for d and reports whether it did so before the request ended
// or the handler was closed.
func (h *Handler) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-h.stop:
	}
	return false
}

// abort drops the connection without completing the response; net/http
// recovers this panic silently.
func abort() {
	panic(http.ErrAbortHandler)
}

// recorder counts statuses and body bytes into its handler's stats.
type recorder struct {
	http.ResponseWriter
	h *Handler
}

func (w *recorder) WriteHeader(code int) {
	w.h.mu.Lock()
	w.h.stats.Statuses[code]++
	w.h.mu.Unlock()
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.h.mu.Lock()
	w.h.stats.BodyBytes += int64(n)
	w.h.mu.Unlock()
	return n, err
}

// Flush sends buffered data to the client.
func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
