package segment

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/internal/units"
)

// Stream fetches the whole file with one plain GET into w from offset 0, for
// servers without range support or without a known size. A failed attempt
// starts again from offset 0. It returns the number of bytes in the file.
func (f *Fetcher) Stream(ctx context.Context, w io.WriterAt) (int64, error) {
	pol := f.newPolicy()
	c := &conn{buf: make([]byte, f.bufferLimit(1))}
	var size int64
	op := func() error {
		n, err := f.streamOnce(ctx, w, c)
		size = n
		return f.classify(ctx, err, pol)
	}
	err := backoff.RetryNotify(op, backoff.WithContext(pol, ctx), f.OnRetry)
	return size, pol.wrap(ctx, err)
}

func (f *Fetcher) streamOnce(ctx context.Context, w io.WriterAt, c *conn) (int64, error) {
	buf := c.buf
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	_, gen := f.target()
	req, err := f.newRequest(rctx)
	if err != nil {
		return 0, err
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		return 0, transportError(rctx, err)
	}
	defer resp.Body.Close()
	u := redact.Parsed(resp.Request.URL)
	if resp.StatusCode != http.StatusOK {
		return 0, f.refreshAfter(ctx, newStatusError(resp, time.Now()), gen)
	}
	if err := f.checkEncoding(resp, u); err != nil {
		return 0, err
	}
	want := f.Size
	if want >= 0 && resp.ContentLength >= 0 && resp.ContentLength != want {
		return 0, fmt.Errorf("%w: %s now sends %s, expected %s", ErrRemoteChanged, u, units.FormatExact(resp.ContentLength), units.FormatExact(want))
	}
	if want < 0 {
		want = resp.ContentLength // may still be -1: read to EOF
	}
	body := newStallReader(resp.Body, f.stallTimeout(), cancel)
	defer body.stop()
	var at int64
	for want < 0 || at < want {
		chunk := buf
		if want >= 0 {
			chunk = buf[:min(int64(len(buf)), want-at)]
		}
		room, err := f.throttle(rctx, body, c, len(chunk))
		if err != nil {
			return at, err
		}
		n, rerr := fill(body, chunk[:room])
		c.credit += room - n
		if n > 0 {
			if _, werr := w.WriteAt(buf[:n], at); werr != nil {
				return at, &WriteError{Offset: at, Err: werr}
			}
			f.wrote(c, at, int64(n))
			at += int64(n)
		}
		if rerr != nil {
			if want < 0 && rerr == io.EOF && rctx.Err() == nil {
				return at, nil // a body of unknown length ends at EOF; a cut chunked body does not
			}
			if want >= 0 && at == want {
				break
			}
			return at, bodyError(rctx, rerr, at, want, req)
		}
	}
	if resp.ContentLength < 0 {
		// A body without a length must end where the file is known to end.
		var one [1]byte
		if n, _ := io.ReadFull(body, one[:]); n > 0 {
			return at, fmt.Errorf("%w: %s sends more than the %d bytes expected", ErrRemoteChanged, u, want)
		}
	}
	return at, nil
}
