package convoy_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fastConfig returns a Config for url writing into dir with short retry
// waits, so fault tests run quickly.
func fastConfig(url, dir string) convoy.Config {
	return convoy.Config{
		URL:                url,
		Dir:                dir,
		Output:             "out.bin",
		Connections:        4,
		MinSplitSize:       64 << 10,
		RetryInitial:       time.Millisecond,
		RetryMax:           20 * time.Millisecond,
		StallTimeout:       2 * time.Second,
		CheckpointInterval: 50 * time.Millisecond,
		// A download under way that makes no progress gives up after this
		// (tests of outages set their own).
		RetryFor: 3 * time.Second,
	}
}

// onlyOutput fails t unless dir holds exactly the named files.
func onlyOutput(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Fatalf("folder holds %v, want %v", got, names)
	}
}

func TestDownloadSizes(t *testing.T) {
	tests := []struct {
		size     int64
		conns    int
		minSplit int64
	}{
		{size: 0, conns: 4, minSplit: 1 << 10},
		{size: 1, conns: 4, minSplit: 1 << 10},
		{size: 1000, conns: 8, minSplit: 1 << 20},        // smaller than one segment
		{size: 1<<20 + 7, conns: 3, minSplit: 16 << 10},  // not divisible by the connections
		{size: 3 << 20, conns: 16, minSplit: 64 << 10},   // many connections
		{size: 2<<20 - 1, conns: 1, minSplit: 128 << 10}, // one connection
		{size: 4 << 20, conns: 8, minSplit: 4 << 20},     // no split allowed
		{size: 5<<20 + 123, conns: 7, minSplit: 1 << 10}, // small splits
		{size: 256 << 10, conns: 128, minSplit: 1 << 10}, // more connections than worth it
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("size=%d/conns=%d/minsplit=%d", tt.size, tt.conns, tt.minSplit), func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(tt.size), testserver.Seed(uint64(tt.size)))
			dir := t.TempDir()
			cfg := fastConfig(srv.URL, dir)
			cfg.Connections, cfg.MinSplitSize = tt.conns, tt.minSplit
			res, err := convoy.Download(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.Verify(t, filepath.Join(dir, "out.bin"))
			if res.Size != tt.size || res.Fetched != tt.size {
				t.Errorf("result size %d fetched %d, want %d", res.Size, res.Fetched, tt.size)
			}
			onlyOutput(t, dir, "out.bin")
			// Each byte is fetched once, give or take an answer cut short
			// when a connection looked slow (a loaded machine) and lost its
			// back half to another; +1 is the probe's byte.
			if sent := srv.Stats().BodyBytes; sent > tt.size+tt.size/4+1 {
				t.Errorf("server sent %d body bytes for a %d-byte file", sent, tt.size)
			}
		})
	}
}

func TestDownloadSetsModificationTime(t *testing.T) {
	srv := testserver.New(t, testserver.Size(100<<10))
	dir := t.TempDir()
	if _, err := convoy.Download(context.Background(), fastConfig(srv.URL, dir)); err != nil {
		t.Fatal(err)
	}
	want, err := http.ParseTime(srv.LastModified())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "out.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !st.ModTime().Equal(want) {
		t.Errorf("mtime %v, want %v", st.ModTime(), want)
	}
}

func TestDownloadFallbacks(t *testing.T) {
	const size = 1<<20 + 333
	tests := []struct {
		name string
		opts []testserver.Option
	}{
		{"no-ranges", []testserver.Option{testserver.NoRanges()}},
		{"no-content-length", []testserver.Option{testserver.NoContentLength()}},
		{"head-405", []testserver.Option{testserver.HeadStatus(http.StatusMethodNotAllowed)}},
		{"head-403", []testserver.Option{testserver.HeadStatus(http.StatusForbidden)}},
		{"no-validators", []testserver.Option{testserver.NoETag(), testserver.NoLastModified()}},
		{"weak-etag", []testserver.Option{testserver.ETagValue(`W/"weak"`)}},
		{"redirects-relative", []testserver.Option{testserver.Redirects(3, true)}},
		{"redirects-absolute", []testserver.Option{testserver.Redirects(2, false)}},
		{"gzip-offered", []testserver.Option{testserver.Gzip()}},
		{"cut-connections", []testserver.Option{testserver.CutAfter(100<<10, 6)}},
		{"503-then-ok", []testserver.Option{testserver.Statuses(503, 503, 0), testserver.RetryAfter("0")}},
		{"stalls", []testserver.Option{testserver.StallAfter(10<<10, time.Minute, 2)}},
		{"no-ranges-cut", []testserver.Option{testserver.NoRanges(), testserver.CutAfter(300<<10, 2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(size)}, tt.opts...)...)
			dir := t.TempDir()
			cfg := fastConfig(srv.URL, dir)
			cfg.StallTimeout = 300 * time.Millisecond
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			srv.Verify(t, filepath.Join(dir, "out.bin"))
			onlyOutput(t, dir, "out.bin")
		})
	}
}

func TestPermanentErrorsStopAtOnce(t *testing.T) {
	for _, code := range []int{http.StatusNotFound, http.StatusForbidden, http.StatusGone, http.StatusUnauthorized} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			srv := testserver.New(t, testserver.Statuses(code, code, code, code, code, code))
			dir := t.TempDir()
			cfg := fastConfig(srv.URL, dir)
			cfg.RetryInitial = time.Second // a retry would show in the elapsed time
			start := time.Now()
			_, err := convoy.Download(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprint(code)) || !strings.Contains(err.Error(), srv.URL) {
				t.Fatalf("error %v, want one naming HTTP %d and the URL", err, code)
			}
			if d := time.Since(start); d > 900*time.Millisecond {
				t.Errorf("took %v: a permanent error was retried", d)
			}
			if n := srv.Stats().Gets; n != 1 {
				t.Errorf("%d GETs, want 1", n)
			}
			onlyOutput(t, dir)
		})
	}
}

// countingWriter tells busy, once, when its answer has sent n body bytes.
type countingWriter struct {
	http.ResponseWriter
	n    int64
	busy chan<- struct{}
	sent int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	k, err := w.ResponseWriter.Write(p)
	if w.sent < w.n && w.sent+int64(k) >= w.n {
		w.busy <- struct{}{}
	}
	w.sent += int64(k)
	return k, err
}

func (w *countingWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

// A permanent error on one connection mid-download stops all the others,
// even those in the middle of long answers: their requests end (the server
// sees the connections close) long before their bodies would have.
func TestPermanentErrorMidDownloadStopsEveryConnection(t *testing.T) {
	const (
		size      = 8 << 20
		conns     = 4
		rate      = 32 << 10 // per answer: each connection's 2 MiB range would take 64 s
		busyAfter = 16 << 10
		// Ceiling from the permanent error to the end of the download, far
		// below the 64 s the long answers would need to run out by themselves.
		bound = 15 * time.Second
	)
	h := testserver.NewHandler(testserver.Size(size), testserver.Rate(rate))
	var (
		mu        sync.Mutex
		ranged    int
		refusedAt time.Time
		busy      = make(chan struct{}, conns)
		ended     = make(chan struct{}, conns)
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rg := r.Header.Get("Range"); r.Method != http.MethodGet || rg == "" || rg == "bytes=0-0" {
			h.ServeHTTP(w, r) // the probe
			return
		}
		mu.Lock()
		ranged++
		n := ranged
		mu.Unlock()
		switch {
		case n < conns: // a long answer
			defer func() { ended <- struct{}{} }() // also when the handler aborts
			h.ServeHTTP(&countingWriter{ResponseWriter: w, n: busyAfter, busy: busy}, r)
		case n == conns: // refused for good, once every other connection is busy
			for range conns - 1 {
				select {
				case <-busy:
				case <-time.After(bound):
					t.Errorf("the other connections did not all start their answers within %v", bound)
				}
			}
			mu.Lock()
			refusedAt = time.Now()
			mu.Unlock()
			http.Error(w, "gone", http.StatusNotFound)
		default:
			h.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(func() { h.Close(); ts.Close() })

	dir := t.TempDir()
	cfg := fastConfig(ts.URL+h.FilePath(), dir)
	cfg.Connections, cfg.MinSplitSize = conns, 1<<20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := convoy.Download(ctx, cfg)
		errc <- err
	}()
	var err error
	select {
	case err = <-errc:
	case <-time.After(2 * bound):
		cancel()
		<-errc
		t.Fatalf("the download still ran %v after it began: the permanent error did not stop the other connections", 2*bound)
	}
	mu.Lock()
	took := time.Since(refusedAt)
	mu.Unlock()
	var se *segment.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Fatalf("error %v, want HTTP 404", err)
	}
	if took > bound {
		t.Errorf("the download ended %v after the permanent error, want under %v", took, bound)
	}
	// Every long answer was cut off by its connection closing.
	for i := range conns - 1 {
		select {
		case <-ended:
		case <-time.After(bound):
			t.Fatalf("%d of %d long answers still running after the download ended", conns-1-i, conns-1)
		}
	}
	// Progress is kept for a later run.
	if _, err := manifest.Load(filepath.Join(dir, "out.bin.convoy")); err != nil {
		t.Errorf("manifest after failure: %v", err)
	}
}

func TestGivesUpAfterMaxTries(t *testing.T) {
	srv := testserver.New(t, testserver.Size(1<<20))
	srv.SetOption(testserver.Statuses(0, 503, 503, 503, 503, 503, 503, 503, 503, 503, 503))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	cfg.Connections, cfg.MaxTries = 1, 3
	_, err := convoy.Download(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "giving up after 3 tries") {
		t.Fatalf("error %v, want giving up after 3 tries", err)
	}
}

// A lone server that takes 2 connections (503 beyond) does not fail a
// download over 6: the refused connections park, the file arrives
// byte-identical, each extra connection is refused once, and one notice says
// so, not a line per 503.
func TestLoneServerThatCapsConnections(t *testing.T) {
	const size = 4 << 20
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(2<<20), testserver.MaxConcurrent(2, ""))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	cfg.Connections = 6
	var n notices
	cfg.Logf = n.logf
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
	// One more refusal at most: a request on a new TCP connection may come
	// while an answer's handler is still returning. No probe is due before
	// the first wait of 10 s.
	if st := srv.Stats(); st.Refused < 4 || st.Refused > 5 {
		t.Errorf("the server refused %d requests, want 4", st.Refused)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("server %s accepts only 2 connections: using 2", u.Host)
	if len(n.lines) != 1 || n.lines[0] != want {
		t.Errorf("notices %q, want only %q", n.lines, want)
	}
	if res.Retries != 0 {
		t.Errorf("%d retries, want none", res.Retries)
	}
	if res.Connections != 2 {
		t.Errorf("%d connections used, want the 2 the server took", res.Connections)
	}
}

// A server that answers 503 to everything fails the download after the
// retry budget of the one connection that retries, with the status and the
// URL; the other connections are refused once each.
func TestLoneServerRefusingEverything(t *testing.T) {
	codes := []int{0} // the probe's GET
	for range 100 {
		codes = append(codes, http.StatusServiceUnavailable)
	}
	srv := testserver.New(t, testserver.Size(1<<20), testserver.Statuses(codes...))
	cfg := fastConfig(srv.URL, t.TempDir())
	cfg.Connections, cfg.MaxTries = 6, 3
	var n notices
	cfg.Logf = n.logf
	// Bounded, so that connections that all wait for a probe fail the test
	// instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := convoy.Download(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "giving up after 3 tries without progress: HTTP 503") || !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("error %v, want giving up after 3 tries, the 503 and the URL", err)
	}
	if got := srv.Stats().Statuses[503]; got != 5+3 {
		t.Errorf("%d answers of 503, want 8: five connections parked, one tried 3 times", got)
	}
	if n.has("accepts") {
		t.Errorf("notices %q speak of accepted connections", n.lines)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	srv := testserver.New(t, testserver.Size(64<<10), testserver.Statuses(0, 503), testserver.RetryAfter("1"))
	cfg := fastConfig(srv.URL, t.TempDir())
	cfg.Connections = 1
	start := time.Now()
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("finished after %v, before the 1s Retry-After", d)
	}
	if res.Retries != 1 {
		t.Errorf("%d retries, want 1", res.Retries)
	}
}

func TestStrictRangeChecksRefuseBadAnswers(t *testing.T) {
	tests := []struct {
		name string
		cr   func(start, end, total int64) string
	}{
		{"other-start", func(s, e, n int64) string { return fmt.Sprintf("bytes %d-%d/%d", s+1, e, n) }},
		{"other-end", func(s, e, n int64) string { return fmt.Sprintf("bytes %d-%d/%d", s, e-1, n) }},
		{"malformed", func(s, e, n int64) string { return "bytes nonsense" }},
		{"star-total", func(s, e, n int64) string { return fmt.Sprintf("bytes %d-%d/*", s, e) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(1<<20))
			// The probe's answer is honest; the segments' are not.
			srv.SetOption(testserver.OnRequest(func(r *http.Request) {
				if rg := r.Header.Get("Range"); rg != "" && rg != "bytes=0-0" {
					srv.SetOption(testserver.ContentRangeFunc(tt.cr))
				}
			}))
			dir := t.TempDir()
			_, err := convoy.Download(context.Background(), fastConfig(srv.URL, dir))
			var pe *segment.ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a protocol error", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "out.bin")); err == nil {
				t.Error("a file was committed from bad answers")
			}
		})
	}
}

func TestGzipRangeRefused(t *testing.T) {
	srv := testserver.New(t, testserver.Size(1<<20), testserver.Gzip())
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	cfg.Header = http.Header{"Accept-Encoding": {"gzip"}}
	// convoy asks for identity whatever the caller's headers say.
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
}

func TestHeadersAndUserAgent(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	srv := testserver.New(t, testserver.Size(300<<10),
		testserver.RequireHeader("Authorization", "Bearer s3cret"),
		testserver.OnRequest(func(r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Header.Clone())
			mu.Unlock()
		}))
	cfg := fastConfig(srv.URL, t.TempDir())
	cfg.Header = http.Header{"Authorization": {"Bearer s3cret"}, "X-Extra": {"1"}}
	cfg.UserAgent = "tester/1"
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range seen {
		if h.Get("User-Agent") != "tester/1" || h.Get("X-Extra") != "1" {
			t.Errorf("request headers %v lack the configured ones", h)
		}
		if r := h.Get("Range"); r != "" && r != "bytes=0-0" && h.Get("If-Range") != srv.ETag() {
			t.Errorf("ranged request %q without If-Range %q", r, srv.ETag())
		}
	}
}

func TestCredentialsStayWithTheirHost(t *testing.T) {
	var mu sync.Mutex
	leaked := 0
	target := testserver.New(t, testserver.Size(200<<10), testserver.OnRequest(func(r *http.Request) {
		if r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" || r.Header.Get("X-Api-Key") != "" {
			mu.Lock()
			leaked++
			mu.Unlock()
		}
	}))
	// "localhost" and "127.0.0.1" are different hosts to the client.
	front := testserver.New(t, testserver.RedirectTo(strings.Replace(target.URL, "127.0.0.1", "localhost", 1)))
	cfg := fastConfig(strings.Replace(front.URL, "http://", "http://user:pa55@", 1), t.TempDir())
	cfg.Header = http.Header{"Cookie": {"a=b"}, "X-Api-Key": {"k3y"}}
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if leaked > 0 {
		t.Errorf("%d requests to another host carried credentials", leaked)
	}
	cfg.Header = http.Header{"Authorization": {"Bearer s3cret"}}
	cfg.URL, cfg.Overwrite = front.URL, true
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if leaked > 0 {
		t.Errorf("%d requests to another host carried the Authorization header", leaked)
	}
}

func TestOutputNameFromServer(t *testing.T) {
	tests := []struct {
		name        string
		disposition string
		path        string
		want        string
	}{
		{"disposition", `attachment; filename="report.pdf"`, "/file.bin", "report.pdf"},
		{"disposition-traversal", `attachment; filename="../../etc/passwd"`, "/file.bin", "passwd"},
		{"url-path", "", "/dir/image.iso", "image.iso"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []testserver.Option{testserver.Size(1000), testserver.Path(tt.path)}
			if tt.disposition != "" {
				opts = append(opts, testserver.ContentDisposition(tt.disposition))
			}
			srv := testserver.New(t, opts...)
			dir := t.TempDir()
			cfg := fastConfig(srv.URL, dir)
			cfg.Output = ""
			res, err := convoy.Download(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Path != filepath.Join(dir, tt.want) {
				t.Errorf("saved as %s, want %s", res.Path, filepath.Join(dir, tt.want))
			}
			onlyOutput(t, dir, tt.want)
		})
	}
}

func TestExistingOutput(t *testing.T) {
	srv := testserver.New(t, testserver.Size(10<<10))
	dir := t.TempDir()
	out := filepath.Join(dir, "out.bin")
	if err := os.WriteFile(out, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig(srv.URL, dir)
	if _, err := convoy.Download(context.Background(), cfg); !errors.Is(err, convoy.ErrExists) {
		t.Fatalf("error %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Fatal("existing file was touched")
	}
	cfg.Overwrite = true
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, out)
}

func TestBadOutputPlaces(t *testing.T) {
	srv := testserver.New(t, testserver.Size(10<<10))
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, output, want string
	}{
		{"missing-folder", "nowhere/out.bin", "does not exist"},
		{"output-is-folder", "sub", "is a folder (to save into it, give it as the folder: -d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fastConfig(srv.URL, dir)
			cfg.Output = tt.output
			_, err := convoy.Download(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
}

// The folder given as Dir (-d) is made when missing, with its parents.
func TestMissingDirIsMade(t *testing.T) {
	srv := testserver.New(t, testserver.Size(10<<10))
	dir := filepath.Join(t.TempDir(), "new", "sub")
	if _, err := convoy.Download(context.Background(), fastConfig(srv.URL, dir)); err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
}

func TestBadConfig(t *testing.T) {
	for _, u := range []string{"", "ftp://host/x", "file:///etc/passwd", "http://", "::"} {
		_, err := convoy.Download(context.Background(), convoy.Config{URL: u, Dir: t.TempDir()})
		if !errors.Is(err, convoy.ErrUsage) {
			t.Errorf("URL %q: error %v, want ErrUsage", u, err)
		}
	}
	_, err := convoy.Download(context.Background(), convoy.Config{URL: "http://127.0.0.1:1/x", Connections: 1000})
	if !errors.Is(err, convoy.ErrUsage) {
		t.Errorf("1000 connections: error %v, want ErrUsage", err)
	}
}

// interruptAfter cancels a download once done bytes are on disk and returns
// the error Download gave.
func interruptAfter(t *testing.T, cfg convoy.Config, done int64) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.ProgressInterval = 10 * time.Millisecond
	cfg.OnProgress = func(p convoy.Progress) {
		if p.Done >= done {
			cancel()
		}
	}
	_, err := convoy.Download(ctx, cfg)
	return err
}

func TestInterruptAndResume(t *testing.T) {
	const size = 4 << 20
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	err := interruptAfter(t, cfg, size/3)
	if !errors.Is(err, convoy.ErrInterrupted) {
		t.Fatalf("error %v, want ErrInterrupted", err)
	}
	m, err := manifest.Load(filepath.Join(dir, "out.bin.convoy"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Done() < size/4 {
		t.Fatalf("manifest records %d bytes after an interrupt past %d", m.Done(), size/3)
	}
	sentBefore := srv.Stats().BodyBytes
	srv.SetOption(testserver.Rate(0))
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
	onlyOutput(t, dir, "out.bin")
	if res.Resumed != m.Done() {
		t.Errorf("resumed %d bytes, manifest had %d", res.Resumed, m.Done())
	}
	// The second run fetches only what the manifest lacked, plus the probe's
	// byte and some slack for an answer cut short on a loaded machine.
	if second := srv.Stats().BodyBytes - sentBefore; second > size-m.Done()+(512<<10) {
		t.Errorf("second run fetched %d bytes, %d were missing", second, size-m.Done())
	}
}

// The checkpoint ordering: every byte a manifest counts is already in the
// part file, at every checkpoint seen during a download.
func TestManifestNeverClaimsMissingBytes(t *testing.T) {
	const size = 3 << 20
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(768<<10))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	cfg.CheckpointInterval = 20 * time.Millisecond
	want := srv.Content()
	mpath := filepath.Join(dir, "out.bin.convoy")
	ppath := filepath.Join(dir, "out.bin.part")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := convoy.Download(ctx, cfg)
		errc <- err
	}()
	checked, claimed := 0, int64(0)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
			if checked < 5 || claimed == 0 {
				t.Fatalf("only %d manifests with %d bytes claimed were checked", checked, claimed)
			}
			srv.Verify(t, filepath.Join(dir, "out.bin"))
			return
		default:
		}
		m, err := manifest.Load(mpath)
		if err != nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		// Read the part file after the manifest: whatever the manifest
		// claims must already be there.
		got, err := os.ReadFile(ppath)
		if err != nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		for _, s := range m.Segments {
			if s.Written > 0 && !bytes.Equal(got[s.Start:s.Start+s.Written], want[s.Start:s.Start+s.Written]) {
				t.Fatalf("manifest claims [%d,%d) but the part file differs there", s.Start, s.Start+s.Written)
			}
		}
		checked++
		claimed = max(claimed, m.Done())
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-errc
	t.Fatal("download did not finish")
}

func TestChangedFileBetweenRunsStartsOver(t *testing.T) {
	tests := []struct {
		name   string
		change testserver.Option
		opts   []testserver.Option
	}{
		{"etag", testserver.Seed(99), nil},
		{"size", testserver.Size(3 << 20), nil},
		{"last-modified-only", testserver.Seed(99), []testserver.Option{testserver.NoETag()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const size = 2 << 20
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(size), testserver.Rate(1 << 20)}, tt.opts...)...)
			dir := t.TempDir()
			cfg := fastConfig(srv.URL, dir)
			if err := interruptAfter(t, cfg, size/2); !errors.Is(err, convoy.ErrInterrupted) {
				t.Fatalf("error %v, want ErrInterrupted", err)
			}
			srv.SetOption(tt.change, testserver.Rate(0))
			var notices, events []string
			cfg.Logf = func(f string, a ...any) { notices = append(notices, fmt.Sprintf(f, a...)) }
			cfg.OnEvent = func(e convoy.Event) { events = append(events, e.Type) }
			res, err := convoy.Download(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.Verify(t, filepath.Join(dir, "out.bin"))
			if res.Resumed != 0 {
				t.Errorf("resumed %d bytes of a changed file", res.Resumed)
			}
			if !slices.ContainsFunc(notices, func(s string) bool { return strings.Contains(s, "starting over") }) {
				t.Errorf("no notice said it started over: %q", notices)
			}
			if res.Restarts != 1 || len(events) < 2 || events[0] != "restart" || events[1] != "start" {
				t.Errorf("%d restarts and events %q, want 1 and a restart event before the start", res.Restarts, events)
			}
		})
	}
}

func TestChangedFileDuringDownloadStartsOver(t *testing.T) {
	srv := testserver.New(t, testserver.Size(2<<20), testserver.ChangeAfter(3))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	var notices []string
	var mu sync.Mutex
	cfg.Logf = func(f string, a ...any) {
		mu.Lock()
		notices = append(notices, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin")) // the new content only
	if res.Restarts != 1 {
		t.Errorf("%d restarts, want 1 (notices %q)", res.Restarts, notices)
	}
}

func TestCorruptManifest(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{"garbage", "\x00\x01garbage"},
		{"truncated", `{"version":1,"kind":"convoy-manifest","url":"x","size":10,"segm`},
		{"foreign", `{"name":"something else"}`},
		{"future-version", `{"version":9,"kind":"convoy-manifest","url":"x","size":0,"segments":[{"start":0,"end":0,"written":0}]}`},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(100<<10))
			dir := t.TempDir()
			mpath := filepath.Join(dir, "out.bin.convoy")
			if err := os.WriteFile(mpath, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := fastConfig(srv.URL, dir)
			_, err := convoy.Download(context.Background(), cfg)
			if !errors.Is(err, convoy.ErrNotResumable) || !strings.Contains(err.Error(), mpath) || !strings.Contains(err.Error(), "--restart") {
				t.Fatalf("error %v, want one naming %s and suggesting --restart", err, mpath)
			}
			// Kept as it was: a deleted one must not pass for an empty one.
			if b, err := os.ReadFile(mpath); err != nil || string(b) != tt.content {
				t.Errorf("the unusable manifest was changed: %q, %v", b, err)
			}
			cfg.Restart = true
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			srv.Verify(t, filepath.Join(dir, "out.bin"))
			onlyOutput(t, dir, "out.bin")
		})
	}
}

// A second download of the same output fails on the lock while the first
// still runs, instead of waiting for it.
func TestSecondDownloadOfSameOutputFailsFast(t *testing.T) {
	// 4 MiB over 4 connections at 256 KiB/s each: the first takes 4 s,
	// unless it is cancelled first.
	srv := testserver.New(t, testserver.Size(4<<20), testserver.Rate(256<<10))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	first := cfg
	first.OnProgress = func(p convoy.Progress) { once.Do(func() { close(started) }) }
	first.ProgressInterval = 10 * time.Millisecond
	errc := make(chan error, 1)
	go func() {
		_, err := convoy.Download(ctx, first)
		errc <- err
	}()
	<-started
	second := make(chan error, 1)
	go func() {
		_, err := convoy.Download(context.Background(), cfg)
		second <- err
	}()
	select {
	case err := <-second:
		if !errors.Is(err, manifest.ErrLocked) {
			t.Errorf("second download: error %v, want ErrLocked", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the second download still waits a minute later")
	}
	// The first was still running: only the cancel below ends it.
	cancel()
	if err := <-errc; !errors.Is(err, convoy.ErrInterrupted) {
		t.Errorf("first download: %v, want it interrupted: the second download ended only after it", err)
	}
}

func TestTruncatedPartFileIsRefetched(t *testing.T) {
	const size = 2 << 20
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	if err := interruptAfter(t, cfg, size/2); !errors.Is(err, convoy.ErrInterrupted) {
		t.Fatalf("error %v, want ErrInterrupted", err)
	}
	if err := os.Truncate(filepath.Join(dir, "out.bin.part"), size/8); err != nil {
		t.Fatal(err)
	}
	srv.SetOption(testserver.Rate(0))
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
}

func TestMissingPartFileIsRefetched(t *testing.T) {
	const size = 2 << 20
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	if err := interruptAfter(t, cfg, size/2); !errors.Is(err, convoy.ErrInterrupted) {
		t.Fatalf("error %v, want ErrInterrupted", err)
	}
	if err := os.Remove(filepath.Join(dir, "out.bin.part")); err != nil {
		t.Fatal(err)
	}
	srv.SetOption(testserver.Rate(0))
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
	if res.Resumed != 0 {
		t.Errorf("resumed %d bytes from a missing file", res.Resumed)
	}
}

// A crash after the rename but before the manifest was removed leaves the
// final file and a manifest that says it is complete: the next run only
// tidies up.
func TestCompleteManifestBesideFinalFile(t *testing.T) {
	srv := testserver.New(t, testserver.Size(100<<10))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{URL: srv.URL, Size: 100 << 10, Segments: []manifest.Segment{{Start: 0, End: 100 << 10, Written: 100 << 10}}}
	if err := manifest.Save(filepath.Join(dir, "out.bin.convoy"), m); err != nil {
		t.Fatal(err)
	}
	gets := srv.Stats().Gets
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.AlreadyComplete {
		t.Error("not reported as already complete")
	}
	if srv.Stats().Gets != gets+1 { // the probe only
		t.Errorf("%d GETs after completion, want only the probe", srv.Stats().Gets-gets)
	}
	onlyOutput(t, dir, "out.bin")
}

// A part file whose download finished but was not yet renamed is committed
// without fetching anything.
func TestCompletePartIsCommittedWithoutFetching(t *testing.T) {
	const size = 300 << 10
	srv := testserver.New(t, testserver.Size(size))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "out.bin.part"), srv.Content(), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{URL: srv.URL, Size: size, ETag: srv.ETag(), LastModified: srv.LastModified(),
		Segments: []manifest.Segment{{Start: 0, End: size, Written: size}}}
	if err := manifest.Save(filepath.Join(dir, "out.bin.convoy"), m); err != nil {
		t.Fatal(err)
	}
	res, err := convoy.Download(context.Background(), fastConfig(srv.URL, dir))
	if err != nil {
		t.Fatal(err)
	}
	if res.Fetched != 0 || res.Resumed != size {
		t.Errorf("fetched %d resumed %d, want 0 and %d", res.Fetched, res.Resumed, size)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
	onlyOutput(t, dir, "out.bin")
}

func TestStalledServerIsRetried(t *testing.T) {
	srv := testserver.New(t, testserver.Size(1<<20), testserver.StallHeaders(time.Minute, 2))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	cfg.StallTimeout = 200 * time.Millisecond
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
	if res.Retries < 1 {
		t.Errorf("%d retries, want at least 1", res.Retries)
	}
}

func TestErrorMessagesRedactSecrets(t *testing.T) {
	srv := testserver.New(t, testserver.Statuses(404))
	dir := t.TempDir()
	u := strings.Replace(srv.URL, "http://", "http://user:pa55word@", 1) + "?X-Amz-Signature=topsecret&token=hunter22"
	_, err := convoy.Download(context.Background(), fastConfig(u, dir))
	if err == nil {
		t.Fatal("no error")
	}
	for _, secret := range []string{"pa55word", "topsecret", "hunter22"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q shows %q", err, secret)
		}
	}
}

func TestTLSDownload(t *testing.T) {
	h := testserver.NewHandler(testserver.Size(512 << 10))
	ts := httptest.NewTLSServer(h)
	t.Cleanup(func() { h.Close(); ts.Close() })
	dir := t.TempDir()
	cfg := fastConfig(ts.URL+h.FilePath(), dir)
	if _, err := convoy.Download(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: error %v, want a certificate error", err)
	}
	cfg.Insecure = true
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	h.Verify(t, filepath.Join(dir, "out.bin"))
}

func TestNotEnoughSpaceFailsBeforeTheFirstByte(t *testing.T) {
	const huge = 1 << 50 // 1 PiB
	srv := testserver.New(t, testserver.Size(huge))
	dir := t.TempDir()
	_, err := convoy.Download(context.Background(), fastConfig(srv.URL, dir))
	if !errors.Is(err, merge.ErrNoSpace) || !strings.Contains(err.Error(), "free") {
		t.Fatalf("error %v, want ErrNoSpace saying how much is free", err)
	}
	if st := srv.Stats(); st.BodyBytes > 1 {
		t.Errorf("%d body bytes fetched before the space check", st.BodyBytes)
	}
	onlyOutput(t, dir)
}

// A weak ETag cannot prove the bytes are the same: a resume relies on
// Last-Modified instead, and without it starts over.
func TestWeakETagResume(t *testing.T) {
	tests := []struct {
		name       string
		opts       []testserver.Option
		wantResume bool
	}{
		{"weak-etag-with-last-modified", []testserver.Option{testserver.ETagValue(`W/"v1"`)}, true},
		{"weak-etag-alone", []testserver.Option{testserver.ETagValue(`W/"v1"`), testserver.NoLastModified()}, false},
		{"no-validators", []testserver.Option{testserver.NoETag(), testserver.NoLastModified()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const size = 2 << 20
			var ifRanges []string
			var mu sync.Mutex
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(size), testserver.Rate(1 << 20),
				testserver.OnRequest(func(r *http.Request) {
					mu.Lock()
					ifRanges = append(ifRanges, r.Header.Get("If-Range"))
					mu.Unlock()
				})}, tt.opts...)...)
			dir := t.TempDir()
			cfg := fastConfig(srv.URL, dir)
			if err := interruptAfter(t, cfg, size/2); !errors.Is(err, convoy.ErrInterrupted) {
				t.Fatalf("error %v, want ErrInterrupted", err)
			}
			srv.SetOption(testserver.Rate(0))
			res, err := convoy.Download(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.Verify(t, filepath.Join(dir, "out.bin"))
			if got := res.Resumed > 0; got != tt.wantResume {
				t.Errorf("resumed %d bytes; want a resume: %v", res.Resumed, tt.wantResume)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, v := range ifRanges {
				if strings.HasPrefix(v, "W/") {
					t.Errorf("a weak ETag was sent as If-Range: %q", v)
				}
			}
		})
	}
}

// The manifest is private (0600) and holds no credentials or signatures.
func TestManifestHoldsNoSecrets(t *testing.T) {
	const size = 2 << 20
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20))
	dir := t.TempDir()
	u := strings.Replace(srv.URL, "http://", "http://user:pa55word@", 1) + "?X-Amz-Signature=topsecret&token=hunter22"
	cfg := fastConfig(u, dir)
	cfg.Header = http.Header{"Authorization": {"Bearer b3arer"}, "Cookie": {"session=c00kie"}}
	if err := interruptAfter(t, cfg, size/4); !errors.Is(err, convoy.ErrInterrupted) {
		t.Fatalf("error %v, want ErrInterrupted", err)
	}
	path := filepath.Join(dir, "out.bin.convoy")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("manifest mode %v, want 0600", st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"pa55word", "topsecret", "hunter22", "b3arer", "c00kie"} {
		if strings.Contains(string(data), secret) {
			t.Errorf("manifest holds %q:\n%s", secret, data)
		}
	}
}

// A server that trickles a few bytes a second is as good as stalled: the
// download ends with an error instead of going on for ever.
func TestTricklingServerGivesUp(t *testing.T) {
	srv := testserver.New(t, testserver.Size(64<<10))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	cfg.StallTimeout, cfg.MaxTries, cfg.Connections = 300*time.Millisecond, 3, 2
	// The probe is answered at full speed; the ranges trickle.
	srv.SetOption(testserver.OnRequest(func(r *http.Request) {
		if rg := r.Header.Get("Range"); rg != "" && rg != "bytes=0-0" {
			srv.SetOption(testserver.Rate(200))
		}
	}))
	start := time.Now()
	_, err := convoy.Download(context.Background(), cfg)
	if !errors.Is(err, segment.ErrStalled) || !strings.Contains(err.Error(), "giving up") {
		t.Fatalf("error %v, want giving up on a stalled connection", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to give up", d)
	}
}

// --limit-rate caps all connections together, and only them: the download
// takes about the time the limit allows, neither less nor many times more.
func TestLimitRate(t *testing.T) {
	const size, limit, conns = 2 << 20, 1 << 20, 8
	srv := testserver.New(t, testserver.Size(size))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	cfg.LimitRate, cfg.Connections = limit, conns
	start := time.Now()
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	srv.Verify(t, filepath.Join(dir, "out.bin"))
	// The limiter starts with a burst of a tenth of a second's bytes (at
	// least 64 KiB) and then grants limit bytes a second: no download of
	// size bytes can end before (size-burst)/limit.
	burst := max(limit/10, 64<<10)
	least := time.Duration(float64(size-burst) / limit * float64(time.Second))
	// A generous ceiling: four times what the limit allows. A limit applied
	// per connection share (limit/conns) would need eight times.
	most := 4 * time.Duration(float64(size)/limit*float64(time.Second))
	t.Logf("%d bytes at %d B/s over %d connections took %v (bounds %v to %v)", size, limit, conns, d, least, most)
	if d < least {
		t.Errorf("took %v, less than the %v the limit allows", d, least)
	}
	if d > most {
		t.Errorf("took %v, more than %v: the download ran far below the limit", d, most)
	}
}

// A rate limit well below what the stall timeout would call a stall does not
// make connections stall.
func TestLimitRateBelowStallThreshold(t *testing.T) {
	const size = 256 << 10
	srv := testserver.New(t, testserver.Size(size))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	cfg.LimitRate, cfg.StallTimeout, cfg.MaxTries, cfg.Connections = 160<<10, 300*time.Millisecond, 2, 2
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Retries != 0 {
		t.Errorf("%d retries: the limiter's waits counted as stalls", res.Retries)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
}

// Without a validator, ranges of two versions could not be told apart: the
// file comes in one stream, unless a checksum vouches for the result.
func TestNoValidatorMeansOneStream(t *testing.T) {
	for _, withSum := range []bool{false, true} {
		t.Run(fmt.Sprintf("checksum=%v", withSum), func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(3<<20), testserver.NoETag(), testserver.NoLastModified())
			dir := t.TempDir()
			cfg := fastConfig(srv.URL, dir)
			if withSum {
				cfg.Checksum = "sha256:" + sums(srv.Content())["sha256"]
			}
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			srv.Verify(t, filepath.Join(dir, "out.bin"))
			ranged := srv.Stats().RangeGets - 1 // the probe's
			if withSum && ranged < 2 || !withSum && ranged != 0 {
				t.Errorf("%d ranged requests", ranged)
			}
		})
	}
}

// signedServer redirects /file.bin to /signed?sig=N, and the backend
// serves only the newest signature, refusing an older one with 403 (or
// refuseWith) once expire() was called: a signed URL that expires
// mid-download.
type signedServer struct {
	mu      sync.Mutex
	newest  int
	expired bool
	issued  int
	refused int // answers refused for an expired signature
	// refuseAll makes every signature refused once expired, even a new one.
	refuseAll bool
	// refuseWith is the status of a refusal; 0 means 403.
	refuseWith int
	URL        string
}

func newSignedServer(t *testing.T, h *testserver.Handler) *signedServer {
	s := &signedServer{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if r.URL.Path == "/file.bin" {
			s.newest++
			s.issued++
			s.expired = s.expired && s.refuseAll
			n := s.newest
			s.mu.Unlock()
			http.Redirect(w, r, fmt.Sprintf("/signed?sig=%d", n), http.StatusFound)
			return
		}
		ok := r.URL.Query().Get("sig") == fmt.Sprint(s.newest) && !s.expired
		code := cmp.Or(s.refuseWith, http.StatusForbidden)
		if !ok {
			s.refused++
		}
		s.mu.Unlock()
		if !ok {
			http.Error(w, "expired", code)
			return
		}
		r.URL.Path = h.FilePath()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { h.Close(); ts.Close() })
	s.URL = ts.URL + "/file.bin"
	return s
}

func (s *signedServer) expire() {
	s.mu.Lock()
	s.expired = true
	s.mu.Unlock()
}

// A signed address that starts answering 401, 403 or 410 mid-download is
// resolved again from the address the user gave, and the download goes on.
func TestExpiredSignedURLIsResolvedAgain(t *testing.T) {
	for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusGone} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			// Two connections, two 4 MiB requests each: the second ones
			// meet the expired address.
			h := testserver.NewHandler(testserver.Size(16<<20), testserver.Rate(8<<20))
			srv := newSignedServer(t, h)
			srv.mu.Lock()
			srv.refuseWith = code
			srv.mu.Unlock()
			dir := t.TempDir()
			cfg := fastConfig(srv.URL, dir)
			cfg.Connections = 2
			cfg.ProgressInterval = 20 * time.Millisecond
			var once sync.Once
			cfg.OnProgress = func(p convoy.Progress) {
				if p.Done > 1<<20 {
					once.Do(srv.expire)
				}
			}
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			h.Verify(t, filepath.Join(dir, "out.bin"))
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if srv.refused == 0 {
				t.Errorf("no request met the expired address: the test proves nothing")
			}
			if srv.issued < 4 { // HEAD and GET of the first probe, then the second
				t.Errorf("the address was resolved %d times, want it resolved again after expiry", srv.issued)
			}
		})
	}
}

// A URL that cannot be fetched from is a usage error at once, never retried
// as a network fault.
func TestBadURLIsUsageError(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:99999/x", "http://127.0.0.1:0/x", "http://:8080/x", "ftp://h/x", ""} {
		cfg := fastConfig(u, t.TempDir())
		cfg.RetryInitial, cfg.RetryMax = time.Second, time.Second
		began := time.Now()
		if _, err := convoy.Download(context.Background(), cfg); !errors.Is(err, convoy.ErrUsage) {
			t.Errorf("%q: error %v, want ErrUsage", u, err)
		}
		cfg = fastConfig("http://127.0.0.1:1/x", t.TempDir())
		cfg.Mirrors = []string{u}
		if _, err := convoy.Download(context.Background(), cfg); !errors.Is(err, convoy.ErrUsage) || !strings.Contains(err.Error(), "mirror") {
			t.Errorf("mirror %q: error %v, want ErrUsage naming the mirror", u, err)
		}
		if d := time.Since(began); d > 500*time.Millisecond {
			t.Errorf("%q: refused after %v, as if retried", u, d)
		}
	}
}

// A stream that breaks starts again from byte zero: what it fetched before
// the break counts as fetched twice.
func TestStreamRestartCountsBytesTwice(t *testing.T) {
	const size, cut = 1 << 20, 300 << 10
	srv := testserver.New(t, testserver.Size(size), testserver.NoRanges(), testserver.CutAfter(cut, 2))
	dir := t.TempDir()
	res, err := convoy.Download(context.Background(), fastConfig(srv.URL, dir))
	if err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
	// The server may spend a cut on the probe's answer: at least one break
	// reaches the stream.
	if res.Twice < cut || res.Fetched != size+res.Twice {
		t.Errorf("fetched %d, twice %d; want twice at least %d and fetched the size plus twice", res.Fetched, res.Twice, cut)
	}
}

// A part file that holds a download from another address under another file
// name (-o reused for another download, most likely) is kept: the run stops
// and says so, and only Restart discards it. Under the same file name the
// new address is a mirror, perhaps of a newer version, and the run starts
// over (TestChangedFileBetweenRunsStartsOver, mirrors_resume_test.go).
func TestPartOfAnotherDownloadIsKept(t *testing.T) {
	const size = 2 << 20
	for _, tt := range []struct{ pathA, pathB, named string }{
		{"/a.iso", "/b.iso", "a.iso"},
		{"/", "/", "127.0.0.1"}, // no file names: two root paths are not one file
	} {
		t.Run(tt.pathA+tt.pathB, func(t *testing.T) {
			a := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20), testserver.Path(tt.pathA))
			b := testserver.New(t, testserver.Size(size+1), testserver.Seed(7), testserver.Path(tt.pathB))
			dir := t.TempDir()
			cfg := fastConfig(a.URL, dir)
			if err := interruptAfter(t, cfg, size/2); !errors.Is(err, convoy.ErrInterrupted) {
				t.Fatalf("error %v, want ErrInterrupted", err)
			}
			part := filepath.Join(dir, "out.bin.part")
			before, err := os.ReadFile(part)
			if err != nil {
				t.Fatal(err)
			}
			cfg.URL = b.URL
			_, err = convoy.Download(context.Background(), cfg)
			if !errors.Is(err, convoy.ErrNotResumable) || !strings.Contains(err.Error(), "--restart") || !strings.Contains(err.Error(), tt.named) {
				t.Fatalf("error %v, want ErrNotResumable naming the earlier download and --restart", err)
			}
			if after, err := os.ReadFile(part); err != nil || !bytes.Equal(after, before) {
				t.Fatalf("the other download's part file changed (%v)", err)
			}
			cfg.Restart = true
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			b.Verify(t, filepath.Join(dir, "out.bin"))
		})
	}
}

// An empty file downloads as an empty file, with no notice about
// validators (nginx sends none with the 416 that answers bytes 0-0): a file
// of no bytes cannot mix versions.
func TestEmptyFile(t *testing.T) {
	srv := testserver.New(t, testserver.Size(0), testserver.NoETag(), testserver.NoLastModified())
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	var lines []string
	cfg.Logf = func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "out.bin"))
	if err != nil || st.Size() != 0 || res.Size != 0 {
		t.Fatalf("out.bin: %v, size %d, result size %d", err, st.Size(), res.Size)
	}
	if len(lines) != 0 {
		t.Errorf("notices for an empty file: %q", lines)
	}
	onlyOutput(t, dir, "out.bin")
}

// Running the same download again when the output is the server's file
// still is a success that fetches nothing ("already complete"), told by the
// ETag the file was saved under, else its modification time (the server's
// Last-Modified), and with a checksum by its digest. A file that is not
// that still needs Overwrite, and the error says what it is.
func TestRerunIsAlreadyComplete(t *testing.T) {
	const size = 256 << 10
	for _, tt := range []struct {
		name     string
		opts     []testserver.Option
		checksum bool
		// between runs: what happens to the server or the file
		change func(t *testing.T, srv *testserver.Server, out string)
		says   string // "" for already complete
	}{
		{"etag", nil, false, nil, ""},
		{"last-modified", []testserver.Option{testserver.NoETag()}, false, nil, ""},
		{"checksum", []testserver.Option{testserver.NoETag(), testserver.NoLastModified()}, true, nil, ""},
		{"no validators", []testserver.Option{testserver.NoETag(), testserver.NoLastModified()}, false, nil, "nothing tells"},
		{"another size", nil, false, func(t *testing.T, srv *testserver.Server, _ string) {
			srv.SetOption(testserver.Size(size + 1))
		}, "another file"},
		{"another version", nil, false, func(t *testing.T, srv *testserver.Server, _ string) {
			srv.SetOption(testserver.Seed(9))
		}, "another version"},
		{"another ETag, same date", nil, false, func(t *testing.T, srv *testserver.Server, _ string) {
			srv.SetOption(testserver.ETagValue(`"another"`))
		}, "saved under ETag"},
		{"another version, dates only", []testserver.Option{testserver.NoETag()}, false, func(t *testing.T, srv *testserver.Server, _ string) {
			srv.SetOption(testserver.Seed(9))
		}, "another version"},
		{"bytes changed on disk", nil, true, func(t *testing.T, _ *testserver.Server, out string) {
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(out, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("x"), size/2); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(out, st.ModTime(), st.ModTime()); err != nil {
				t.Fatal(err)
			}
		}, "digest"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(size)}, tt.opts...)...)
			dir := t.TempDir()
			cfg := fastConfig(srv.URL, dir)
			if tt.checksum {
				cfg.Checksum = "sha256:" + sums(srv.Content())["sha256"]
			}
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out.bin")
			if tt.change != nil {
				tt.change(t, srv, out)
			}
			before := srv.Stats().RangeGets
			res, err := convoy.Download(context.Background(), cfg)
			if tt.says == "" {
				if err != nil || !res.AlreadyComplete || res.Fetched != 0 {
					t.Fatalf("second run: %v, already complete %v, fetched %d: want already complete, nothing fetched", err, res.AlreadyComplete, res.Fetched)
				}
				if got := srv.Stats().RangeGets - before; got > 1 {
					t.Errorf("%d ranged GETs beyond the probe's", got-1)
				}
				srv.Verify(t, out)
				return
			}
			if !errors.Is(err, convoy.ErrExists) || !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), "--overwrite") {
				t.Fatalf("second run: %v, want ErrExists saying %q and naming --overwrite", err, tt.says)
			}
			cfg.Overwrite = true
			if tt.checksum {
				cfg.Checksum = "sha256:" + sums(srv.Content())["sha256"]
			}
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			srv.Verify(t, out)
		})
	}
}
