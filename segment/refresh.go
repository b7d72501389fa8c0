package segment

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/cenkalti/backoff/v4"
)

// maxRefreshes bounds how often one fetch resolves its URL again.
const maxRefreshes = 10

// target returns the URL to use and how often it has been refreshed.
func (f *Fetcher) target() (string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current == "" {
		f.current = f.URL
	}
	return f.current, f.refreshes
}

// errRefreshed asks for another attempt with a URL just resolved again.
var errRefreshed = errors.New("the URL expired and was resolved again")

// refreshAfter handles an answer of err to a request sent to the URL of
// generation gen: for 401, 403 and 410 it resolves the URL again (once per
// generation, however many connections saw the refusal) and asks for a retry.
// Other errors pass through.
func (f *Fetcher) refreshAfter(ctx context.Context, err error, gen int) error {
	var se *StatusError
	if f.Refresh == nil || !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusGone:
	default:
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refreshes != gen {
		return errRefreshed // another connection already did it
	}
	if f.refreshes >= maxRefreshes {
		return err
	}
	fresh, rerr := f.Refresh(ctx)
	if rerr != nil {
		return backoff.Permanent(fmt.Errorf("%v; resolving the URL again: %w", err, rerr))
	}
	f.current = fresh
	f.refreshes++
	return errRefreshed
}
