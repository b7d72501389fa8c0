package segment

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/convoy-dl/convoy/internal/redact"
)

// ErrRemoteChanged reports that the file on the server is no longer the one
// whose bytes are on disk: a 200 to a ranged request carrying If-Range, a 416
// for a range inside the known size, or a Content-Range total other than the
// known size. The caller must discard what it has and start over.
var ErrRemoteChanged = errors.New("the file changed on the server")

// ErrStalled reports a response body that sent nothing for the stall timeout.
var ErrStalled = errors.New("connection stalled")

// StatusError is an HTTP answer whose status was not what the request needed.
type StatusError struct {
	Code       int
	Status     string        // the status line text, e.g. "404 Not Found"
	URL        string        // redacted
	RetryAfter time.Duration // from Retry-After on 429 and 503, else 0
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %s from %s", e.Status, e.URL)
}

// Temporary reports whether trying again later may succeed: 408, 425, 429
// and every 5xx except 501 and 505.
func (e *StatusError) Temporary() bool {
	switch e.Code {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
		return false
	}
	return e.Code >= 500
}

func newStatusError(resp *http.Response, now time.Time) *StatusError {
	e := &StatusError{Code: resp.StatusCode, Status: resp.Status, URL: redact.Parsed(resp.Request.URL)}
	if e.Status == "" {
		e.Status = strconv.Itoa(resp.StatusCode)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return e
}

// ParseRetryAfter reads a Retry-After value, delay-seconds or an HTTP date,
// relative to now. It returns 0 for a missing, malformed or past value.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := parseByteCount(v); err == nil { // digits only, as RFC 9110 says
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// ProtocolError is an answer that breaks the range protocol: a wrong
// Content-Range, a compressed range, a Content-Length that is not the
// range's.
type ProtocolError struct {
	URL    string // redacted
	Reason string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("%s: %s", e.URL, e.Reason)
}

// WriteError wraps a failure of the io.WriterAt: the disk side, never retried.
type WriteError struct {
	Offset int64
	Err    error
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("writing at offset %d: %v", e.Offset, e.Err)
}

func (e *WriteError) Unwrap() error { return e.Err }

// UnreachableError is a server that could not be reached at all: its name
// does not resolve, or nothing at its address takes the connection. At first
// contact that is most likely a typo, and it is final (Fetcher.FailFast);
// once a download is under way it is a server restarting or a link going
// down, and it is retried.
type UnreachableError struct {
	// Host is what could not be reached: the URL's host, or the proxy's
	// address when the proxy refused.
	Host string
	// Cause is "no such host", "connection refused", "no route to host" or
	// "network unreachable".
	Cause string
	Err   error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach %s: %s", e.Host, e.Cause)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// unreachable returns err as an UnreachableError when the round trip failed
// because the host could not be reached, else nil.
func unreachable(err error) *UnreachableError {
	var cause string
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns) && dns.IsNotFound:
		return &UnreachableError{Host: dns.Name, Cause: "no such host", Err: redactedError{err}}
	case errors.Is(err, syscall.ECONNREFUSED):
		cause = "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH):
		cause = "no route to host"
	case errors.Is(err, syscall.ENETUNREACH):
		cause = "network unreachable"
	default:
		return nil
	}
	host := ""
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			host = u.Host
		}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "proxyconnect" && op.Addr != nil {
		host = "the proxy at " + op.Addr.String()
	}
	if host == "" && op != nil && op.Addr != nil {
		host = op.Addr.String()
	}
	return &UnreachableError{Host: host, Cause: cause, Err: redactedError{err}}
}
