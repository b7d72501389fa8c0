package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/convoy-dl/convoy/internal/redact"
)

// Remote is what a probe learned about a remote file.
type Remote struct {
	// URL is the address as given; FinalURL is where redirects ended.
	URL, FinalURL string
	// Size is the file size in bytes, or -1 when the server does not say.
	Size int64
	// Ranges is true only when the server answered a range request with a
	// 206 whose Content-Range matched.
	Ranges bool
	// ETag and LastModified are the validators as the server sent them.
	ETag, LastModified string
	// ContentDisposition is the raw header, for naming the output.
	ContentDisposition string
	// Encoding is the Content-Encoding the server labels the file with
	// though convoy asks for identity ("" for none): a stored .gz served
	// as "gzip", say. Its bytes are saved as they are, as curl does without
	// --compressed; every answer must carry the same label.
	Encoding string
	// Digests holds the raw values of headers that carry a digest of the
	// whole file: Repr-Digest and Digest, and Content-Digest of a HEAD,
	// of the answers and of the redirects that led to them (a mirror
	// network's redirector sends them, RFC 6249).
	Digests []string
	// Links holds the raw Link header values of the HEAD and GET answers
	// and of the redirects that led to them, where a redirector names the
	// file's mirrors and its metalink (RFC 6249).
	Links []string
	// ContentType is the GET answer's Content-Type, raw.
	ContentType string
}

// Encoding is an answer's Content-Encoding, "" for none or identity.
func Encoding(h http.Header) string {
	if ce := h.Get("Content-Encoding"); !strings.EqualFold(ce, "identity") {
		return ce
	}
	return ""
}

// StrongETag reports whether the ETag can be sent with If-Range: present and
// not weak.
func (r Remote) StrongETag() bool {
	return r.ETag != "" && !strings.HasPrefix(r.ETag, "W/")
}

// Validator is the value to send as If-Range: the strong ETag, else
// Last-Modified when there is no ETag at all, else "" (RFC 9110 forbids a
// weak ETag there, and a date when an ETag exists).
func (r Remote) Validator() string {
	switch {
	case r.StrongETag():
		return r.ETag
	case r.ETag == "":
		return r.LastModified
	}
	return ""
}

// Identifiable reports whether the file carries a validator that tells one
// version from another: a strong ETag or a Last-Modified date. Without one a
// change of the file on the server could go unnoticed.
func (r Remote) Identifiable() bool {
	return r.StrongETag() || r.LastModified != ""
}

// Prober learns size, range support and validators of a remote file.
type Prober struct {
	Client *http.Client
	Header http.Header
	// StallTimeout bounds the wait for the probe's body byte (0: 20s).
	StallTimeout time.Duration
	// MaxTries, RetryInitial and RetryMax bound retries of transient
	// failures as for Fetcher.
	MaxTries               int
	RetryInitial, RetryMax time.Duration
	OnRetry                func(err error, wait time.Duration)
	// FailFast ends the probe at once when the server is unreachable, as
	// Fetcher.FailFast does: for a first contact.
	FailFast bool
	// Budget bounds the retries in time, as Fetcher.Budget does.
	Budget *Budget
}

// Probe asks HEAD for the size and validators, then proves range support
// with a GET for "bytes=0-0". A refused or odd HEAD is not an error: the GET
// answer is authoritative. Transient failures are retried.
func (p *Prober) Probe(ctx context.Context, rawURL string) (Remote, error) {
	f := &Fetcher{MaxTries: p.MaxTries, RetryInitial: p.RetryInitial, RetryMax: p.RetryMax, FailFast: p.FailFast, Budget: p.Budget}
	pol := f.newPolicy()
	var r Remote
	op := func() error {
		var err error
		r, err = p.probeOnce(ctx, rawURL)
		return f.classify(ctx, err, pol)
	}
	err := backoff.RetryNotify(op, backoff.WithContext(pol, ctx), p.OnRetry)
	return r, pol.wrap(ctx, err)
}

// headWait bounds the HEAD: the GET after it is authoritative, so a server
// that never answers HEAD costs the probe at most this much.
const headWait = 3 * time.Second

func (p *Prober) probeOnce(ctx context.Context, rawURL string) (Remote, error) {
	// HEAD goes first and the GET after it: where every redirect issues a
	// new signed address and only the newest is honoured, the GET's is the
	// one the ranges will use.
	hctx, hcancel := context.WithTimeout(ctx, headWait)
	head, headErr := p.head(hctx, rawURL)
	hcancel()
	r := Remote{URL: rawURL, Size: -1}

	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := p.newRequest(rctx, http.MethodGet, rawURL)
	if err != nil {
		return r, err
	}
	req.Header.Set("Range", "bytes=0-0")
	resp, err := p.Client.Do(req)
	if err != nil {
		return r, transportError(rctx, err)
	}
	defer resp.Body.Close()
	r.FinalURL = resp.Request.URL.String()
	r.ETag = resp.Header.Get("ETag")
	r.LastModified = resp.Header.Get("Last-Modified")
	r.ContentDisposition = resp.Header.Get("Content-Disposition")
	u := redact.Parsed(resp.Request.URL)
	r.Digests = wholeFileDigests(head, resp)
	r.Links = append(chainValues(head, "Link"), chainValues(resp, "Link")...)
	r.ContentType = resp.Header.Get("Content-Type")
	r.Encoding = Encoding(resp.Header)

	switch resp.StatusCode {
	case http.StatusPartialContent:
		cr, err := ParseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return r, &ProtocolError{URL: u, Reason: fmt.Sprintf("answered the range probe (bytes 0-0) with an unusable Content-Range: %v", err)}
		}
		if cr.First != 0 || cr.Last != 0 {
			return r, &ProtocolError{URL: u, Reason: fmt.Sprintf("answered the range probe for bytes 0-0 with bytes %s: its ranges cannot be trusted", cr)}
		}
		// Read the one byte so the connection can be reused; a body that
		// stalls instead is cut by the stall timer. A body of another
		// length is not the byte asked for (a range compressed on the fly,
		// say).
		if resp.ContentLength > 1 {
			return r, &ProtocolError{URL: u, Reason: fmt.Sprintf("answered the range probe for bytes 0-0 with a body of %d bytes (a range compressed on the fly?): its ranges cannot be trusted", resp.ContentLength)}
		}
		f := &Fetcher{StallTimeout: p.StallTimeout}
		body := newStallReader(resp.Body, f.stallTimeout(), cancel)
		n, rerr := io.Copy(io.Discard, io.LimitReader(body, 2))
		body.stop()
		switch {
		case errors.Is(context.Cause(rctx), ErrStalled):
			return r, ErrStalled
		case n == 0 && (rerr != nil || resp.ContentLength == 1):
			// Cut short, as any body can be: a transient fault.
			return r, fmt.Errorf("%s closed the connection before the range probe's one byte arrived", u)
		case n == 0:
			return r, &ProtocolError{URL: u, Reason: "answered the range probe for bytes 0-0 with an empty body: its ranges cannot be trusted"}
		case n > 1:
			return r, &ProtocolError{URL: u, Reason: "answered the range probe for bytes 0-0 with more than one byte (a range compressed on the fly?): its ranges cannot be trusted"}
		}
		r.Size = cr.Total
		r.Ranges = cr.Total >= 0
		if cr.Total < 0 && headErr == nil && head.ContentLength >= 0 {
			r.Size = head.ContentLength
		}
	case http.StatusOK:
		r.Size = resp.ContentLength
	case http.StatusRequestedRangeNotSatisfiable:
		// "bytes=0-0" is unsatisfiable only for an empty file.
		total, ok := ParseUnsatisfiedTotal(resp.Header.Get("Content-Range"))
		if !ok || total != 0 {
			return r, newStatusError(resp, time.Now())
		}
		r.Size, r.Ranges = 0, true
	default:
		return r, newStatusError(resp, time.Now())
	}
	return r, nil
}

// wholeFileDigests collects digest headers that describe the whole file:
// Repr-Digest and Digest of either answer, and Content-Digest of the HEAD
// (on a 206 it covers only the range).
func wholeFileDigests(head, get *http.Response) []string {
	var out []string
	add := func(h http.Header, names ...string) {
		for _, n := range names {
			out = append(out, h.Values(n)...)
		}
	}
	if head != nil {
		add(head.Header, "Repr-Digest", "Content-Digest", "Digest")
	}
	add(get.Header, "Repr-Digest", "Digest")
	out = append(out, redirectValues(head, "Repr-Digest", "Digest")...)
	return append(out, redirectValues(get, "Repr-Digest", "Digest")...)
}

// chainValues collects the values of the named headers from resp and the
// redirects that led to it; nil for a nil resp.
func chainValues(resp *http.Response, names ...string) []string {
	if resp == nil {
		return nil
	}
	var out []string
	for _, n := range names {
		out = append(out, resp.Header.Values(n)...)
	}
	return append(out, redirectValues(resp, names...)...)
}

// redirectValues collects the values of the named headers from the
// redirect answers that led to resp (the client keeps each in the
// Response of the request it caused), the latest first.
func redirectValues(resp *http.Response, names ...string) []string {
	if resp == nil {
		return nil
	}
	var out []string
	for req, hops := resp.Request, 0; req != nil && req.Response != nil && hops < 20; req, hops = req.Response.Request, hops+1 {
		for _, n := range names {
			out = append(out, req.Response.Header.Values(n)...)
		}
	}
	return out
}

// head sends HEAD and returns the answer when it is a 2xx; its body is
// closed.
func (p *Prober) head(ctx context.Context, rawURL string) (*http.Response, error) {
	req, err := p.newRequest(ctx, http.MethodHead, rawURL)
	if err != nil {
		return nil, err
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, newStatusError(resp, time.Now())
	}
	return resp, nil
}

func (p *Prober) newRequest(ctx context.Context, method, rawURL string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return nil, backoff.Permanent(fmt.Errorf("bad URL %s: %w", redact.URL(rawURL), err))
	}
	for k, vs := range p.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Accept-Encoding", "identity")
	return req, nil
}
