package segment

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/testserver"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// newFetcher returns a Fetcher for srv's file with fast retries, the strong
// ETag as validator, and a client for conns connections.
func newFetcher(t testing.TB, srv *testserver.Server, conns int) *Fetcher {
	t.Helper()
	return &Fetcher{
		Client:       newTestClient(t, ClientOptions{Connections: conns}),
		URL:          srv.URL,
		Size:         srv.Size(),
		IfRange:      srv.ETag(),
		StallTimeout: 10 * time.Second,
		MaxTries:     5,
		RetryInitial: fastInitial,
		RetryMax:     fastMax,
	}
}

// runPlan builds a fresh plan and runs f over it into a new memWriter.
func runPlan(t testing.TB, f *Fetcher, conns int, minSplit int64) (*memWriter, *Plan, error) {
	t.Helper()
	plan, err := NewPlan(f.Size, nil, conns, minSplit)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, f.Size)
	return w, plan, f.Run(context.Background(), plan, w, conns)
}

// checkDone fails the test unless the plan is complete: one snapshot
// segment, all written.
func checkDone(t testing.TB, plan *Plan) {
	t.Helper()
	size := plan.Size()
	if got := plan.Written(); got != size {
		t.Fatalf("plan has %d of %d bytes written", got, size)
	}
	snap := plan.Snapshot()
	if len(snap) != 1 || snap[0] != (Segment{Start: 0, End: size, Written: size}) {
		t.Fatalf("final snapshot %v, want one complete segment", snap)
	}
}

func TestRunWholeFile(t *testing.T) {
	tests := []struct {
		size     int64
		conns    int
		minSplit int64
		buffer   int
	}{
		{size: mib, conns: 4, minSplit: 64 * kib},
		{size: 1000003, conns: 3, minSplit: 10000},
		{size: 1000003, conns: 3, minSplit: 10000, buffer: 1000},
		{size: 1000, conns: 4, minSplit: 64 * kib}, // smaller than one split
		{size: 1, conns: 2, minSplit: 1},
		{size: 2, conns: 2, minSplit: 1},
		{size: 256*kib + 17, conns: 8, minSplit: 1, buffer: 4096},
		{size: 9*mib + 5, conns: 2, minSplit: mib}, // spans longer than a request
		{size: 9*mib + 5, conns: 1, minSplit: mib},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("size=%d/conns=%d/minSplit=%d/buffer=%d", tt.size, tt.conns, tt.minSplit, tt.buffer), func(t *testing.T) {
			var log requestLog
			srv := testserver.New(t, testserver.Size(tt.size), testserver.OnRequest(log.hook))
			f := newFetcher(t, srv, tt.conns)
			f.BufferSize = tt.buffer
			var reported atomic.Int64
			f.OnWrite = func(off, n int64) {
				if off < 0 || n <= 0 || off+n > tt.size {
					t.Errorf("OnWrite(%d, %d) outside the file", off, n)
				}
				reported.Add(n)
			}
			w, plan, err := runPlan(t, f, tt.conns, tt.minSplit)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			w.check(t, srv.Content())
			checkDone(t, plan)
			if _, n := w.stats(); n != tt.size {
				t.Errorf("wrote %d bytes, want %d", n, tt.size)
			}
			if got := reported.Load(); got != tt.size {
				t.Errorf("OnWrite reported %d bytes, want %d", got, tt.size)
			}
			srv.Close() // waits for the handlers: their counts are complete
			st := srv.Stats()
			if st.Gets != st.RangeGets {
				t.Errorf("%d GETs, only %d ranged", st.Gets, st.RangeGets)
			}
			if st.BodyBytes < tt.size {
				t.Errorf("server sent %d body bytes for a %d byte file", st.BodyBytes, tt.size)
			}
			for _, r := range log.all() {
				if r.method != http.MethodGet || r.rng == "" {
					t.Errorf("unexpected request %+v", r)
				}
			}
		})
	}
}

func TestRunEmptyFileSendsNothing(t *testing.T) {
	srv := testserver.New(t, testserver.Size(0))
	f := newFetcher(t, srv, 4)
	w, plan, err := runPlan(t, f, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	if writes, _ := w.stats(); writes != 0 {
		t.Errorf("%d writes for an empty file", writes)
	}
	if st := srv.Stats(); st.Requests != 0 {
		t.Errorf("%d requests for an empty file", st.Requests)
	}
	checkDone(t, plan)
}

// Every ranged request carries the validator as If-Range, and asks for no
// compression.
func TestRunSendsIfRange(t *testing.T) {
	tests := []struct {
		name string
		opts []testserver.Option
		val  func(*testserver.Server) string
	}{
		{"etag", nil, (*testserver.Server).ETag},
		{"last-modified", []testserver.Option{testserver.NoETag()}, (*testserver.Server).LastModified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log requestLog
			opts := append([]testserver.Option{testserver.Size(2*mib + 3), testserver.OnRequest(log.hook),
				testserver.CutAfter(100*kib, 2)}, tt.opts...)
			srv := testserver.New(t, opts...)
			f := newFetcher(t, srv, 3)
			f.IfRange = tt.val(srv)
			if f.IfRange == "" {
				t.Fatal("no validator")
			}
			w, _, err := runPlan(t, f, 3, 64*kib)
			if err != nil {
				t.Fatal(err)
			}
			w.check(t, srv.Content())
			reqs := log.all()
			if len(reqs) < 5 { // three spans and two retries
				t.Fatalf("only %d requests", len(reqs))
			}
			for _, r := range reqs {
				if r.rng == "" || r.ifRange != f.IfRange {
					t.Errorf("request Range %q If-Range %q, want If-Range %q", r.rng, r.ifRange, f.IfRange)
				}
				if r.acceptEncoding != "identity" {
					t.Errorf("request Accept-Encoding %q, want identity", r.acceptEncoding)
				}
			}
		})
	}
}

// A resumed plan fetches exactly the bytes not yet written.
func TestRunResume(t *testing.T) {
	const size = 3*mib + 7
	segs := []Segment{
		{Start: 0, End: mib, Written: mib},
		{Start: mib, End: 2 * mib, Written: 1000},
		{Start: 2 * mib, End: size, Written: 0},
	}
	var log requestLog
	srv := testserver.New(t, testserver.Size(size), testserver.OnRequest(log.hook))
	f := newFetcher(t, srv, 2)
	plan, err := NewPlan(size, segs, 2, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, size)
	content := srv.Content()
	w.prefill(content, 0, mib)
	w.prefill(content, mib, mib+1000)
	if err := f.Run(context.Background(), plan, w, 2); err != nil {
		t.Fatal(err)
	}
	w.check(t, content)
	checkDone(t, plan)
	missing := int64(size - mib - 1000)
	if _, n := w.stats(); n != missing {
		t.Errorf("wrote %d bytes, want the %d missing ones", n, missing)
	}
	if st := srv.Stats(); st.BodyBytes != missing {
		t.Errorf("server sent %d body bytes, want the %d missing ones", st.BodyBytes, missing)
	}
	starts := map[string]bool{}
	for _, r := range log.all() {
		first, _, _ := strings.Cut(strings.TrimPrefix(r.rng, "bytes="), "-")
		starts[first] = true
	}
	if !starts[strconv.Itoa(mib+1000)] {
		t.Errorf("no request starts at the first missing byte %d: %+v", mib+1000, log.all())
	}
}

// A 206 whose Content-Range is not exactly the asked range of a file of the
// known size is refused before any byte is written, and not retried.
func TestRunRejectsWrongContentRange(t *testing.T) {
	tests := []struct {
		name    string
		cr      func(start, end, total int64) string
		changed bool // ErrRemoteChanged rather than a ProtocolError
	}{
		{"other start", func(s, e, n int64) string { return fmt.Sprintf("bytes %d-%d/%d", s+1, e, n) }, false},
		{"earlier start", func(s, e, n int64) string { return fmt.Sprintf("bytes %d-%d/%d", max(s-1, 0), e-1, n) }, false},
		{"other end", func(s, e, n int64) string { return fmt.Sprintf("bytes %d-%d/%d", s, e-1, n) }, false},
		{"later end", func(s, e, n int64) string { return fmt.Sprintf("bytes %d-%d/%d", s, e+1, n+2) }, true},
		{"other total", func(s, e, n int64) string { return fmt.Sprintf("bytes %d-%d/%d", s, e, n+1) }, true},
		{"unknown total", func(s, e, n int64) string { return fmt.Sprintf("bytes %d-%d/*", s, e) }, false},
		{"unsatisfied form", func(s, e, n int64) string { return fmt.Sprintf("bytes */%d", n) }, false},
		{"malformed", func(s, e, n int64) string { return "bytes garbage" }, false},
		{"other unit", func(s, e, n int64) string { return fmt.Sprintf("items %d-%d/%d", s, e, n) }, false},
		{"missing", func(s, e, n int64) string { return "" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(mib), testserver.ContentRangeFunc(tt.cr))
			f := newFetcher(t, srv, 2)
			w, _, err := runPlan(t, f, 2, 64*kib)
			if err == nil {
				t.Fatal("Run accepted a wrong Content-Range")
			}
			var pe *ProtocolError
			if tt.changed {
				if !errors.Is(err, ErrRemoteChanged) {
					t.Fatalf("error %v, want ErrRemoteChanged", err)
				}
			} else if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want a *ProtocolError", err, err)
			}
			if !IsPermanent(err) {
				t.Errorf("error %v is not permanent", err)
			}
			if writes, _ := w.stats(); writes != 0 {
				t.Errorf("%d writes from refused answers", writes)
			}
			if st := srv.Stats(); st.Gets > 2 {
				t.Errorf("%d GETs for 2 connections: a refused answer was retried", st.Gets)
			}
		})
	}
}

// gzipRangeServer answers every request with a 206 for the asked range of
// content, correctly labelled, but gzip-compressed.
func gzipRangeServer(t *testing.T, content []byte) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var first, last int64
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err != nil {
			var zw bytes.Buffer
			gz := gzip.NewWriter(&zw)
			gz.Write(content)
			gz.Close()
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(zw.Bytes())
			return
		}
		var zw bytes.Buffer
		gz := gzip.NewWriter(&zw)
		gz.Write(content[first : last+1])
		gz.Close()
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(content)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(zw.Bytes())
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestRunRejectsCompressedRange(t *testing.T) {
	content := bytes.Repeat([]byte("convoy "), 10000)
	ts := gzipRangeServer(t, content)
	f := &Fetcher{
		Client: newTestClient(t, ClientOptions{Connections: 2}), URL: ts.URL, Size: int64(len(content)),
		RetryInitial: fastInitial, RetryMax: fastMax,
	}
	plan, err := NewPlan(f.Size, nil, 2, 1000)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, f.Size)
	err = f.Run(context.Background(), plan, w, 2)
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "gzip") || !strings.Contains(err.Error(), "gzip") {
		t.Fatalf("Run = %v, want a *ProtocolError naming gzip", err)
	}
	if !strings.HasPrefix(pe.Error(), ts.URL) {
		t.Errorf("ProtocolError %q does not name the URL %s", pe.Error(), ts.URL)
	}
	if writes, _ := w.stats(); writes != 0 {
		t.Errorf("%d writes of compressed bytes", writes)
	}
}

// The fetcher asks for identity even when the caller's headers ask for
// gzip, so a server that would compress does not.
func TestRunOverridesAcceptEncoding(t *testing.T) {
	srv := testserver.New(t, testserver.Size(mib), testserver.Gzip())
	f := newFetcher(t, srv, 2)
	f.Header = http.Header{"Accept-Encoding": {"gzip"}, "User-Agent": {"convoy-test"}}
	w, _, err := runPlan(t, f, 2, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
}

// A 200 to a ranged request means the range was not honoured: with
// If-Range and another validator (or none) the file changed, without
// If-Range the server ignores ranges; neither is retried. Under the very
// validator sent in If-Range, with the probe's ETag and the known size, the
// file is the same and the range is asked again; the same Last-Modified
// with another ETag or size is a file rewritten within that second. No byte
// of a 200 is written.
func TestRunRefusesWholeFileAnswer(t *testing.T) {
	tests := []struct {
		name    string
		opts    []testserver.Option
		ifRange string // "-" for the server's ETag, "lm" for its Last-Modified
		etag    string // the ETag the probe saw; "-" for the server's
		size    int64  // the size the probe saw; 0 for the server's
		want    error
	}{
		{"no ranges with If-Range, same ETag", []testserver.Option{testserver.NoRanges()}, "-", "-", 0, ErrRangeSkipped},
		{"no ranges, same Last-Modified, no ETag", []testserver.Option{testserver.NoRanges(), testserver.NoETag()}, "lm", "", 0, ErrRangeSkipped},
		{"no ranges, same Last-Modified, an ETag now", []testserver.Option{testserver.NoRanges()}, "lm", "", 0, ErrRemoteChanged},
		{"no ranges, same Last-Modified, another ETag", []testserver.Option{testserver.NoRanges()}, "lm", `"before"`, 0, ErrRemoteChanged},
		{"no ranges, same ETag, another size", []testserver.Option{testserver.NoRanges()}, "-", "-", mib + 1, ErrRemoteChanged},
		{"no ranges, same Last-Modified, another size", []testserver.Option{testserver.NoRanges(), testserver.NoETag()}, "lm", "", mib - 1, ErrRemoteChanged},
		{"no ranges with If-Range, no ETag", []testserver.Option{testserver.NoRanges(), testserver.NoETag(), testserver.NoLastModified()}, `"gone"`, "", 0, ErrRemoteChanged},
		{"no ranges without If-Range", []testserver.Option{testserver.NoRanges()}, "", "-", 0, ErrRangeIgnored},
		{"stale ETag", nil, `"stale"`, `"stale"`, 0, ErrRemoteChanged},
		{"stale Last-Modified", []testserver.Option{testserver.NoETag()}, "Mon, 01 Jan 2024 00:00:00 GMT", "", 0, ErrRemoteChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(mib)}, tt.opts...)...)
			f := newFetcher(t, srv, 2)
			f.IfRange, f.ETag = tt.ifRange, tt.etag
			switch tt.ifRange {
			case "-":
				f.IfRange = srv.ETag()
			case "lm":
				f.IfRange = srv.LastModified()
			}
			if tt.etag == "-" {
				f.ETag = srv.ETag()
			}
			if tt.size > 0 {
				f.Size = tt.size
			}
			w, _, err := runPlan(t, f, 2, 64*kib)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
			if writes, _ := w.stats(); writes != 0 {
				t.Errorf("%d writes from a 200 answer", writes)
			}
			if st := srv.Stats(); tt.want != ErrRangeSkipped && st.Gets > 2 {
				t.Errorf("%d GETs for 2 connections: retried", st.Gets)
			} else if tt.want == ErrRangeSkipped && st.Gets <= 2 {
				t.Errorf("%d GETs for 2 connections: not retried", st.Gets)
			}
		})
	}
}

// The file changes on the server between two requests: the second one's
// If-Range no longer matches, and the download stops without splicing new
// bytes onto old ones.
func TestRunDetectsChangeMidDownload(t *testing.T) {
	srv := testserver.New(t, testserver.Size(9*mib), testserver.ChangeAfter(1))
	old := srv.Content()
	f := newFetcher(t, srv, 1)
	w, _, err := runPlan(t, f, 1, mib)
	if !errors.Is(err, ErrRemoteChanged) {
		t.Fatalf("Run = %v, want ErrRemoteChanged", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, seen := range w.seen {
		if seen && w.buf[i] != old[i] {
			t.Fatalf("byte %d is not from the file the download started with", i)
		}
	}
}

func TestRunRangeNotSatisfiable(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) (*testserver.Server, *Plan, int64)
	}{
		{"injected 416", func(t *testing.T) (*testserver.Server, *Plan, int64) {
			srv := testserver.New(t, testserver.Size(mib), testserver.Statuses(416))
			p, err := NewPlan(mib, nil, 1, mib)
			if err != nil {
				t.Fatal(err)
			}
			return srv, p, mib
		}},
		{"file shrank", func(t *testing.T) (*testserver.Server, *Plan, int64) {
			// The plan believes in 1000 more bytes; the part left is past
			// the server's end.
			srv := testserver.New(t, testserver.Size(mib))
			p, err := NewPlan(mib+1000, []Segment{seg(0, mib, mib), seg(mib, mib+1000, 0)}, 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			return srv, p, mib + 1000
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, plan, size := tt.setup(t)
			f := newFetcher(t, srv, 1)
			f.Size = size
			w := newMemWriter(t, size)
			err := f.Run(context.Background(), plan, w, 1)
			if !errors.Is(err, ErrRemoteChanged) {
				t.Fatalf("Run = %v, want ErrRemoteChanged", err)
			}
			if st := srv.Stats(); st.Gets != 1 || st.Statuses[416] != 1 {
				t.Errorf("stats %+v, want one GET answered 416", st)
			}
			if writes, _ := w.stats(); writes != 0 {
				t.Errorf("%d writes", writes)
			}
		})
	}
}

// A connection reset mid-body is retried from the first byte not written.
func TestRunRetriesCutConnection(t *testing.T) {
	var log requestLog
	srv := testserver.New(t, testserver.Size(mib), testserver.CutAfter(100000, 2), testserver.OnRequest(log.hook))
	f := newFetcher(t, srv, 1)
	var retries atomic.Int32
	f.OnRetry = func(error, time.Duration) { retries.Add(1) }
	w, plan, err := runPlan(t, f, 1, mib)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	checkDone(t, plan)
	var got []string
	for _, r := range log.all() {
		got = append(got, r.rng)
	}
	want := []string{"bytes=0-1048575", "bytes=100000-1048575", "bytes=200000-1048575"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ranges asked %q, want %q", got, want)
	}
	if n := retries.Load(); n != 2 {
		t.Errorf("OnRetry called %d times, want 2", n)
	}
	if st := srv.Stats(); st.Gets != 3 {
		t.Errorf("%d GETs, want 3", st.Gets)
	}
}

func TestRunRetriesCutConnectionsInParallel(t *testing.T) {
	srv := testserver.New(t, testserver.Size(2*mib+1), testserver.CutAfter(50000, 6))
	f := newFetcher(t, srv, 4)
	w, plan, err := runPlan(t, f, 4, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	checkDone(t, plan)
	if st := srv.Stats(); st.Gets < 4+6 {
		t.Errorf("%d GETs, want at least 4 plus 6 retries", st.Gets)
	}
}

// More cuts than MaxTries are fine as long as every attempt makes progress.
func TestRunProgressResetsTries(t *testing.T) {
	srv := testserver.New(t, testserver.Size(mib), testserver.CutAfter(64*kib, 8))
	f := newFetcher(t, srv, 1)
	f.MaxTries = 2
	w, _, err := runPlan(t, f, 1, mib)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	if st := srv.Stats(); st.Gets != 9 {
		t.Errorf("%d GETs, want 9", st.Gets)
	}
}

// A body that stops sending is cut by the stall timer and resumed from the
// bytes that did arrive.
func TestRunRetriesStalledBody(t *testing.T) {
	var log requestLog
	srv := testserver.New(t, testserver.Size(mib), testserver.StallAfter(50000, 30*time.Second, 1), testserver.OnRequest(log.hook))
	f := newFetcher(t, srv, 1)
	f.StallTimeout = 300 * time.Millisecond
	var stalls atomic.Int32
	f.OnRetry = func(err error, _ time.Duration) {
		if errors.Is(err, ErrStalled) {
			stalls.Add(1)
		}
	}
	w, _, err := runPlan(t, f, 1, mib)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	// A loaded machine may see more stalls than the injected one; the
	// injected one must be there, and resumed from where it stopped.
	if n := stalls.Load(); n < 1 {
		t.Errorf("%d retries for ErrStalled, want at least 1", n)
	}
	reqs := log.all()
	if len(reqs) < 2 || reqs[1].rng != "bytes=50000-1048575" {
		t.Errorf("requests %+v, want a second one from byte 50000", reqs)
	}
}

// Headers that never come are bounded by the client's header timeout, and
// retried.
func TestRunRetriesStalledHeaders(t *testing.T) {
	srv := testserver.New(t, testserver.Size(mib), testserver.StallHeaders(30*time.Second, 1))
	f := newFetcher(t, srv, 1)
	f.Client = newTestClient(t, ClientOptions{Connections: 1, HeaderTimeout: 300 * time.Millisecond})
	w, _, err := runPlan(t, f, 1, mib)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	if st := srv.Stats(); st.Gets < 2 {
		t.Errorf("%d GETs, want a retry after the stalled headers", st.Gets)
	}
}

// A 503 or 429 with Retry-After makes the connection wait at least that
// long, however short its own backoff.
func TestRunHonoursRetryAfter(t *testing.T) {
	t.Parallel() // mostly waiting
	tests := []struct {
		statuses []int
		wait     time.Duration
	}{
		{[]int{503, 503, 0}, 2 * time.Second},
		{[]int{429, 0}, time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.statuses), func(t *testing.T) {
			t.Parallel()
			srv := testserver.New(t, testserver.Size(100*kib), testserver.Statuses(tt.statuses...), testserver.RetryAfter("1"))
			f := newFetcher(t, srv, 1)
			var waits []time.Duration
			f.OnRetry = func(_ error, d time.Duration) { waits = append(waits, d) }
			start := time.Now()
			w, _, err := runPlan(t, f, 1, mib)
			elapsed := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			w.check(t, srv.Content())
			if bound := tt.wait * 9 / 10; elapsed < bound {
				t.Errorf("finished after %v, want at least %v", elapsed, bound)
			}
			if len(waits) != len(tt.statuses)-1 {
				t.Fatalf("waits %v, want %d", waits, len(tt.statuses)-1)
			}
			for _, d := range waits {
				if d < time.Second {
					t.Errorf("waited %v, less than Retry-After", d)
				}
			}
			if st := srv.Stats(); st.Gets != len(tt.statuses) {
				t.Errorf("%d GETs, want %d", st.Gets, len(tt.statuses))
			}
		})
	}
}

// A refusing status ends the download at once, without retries.
func TestRunPermanentStatus(t *testing.T) {
	for _, code := range []int{401, 403, 404, 410, 501} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(mib), testserver.Statuses(code, code, code))
			f := newFetcher(t, srv, 1)
			f.OnRetry = func(err error, _ time.Duration) { t.Errorf("retried after %v", err) }
			start := time.Now()
			_, _, err := runPlan(t, f, 1, mib)
			var se *StatusError
			if !errors.As(err, &se) || se.Code != code {
				t.Fatalf("Run = %v, want a StatusError %d", err, code)
			}
			if strings.Contains(err.Error(), "giving up") {
				t.Errorf("error %q counts tries for a permanent error", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			if st := srv.Stats(); st.Gets != 1 {
				t.Errorf("%d GETs, want 1", st.Gets)
			}
		})
	}
}

// One connection's permanent error stops the others, even those stuck in a
// stalled body, long before their stall timeout.
func TestRunPermanentErrorStopsAllConnections(t *testing.T) {
	srv := testserver.New(t, testserver.Size(4*mib),
		testserver.StallAfter(1000, 30*time.Second, -1), testserver.Statuses(0, 0, 0, 404))
	f := newFetcher(t, srv, 4)
	f.StallTimeout = 20 * time.Second
	start := time.Now()
	_, _, err := runPlan(t, f, 4, 64*kib)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("Run = %v, want the 404", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run returned after %v; the stalled connections were not stopped", d)
	}
	if st := srv.Stats(); st.Gets != 4 {
		t.Errorf("%d GETs, want 4", st.Gets)
	}
}

func TestRunGivesUp(t *testing.T) {
	tests := []struct {
		maxTries int
		msg      string
	}{
		{1, "giving up after 1 try"},
		{3, "giving up after 3 tries"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("maxTries=%d", tt.maxTries), func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(mib), testserver.Statuses(503, 503, 503, 503, 503, 503))
			f := newFetcher(t, srv, 1)
			f.MaxTries = tt.maxTries
			_, _, err := runPlan(t, f, 1, mib)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Run = %v, want %q", err, tt.msg)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.Code != 503 {
				t.Errorf("error %v does not wrap the 503", err)
			}
			if st := srv.Stats(); st.Gets != tt.maxTries {
				t.Errorf("%d GETs, want %d", st.Gets, tt.maxTries)
			}
		})
	}
}

// A failing WriterAt is the disk's problem: no retry, the error says where.
func TestRunWriteErrorIsPermanent(t *testing.T) {
	for _, conns := range []int{1, 3} {
		t.Run(fmt.Sprintf("conns=%d", conns), func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(mib))
			f := newFetcher(t, srv, conns)
			f.OnRetry = func(err error, _ time.Duration) { t.Errorf("retried after %v", err) }
			plan, err := NewPlan(mib, nil, conns, 64*kib)
			if err != nil {
				t.Fatal(err)
			}
			var w failWriter
			err = f.Run(context.Background(), plan, &w, conns)
			var we *WriteError
			if !errors.As(err, &we) || !errors.Is(err, errDiskFull) {
				t.Fatalf("Run = %v, want a *WriteError wrapping the disk error", err)
			}
			if we.Offset < 0 || we.Offset >= mib {
				t.Errorf("WriteError offset %d", we.Offset)
			}
			if st := srv.Stats(); st.Gets > conns {
				t.Errorf("%d GETs for %d connections", st.Gets, conns)
			}
			if w.calls > conns {
				t.Errorf("%d write attempts for %d connections", w.calls, conns)
			}
			if plan.Written() != 0 {
				t.Errorf("plan counts %d bytes written", plan.Written())
			}
		})
	}
}

func TestRunCancel(t *testing.T) {
	errStop := errors.New("user pressed ^C")
	tests := []struct {
		name  string
		cause error
	}{
		{"cancel", nil},
		{"cancel with cause", errStop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(4*mib), testserver.Rate(256*kib))
			f := newFetcher(t, srv, 4)
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			var once sync.Once
			var canceledAt atomic.Int64
			f.OnWrite = func(int64, int64) {
				once.Do(func() {
					canceledAt.Store(time.Now().UnixNano())
					cancel(tt.cause)
				})
			}
			plan, err := NewPlan(f.Size, nil, 4, 64*kib)
			if err != nil {
				t.Fatal(err)
			}
			err = f.Run(ctx, plan, newMemWriter(t, f.Size), 4)
			end := time.Now()
			want := tt.cause
			if want == nil {
				want = context.Canceled
			}
			if !errors.Is(err, want) {
				t.Fatalf("Run = %v, want %v", err, want)
			}
			if at := canceledAt.Load(); at == 0 {
				t.Fatal("never canceled")
			} else if d := end.Sub(time.Unix(0, at)); d > 5*time.Second {
				t.Errorf("Run returned %v after the cancel", d)
			}
			if plan.Written() >= f.Size {
				t.Errorf("download finished despite the cancel")
			}
			if err := checkSnapshot(plan); err != nil {
				t.Error(err)
			}
		})
	}
}

func checkSnapshot(p *Plan) error {
	snap := p.Snapshot()
	var w int64
	for _, s := range snap {
		w += s.Written
	}
	if w != p.Written() {
		return fmt.Errorf("snapshot counts %d bytes, Written %d", w, p.Written())
	}
	return nil
}

// Secrets in the URL never reach an error message.
func TestRunRedactsErrors(t *testing.T) {
	const secret = "s3cr3t-signature"
	tests := []struct {
		name string
		opts []testserver.Option
	}{
		{"status", []testserver.Option{testserver.Statuses(404)}},
		{"header timeout", []testserver.Option{testserver.StallHeaders(30*time.Second, -1)}},
		{"cut body", []testserver.Option{testserver.CutAfter(0, -1)}},
		{"wrong range", []testserver.Option{testserver.ContentRangeFunc(func(s, e, n int64) string { return "bytes 1-2/3" })}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(100 * kib)}, tt.opts...)...)
			f := newFetcher(t, srv, 1)
			f.Client = newTestClient(t, ClientOptions{Connections: 1, HeaderTimeout: 100 * time.Millisecond})
			f.URL = strings.Replace(srv.URL, "http://", "http://user:"+secret+"@", 1) + "?X-Amz-Signature=" + secret + "&token=" + secret
			f.MaxTries = 2
			var retryMsgs []string
			f.OnRetry = func(err error, _ time.Duration) { retryMsgs = append(retryMsgs, err.Error()) }
			_, _, err := runPlan(t, f, 1, mib)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			for _, msg := range append(retryMsgs, err.Error()) {
				if strings.Contains(msg, secret) {
					t.Errorf("message leaks the secret: %s", msg)
				}
			}
		})
	}
}

// A 206 whose body runs past the asked range: only the asked bytes are
// written, each exactly once, and the file is right.
func TestRunIgnoresBytesPastRange(t *testing.T) {
	srv := testserver.New(t, testserver.Size(mib+3), testserver.ExtraBody(5000))
	f := newFetcher(t, srv, 3)
	w, _, err := runPlan(t, f, 3, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
}

// slowFirstHandler serves h, but sends the answer to the first request for
// bytes=0-... at about bytesPerSec, in small flushed pieces.
type slowFirstHandler struct {
	h           http.Handler
	bytesPerSec int64
	taken       atomic.Bool
	slowBytes   atomic.Int64 // body bytes the slow answer sent
}

func (s *slowFirstHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.Header.Get("Range"), "bytes=0-") && s.taken.CompareAndSwap(false, true) {
		w = &slowWriter{ResponseWriter: w, ctx: r.Context(), rate: s.bytesPerSec, sent: &s.slowBytes}
	}
	s.h.ServeHTTP(w, r)
}

type slowWriter struct {
	http.ResponseWriter
	ctx  context.Context
	rate int64
	sent *atomic.Int64
}

func (w *slowWriter) Write(p []byte) (int, error) {
	const piece = 4 * kib
	n := 0
	for len(p) > 0 {
		k := min(len(p), piece)
		select {
		case <-time.After(time.Duration(k) * time.Second / time.Duration(w.rate)):
		case <-w.ctx.Done():
			return n, w.ctx.Err()
		}
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		w.sent.Add(int64(m))
		if err != nil {
			return n, err
		}
		w.Flush()
		p = p[k:]
	}
	return n, nil
}

func (w *slowWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// newSlowFirstServer serves a testserver handler behind slowFirstHandler.
func newSlowFirstServer(t *testing.T, bytesPerSec int64, opts ...testserver.Option) (*httptest.Server, *testserver.Handler, *slowFirstHandler) {
	h := testserver.NewHandler(opts...)
	slow := &slowFirstHandler{h: h, bytesPerSec: bytesPerSec}
	ts := httptest.NewServer(slow)
	t.Cleanup(func() {
		h.Close()
		ts.CloseClientConnections()
		ts.Close()
	})
	return ts, h, slow
}

// rangeStarts returns the first byte of every ranged request in log.
func rangeStarts(t *testing.T, log *requestLog) []int64 {
	var out []int64
	for _, r := range log.all() {
		first, _, ok := strings.Cut(strings.TrimPrefix(r.rng, "bytes="), "-")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(first, 10, 64)
		if err != nil {
			t.Fatalf("bad Range %q", r.rng)
		}
		out = append(out, n)
	}
	return out
}

// A slow connection does not hold the tail: once the fast one is done, it
// takes the back half of what the slow one has left, repeatedly.
func TestRunStealsFromSlowConnection(t *testing.T) {
	t.Parallel()
	const size = 2 * mib
	var log requestLog
	ts, h, slow := newSlowFirstServer(t, 256*kib,
		testserver.Size(size), testserver.Rate(4*mib), testserver.OnRequest(log.hook))
	f := &Fetcher{
		Client: newTestClient(t, ClientOptions{Connections: 2}), URL: ts.URL + h.FilePath(),
		Size: size, IfRange: h.ETag(), RetryInitial: fastInitial, RetryMax: fastMax,
	}
	plan, err := NewPlan(size, nil, 2, 32*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, size)
	if err := f.Run(context.Background(), plan, w, 2); err != nil {
		t.Fatal(err)
	}
	w.check(t, h.Content())
	checkDone(t, plan)
	stolen := false
	for _, s := range rangeStarts(t, &log) {
		if s > 0 && s < size/2 {
			stolen = true
		}
	}
	if !stolen {
		t.Errorf("no request for bytes of the slow connection's span: %+v", log.all())
	}
	if n := slow.slowBytes.Load(); n >= size/2 {
		t.Errorf("the slow answer sent all %d bytes of its span", n)
	}
	if f.left.Load() == 0 {
		t.Error("the answer cut short was not recorded as left (see leftLately)")
	}
}

// A connection that runs out of work while the only other one has just
// started a slow answer must not quit: a moment later that answer is known
// to be slow, and its back half is worth taking.
func TestRunIdleConnectionWaitsForSlowOne(t *testing.T) {
	t.Parallel()
	const size = 2 * mib
	var log requestLog
	ts, h, slow := newSlowFirstServer(t, 512*kib, testserver.Size(size), testserver.OnRequest(log.hook))
	f := &Fetcher{
		Client: newTestClient(t, ClientOptions{Connections: 2}), URL: ts.URL + h.FilePath(),
		Size: size, IfRange: h.ETag(), RetryInitial: fastInitial, RetryMax: fastMax,
	}
	plan, err := NewPlan(size, nil, 2, 32*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, size)
	if err := f.Run(context.Background(), plan, w, 2); err != nil {
		t.Fatal(err)
	}
	w.check(t, h.Content())
	stolen := false
	for _, s := range rangeStarts(t, &log) {
		if s > 0 && s < size/2 {
			stolen = true
		}
	}
	if !stolen {
		t.Errorf("the slow connection fetched its whole span alone (%d bytes at 512 KiB/s); requests: %+v",
			slow.slowBytes.Load(), log.all())
	}
}

// rangeHandler answers ranged GETs of content with a 206 that edit may
// spoil (headers and body) before it is sent.
func rangeHandler(t *testing.T, content []byte, edit func(h http.Header, body []byte) []byte) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var first, last int64
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err != nil {
			http.Error(w, "ranges only", http.StatusBadRequest)
			return
		}
		body := content[first : last+1]
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(content)))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		body = edit(w.Header(), body)
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestRunChecksRangeHeaders(t *testing.T) {
	tests := []struct {
		name string
		edit func(h http.Header, body []byte) []byte
		ok   bool
	}{
		{"plain", func(h http.Header, b []byte) []byte { return b }, true},
		{"identity encoding", func(h http.Header, b []byte) []byte { h.Set("Content-Encoding", "identity"); return b }, true},
		{"no Content-Length", func(h http.Header, b []byte) []byte { h.Del("Content-Length"); return b }, true},
		{"Content-Length one more", func(h http.Header, b []byte) []byte {
			h.Set("Content-Length", strconv.Itoa(len(b)+1))
			return append(append([]byte(nil), b...), 'x')
		}, false},
		{"br encoding", func(h http.Header, b []byte) []byte { h.Set("Content-Encoding", "br"); return b }, false},
	}
	content := make([]byte, 300*kib+1)
	testserver.Pattern(7, 0, content)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := rangeHandler(t, content, tt.edit)
			f := &Fetcher{
				Client: newTestClient(t, ClientOptions{Connections: 2}), URL: ts.URL, Size: int64(len(content)),
				MaxTries: 3, RetryInitial: fastInitial, RetryMax: fastMax,
			}
			plan, err := NewPlan(f.Size, nil, 2, 1000)
			if err != nil {
				t.Fatal(err)
			}
			w := newMemWriter(t, f.Size)
			err = f.Run(context.Background(), plan, w, 2)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				w.check(t, content)
				return
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("Run = %v, want a *ProtocolError", err)
			}
			if writes, _ := w.stats(); writes != 0 {
				t.Errorf("%d writes from refused answers", writes)
			}
		})
	}
}

// On a slow link, received bytes reach the WriterAt in small pieces well
// before the copy buffer fills, so a checkpoint can count them.
func TestRunWritesBeforeBufferFills(t *testing.T) {
	const size = 160 * kib
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(256*kib))
	f := newFetcher(t, srv, 1)
	var (
		mu     sync.Mutex
		writes []int64
	)
	f.OnWrite = func(_, n int64) {
		mu.Lock()
		writes = append(writes, n)
		mu.Unlock()
	}
	w, _, err := runPlan(t, f, 1, mib)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	mu.Lock()
	defer mu.Unlock()
	// The whole answer fits the 256 KiB buffer; at 256 KiB/s it takes
	// about 600 ms, and bytes wait about flushAfter.
	if len(writes) < 2 {
		t.Errorf("the answer was written in %d pieces %v; bytes waited for the buffer to fill", len(writes), writes)
	}
}

// readSignal wraps every response body of its client so that reads, once
// a body has returned bytes, are told on read (without blocking).
type readSignal struct {
	next http.RoundTripper
	read chan struct{}
}

func (rs readSignal) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := rs.next.RoundTrip(r)
	if err == nil {
		resp.Body = signalBody{ReadCloser: resp.Body, read: rs.read}
	}
	return resp, err
}

type signalBody struct {
	io.ReadCloser
	read chan struct{}
}

func (b signalBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		select {
		case b.read <- struct{}{}:
		default:
		}
	}
	return n, err
}

// Bytes that have waited 50 ms in the buffer are written by the next read
// that returns, however little the buffer holds (a kill loses the bytes
// not yet written): a server sends a piece, pauses 50 ms once the client
// has read it, sends a second piece, and then sees both written before it
// sends the rest.
func TestRunWritesWaitingBytesAfterAPause(t *testing.T) {
	const (
		size  = 256 * kib
		piece = 4 * kib
		pause = 50 * time.Millisecond
	)
	srv := testserver.New(t, testserver.Size(size))
	content := srv.Content()
	read := make(chan struct{}, 1)
	written := make(chan struct{}, 1)
	var early atomic.Bool // both pieces were written before the rest was sent
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var first, last int64
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err != nil || first != 0 || last < 2*piece {
			http.Error(w, "one range from 0 only", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, size))
		w.Header().Set("Content-Length", strconv.FormatInt(last+1-first, 10))
		w.WriteHeader(http.StatusPartialContent)
		rc := http.NewResponseController(w)
		w.Write(content[:piece])
		rc.Flush()
		select {
		case <-read: // the client holds the first piece
		case <-r.Context().Done():
			return
		}
		time.Sleep(pause)
		w.Write(content[piece : 2*piece])
		rc.Flush()
		select {
		case <-written:
			early.Store(true)
		case <-time.After(10 * time.Second): // a bound on the wait, not a measurement
		case <-r.Context().Done():
			return
		}
		w.Write(content[2*piece : last+1])
	}))
	t.Cleanup(ts.Close)
	client := newTestClient(t, ClientOptions{Connections: 1})
	client.Transport = readSignal{next: client.Transport, read: read}
	f := &Fetcher{Client: client, URL: ts.URL, Size: size, StallTimeout: time.Minute, MaxTries: 1}
	var got atomic.Int64
	f.OnWrite = func(_, n int64) {
		if got.Add(n) >= 2*piece {
			select {
			case written <- struct{}{}:
			default:
			}
		}
	}
	w, _, err := runPlan(t, f, 1, size)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, content)
	if !early.Load() {
		t.Errorf("two pieces %v apart waited in the buffer for more bytes (flushAfter %v)", pause, flushAfter)
	}
}

// OnRegion reports contiguous runs of at least RegionSize bytes, each
// already written, none twice.
func TestRunReportsRegions(t *testing.T) {
	const size, region = 3*mib + 11, 256 * kib
	srv := testserver.New(t, testserver.Size(size))
	f := newFetcher(t, srv, 3)
	f.BufferSize = 64 * kib
	f.RegionSize = region
	w := newMemWriter(t, size)
	var (
		mu      sync.Mutex
		regions []Segment
	)
	f.OnRegion = func(off, n int64) {
		w.mu.Lock()
		for i := off; i < off+n; i++ {
			if i < 0 || i >= size || !w.seen[i] {
				t.Errorf("region [%d,%d) reported before byte %d was written", off, off+n, i)
				break
			}
		}
		w.mu.Unlock()
		if n < region {
			t.Errorf("region [%d,%d) is shorter than RegionSize", off, off+n)
		}
		mu.Lock()
		regions = append(regions, Segment{Start: off, End: off + n})
		mu.Unlock()
	}
	plan, err := NewPlan(size, nil, 3, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Run(context.Background(), plan, w, 3); err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	mu.Lock()
	defer mu.Unlock()
	var total int64
	for _, r := range merged(append([]Segment(nil), regions...)) {
		total += r.End - r.Start
	}
	var sum int64
	for _, r := range regions {
		sum += r.End - r.Start
	}
	if sum != total {
		t.Errorf("regions overlap: %v", regions)
	}
	// Each run of contiguous writes (at most one per request) leaves less
	// than one region unreported.
	if gets := int64(srv.Stats().Gets); total <= size-gets*region {
		t.Errorf("regions cover %d of %d bytes after %d requests", total, size, gets)
	}
}

// A server that ignores If-Range still answers 206 after the file changed;
// the answer's own validators give it away.
func TestRunRejectsAnswerWithOtherValidators(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []testserver.Option
	}{
		{"etag", nil},
		{"last-modified", []testserver.Option{testserver.NoETag()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(mib)}, tt.opts...)...)
			f := newFetcher(t, srv, 2)
			// Send no If-Range, as a proxy that strips it would.
			f.IfRange, f.ETag, f.LastModified = "", srv.ETag(), srv.LastModified()
			srv.SetOption(testserver.Seed(77)) // a new version of the same size
			if _, _, err := runPlan(t, f, 2, 64*kib); !errors.Is(err, ErrRemoteChanged) {
				t.Fatalf("error %v, want ErrRemoteChanged", err)
			}
		})
	}
}

// slowDisk is a memWriter behind one slow writer at a time, as a disk that
// all connections share.
type slowDisk struct {
	*memWriter
	mu    sync.Mutex
	delay time.Duration
}

func (d *slowDisk) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	time.Sleep(d.delay)
	return d.memWriter.WriteAt(p, off)
}

// When the writer is the bottleneck, every connection waits on it alike:
// an idle connection must not cut another's answer short, which would only
// throw away the bytes already received.
func TestRunSlowWriterCutsNothing(t *testing.T) {
	const size = 6 * mib
	srv := testserver.New(t, testserver.Size(size))
	f := newFetcher(t, srv, 2)
	var discarded atomic.Int64
	f.OnDiscard = func(n int64) { discarded.Add(n) }
	// One long span and one short: the short one's connection is idle
	// while the long answer still needs seconds at the writer's pace
	// (256 KiB per 100 ms, 2.5 MiB/s).
	plan, err := NewPlan(size, []Segment{{Start: 0, End: size - 512*kib}, {Start: size - 512*kib, End: size}}, 2, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := &slowDisk{memWriter: newMemWriter(t, size), delay: 100 * time.Millisecond}
	if err := f.Run(context.Background(), plan, w, 2); err != nil {
		t.Fatal(err)
	}
	checkDone(t, plan)
	w.check(t, srv.Content())
	if n := discarded.Load(); n > 0 {
		t.Fatalf("%d received bytes were thrown away: an answer slowed by the writer was cut", n)
	}
}

// stuckDisk is a memWriter whose first write takes longer than the stall
// timeout, as a disk busy with writeback does.
type stuckDisk struct {
	*memWriter
	once  sync.Once
	delay time.Duration
}

func (w *stuckDisk) WriteAt(p []byte, off int64) (int, error) {
	w.once.Do(func() { time.Sleep(w.delay) }) // the disk's own slowness, the behaviour under test
	return w.memWriter.WriteAt(p, off)
}

// Time blocked in WriteAt is the disk's: it does not count towards the
// stall timeout, so a slow disk never makes a working server look stalled.
func TestSlowDiskIsNotAStall(t *testing.T) {
	srv := testserver.New(t, testserver.Size(mib))
	f := newFetcher(t, srv, 1)
	f.StallTimeout = 200 * time.Millisecond
	retries := 0
	f.OnRetry = func(error, time.Duration) { retries++ }
	plan, err := NewPlan(f.Size, nil, 1, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := &stuckDisk{memWriter: newMemWriter(t, f.Size), delay: 3 * f.StallTimeout}
	if err := f.Run(context.Background(), plan, w, 1); err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
	if retries != 0 {
		t.Errorf("%d retries: a slow write was taken for a stalled server", retries)
	}
}
