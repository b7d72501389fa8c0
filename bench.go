package convoy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/segment"
)

// BenchConfig describes a measurement of mirrors of one file.
type BenchConfig struct {
	// URLs of the same file on different servers.
	URLs []string
	// Duration bounds the throughput measurement of each mirror and each
	// connection count (default 5s); Bytes, when set, bounds it by bytes too.
	Duration time.Duration
	Bytes    int64
	// Connections is the count for the parallel measurement (default 8).
	Connections int
	// Parallel measures the mirrors at the same time instead of one after
	// another (then they share the link).
	Parallel bool
	// Header, UserAgent, Insecure and Client as in Config.
	Header    http.Header
	UserAgent string
	Insecure  bool
	Client    *http.Client
}

// MirrorReport is what BenchMirrors measured of one mirror.
type MirrorReport struct {
	URL string `json:"url"` // redacted
	// Error says why the mirror could not be measured ("" when it was).
	Error        string  `json:"error,omitempty"`
	Size         int64   `json:"size"`
	Ranges       bool    `json:"ranges"`
	ETag         string  `json:"etag,omitempty"`
	LastModified string  `json:"last_modified,omitempty"`
	TTFB         float64 `json:"ttfb_seconds"`         // median time to the first byte of a range request
	Single       float64 `json:"single_bytes_per_s"`   // one connection
	Parallel     float64 `json:"parallel_bytes_per_s"` // Connections connections
	Connections  int     `json:"connections"`
	// Agrees tells whether the mirror is in the largest group that serves
	// the same size and the same bytes at the sampled places (the first
	// URL's group on a tie); Disagrees says why not.
	Agrees    bool   `json:"agrees"`
	Disagrees string `json:"disagrees,omitempty"`
	// Busy counts the answers of 503 or 429 met while measuring.
	Busy int `json:"busy_answers"`

	raw string // the URL as given, secrets included
}

// RawURL is the URL as given, for passing on to convoy get.
func (m MirrorReport) RawURL() string { return m.raw }

// ttfbTries is how many range requests time the first byte.
const ttfbTries = 3

// BenchMirrors measures every URL and returns the reports ranked, fastest
// (parallel throughput) first, mirrors with errors last. It never downloads
// a whole file unless Bytes or Duration allow it.
func BenchMirrors(ctx context.Context, bc BenchConfig) ([]MirrorReport, error) {
	if len(bc.URLs) == 0 {
		return nil, fmt.Errorf("%w: no URL to measure", ErrUsage)
	}
	if bc.Duration <= 0 {
		bc.Duration = 5 * time.Second
	}
	if bc.Connections <= 0 {
		bc.Connections = 8
	}
	// One download's worth of settings, for its client and probes.
	cfg, err := Config{URL: bc.URLs[0], Header: bc.Header, UserAgent: bc.UserAgent, Insecure: bc.Insecure,
		Connections: bc.Connections, Client: bc.Client, MaxTries: 2}.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &download{cfg: cfg, start: time.Now(), client: cfg.Client}
	if d.client == nil {
		d.client = segment.NewClient(segment.ClientOptions{Connections: bc.Connections, HeaderTimeout: cfg.StallTimeout, Insecure: bc.Insecure})
		defer d.client.CloseIdleConnections()
	}
	reports := make([]MirrorReport, len(bc.URLs))
	remotes := make([]segment.Remote, len(bc.URLs))
	measure := func(i int) {
		reports[i], remotes[i] = d.benchOne(ctx, bc, bc.URLs[i])
	}
	if bc.Parallel {
		var wg sync.WaitGroup
		for i := range bc.URLs {
			wg.Add(1)
			go func() { defer wg.Done(); measure(i) }()
		}
		wg.Wait()
	} else {
		for i := range bc.URLs {
			measure(i)
		}
	}
	d.compareMirrors(ctx, reports, remotes)
	sort.SliceStable(reports, func(a, b int) bool {
		ra, rb := reports[a], reports[b]
		if (ra.Error == "") != (rb.Error == "") {
			return ra.Error == ""
		}
		return max(ra.Parallel, ra.Single) > max(rb.Parallel, rb.Single)
	})
	return reports, ctx.Err()
}

// benchOne probes and times one mirror.
func (d *download) benchOne(ctx context.Context, bc BenchConfig, u string) (rep MirrorReport, r segment.Remote) {
	rep = MirrorReport{URL: redact.URL(u), Connections: bc.Connections, raw: u}
	r, err := d.probeURL(ctx, u, !d.cfg.RetryConnRefused, false)
	if err != nil {
		rep.Error = redact.Text(err.Error())
		return rep, r
	}
	rep.Size, rep.Ranges, rep.ETag, rep.LastModified = r.Size, r.Ranges, r.ETag, r.LastModified
	if !r.Ranges {
		return rep, r // nothing to time in ranges; the report says so
	}
	var busy atomic.Int64
	countBusy := func(err error, _ time.Duration) {
		if isBusy(err) {
			busy.Add(1)
		}
	}
	defer func() { rep.Busy = int(busy.Load()) }()
	f := d.newFetcher(r)
	var times []time.Duration
	for range ttfbTries {
		start := time.Now()
		if _, err := f.Sample(ctx, 0, min(1, max(r.Size, 0))); err != nil {
			countBusy(err, 0)
			if r.Size != 0 {
				rep.Error = "range request: " + redact.Text(err.Error())
				return rep, r
			}
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	rep.TTFB = times[len(times)/2].Seconds()
	if !r.Ranges || r.Size <= 0 {
		return rep, r
	}
	rep.Single = d.throughput(ctx, bc, r, 1, countBusy)
	rep.Parallel = d.throughput(ctx, bc, r, bc.Connections, countBusy)
	return rep, r
}

// isBusy reports a 503 or 429 answer: a server at its limit.
func isBusy(err error) bool {
	var se *segment.StatusError
	return errors.As(err, &se) && (se.Code == http.StatusServiceUnavailable || se.Code == http.StatusTooManyRequests)
}

// throughput downloads from r over conns connections into nothing for
// bc.Duration (or bc.Bytes) and returns the bytes per second; onRetry is
// told of every failed try.
func (d *download) throughput(ctx context.Context, bc BenchConfig, r segment.Remote, conns int, onRetry func(error, time.Duration)) float64 {
	ctx, cancel := context.WithTimeout(ctx, bc.Duration)
	defer cancel()
	size := r.Size
	if bc.Bytes > 0 {
		size = min(size, bc.Bytes)
	}
	plan, err := segment.NewPlan(r.Size, orderedTail(r.Size, size), conns, 1<<20)
	if err != nil {
		return 0
	}
	var got atomic.Int64
	f := d.newFetcher(r)
	f.OnConn = nil
	f.OnWrite = func(_, n int64) { got.Add(n) }
	f.OnRetry = onRetry
	start := time.Now()
	err = f.Run(ctx, plan, discard{}, conns)
	elapsed := time.Since(start).Seconds()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && got.Load() == 0 {
		return 0
	}
	if elapsed <= 0 {
		return 0
	}
	return float64(got.Load()) / elapsed
}

// orderedTail is a plan's state in which only the first n bytes are left
// to fetch: the rest counts as done.
func orderedTail(size, n int64) []segment.Segment {
	if n >= size {
		return nil
	}
	return []segment.Segment{{Start: 0, End: n}, {Start: n, End: size, Written: size - n}}
}

// discard is an io.WriterAt that keeps nothing.
type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// compareMirrors marks which mirrors serve the same file: the largest
// group that agrees on the size and the bytes at the sampled places, the
// first URL's group on a tie. Every other mirror gets the reason it is not
// in that group.
func (d *download) compareMirrors(ctx context.Context, reports []MirrorReport, remotes []segment.Remote) {
	keys := map[int]string{} // the comparable mirrors' size and samples
	for i, rep := range reports {
		switch {
		case rep.Error != "":
			reports[i].Disagrees = "could not be measured"
			continue
		case !rep.Ranges:
			reports[i].Disagrees = "does not serve ranges"
			continue
		case rep.Size <= 0:
			reports[i].Disagrees = "states no size"
			continue
		}
		s, err := d.samples(ctx, remotes[i], samplePlaces(remotes[i].Size))
		if err != nil {
			reports[i].Disagrees = "sampling failed: " + redact.Text(err.Error())
			continue
		}
		keys[i] = fmt.Sprint(remotes[i].Size, ":", string(bytes.Join(s, nil)))
	}
	votes := map[string]int{}
	for _, k := range keys {
		votes[k]++
	}
	best, bestAt := "", -1
	for i := range reports { // in the order given: the first group wins a tie
		if k, ok := keys[i]; ok && (bestAt < 0 || votes[k] > votes[best]) {
			best, bestAt = k, i
		}
	}
	for i, k := range keys {
		switch {
		case k == best:
			reports[i].Agrees = true
		case remotes[i].Size != remotes[bestAt].Size:
			reports[i].Disagrees = fmt.Sprintf("serves %d bytes, %d mirrors serve %d", remotes[i].Size, votes[best], remotes[bestAt].Size)
		default:
			reports[i].Disagrees = fmt.Sprintf("its bytes differ from those of %s", plural(votes[best], "other mirror", "other mirrors"))
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
