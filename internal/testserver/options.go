package testserver

import (
	"net/http"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Option configures a Handler or Server, at creation or later via SetOption.
// Options that inject a fault a number of times count from the moment they
// are applied; applying one again restarts its count.
type Option func(*config)

// config is the whole mutable state of a Handler: its settings plus the
// remaining budgets of counted faults. It is only used with Handler.mu held.
type config struct {
	size int64
	seed uint64
	gen  int // content generation, advanced on every content change
	path string

	noRanges        bool
	noContentLength bool
	headStatus      int
	statuses        []int // injected GET statuses still to answer, in order
	retryAfter      string

	maxActive      int    // MaxConcurrent: answers with a body in flight at once; 0 = no cap
	maxActiveRetry string // Retry-After sent with its 503s

	cutAt   int64
	cutLeft int // counted fault budget: 0 = off, < 0 = every response

	stallAt   int64
	stallFor  time.Duration
	stallLeft int

	stallHeaders     time.Duration
	stallHeadersLeft int

	contentRange func(start, end, total int64) string
	extraBody    int64

	changeLeft int   // GETs until the content changes; < 0 = never
	changeSize int64 // size after that change; < 0 = unchanged

	corrupt [][2]int64 // content bytes [c[0], c[1]) of each c are sent inverted

	gzip       bool
	redirects  int
	relative   bool
	redirectTo string
	rate       int64
	total      *rate.Limiter // TotalRate: shared by every answer; nil = unlimited

	etag           string // fixed ETag; "" = derived from seed and size
	noETag         bool
	noLastModified bool
	disposition    string
	require        http.Header
	onRequest      func(*http.Request)
}

func defaultConfig() config {
	return config{
		size:       1 << 20,
		seed:       1,
		path:       "/file.bin",
		changeLeft: -1,
		changeSize: -1,
		require:    http.Header{},
	}
}

// apply runs opts and then the content change bookkeeping they imply.
func (c *config) apply(opts []Option) {
	seed, size := c.seed, c.size
	for _, o := range opts {
		o(c)
	}
	if c.seed != seed || c.size != size {
		c.gen++
	}
	if c.changeLeft == 0 {
		c.change()
	}
}

// change replaces the content as ChangeAfter describes.
func (c *config) change() {
	c.seed++
	if c.changeSize >= 0 {
		c.size = c.changeSize
	}
	c.changeSize = -1
	c.changeLeft = -1
	c.gen++
}

// take consumes one use of a counted fault budget and reports whether the
// fault applies. A negative budget never runs out.
func take(left *int) bool {
	if *left == 0 {
		return false
	}
	if *left > 0 {
		*left--
	}
	return true
}

// Corrupt makes the server send the bytes at offsets [start, end) of its
// content inverted (every bit flipped), as a mirror with a damaged copy
// does: its ETag and size stay those of the true content. Each use adds a
// damaged range.
func Corrupt(start, end int64) Option {
	return func(c *config) { c.corrupt = append(c.corrupt, [2]int64{start, end}) }
}

// Size sets the content length in bytes (default 1 MiB; 0 is an empty file).
// It panics if n is negative.
func Size(n int64) Option {
	if n < 0 {
		panic("testserver: negative Size")
	}
	return func(c *config) { c.size = n }
}

// Seed sets the content seed passed to Pattern (default 1).
func Seed(seed uint64) Option {
	return func(c *config) { c.seed = seed }
}

// NoRanges makes the server ignore Range headers: every GET gets 200 with the
// full body, and no Accept-Ranges header is sent.
func NoRanges() Option {
	return func(c *config) { c.noRanges = true }
}

// NoContentLength makes GET answer 200 with the full body in chunked transfer
// encoding, ignoring Range, and HEAD answer without Content-Length or
// Accept-Ranges.
func NoContentLength() Option {
	return func(c *config) { c.noContentLength = true }
}

// HeadStatus makes HEAD requests for the file answer this status with no
// content headers (e.g. 405 or 403); 0 restores normal HEAD answers.
func HeadStatus(code int) Option {
	return func(c *config) { c.headStatus = code }
}

// Statuses answers the next len(codes) GETs of the file with these statuses
// in order; 0 serves that GET normally, a 2xx or 304 code is sent with an
// empty body, any other code with a short text body.
func Statuses(codes ...int) Option {
	return func(c *config) { c.statuses = append([]int(nil), codes...) }
}

// RetryAfter sets the Retry-After value sent with 429 and 503 answers
// injected by Statuses (e.g. "1" or an HTTP date); "" sends none.
func RetryAfter(v string) Option {
	return func(c *config) { c.retryAfter = v }
}

// MaxConcurrent caps the GET answers with a body (200 or 206) in flight at
// once at n, as nginx's limit_conn does: a GET or HEAD of the file that
// arrives while n such answers are being sent is answered 503, with
// Retry-After retryAfter unless it is "". An answer counts from the moment
// its request is read until its handler returns. n <= 0 lifts the cap.
// Stats counts the refusals (Refused) and the most answers in flight at once
// (Peak).
func MaxConcurrent(n int, retryAfter string) Option {
	return func(c *config) { c.maxActive, c.maxActiveRetry = max(n, 0), retryAfter }
}

// CutAfter makes the next times body-carrying GET answers (200/206) send at
// most n body bytes and then drop the connection without completing the
// response; times < 0 means every answer.
func CutAfter(n int64, times int) Option {
	return func(c *config) { c.cutAt, c.cutLeft = max(n, 0), times }
}

// StallAfter makes the next times body-carrying GET answers send at most n
// body bytes (flushed), pause for d or until the request ends, then send the
// rest; times < 0 means every answer.
func StallAfter(n int64, d time.Duration, times int) Option {
	return func(c *config) { c.stallAt, c.stallFor, c.stallLeft = max(n, 0), d, times }
}

// StallHeaders makes the next times GETs of the file wait d (or until the
// request ends) before any header is written; times < 0 means every GET.
func StallHeaders(d time.Duration, times int) Option {
	return func(c *config) { c.stallHeaders, c.stallHeadersLeft = d, times }
}

// ContentRangeFunc replaces the Content-Range value of 206 answers with
// f(start, end, total) while the body stays the asked range; nil restores it.
func ContentRangeFunc(f func(start, end, total int64) string) Option {
	return func(c *config) { c.contentRange = f }
}

// ExtraBody makes 206 answers send n pattern bytes beyond the asked range;
// the handler then sets no Content-Length (Content-Range still names the
// asked range), so the extra bytes reach the client.
func ExtraBody(n int64) Option {
	return func(c *config) { c.extraBody = max(n, 0) }
}

// ChangeAfter changes the content once k more GETs of the file have been
// answered: the seed becomes seed+1, ETag and Last-Modified change, and the
// size becomes the ChangeSize value if one was given; k = 0 changes it now.
func ChangeAfter(k int) Option {
	return func(c *config) { c.changeLeft = max(k, 0) }
}

// ChangeSize sets the size the content gets at the change ChangeAfter
// schedules. It panics if n is negative.
func ChangeSize(n int64) Option {
	if n < 0 {
		panic("testserver: negative ChangeSize")
	}
	return func(c *config) { c.changeSize = n }
}

// Gzip makes answers to requests whose Accept-Encoding mentions gzip carry
// Content-Encoding: gzip, with the asked range (or full content) compressed
// and no Content-Length.
func Gzip() Option {
	return func(c *config) { c.gzip = true }
}

// Redirects puts a chain of n 302 redirects in front of the file: Server.URL
// then starts the chain, which is served at /r/n, /r/n-1, ..., /r/1. With
// relative, Location values are relative references ("/r/1", "../file.bin")
// instead of absolute URLs.
func Redirects(n int, relative bool) Option {
	return func(c *config) { c.redirects, c.relative = max(n, 0), relative }
}

// RedirectTo makes Server.URL a 302 redirect (served at /redirect) to target,
// an arbitrary absolute URL such as another server's URL or "ftp://x"; it
// takes precedence over Redirects as the start of Server.URL.
func RedirectTo(target string) Option {
	return func(c *config) { c.redirectTo = target }
}

// Rate throttles each GET answer's body to bytesPerSec: it goes out in
// flushed chunks of at most 16 KiB (or 1/20 s worth), each sent only once
// the rate allows its last byte; 0 or less means unlimited.
func Rate(bytesPerSec int64) Option {
	return func(c *config) { c.rate = bytesPerSec }
}

// TotalRate throttles the bodies of all GET answers together to
// bytesPerSec, as a server's uplink does: the answers in flight share it,
// on top of each one's Rate. Bodies go out in flushed chunks of at most
// 16 KiB (or 1/20 s worth). 0 or less lifts it.
func TotalRate(bytesPerSec int64) Option {
	return func(c *config) {
		c.total = nil
		if bytesPerSec > 0 {
			c.total = rate.NewLimiter(rate.Limit(bytesPerSec), int(totalChunk(bytesPerSec)))
		}
	}
}

// totalChunk is the largest body write under a TotalRate of bytesPerSec.
func totalChunk(bytesPerSec int64) int64 {
	return max(min(rateChunk, bytesPerSec/20), 1)
}

// ETagValue sends v verbatim as the ETag (e.g. `W/"weak"`) instead of the
// one derived from seed and size; it does not change when the content does.
func ETagValue(v string) Option {
	return func(c *config) { c.etag, c.noETag = v, false }
}

// NoETag sends no ETag header.
func NoETag() Option {
	return func(c *config) { c.noETag = true }
}

// NoLastModified sends no Last-Modified header.
func NoLastModified() Option {
	return func(c *config) { c.noLastModified = true }
}

// ContentDisposition sets the Content-Disposition value of GET and HEAD
// answers for the file; "" sends none.
func ContentDisposition(v string) Option {
	return func(c *config) { c.disposition = v }
}

// Path serves the file at path p instead of /file.bin.
func Path(p string) Option {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return func(c *config) { c.path = p }
}

// RequireHeader makes requests for the file answer 401 unless they carry
// header name with exactly this value; repeated calls add requirements.
func RequireHeader(name, value string) Option {
	return func(c *config) { c.require.Set(name, value) }
}

// OnRequest sets a hook called with every request, on any path, before it is
// answered; it runs on the handler goroutine and must be safe for concurrent use.
func OnRequest(f func(r *http.Request)) Option {
	return func(c *config) { c.onRequest = f }
}
