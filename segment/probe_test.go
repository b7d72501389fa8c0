package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/testserver"
)

func newProber(t testing.TB, o ClientOptions) *Prober {
	t.Helper()
	return &Prober{
		Client:       newTestClient(t, o),
		MaxTries:     4,
		RetryInitial: fastInitial,
		RetryMax:     fastMax,
	}
}

func TestProbe(t *testing.T) {
	tests := []struct {
		name       string
		opts       []testserver.Option
		wantSize   int64 // -2: the server's size
		wantRanges bool
		heads      int
	}{
		{"normal", nil, -2, true, 1},
		{"HEAD 405", []testserver.Option{testserver.HeadStatus(405)}, -2, true, 1},
		{"HEAD 403", []testserver.Option{testserver.HeadStatus(403)}, -2, true, 1},
		{"HEAD 500", []testserver.Option{testserver.HeadStatus(500)}, -2, true, 1},
		{"no ranges", []testserver.Option{testserver.NoRanges()}, -2, false, 1},
		{"no ranges, HEAD 405", []testserver.Option{testserver.NoRanges(), testserver.HeadStatus(405)}, -2, false, 1},
		{"no content length", []testserver.Option{testserver.NoContentLength()}, -1, false, 1},
		{"empty file", []testserver.Option{testserver.Size(0)}, 0, true, 1},
		{"one byte", []testserver.Option{testserver.Size(1)}, 1, true, 1},
		{"odd size", []testserver.Option{testserver.Size(1234567)}, 1234567, true, 1},
		{"unknown total, size from HEAD", []testserver.Option{testserver.ContentRangeFunc(func(s, e, n int64) string {
			return fmt.Sprintf("bytes %d-%d/*", s, e)
		})}, -2, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(mib),
				testserver.ContentDisposition(`attachment; filename="x.bin"`)}, tt.opts...)...)
			p := newProber(t, ClientOptions{})
			r, err := p.Probe(context.Background(), srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.wantSize
			if want == -2 {
				want = srv.Size()
			}
			if r.Size != want || r.Ranges != tt.wantRanges {
				t.Errorf("Size %d Ranges %v, want %d %v", r.Size, r.Ranges, want, tt.wantRanges)
			}
			if r.ETag != srv.ETag() || r.LastModified != srv.LastModified() || r.ETag == "" || r.LastModified == "" {
				t.Errorf("validators %q %q, want %q %q", r.ETag, r.LastModified, srv.ETag(), srv.LastModified())
			}
			if r.URL != srv.URL || r.FinalURL != srv.FileURL() {
				t.Errorf("URL %q FinalURL %q, want %q %q", r.URL, r.FinalURL, srv.URL, srv.FileURL())
			}
			if r.ContentDisposition != `attachment; filename="x.bin"` {
				t.Errorf("ContentDisposition %q", r.ContentDisposition)
			}
			if st := srv.Stats(); st.Heads != tt.heads || st.Gets != 1 || st.RangeGets != 1 {
				t.Errorf("%d HEADs %d GETs %d ranged, want %d, 1, 1", st.Heads, st.Gets, st.RangeGets, tt.heads)
			}
		})
	}
}

func TestRemoteValidator(t *testing.T) {
	const lm = "Tue, 02 Jan 2024 03:04:05 GMT"
	tests := []struct {
		name, etag, lastMod  string
		strong, identifiable bool
		want                 string
	}{
		{"strong etag", `"abc"`, lm, true, true, `"abc"`},
		// RFC 9110: no weak ETag in If-Range, and no date when an ETag
		// exists; the date still identifies the version for convoy's own
		// checks.
		{"weak etag", `W/"abc"`, lm, false, true, ""},
		{"weak etag only", `W/"abc"`, "", false, false, ""},
		{"last-modified only", "", lm, false, true, lm},
		{"nothing", "", "", false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Remote{ETag: tt.etag, LastModified: tt.lastMod}
			if r.StrongETag() != tt.strong || r.Validator() != tt.want || r.Identifiable() != tt.identifiable {
				t.Fatalf("StrongETag %v Validator %q Identifiable %v, want %v %q %v",
					r.StrongETag(), r.Validator(), r.Identifiable(), tt.strong, tt.want, tt.identifiable)
			}
		})
	}
}

// A weak ETag probed from the server is never sent as If-Range (nor is the
// date beside it); each answer's validators are checked instead.
func TestProbeWeakETagThenFetch(t *testing.T) {
	srv := testserver.New(t, testserver.Size(mib), testserver.ETagValue(`W/"weak"`))
	p := newProber(t, ClientOptions{Connections: 2})
	r, err := p.Probe(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if r.Validator() != "" || !r.Identifiable() {
		t.Fatalf("Validator %q Identifiable %v, want none and true", r.Validator(), r.Identifiable())
	}
	f := newFetcher(t, srv, 2)
	f.URL, f.Size, f.IfRange, f.ETag, f.LastModified = r.FinalURL, r.Size, r.Validator(), r.ETag, r.LastModified
	w, _, err := runPlan(t, f, 2, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t, srv.Content())
}

func TestProbeRedirects(t *testing.T) {
	tests := []struct {
		n        int
		relative bool
		ok       bool
	}{
		{1, false, true},
		{3, false, true},
		{3, true, true},
		{MaxRedirects - 1, true, true},
		{MaxRedirects + 1, false, false},
		{MaxRedirects + 5, true, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("n=%d/relative=%v", tt.n, tt.relative), func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(mib), testserver.Redirects(tt.n, tt.relative))
			p := newProber(t, ClientOptions{})
			p.OnRetry = func(err error, _ time.Duration) { t.Errorf("retried after %v", err) }
			r, err := p.Probe(context.Background(), srv.URL)
			if !tt.ok {
				var re *RedirectError
				if !errors.As(err, &re) {
					t.Fatalf("Probe = %+v, %v; want a *RedirectError", r, err)
				}
				if st := srv.Stats(); st.Gets != 0 {
					t.Errorf("the file was fetched %d times past the limit", st.Gets)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.URL != srv.URL || r.FinalURL != srv.FileURL() || srv.URL == srv.FileURL() {
				t.Errorf("URL %q FinalURL %q, want %q %q", r.URL, r.FinalURL, srv.URL, srv.FileURL())
			}
			if r.Size != mib || !r.Ranges {
				t.Errorf("Size %d Ranges %v", r.Size, r.Ranges)
			}
		})
	}
}

func TestProbeRefusesOtherScheme(t *testing.T) {
	for _, target := range []string{"ftp://example.invalid/file.bin", "file:///etc/passwd", "gopher://example.invalid/"} {
		t.Run(target, func(t *testing.T) {
			srv := testserver.New(t, testserver.RedirectTo(target))
			p := newProber(t, ClientOptions{})
			p.OnRetry = func(err error, _ time.Duration) { t.Errorf("retried after %v", err) }
			_, err := p.Probe(context.Background(), srv.URL)
			var re *RedirectError
			if !errors.As(err, &re) || !IsPermanent(err) {
				t.Fatalf("Probe = %v, want a permanent *RedirectError", err)
			}
			if st := srv.Stats(); st.Requests != 2 {
				t.Errorf("%d requests, want a HEAD and a GET", st.Requests)
			}
		})
	}
}

// An https page that redirects to plain http is refused unless allowed.
func TestProbeDowngrade(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow=%v", allow), func(t *testing.T) {
			plain := testserver.New(t, testserver.Size(mib))
			tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, plain.URL, http.StatusFound)
			}))
			t.Cleanup(tlsSrv.Close)
			p := newProber(t, ClientOptions{Insecure: true, AllowDowngrade: allow})
			r, err := p.Probe(context.Background(), tlsSrv.URL+"/file.bin")
			if allow {
				if err != nil || r.FinalURL != plain.URL || r.Size != mib {
					t.Fatalf("Probe = %+v, %v; want the plain file", r, err)
				}
				return
			}
			var re *RedirectError
			if !errors.As(err, &re) || !strings.Contains(re.Reason, "https to plain http") {
				t.Fatalf("Probe = %+v, %v; want a *RedirectError for the downgrade", r, err)
			}
			if st := plain.Stats(); st.Requests != 0 {
				t.Errorf("the plain http server got %d requests", st.Requests)
			}
		})
	}
}

func TestProbeRetries(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		gets     int
		code     int // expected StatusError code; 0 for success
	}{
		{"503 then ok", []int{503, 0}, 2, 0},
		{"500 502 504 then ok", []int{500, 502, 504, 0}, 4, 0},
		{"429 then ok", []int{429, 0}, 2, 0},
		{"404", []int{404}, 1, 404},
		{"401", []int{401}, 1, 401},
		{"503 until giving up", []int{503, 503, 503, 503, 503}, 4, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(mib), testserver.Statuses(tt.statuses...))
			p := newProber(t, ClientOptions{})
			r, err := p.Probe(context.Background(), srv.URL)
			if tt.code == 0 {
				if err != nil || r.Size != mib || !r.Ranges {
					t.Fatalf("Probe = %+v, %v", r, err)
				}
			} else {
				var se *StatusError
				if !errors.As(err, &se) || se.Code != tt.code {
					t.Fatalf("Probe = %+v, %v; want a StatusError %d", r, err, tt.code)
				}
			}
			if st := srv.Stats(); st.Gets != tt.gets {
				t.Errorf("%d GETs, want %d", st.Gets, tt.gets)
			}
		})
	}
}

func TestProbeProtocolErrors(t *testing.T) {
	tests := []struct {
		name string
		cr   func(s, e, n int64) string
	}{
		{"other range", func(s, e, n int64) string { return fmt.Sprintf("bytes 1-1/%d", n) }},
		{"longer range", func(s, e, n int64) string { return fmt.Sprintf("bytes 0-1/%d", n) }},
		{"malformed", func(s, e, n int64) string { return "bytes x-y/z" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(mib), testserver.ContentRangeFunc(tt.cr))
			p := newProber(t, ClientOptions{})
			_, err := p.Probe(context.Background(), srv.URL)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("Probe = %v, want a *ProtocolError", err)
			}
			if st := srv.Stats(); st.Gets != 1 {
				t.Errorf("%d GETs, want 1", st.Gets)
			}
		})
	}
}

func TestProbeRejectsCompressedRange(t *testing.T) {
	ts := gzipRangeServer(t, []byte(strings.Repeat("convoy ", 100)))
	p := newProber(t, ClientOptions{})
	_, err := p.Probe(context.Background(), ts.URL)
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("Probe = %v, want a *ProtocolError", err)
	}
}

// Headers given to the prober reach both requests.
func TestProbeSendsHeaders(t *testing.T) {
	srv := testserver.New(t, testserver.Size(mib), testserver.RequireHeader("Authorization", "Bearer t0ken"))
	p := newProber(t, ClientOptions{})
	if _, err := p.Probe(context.Background(), srv.URL); err == nil {
		t.Fatal("Probe without credentials succeeded")
	}
	p.Header = http.Header{"Authorization": {"Bearer t0ken"}}
	r, err := p.Probe(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size != mib || !r.Ranges {
		t.Fatalf("Probe = %+v", r)
	}
}

// A certificate the client does not trust is final: no retry.
func TestProbeBadCertificateIsPermanent(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake failure is expected
	ts.StartTLS()
	t.Cleanup(ts.Close)
	p := newProber(t, ClientOptions{})
	p.OnRetry = func(err error, _ time.Duration) { t.Errorf("retried after %v", err) }
	_, err := p.Probe(context.Background(), ts.URL+"/file.bin")
	if err == nil || !IsPermanent(err) {
		t.Fatalf("Probe = %v, want a permanent certificate error", err)
	}
}

func TestProbeBadURL(t *testing.T) {
	p := newProber(t, ClientOptions{})
	p.OnRetry = func(err error, _ time.Duration) { t.Errorf("retried after %v", err) }
	if _, err := p.Probe(context.Background(), "http://[::1"); err == nil {
		t.Fatal("Probe of a malformed URL succeeded")
	}
}

func TestProbeCancel(t *testing.T) {
	srv := testserver.New(t, testserver.StallHeaders(30*time.Second, -1))
	p := newProber(t, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Probe(ctx, srv.URL)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Probe = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Probe returned after %v", d)
	}
}

// A probe whose 206 headers arrive but whose one byte never does is cut by
// the stall timer, then retried, instead of hanging.
func TestProbeBodyStall(t *testing.T) {
	srv := testserver.New(t, testserver.Size(mib), testserver.StallAfter(0, time.Minute, 1))
	p := newProber(t, ClientOptions{Connections: 1})
	p.StallTimeout = 200 * time.Millisecond
	start := time.Now()
	r, err := p.Probe(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size != mib || time.Since(start) > 5*time.Second {
		t.Errorf("probe gave size %d after %v", r.Size, time.Since(start))
	}
}

// A HEAD that never answers holds the probe up for at most headWait: the
// GET is authoritative.
func TestProbeDoesNotWaitForAStalledHead(t *testing.T) {
	h := testserver.NewHandler(testserver.Size(mib))
	heads := make(chan struct{}, 4)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			heads <- struct{}{}
			select { // until the prober gives up on it
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { h.Close(); ts.Close() })
	p := newProber(t, ClientOptions{})
	began := time.Now()
	r, err := p.Probe(context.Background(), ts.URL+h.FilePath())
	if err != nil {
		t.Fatal(err)
	}
	if r.Size != mib || !r.Ranges {
		t.Errorf("probe found size %d, ranges %v", r.Size, r.Ranges)
	}
	if len(heads) == 0 {
		t.Error("no HEAD was sent")
	}
	if d := time.Since(began); d > headWait+2*time.Second {
		t.Errorf("probe took %v with a stalled HEAD, want about %v", d, headWait)
	}
}

// A range probe whose answer is cut before its one byte (a server or proxy
// that closes the connection) is a transient fault like any short body: it
// is retried, and the probe then succeeds.
func TestProbeBodyCutShortIsRetried(t *testing.T) {
	srv := testserver.New(t, testserver.Size(mib), testserver.CutAfter(0, 2))
	p := newProber(t, ClientOptions{Connections: 1})
	var retries []error
	p.OnRetry = func(err error, _ time.Duration) { retries = append(retries, err) }
	r, err := p.Probe(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size != mib || !r.Ranges {
		t.Errorf("probe found size %d, ranges %v", r.Size, r.Ranges)
	}
	if len(retries) != 2 || !strings.Contains(retries[0].Error(), "closed the connection before") {
		t.Errorf("retries %v: want two, each saying the connection was closed early", retries)
	}
}

// An unreachable server (nothing listens, the name does not resolve) ends
// a FailFast probe at its first try with one error naming the host and the
// cause; without FailFast it is retried like any transient fault.
func TestProbeUnreachable(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL + "/f"
	closed.Close()
	host := strings.TrimPrefix(closed.URL, "http://")
	noSuchHost := func(ctx context.Context, network, addr string) (net.Conn, error) {
		name, _, _ := net.SplitHostPort(addr)
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	for _, tt := range []struct {
		name, url, want string
		dial            func(ctx context.Context, network, addr string) (net.Conn, error)
	}{
		{"refused", closedURL, "cannot reach " + host + ": connection refused", nil},
		{"no such host", "http://nosuch.invalid/f", "cannot reach nosuch.invalid: no such host", noSuchHost},
	} {
		for _, failFast := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/failfast=%v", tt.name, failFast), func(t *testing.T) {
				p := newProber(t, ClientOptions{})
				if tt.dial != nil {
					p.Client.Transport.(proxyTransport).DialContext = tt.dial
				}
				p.FailFast = failFast
				retries := 0
				p.OnRetry = func(error, time.Duration) { retries++ }
				_, err := p.Probe(context.Background(), tt.url)
				var ue *UnreachableError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Probe = %v, want an UnreachableError saying %q", err, tt.want)
				}
				if want := map[bool]int{true: 0, false: p.MaxTries - 1}[failFast]; retries != want {
					t.Errorf("%d retries, want %d", retries, want)
				}
			})
		}
	}
}

// A HEAD whose answer cannot be read (the connection closed before any
// status line, or a malformed one) is a reason to rely on the GET, never
// to fail or to retry the probe.
func TestProbeUnreadableHead(t *testing.T) {
	for _, tt := range []struct {
		name string
		head func(w http.ResponseWriter)
	}{
		{"closed", func(http.ResponseWriter) { panic(http.ErrAbortHandler) }},
		{"garbage", func(w http.ResponseWriter) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			_, _ = buf.WriteString("HTTP/1.1 abc not a status\r\n\r\n")
			_ = buf.Flush()
			_ = conn.Close()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := testserver.NewHandler(testserver.Size(mib))
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodHead {
					tt.head(w)
					return
				}
				h.ServeHTTP(w, r)
			}))
			ts.Config.ErrorLog = log.New(io.Discard, "", 0)
			t.Cleanup(func() { h.Close(); ts.Close() })
			p := newProber(t, ClientOptions{})
			retries := 0
			p.OnRetry = func(error, time.Duration) { retries++ }
			r, err := p.Probe(context.Background(), ts.URL+h.FilePath())
			if err != nil || retries != 0 {
				t.Fatalf("Probe = %v after %d retries, want the GET's answer at once", err, retries)
			}
			if r.Size != mib || !r.Ranges {
				t.Errorf("probe found size %d, ranges %v", r.Size, r.Ranges)
			}
		})
	}
}
