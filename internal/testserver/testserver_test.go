package testserver

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newClient returns a client that neither adds Accept-Encoding nor
// decompresses, and whose idle connections close with the test.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// noFollow returns c changed to hand back redirects instead of following them.
func noFollow(c *http.Client) *http.Client {
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// do sends a request with header name/value pairs and reads the whole body.
func do(t *testing.T, c *http.Client, method, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, body
}

// pattern returns n content bytes of seed at off.
func pattern(seed uint64, off, n int64) []byte {
	p := make([]byte, n)
	Pattern(seed, off, p)
	return p
}

func wantStatus(t *testing.T, resp *http.Response, code int) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("status %d, want %d", resp.StatusCode, code)
	}
}

func wantHeader(t *testing.T, resp *http.Response, name, want string) {
	t.Helper()
	if got := resp.Header.Get(name); got != want {
		t.Errorf("%s = %q, want %q", name, got, want)
	}
}

func wantBody(t *testing.T, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("body differs: got %d bytes, want %d", len(got), len(want))
	}
}

func TestPattern(t *testing.T) {
	full := pattern(7, 0, 4096)
	if !bytes.Equal(full, pattern(7, 0, 4096)) {
		t.Fatal("Pattern is not deterministic")
	}
	for off := int64(0); off < 40; off++ {
		for _, n := range []int64{0, 1, 3, 7, 8, 9, 15, 16, 17, 100} {
			if got := pattern(7, off, n); !bytes.Equal(got, full[off:off+n]) {
				t.Fatalf("Pattern(7, %d, [%d]) differs from the same range of a longer call", off, n)
			}
		}
	}
	for k := 0; k < 20; k++ { // Pattern(seed, off+k, p[k:]) is the tail of Pattern(seed, off, p)
		p := make([]byte, 300)
		Pattern(7, 1000, p)
		tail := make([]byte, 300-k)
		Pattern(7, 1000+int64(k), tail)
		if !bytes.Equal(tail, p[k:]) {
			t.Fatalf("shift %d: tail differs", k)
		}
	}
	if bytes.Equal(full, pattern(8, 0, 4096)) {
		t.Fatal("seeds 7 and 8 give the same content")
	}
	seen := map[string]int{}
	for i := 0; i+8 <= len(full); i += 8 {
		if j, dup := seen[string(full[i:i+8])]; dup {
			t.Fatalf("blocks at %d and %d are equal", j, i)
		}
		seen[string(full[i:i+8])] = i
	}
}

func BenchmarkPattern(b *testing.B) {
	p := make([]byte, 1<<20)
	b.SetBytes(int64(len(p)))
	for i := 0; b.Loop(); i++ {
		Pattern(1, int64(i)*int64(len(p))+3, p)
	}
}

func TestNormal(t *testing.T) {
	const size = 10000
	s := New(t, Size(size), Seed(3))
	c := newClient(t)
	content := pattern(3, 0, size)
	if !bytes.Equal(s.Content(), content) || s.Size() != size || s.Seed() != 3 {
		t.Fatal("Content, Size or Seed does not match the options")
	}
	if !strings.HasSuffix(s.URL, "/file.bin") || s.URL != s.FileURL() {
		t.Fatalf("URL %q, FileURL %q", s.URL, s.FileURL())
	}

	resp, body := do(t, c, "HEAD", s.URL)
	wantStatus(t, resp, 200)
	wantHeader(t, resp, "Content-Length", "10000")
	wantHeader(t, resp, "Accept-Ranges", "bytes")
	wantHeader(t, resp, "ETag", s.ETag())
	wantHeader(t, resp, "Last-Modified", "Tue, 02 Jan 2024 03:04:05 GMT")
	if len(body) != 0 || s.ETag() != `"3-2710"` {
		t.Fatalf("HEAD body %d bytes, ETag %s", len(body), s.ETag())
	}
	resp, _ = do(t, c, "HEAD", s.URL, "Range", "bytes=0-9")
	wantStatus(t, resp, 200) // HEAD ignores Range

	resp, body = do(t, c, "GET", s.URL)
	wantStatus(t, resp, 200)
	wantBody(t, body, content)

	ranges := []struct {
		spec       string
		start, end int64
	}{
		{"bytes=100-199", 100, 199},
		{"bytes=9990-", 9990, 9999},
		{"bytes=9990-20000", 9990, 9999},
		{"bytes=-10", 9990, 9999},
		{"bytes=-20000", 0, 9999},
		{"bytes=0-0", 0, 0},
		{"bytes= 5 - 6", 5, 6},
	}
	for _, r := range ranges {
		resp, body = do(t, c, "GET", s.URL, "Range", r.spec)
		wantStatus(t, resp, 206)
		wantHeader(t, resp, "Content-Range", fmt.Sprintf("bytes %d-%d/%d", r.start, r.end, size))
		wantHeader(t, resp, "Content-Length", fmt.Sprint(r.end-r.start+1))
		wantBody(t, body, content[r.start:r.end+1])
	}
	for _, spec := range []string{"bytes=10000-", "bytes=20000-30000", "bytes=-0"} {
		resp, _ = do(t, c, "GET", s.URL, "Range", spec)
		wantStatus(t, resp, 416)
		wantHeader(t, resp, "Content-Range", "bytes */10000")
	}
	for _, spec := range []string{"bytes=0-1,5-6", "bytes=5-1", "bytes=x-", "items=0-1", "bytes=+1-2", "bytes=1"} {
		resp, body = do(t, c, "GET", s.URL, "Range", spec)
		wantStatus(t, resp, 200)
		wantBody(t, body, content)
	}

	// If-Range: a matching strong ETag or date keeps the range, anything else
	// gets the full content.
	resp, _ = do(t, c, "GET", s.URL, "Range", "bytes=1-2", "If-Range", s.ETag())
	wantStatus(t, resp, 206)
	resp, _ = do(t, c, "GET", s.URL, "Range", "bytes=1-2", "If-Range", s.LastModified())
	wantStatus(t, resp, 206)
	for _, v := range []string{`"other"`, "W/" + s.ETag(), "Wed, 03 Jan 2024 03:04:05 GMT"} {
		resp, body = do(t, c, "GET", s.URL, "Range", "bytes=1-2", "If-Range", v)
		wantStatus(t, resp, 200)
		wantBody(t, body, content)
	}

	resp, _ = do(t, c, "GET", strings.TrimSuffix(s.URL, "/file.bin")+"/other")
	wantStatus(t, resp, 404)
	resp, _ = do(t, c, "POST", s.URL)
	wantStatus(t, resp, 405)
}

func TestStatsAndParallelRanges(t *testing.T) {
	const size = 1<<20 + 123
	s := New(t, Size(size))
	c := newClient(t)
	got := make([]byte, size)
	const parts = 8
	var wg sync.WaitGroup
	for i := range int64(parts) {
		start, end := i*size/parts, (i+1)*size/parts-1
		wg.Go(func() {
			req, _ := http.NewRequest("GET", s.URL, nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end))
			resp, err := c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if _, err := io.ReadFull(resp.Body, got[start:end+1]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	do(t, c, "HEAD", s.URL)
	do(t, c, "GET", s.URL+"x")

	path := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(path, got, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Verify(t, path)

	st := s.Stats()
	// How many of the parallel answers overlapped depends on scheduling.
	if st.Peak < 1 || st.Peak > parts {
		t.Errorf("Peak %d, want 1 to %d", st.Peak, parts)
	}
	st.Peak = 0
	want := Stats{Requests: parts + 2, Heads: 1, Gets: parts, RangeGets: parts, BodyBytes: size + int64(len("404 Not Found\n")),
		Statuses: map[int]int{206: parts, 200: 1, 404: 1}}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("Stats = %+v, want %+v", st, want)
	}
}

// fakeTB records Errorf calls.
type fakeTB struct {
	testing.TB
	errs []string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func TestVerify(t *testing.T) {
	s := New(t, Size(100))
	dir := t.TempDir()
	write := func(name string, p []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, p, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := s.Content()
	bad := s.Content()
	bad[42] ^= 1
	cases := []struct {
		path, want string
	}{
		{write("good", good), ""},
		{write("bad", bad), "offset 42"},
		{write("short", good[:50]), "size 50, want 100"},
		{filepath.Join(dir, "missing"), "no such file"},
	}
	for _, tc := range cases {
		f := &fakeTB{}
		s.Verify(f, tc.path)
		got := strings.Join(f.errs, "\n")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("Verify(%s): errors %q, want one containing %q", filepath.Base(tc.path), got, tc.want)
		}
	}
}

func TestEmptyFile(t *testing.T) {
	s := New(t, Size(0))
	c := newClient(t)
	resp, body := do(t, c, "GET", s.URL)
	wantStatus(t, resp, 200)
	if len(body) != 0 || resp.ContentLength != 0 {
		t.Fatalf("body %d bytes, Content-Length %d", len(body), resp.ContentLength)
	}
	for _, spec := range []string{"bytes=0-", "bytes=-5"} {
		resp, _ = do(t, c, "GET", s.URL, "Range", spec)
		wantStatus(t, resp, 416)
	}
}

func TestNoRanges(t *testing.T) {
	s := New(t, Size(1000), NoRanges())
	resp, body := do(t, newClient(t), "GET", s.URL, "Range", "bytes=10-19")
	wantStatus(t, resp, 200)
	wantHeader(t, resp, "Accept-Ranges", "")
	wantBody(t, body, s.Content())
}

func TestNoContentLength(t *testing.T) {
	s := New(t, Size(1000), NoContentLength())
	c := newClient(t)
	resp, body := do(t, c, "GET", s.URL, "Range", "bytes=10-19")
	wantStatus(t, resp, 200)
	wantBody(t, body, s.Content())
	if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("ContentLength %d, TransferEncoding %q; want chunked", resp.ContentLength, resp.TransferEncoding)
	}
	wantHeader(t, resp, "Accept-Ranges", "")
	resp, _ = do(t, c, "HEAD", s.URL)
	wantHeader(t, resp, "Content-Length", "")
	wantHeader(t, resp, "Accept-Ranges", "")
}

func TestHeadStatus(t *testing.T) {
	s := New(t, Size(1000), HeadStatus(405))
	c := newClient(t)
	resp, _ := do(t, c, "HEAD", s.URL)
	wantStatus(t, resp, 405)
	wantHeader(t, resp, "ETag", "")
	resp, _ = do(t, c, "GET", s.URL)
	wantStatus(t, resp, 200)
}

func TestStatusesAndRetryAfter(t *testing.T) {
	s := New(t, Size(1000), Statuses(503, 0, 429, 204), RetryAfter("1"))
	c := newClient(t)
	for i, want := range []int{503, 200, 429, 204, 200} {
		resp, body := do(t, c, "GET", s.URL)
		wantStatus(t, resp, want)
		switch want {
		case 503, 429:
			wantHeader(t, resp, "Retry-After", "1")
			if !strings.HasPrefix(string(body), fmt.Sprint(want)) {
				t.Errorf("GET %d: body %q", i, body)
			}
		case 200:
			wantHeader(t, resp, "Retry-After", "")
			wantBody(t, body, s.Content())
		}
	}
	if n := s.Stats().Statuses[503]; n != 1 {
		t.Fatalf("Stats counted %d 503s, want 1", n)
	}
}

func TestCutAfter(t *testing.T) {
	s := New(t, Size(100000), CutAfter(1000, 1))
	c := newClient(t)
	resp, err := c.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) != 1000 {
		t.Fatalf("first GET: read %d bytes, err %v; want 1000 and unexpected EOF", len(body), err)
	}
	if !bytes.Equal(body, pattern(1, 0, 1000)) {
		t.Fatal("bytes before the cut are wrong")
	}
	_, body = do(t, c, "GET", s.URL) // budget used up
	wantBody(t, body, s.Content())

	s.SetOption(CutAfter(10, -1), NoContentLength())
	for range 2 {
		resp, err := c.Get(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil || len(body) != 10 {
			t.Fatalf("chunked GET: read %d bytes, err %v; want 10 and an error", len(body), err)
		}
	}
}

func TestStallAfter(t *testing.T) {
	const d = 100 * time.Millisecond
	s := New(t, Size(1000), StallAfter(100, d, 1))
	c := newClient(t)
	began := time.Now()
	_, body := do(t, c, "GET", s.URL)
	wantBody(t, body, s.Content())
	if el := time.Since(began); el < d {
		t.Fatalf("stalled GET took %v, want at least %v", el, d)
	}

	// A stall longer than the client waits: 100 bytes arrive, then nothing.
	s.SetOption(StallAfter(100, time.Minute, 1))
	c.Timeout = 200 * time.Millisecond
	resp, err := c.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(body) != 100 {
		t.Fatalf("read %d bytes, err %v; want 100 and a timeout", len(body), err)
	}
}

func TestStallHeaders(t *testing.T) {
	const d = 100 * time.Millisecond
	s := New(t, Size(1000), StallHeaders(d, 1))
	c := newClient(t)
	began := time.Now()
	resp, _ := do(t, c, "GET", s.URL)
	wantStatus(t, resp, 200)
	if el := time.Since(began); el < d {
		t.Fatalf("GET took %v, want at least %v", el, d)
	}
}

func TestCloseEndsStalledRequests(t *testing.T) {
	s := New(t, Size(1000), StallHeaders(time.Minute, 1))
	c := newClient(t)
	errc := make(chan error, 1)
	go func() {
		resp, err := c.Get(s.URL)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for deadline := time.Now().Add(2 * time.Second); s.Stats().Gets == 0; {
		if time.Now().After(deadline) {
			t.Fatal("request never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	began := time.Now()
	s.Close()
	if el := time.Since(began); el > time.Second {
		t.Fatalf("Close took %v", el)
	}
	if err := <-errc; err == nil {
		t.Fatal("stalled GET succeeded after Close")
	}
}

func TestContentRangeFunc(t *testing.T) {
	s := New(t, Size(1000), ContentRangeFunc(func(start, end, total int64) string {
		return fmt.Sprintf("bytes %d-%d/%d", start+1, end+1, total)
	}))
	resp, body := do(t, newClient(t), "GET", s.URL, "Range", "bytes=10-19")
	wantStatus(t, resp, 206)
	wantHeader(t, resp, "Content-Range", "bytes 11-20/1000")
	wantBody(t, body, pattern(1, 10, 10))
}

func TestExtraBody(t *testing.T) {
	s := New(t, Size(1000), ExtraBody(10))
	c := newClient(t)
	resp, body := do(t, c, "GET", s.URL, "Range", "bytes=990-999")
	wantStatus(t, resp, 206)
	wantHeader(t, resp, "Content-Range", "bytes 990-999/1000")
	wantBody(t, body, pattern(1, 990, 20))
	_, body = do(t, c, "GET", s.URL) // 200 answers are unaffected
	wantBody(t, body, s.Content())
}

func TestChangeAfter(t *testing.T) {
	s := New(t, Size(1000), ChangeAfter(2), ChangeSize(500))
	c := newClient(t)
	etag0, lm0 := s.ETag(), s.LastModified()
	old := s.Content()
	for range 2 {
		resp, body := do(t, c, "GET", s.URL)
		wantHeader(t, resp, "ETag", etag0)
		wantBody(t, body, old)
	}
	if s.Seed() != 2 || s.Size() != 500 || s.ETag() == etag0 || s.LastModified() == lm0 {
		t.Fatalf("after the change: seed %d, size %d, ETag %s, Last-Modified %s", s.Seed(), s.Size(), s.ETag(), s.LastModified())
	}
	resp, body := do(t, c, "GET", s.URL, "Range", "bytes=0-9", "If-Range", etag0)
	wantStatus(t, resp, 200)
	wantHeader(t, resp, "ETag", s.ETag())
	wantHeader(t, resp, "Last-Modified", s.LastModified())
	wantBody(t, body, pattern(2, 0, 500))

	// SetOption changes content between runs too.
	s.SetOption(Seed(9))
	_, body = do(t, c, "GET", s.URL)
	wantBody(t, body, pattern(9, 0, 500))
	s.SetOption(ChangeAfter(0))
	if s.Seed() != 10 {
		t.Fatalf("ChangeAfter(0): seed %d, want 10", s.Seed())
	}
}

func gunzip(t *testing.T, p []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGzip(t *testing.T) {
	s := New(t, Size(100000), Gzip())
	c := newClient(t)
	resp, body := do(t, c, "GET", s.URL, "Accept-Encoding", "gzip")
	wantStatus(t, resp, 200)
	wantHeader(t, resp, "Content-Encoding", "gzip")
	wantBody(t, gunzip(t, body), s.Content())
	resp, body = do(t, c, "GET", s.URL, "Accept-Encoding", "br, gzip", "Range", "bytes=10-19")
	wantStatus(t, resp, 206)
	wantHeader(t, resp, "Content-Encoding", "gzip")
	wantBody(t, gunzip(t, body), pattern(1, 10, 10))
	resp, body = do(t, c, "GET", s.URL) // no Accept-Encoding: identity
	wantHeader(t, resp, "Content-Encoding", "")
	wantBody(t, body, s.Content())
}

func TestRedirects(t *testing.T) {
	s := New(t, Size(1000), Redirects(3, false))
	if !strings.HasSuffix(s.URL, "/r/3") {
		t.Fatalf("URL %q", s.URL)
	}
	resp, body := do(t, newClient(t), "GET", s.URL)
	wantStatus(t, resp, 200)
	wantBody(t, body, s.Content())
	if n := s.Stats().Statuses[302]; n != 3 {
		t.Fatalf("%d redirects, want 3", n)
	}
	resp, _ = do(t, noFollow(newClient(t)), "GET", s.URL)
	wantHeader(t, resp, "Location", s.FileURL()[:len(s.FileURL())-len("/file.bin")]+"/r/2")
}

func TestRedirectsRelative(t *testing.T) {
	s := New(t, Size(1000), Redirects(2, true), Path("/dir/f.dat"))
	c := noFollow(newClient(t))
	resp, _ := do(t, c, "GET", s.URL)
	wantHeader(t, resp, "Location", "/r/1")
	resp, _ = do(t, c, "GET", strings.TrimSuffix(s.URL, "2")+"1")
	wantHeader(t, resp, "Location", "../dir/f.dat")
	resp, body := do(t, newClient(t), "GET", s.URL)
	wantStatus(t, resp, 200)
	wantBody(t, body, s.Content())
}

func TestRedirectTo(t *testing.T) {
	other := New(t, Size(500), Seed(5))
	s := New(t, Size(1000), RedirectTo(other.URL))
	_, body := do(t, newClient(t), "GET", s.URL)
	wantBody(t, body, other.Content())

	s.SetOption(RedirectTo("ftp://x/y"))
	resp, _ := do(t, noFollow(newClient(t)), "GET", s.URL)
	wantStatus(t, resp, 302)
	wantHeader(t, resp, "Location", "ftp://x/y")
}

func TestRate(t *testing.T) {
	const rate, size = 200 << 10, 40 << 10 // about 200 ms
	s := New(t, Size(size), Rate(rate))
	began := time.Now()
	_, body := do(t, newClient(t), "GET", s.URL)
	wantBody(t, body, s.Content())
	if el := time.Since(began); el < 190*time.Millisecond {
		t.Fatalf("GET took %v; the rate allows no less than 200ms", el)
	}
}

// Two answers at once share TotalRate: together they take as long as
// their bytes at that rate, though each alone would be unthrottled.
func TestTotalRate(t *testing.T) {
	const rate, size = 400 << 10, 40 << 10 // 80 KiB at 400 KiB/s: about 200 ms
	s := New(t, Size(size), TotalRate(rate))
	c := newClient(t)
	began := time.Now()
	var wg sync.WaitGroup
	bodies, errs := make([][]byte, 2), make([]error, 2)
	for i := range bodies {
		wg.Go(func() {
			resp, err := c.Get(s.URL)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			bodies[i], errs[i] = io.ReadAll(resp.Body)
		})
	}
	wg.Wait()
	for i, b := range bodies {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		wantBody(t, b, s.Content())
	}
	// The burst lets one chunk go before the rate applies.
	if el, least := time.Since(began), time.Duration(float64(2*size-totalChunk(rate))/rate*float64(time.Second)); el < least {
		t.Fatalf("two GETs took %v; the shared rate allows no less than %v", el, least)
	}
}

func TestHeaders(t *testing.T) {
	s := New(t, Size(1000), ETagValue(`W/"weak"`), ContentDisposition(`attachment; filename="x.bin"`))
	c := newClient(t)
	resp, body := do(t, c, "GET", s.URL, "Range", "bytes=0-9", "If-Range", `W/"weak"`)
	wantStatus(t, resp, 200) // weak ETags never match If-Range
	wantBody(t, body, s.Content())
	wantHeader(t, resp, "ETag", `W/"weak"`)
	wantHeader(t, resp, "Content-Disposition", `attachment; filename="x.bin"`)
	resp, _ = do(t, c, "HEAD", s.URL)
	wantHeader(t, resp, "Content-Disposition", `attachment; filename="x.bin"`)

	s.SetOption(NoETag(), NoLastModified())
	resp, _ = do(t, c, "GET", s.URL)
	wantHeader(t, resp, "ETag", "")
	wantHeader(t, resp, "Last-Modified", "")
	if s.ETag() != "" || s.LastModified() != "" {
		t.Fatal("ETag or LastModified not empty")
	}
}

func TestPath(t *testing.T) {
	s := New(t, Size(1000), Path("x/y.dat"))
	if !strings.HasSuffix(s.URL, "/x/y.dat") {
		t.Fatalf("URL %q", s.URL)
	}
	c := newClient(t)
	resp, _ := do(t, c, "GET", s.URL)
	wantStatus(t, resp, 200)
	resp, _ = do(t, c, "GET", strings.TrimSuffix(s.URL, "/x/y.dat")+"/file.bin")
	wantStatus(t, resp, 404)
}

func TestRequireHeaderAndOnRequest(t *testing.T) {
	var mu sync.Mutex
	var agents []string
	s := New(t, Size(1000), RequireHeader("Authorization", "Bearer t"), OnRequest(func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		agents = append(agents, r.Header.Get("User-Agent"))
	}))
	c := newClient(t)
	resp, _ := do(t, c, "GET", s.URL, "User-Agent", "a")
	wantStatus(t, resp, 401)
	resp, _ = do(t, c, "GET", s.URL, "User-Agent", "b", "Authorization", "Bearer x")
	wantStatus(t, resp, 401)
	resp, body := do(t, c, "GET", s.URL, "User-Agent", "c", "Authorization", "Bearer t")
	wantStatus(t, resp, 200)
	wantBody(t, body, s.Content())
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(agents, ",") != "a,b,c" {
		t.Fatalf("OnRequest saw agents %q", agents)
	}
}

// A throttled answer whose request ends (the client went away) ends its
// handler at once, long before the body would have been sent, without
// waiting for Close. Over a real connection the client's cancel ends the
// request and the handler; the second part calls the handler directly with
// a writer that never fails, so that only the request's end can stop it (on
// a socket a failed write would end it too, hiding a handler that ignores
// its request).
func TestRateCancel(t *testing.T) {
	// 1 GiB at 1 MiB/s: about 17 minutes to send, against a ceiling of 10 s.
	const ceiling = 10 * time.Second
	opts := []Option{Size(1 << 30), Rate(1 << 20)}

	t.Run("client", func(t *testing.T) {
		h := NewHandler(opts...)
		ended := make(chan struct{})
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(ended) // runs on the panic abort() raises too
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(func() { h.Close(); ts.Close() })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", ts.URL+h.FilePath(), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := newClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.ReadFull(resp.Body, make([]byte, 1)); err != nil {
			t.Fatalf("first body byte: %v", err)
		}
		cancel()
		if _, err := io.Copy(io.Discard, resp.Body); err == nil {
			t.Error("the cancelled request read its body to the end")
		}
		select {
		case <-ended:
		case <-time.After(ceiling):
			t.Errorf("the handler still runs %v after its client went away", ceiling)
		}
	})

	t.Run("handler", func(t *testing.T) {
		h := NewHandler(opts...)
		defer h.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, "GET", h.FilePath(), nil)
		w := &sinkWriter{header: http.Header{}, wrote: make(chan struct{})}
		ended := make(chan any, 1)
		go func() {
			defer func() { ended <- recover() }()
			h.ServeHTTP(w, req)
		}()
		select {
		case <-w.wrote:
		case <-time.After(ceiling):
			t.Fatalf("no body byte written within %v", ceiling)
		}
		cancel()
		select {
		case v := <-ended:
			// A body cut short must drop the connection, never look complete.
			if v != http.ErrAbortHandler {
				t.Errorf("the handler ended with %v, want the http.ErrAbortHandler panic", v)
			}
		case <-time.After(ceiling):
			t.Errorf("the handler still runs %v after its request ended (%d bytes written)", ceiling, w.n.Load())
			h.Close()
			<-ended
		}
	})
}

// sinkWriter is a ResponseWriter whose writes always succeed; wrote closes
// at the first body byte.
type sinkWriter struct {
	header http.Header
	n      atomic.Int64
	once   sync.Once
	wrote  chan struct{}
}

func (w *sinkWriter) Header() http.Header { return w.header }
func (w *sinkWriter) WriteHeader(int)     {}
func (w *sinkWriter) Flush()              {}

func (w *sinkWriter) Write(p []byte) (int, error) {
	if w.n.Add(int64(len(p))) > 0 {
		w.once.Do(func() { close(w.wrote) })
	}
	return len(p), nil
}

func TestCorrupt(t *testing.T) {
	s := New(t, Size(1000), Corrupt(100, 200))
	want := slices.Clone(s.Content())
	for i := 100; i < 200; i++ {
		want[i] ^= 0xff
	}
	_, body := do(t, newClient(t), "GET", s.URL)
	wantBody(t, body, want)
	// A range across the damaged bytes carries them damaged too.
	_, body = do(t, newClient(t), "GET", s.URL, "Range", "bytes=150-249")
	wantBody(t, body, want[150:250])
}

// MaxConcurrent answers 503, with its Retry-After, to a GET or HEAD that
// arrives while n answers with a body are in flight, and serves again once
// one has ended; answers without a body do not count.
func TestMaxConcurrent(t *testing.T) {
	s := New(t, Size(4<<20), Rate(256<<10), MaxConcurrent(2, "7"))
	c := newClient(t)
	open := func(rng string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", s.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Range", rng)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		wantStatus(t, resp, 206)
		return resp
	}
	// The whole file takes 16 s at this rate: it stays in flight throughout.
	// The short answer takes a second, far longer than the requests below
	// need to arrive, even on a busy machine.
	open("bytes=0-")
	short := open("bytes=0-262143")

	resp, body := do(t, c, "GET", s.URL, "Range", "bytes=0-9")
	wantStatus(t, resp, 503)
	wantHeader(t, resp, "Retry-After", "7")
	if !strings.HasPrefix(string(body), "503") {
		t.Errorf("refusal body %q", body)
	}
	resp, _ = do(t, c, "HEAD", s.URL)
	wantStatus(t, resp, 503)

	// Once the short answer is read to its end, its handler has returned
	// before the next request on that connection is read: a slot is free.
	got, err := io.ReadAll(short.Body)
	if err != nil {
		t.Fatal(err)
	}
	wantBody(t, got, s.Content()[:262144])
	resp, body = do(t, c, "GET", s.URL, "Range", "bytes=10-19")
	wantStatus(t, resp, 206)
	wantHeader(t, resp, "Retry-After", "")
	wantBody(t, body, s.Content()[10:20])

	st := s.Stats()
	if st.Refused != 2 || st.Statuses[503] != 2 {
		t.Errorf("Refused %d, 503s %d; want 2 and 2", st.Refused, st.Statuses[503])
	}
	if st.Peak != 2 {
		t.Errorf("Peak %d, want 2", st.Peak)
	}

	// Without the cap a third answer may join the long one.
	s.SetOption(MaxConcurrent(0, ""))
	open("bytes=0-")
	open("bytes=0-")
	if st := s.Stats(); st.Peak != 3 || st.Refused != 2 {
		t.Errorf("after lifting the cap: Peak %d, Refused %d; want 3 and 2", st.Peak, st.Refused)
	}
}
