package convoy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/segment"
)

// rawServer answers every connection on loopback with answer(request line,
// headers), written as bytes: servers that no HTTP library would be.
func rawServer(t *testing.T, answer func(req *http.Request) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				go func() { <-done; c.Close() }()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					a := answer(req)
					if a == "" { // accept, then never answer
						<-done
						return
					}
					if _, err := c.Write([]byte(a)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/f.bin"
}

// Hostile answers end in a clear error, never a hang, a panic or a file.
func TestHostileHeaders(t *testing.T) {
	big := strings.Repeat("x", 2<<20)
	tests := []struct {
		name   string
		answer func(req *http.Request) string
	}{
		{"negative-content-length", func(*http.Request) string {
			return "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n"
		}},
		{"huge-content-length", func(*http.Request) string {
			return "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"
		}},
		{"non-numeric-content-length", func(*http.Request) string {
			return "HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n"
		}},
		{"negative-content-range-total", func(*http.Request) string {
			return "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-0/-1\r\nContent-Length: 1\r\n\r\nx"
		}},
		{"huge-content-range-total", func(*http.Request) string {
			return "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-0/99999999999999999999\r\nContent-Length: 1\r\n\r\nx"
		}},
		{"header-of-2MiB", func(*http.Request) string {
			return "HTTP/1.1 200 OK\r\nX-Big: " + big + "\r\nContent-Length: 1\r\n\r\nx"
		}},
		{"never-answers", func(*http.Request) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := rawServer(t, tt.answer)
			dir := t.TempDir()
			cfg := fastConfig(url, dir)
			cfg.MaxTries, cfg.StallTimeout = 2, 300*time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := convoy.Download(ctx, cfg)
			if err == nil {
				t.Fatal("no error")
			}
			if ctx.Err() != nil {
				t.Fatalf("hung until the test's deadline: %v", err)
			}
			if strings.Contains(err.Error(), big[:100]) || len(err.Error()) > 1000 {
				t.Errorf("error message of %d bytes", len(err.Error()))
			}
			onlyOutput(t, dir)
			fmt.Fprintln(testWriter{t}, "error:", err)
		})
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Header lines of a few hundred KiB are odd but legal: the file arrives.
func TestLongHeaderLine(t *testing.T) {
	long := strings.Repeat("y", 300<<10)
	url := rawServer(t, func(req *http.Request) string {
		if req.Method == http.MethodHead {
			return "HTTP/1.1 200 OK\r\nX-Long: " + long + "\r\nContent-Length: 5\r\n\r\n"
		}
		return "HTTP/1.1 200 OK\r\nX-Long: " + long + "\r\nContent-Length: 5\r\n\r\nhello"
	})
	dir := t.TempDir()
	if _, err := convoy.Download(context.Background(), fastConfig(url, dir)); err != nil {
		t.Fatal(err)
	}
	onlyOutput(t, dir, "out.bin")
}

// A server that now and then answers a range with the whole file (200) under
// the same strong ETag has not changed the file: convoy asks again and the
// download completes, never starting over.
func TestWholeFileUnderSameValidatorIsRetried(t *testing.T) {
	h := testserver.NewHandler(testserver.Size(4 << 20))
	var mu sync.Mutex
	ranged, whole := 0, 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rng := r.Header.Get("Range")
		mu.Lock()
		skip := false
		if r.Method == http.MethodGet && rng != "" && rng != "bytes=0-0" {
			ranged++
			skip = ranged%3 == 0
			if skip {
				whole++
			}
		}
		mu.Unlock()
		if skip {
			r.Header.Del("Range") // as a backend without range support would
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { h.Close(); ts.Close() })
	dir := t.TempDir()
	cfg := fastConfig(ts.URL+h.FilePath(), dir)
	cfg.MinSplitSize = 256 << 10
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if whole == 0 {
		t.Fatal("no range was answered with the whole file: the test tested nothing")
	}
	if res.Restarts != 0 || res.Retries < int64(whole) {
		t.Errorf("%d restarts and %d retries for %d whole-file answers, want 0 and at least %d", res.Restarts, res.Retries, whole, whole)
	}
	h.Verify(t, filepath.Join(dir, "out.bin"))
}

// A server that labels a stored file with Content-Encoding (a .gz served
// as "gzip") though convoy asks for identity sends the file's bytes as
// they are: they are saved as they are, in ranges or in one stream.
func TestStoredFileLabelledWithEncoding(t *testing.T) {
	for _, opts := range [][]testserver.Option{nil, {testserver.NoRanges()}} {
		h := testserver.NewHandler(append([]testserver.Option{testserver.Size(2 << 20)}, opts...)...)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			h.ServeHTTP(w, r)
		}))
		dir := t.TempDir()
		if _, err := convoy.Download(context.Background(), fastConfig(ts.URL+h.FilePath(), dir)); err != nil {
			t.Fatalf("ranges=%v: %v", opts == nil, err)
		}
		h.Verify(t, filepath.Join(dir, "out.bin"))
		ts.Close()
		h.Close()
	}
}

// A server that cannot be reached at first contact (nothing listens there)
// fails at once, with one error naming the host and the cause: most likely a
// typo. With RetryConnRefused, or when the run resumes a partial download,
// it is retried like any transient fault.
func TestUnreachableAtFirstContact(t *testing.T) {
	closed := testserver.New(t)
	closedURL := closed.URL
	closed.Close()
	host := strings.TrimPrefix(strings.TrimSuffix(closedURL, closed.FilePath()), "http://")

	t.Run("fails at once", func(t *testing.T) {
		cfg := fastConfig(closedURL, t.TempDir())
		res, err := convoy.Download(context.Background(), cfg)
		var ue *segment.UnreachableError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "cannot reach "+host+": connection refused") {
			t.Fatalf("error %v, want one naming %s and the refusal", err, host)
		}
		if res.Retries != 0 {
			t.Errorf("%d retries at first contact, want none", res.Retries)
		}
	})
	t.Run("RetryConnRefused", func(t *testing.T) {
		cfg := fastConfig(closedURL, t.TempDir())
		cfg.RetryConnRefused, cfg.MaxTries = true, 3
		res, err := convoy.Download(context.Background(), cfg)
		if err == nil || res.Retries != 2 {
			t.Fatalf("error %v after %d retries, want it retried twice", err, res.Retries)
		}
	})
	t.Run("resume", func(t *testing.T) {
		const size = 2 << 20
		srv := testserver.New(t, testserver.Size(size), testserver.Rate(4<<20))
		dir := t.TempDir()
		cfg := fastConfig(srv.URL, dir)
		if err := interruptAfter(t, cfg, size/4); !errors.Is(err, convoy.ErrInterrupted) {
			t.Fatalf("first run: %v, want it interrupted", err)
		}
		cfg.URL, cfg.MaxTries = closedURL, 3
		res, err := convoy.Download(context.Background(), cfg)
		if err == nil || res.Retries != 2 {
			t.Fatalf("error %v after %d retries, want a resume retried twice", err, res.Retries)
		}
	})
}

// Retries of one cause print one notice and then a count, never a line per
// try; every try is still an event.
func TestRetryNoticesDoNotRepeat(t *testing.T) {
	srv := testserver.New(t, testserver.Size(64<<10), testserver.Statuses(503, 503, 503, 503, 503, 503))
	cfg := fastConfig(srv.URL, t.TempDir())
	var n notices
	cfg.Logf = n.logf
	events := 0
	cfg.OnEvent = func(e convoy.Event) {
		if e.Type == "retry" {
			events++
		}
	}
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(cfg.Dir, "out.bin"))
	var retrying, counted int
	for _, l := range n.lines {
		if strings.HasPrefix(l, "retrying in") {
			retrying++
		}
		if strings.Contains(l, "5 times more") && strings.Contains(l, "503") {
			counted++
		}
	}
	if retrying != 1 || counted != 1 || events != 6 {
		t.Errorf("notices %q and %d retry events: want one retry notice, one count of 5 more, 6 events", n.lines, events)
	}
}

// restartable serves h on a fixed loopback port that can go away (every
// connection refused) and come back.
type restartable struct {
	t    *testing.T
	h    *testserver.Handler
	addr string
	mu   sync.Mutex
	srv  *http.Server
}

func newRestartable(t *testing.T, h *testserver.Handler) *restartable {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &restartable{t: t, h: h, addr: ln.Addr().String()}
	r.serve(ln)
	t.Cleanup(func() { r.down(); h.Close() })
	return r
}

func (r *restartable) URL() string { return "http://" + r.addr + r.h.FilePath() }

func (r *restartable) serve(ln net.Listener) {
	srv := &http.Server{Handler: r.h}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }() // ends with ErrServerClosed at down
}

// down closes the listener and every connection: connections are refused.
func (r *restartable) down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		_ = r.srv.Close() // the server is going away on purpose
		r.srv = nil
	}
}

// up listens on the same port again.
func (r *restartable) up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Errorf("listening on %s again: %v", r.addr, err)
		return
	}
	r.serve(ln)
}

// A server that goes away mid-download for longer than the tries of old
// (10 without progress) and comes back: a resumable download waits it out
// within its time budget and ends byte-identical, in one run. One that does
// not come back within the budget fails, saying so.
func TestOutageIsWaitedOut(t *testing.T) {
	const size = 4 << 20
	h := testserver.NewHandler(testserver.Size(size), testserver.Rate(4<<20))
	srv := newRestartable(t, h)
	cfg := fastConfig(srv.URL(), t.TempDir())
	cfg.RetryFor = 20 * time.Second
	cfg.ProgressInterval = 10 * time.Millisecond
	var once sync.Once
	back := make(chan struct{})
	cfg.OnProgress = func(p convoy.Progress) {
		if p.Done > size/3 {
			once.Do(func() {
				srv.down()
				// Far longer than 10 tries of at most 20 ms.
				time.AfterFunc(1500*time.Millisecond, func() { srv.up(); close(back) })
			})
		}
	}
	var n notices
	cfg.Logf = n.logf
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%v (notices %q)", err, n.lines)
	}
	select {
	case <-back:
	default:
		t.Fatal("the download ended before the server came back")
	}
	h.Verify(t, filepath.Join(cfg.Dir, "out.bin"))
	if res.Retries <= 10 {
		t.Errorf("%d retries: want more than the 10 tries of old", res.Retries)
	}

	// Gone for good: the budget ends it, and the error says how.
	srv2 := newRestartable(t, testserver.NewHandler(testserver.Size(size), testserver.Rate(4<<20)))
	cfg = fastConfig(srv2.URL(), t.TempDir())
	cfg.RetryFor = time.Second
	cfg.ProgressInterval = 10 * time.Millisecond
	var once2 sync.Once
	cfg.OnProgress = func(p convoy.Progress) {
		if p.Done > size/3 {
			once2.Do(srv2.down)
		}
	}
	_, err = convoy.Download(context.Background(), cfg)
	if !errors.Is(err, segment.ErrGaveUp) || !strings.Contains(err.Error(), "giving up after 1s without progress on any connection") {
		t.Fatalf("error %v, want the budget named", err)
	}
}
