package segment

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// classify turns an attempt's error into what backoff expects: nil, a
// permanent error, or a transient one (noting any Retry-After in pol).
func (f *Fetcher) classify(ctx context.Context, err error, pol *retryPolicy) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return backoff.Permanent(context.Cause(ctx))
	}
	if IsPermanent(err) {
		return backoff.Permanent(err)
	}
	var ue *UnreachableError
	if f.FailFast && errors.As(err, &ue) {
		return backoff.Permanent(err)
	}
	var se *StatusError
	if errors.As(err, &se) {
		pol.retryAfter = se.RetryAfter
	}
	return err
}

// IsPermanent reports whether err cannot be cured by trying again: a refused
// status, a broken range answer, a changed file, a failed write, a refused
// redirect or a bad certificate. An unreachable host (UnreachableError) is
// not: it is final only at first contact, by Fetcher.FailFast.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var (
		pe  *backoff.PermanentError
		pxe *ProxyError
		se  *StatusError
		pre *ProtocolError
		we  *WriteError
		re  *RedirectError
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, ErrRemoteChanged), errors.Is(err, ErrRangeIgnored):
		return true
	case errors.As(err, &pxe) && !pxe.Temporary():
		return true
	case errors.As(err, &se):
		return !se.Temporary()
	case errors.As(err, &pe), errors.As(err, &pre), errors.As(err, &we), errors.As(err, &re):
		return true
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci):
		return true
	}
	return false
}

// retryPolicy is the backoff of one span: exponential, stretched to any
// Retry-After, giving up after maxTries attempts without progress (0: no
// bound) or once the download's budget, if any, is spent. Not safe for
// concurrent use; each span has its own.
type retryPolicy struct {
	exp        *backoff.ExponentialBackOff
	maxTries   int
	tries      int
	retryAfter time.Duration
	gaveUp     bool
	outOfTime  bool // gave up because budget was spent
	moved      bool // the last attempt delivered bytes
	budget     *Budget
}

// ErrGaveUp marks a transient fault that kept failing until the retry
// budget ran out: the network or the server did not come back in time.
var ErrGaveUp = errors.New("giving up")

// maxRetryAfter caps a server's Retry-After.
const maxRetryAfter = 5 * time.Minute

// Budget is how long a download may go without progress on any of its
// connections before their retries give up: a link down for minutes, a
// laptop asleep, a server restarting. One Budget is shared by every Fetcher
// and Prober of a download; it is safe for concurrent use.
type Budget struct {
	// For is the time without progress after which retries stop.
	For  time.Duration
	last atomic.Int64 // unix nanoseconds of the last progress, or of the start
}

// NewBudget starts a budget of d from now.
func NewBudget(d time.Duration) *Budget {
	b := &Budget{For: d}
	b.Progressed()
	return b
}

// Progressed records progress now: the budget starts again.
func (b *Budget) Progressed() { b.last.Store(time.Now().UnixNano()) }

// Idle is the time since the last progress.
func (b *Budget) Idle() time.Duration {
	return time.Since(time.Unix(0, b.last.Load()))
}

// left is what remains of the budget; false once it is spent.
func (b *Budget) left() (time.Duration, bool) {
	rest := b.For - b.Idle()
	return rest, rest > 0
}

func (f *Fetcher) newPolicy() *retryPolicy {
	exp := backoff.NewExponentialBackOff()
	exp.InitialInterval = 500 * time.Millisecond
	if f.RetryInitial > 0 {
		exp.InitialInterval = f.RetryInitial
	}
	exp.MaxInterval = 30 * time.Second
	if f.RetryMax > 0 {
		exp.MaxInterval = f.RetryMax
	}
	exp.MaxElapsedTime = 0
	exp.Reset()
	tries := f.MaxTries
	switch {
	case tries < 0:
		tries = 0 // no bound
	case tries == 0 && f.Budget != nil:
		tries = 0 // the time budget bounds the retries
	case tries == 0:
		tries = 10
	}
	return &retryPolicy{exp: exp, maxTries: tries, budget: f.Budget}
}

func (p *retryPolicy) NextBackOff() time.Duration {
	p.tries++
	if p.maxTries > 0 && p.tries >= p.maxTries {
		p.gaveUp = true
		return backoff.Stop
	}
	left, ok := time.Duration(0), true
	if p.budget != nil {
		if left, ok = p.budget.left(); !ok {
			p.gaveUp, p.outOfTime = true, true
			return backoff.Stop
		}
	}
	ra := min(p.retryAfter, maxRetryAfter)
	p.retryAfter = 0
	if p.moved && ra == 0 {
		// The connection was delivering until it broke: reconnect at once;
		// waiting only costs throughput. A second failure backs off.
		p.moved = false
		return 0
	}
	p.moved = false
	if p.budget != nil {
		// The last try comes as the budget ends, not a backoff after it.
		return min(max(p.exp.NextBackOff(), ra), left)
	}
	return max(p.exp.NextBackOff(), ra)
}

func (p *retryPolicy) Reset() {
	p.exp.Reset()
	p.tries = 0
}

// progressed records that the last attempt delivered bytes: the count of
// tries and the download's budget start again, and the next try comes at
// once.
func (p *retryPolicy) progressed() {
	p.Reset()
	p.moved = true
	if p.budget != nil {
		p.budget.Progressed()
	}
}

// wrap names the attempts when the policy gave up, and the cause when ctx
// ended the wait.
func (p *retryPolicy) wrap(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case p.outOfTime:
		return fmt.Errorf("%w after %s without progress on any connection: %w", ErrGaveUp, p.budget.For.Round(time.Second), err)
	case p.gaveUp:
		return fmt.Errorf("%w after %s without progress: %w", ErrGaveUp, plural(p.tries, "try", "tries"), err)
	}
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
