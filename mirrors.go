package convoy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/internal/units"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// Mirrors are compared with the primary at a few places (samplePlaces), at
// most sampleSize bytes a place: few enough that a slow server, whose
// bottleneck queue delivers the answers one after another, sends all three
// in about a second at 40 KiB/s. A sample is bounded in time as well:
// after sampleWindow it ends with what it has, once that is at least
// sampleLeast bytes, so a slow server is compared on fewer bytes instead of
// holding the download back. sampleTimeout bounds the whole comparison.
const (
	sampleSize    = 16 << 10
	sampleLeast   = 4 << 10
	sampleWindow  = time.Second
	sampleTimeout = time.Minute
)

// mirrorsFor probes every mirror of cfg and keeps those that serve the same
// file as the primary: same size, real range support, and the same bytes at
// the start, the middle and the end. Each one dropped is named in a notice.
// It waits for every comparison: for a stream, whose bytes cannot be taken
// back (a download to a file vets its mirrors as it runs: see runVetted).
func (d *download) mirrorsFor(ctx context.Context, primary segment.Remote) []segment.Remote {
	if len(d.cfg.Mirrors) == 0 {
		return nil
	}
	if !primary.Ranges || primary.Size <= 0 {
		d.cfg.Logf("%s cannot serve ranges: ignoring the mirrors", redact.URL(primary.URL))
		return nil
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	want := d.primarySamples(sctx, primary)
	found := make([]*segment.Remote, len(d.cfg.Mirrors))
	var wg sync.WaitGroup
	for i, u := range d.cfg.Mirrors {
		wg.Go(func() {
			r, why := d.probeMirror(ctx, u, primary)
			if why == "" {
				why = d.compare(ctx, r, want)
			}
			if why != "" {
				d.dropMirror(u, why)
				return
			}
			found[i] = &r
		})
	}
	wg.Wait()
	cancel()
	_, _ = want.get() // its goroutine has ended
	var out []segment.Remote
	for _, r := range found {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out
}

// dropMirror says that mirror u is not used, and why.
func (d *download) dropMirror(u, why string) {
	d.cfg.Logf("dropping mirror %s: %s", redact.URL(u), why)
	d.emit(Event{Type: "mirror-dropped", Mirror: redact.URL(u), Error: why})
}

// samplesOf are the primary's samples, fetched once for every comparison.
type samplesOf struct {
	places []int64
	once   sync.Once
	fetch  func() ([][]byte, error)
	got    [][]byte
	err    error
}

// get waits for the samples.
func (s *samplesOf) get() ([][]byte, error) {
	s.once.Do(func() { s.got, s.err = s.fetch() })
	return s.got, s.err
}

// primarySamples starts fetching the primary's samples; get waits for them.
// The caller must call get before it returns (ending ctx first, when the
// samples are not wanted): no goroutine outlives the download.
func (d *download) primarySamples(ctx context.Context, primary segment.Remote) *samplesOf {
	s := &samplesOf{places: samplePlaces(primary.Size)}
	s.fetch = func() ([][]byte, error) { return d.samples(ctx, primary, s.places) }
	go s.get()
	return s
}

// probeMirror probes mirror u and checks what its answer says of the file:
// the primary's size, real range support, and, with a Metalink's piece
// hashes, the first and last pieces. It returns why the mirror cannot be
// used, or "".
func (d *download) probeMirror(ctx context.Context, u string, primary segment.Remote) (segment.Remote, string) {
	p := &segment.Prober{Client: d.client, Header: d.cfg.Header, StallTimeout: d.cfg.StallTimeout,
		MaxTries: mirrorProbeTries(d.cfg.MaxTries), RetryInitial: d.cfg.RetryInitial, RetryMax: d.cfg.RetryMax,
		FailFast: !d.cfg.RetryConnRefused}
	r, err := p.Probe(ctx, u)
	switch {
	case err != nil:
		return r, redact.Text(err.Error())
	case r.Size != primary.Size:
		return r, fmt.Sprintf("it serves %s, the primary %s", units.FormatExact(r.Size), units.FormatExact(primary.Size))
	case !r.Ranges:
		return r, "it does not serve ranges"
	}
	return r, d.checkPieces(ctx, r)
}

// compare samples mirror r where want sampled the primary and returns why
// they differ, or "".
func (d *download) compare(ctx context.Context, r segment.Remote, want *samplesOf) string {
	got, err := d.samples(ctx, r, want.places)
	if err != nil {
		return "sampling it failed: " + redact.Text(err.Error())
	}
	return compareSamples(got, want)
}

// compareSamples compares a mirror's samples with the primary's (waiting
// for them) and returns why they differ, or "". Each place is compared on
// the bytes both sent in time.
func compareSamples(got [][]byte, want *samplesOf) string {
	ref, err := want.get()
	if err != nil {
		return fmt.Sprintf("the primary could not be sampled to compare it with (%s)", redact.Text(err.Error()))
	}
	for i, off := range want.places {
		n := min(len(got[i]), len(ref[i]))
		if !bytes.Equal(got[i][:n], ref[i][:n]) {
			return fmt.Sprintf("its bytes at offset %d differ from the primary's", off+int64(firstDiff(got[i][:n], ref[i][:n])))
		}
	}
	return ""
}

// firstDiff is the index of the first byte where a and b, of one length,
// differ.
func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

// samplePlaces are the offsets compared: start, middle and end.
func samplePlaces(size int64) []int64 {
	n := min(size, sampleSize)
	places := []int64{0}
	if mid := size/2 - n/2; mid > 0 {
		places = append(places, mid)
	}
	if end := size - n; end > 0 {
		places = append(places, end)
	}
	return places
}

// samples fetches the sampled bytes of r, each bounded in time (see
// sampleWindow).
func (d *download) samples(ctx context.Context, r segment.Remote, places []int64) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, sampleTimeout)
	defer cancel()
	f := d.newFetcher(r)
	out := make([][]byte, len(places))
	errs := make([]error, len(places))
	sample := func(i int) {
		off := places[i]
		out[i], errs[i] = f.SampleWithin(ctx, off, min(r.Size-off, sampleSize), sampleLeast, sampleWindow)
	}
	var wg sync.WaitGroup
	for i := range places {
		wg.Go(func() { sample(i) })
	}
	wg.Wait()
	// A server that takes fewer connections than there are places refuses
	// some: those are asked again one at a time, after the wait it asks.
	for i := range places {
		for try := 0; try < sampleRefusals && refused(errs[i]) && ctx.Err() == nil; try++ {
			wait := sampleBackoff
			if se := (*segment.StatusError)(nil); errors.As(errs[i], &se) && se.RetryAfter > 0 {
				wait = min(se.RetryAfter, sampleWaitMost)
			}
			select {
			case <-ctx.Done():
			case <-time.After(wait):
				sample(i)
			}
		}
	}
	return out, errors.Join(errs...)
}

// A sample refused with 503 or 429 is asked again up to sampleRefusals
// times, after the server's Retry-After (at most sampleWaitMost) or
// sampleBackoff.
const (
	sampleRefusals = 3
	sampleBackoff  = 200 * time.Millisecond
	sampleWaitMost = 5 * time.Second
)

// refused reports whether err is a server's refusal of one more
// connection: 503 or 429.
func refused(err error) bool {
	var se *segment.StatusError
	return errors.As(err, &se) && (se.Code == http.StatusServiceUnavailable || se.Code == http.StatusTooManyRequests)
}

// assignConnections shares total connections among sources round robin,
// at most perHost to one host name; a source may get none.
func assignConnections(remotes []segment.Remote, total, perHost int) []int {
	counts := make([]int, len(remotes))
	perHostUsed := map[string]int{}
	hosts := make([]string, len(remotes))
	for i, r := range remotes {
		if u, err := url.Parse(r.FinalURL); err == nil {
			hosts[i] = u.Hostname()
		}
	}
	for given := 0; given < total; {
		progress := false
		for i := range remotes {
			if given == total {
				break
			}
			if perHostUsed[hosts[i]] >= perHost {
				continue
			}
			counts[i]++
			perHostUsed[hosts[i]]++
			given++
			progress = true
		}
		if !progress {
			break
		}
	}
	return counts
}

// Blame checks are bounded: at most blameRanges recorded ranges, each
// sampled at its start, middle and end, blameSample bytes a place, within
// blameTimeout.
const (
	blameRanges  = 64
	blameSample  = 16 << 10
	blameTimeout = 30 * time.Second
)

// blame explains a file that failed its checksum: which servers sent it,
// and which ranges the other servers contradict now, sampled at a few
// places. A range whose bytes on disk differ from what two or more other
// servers send, none agreeing, is suspect; with only one other server to
// ask, a difference is reported as disputed, since either may be wrong.
func (d *download) blame(ctx context.Context, primary segment.Remote, prov *provenance, part *merge.PartFile) string {
	msg := "the file came from " + prov.summary()
	ctx, cancel := context.WithTimeout(ctx, blameTimeout)
	defer cancel()
	remotes := map[string]segment.Remote{}
	for _, r := range d.servers(primary) {
		remotes[redact.URL(r.URL)] = r
	}
	fetchers := map[string]*segment.Fetcher{}
	var suspect, disputed []string
	for i, s := range prov.snapshot() {
		if i == blameRanges || ctx.Err() != nil {
			break
		}
		var others []*segment.Fetcher
		for u, r := range remotes {
			if u == s.URL {
				continue
			}
			if fetchers[u] == nil {
				fetchers[u] = d.newFetcher(r)
			}
			others = append(others, fetchers[u])
		}
		off, against := contradicted(ctx, s, others, part)
		what := fmt.Sprintf("bytes %d-%d from %s (other bytes at offset %d)", s.Start, s.End-1, s.URL, off)
		switch {
		case against >= 2:
			suspect = append(suspect, what)
		case against == 1:
			disputed = append(disputed, what)
		}
	}
	switch {
	case len(suspect) > 0:
		msg += "; suspect: " + strings.Join(suspect, "; ")
	case len(disputed) > 0:
		msg += "; disputed by the other server: " + strings.Join(disputed, "; ")
	default:
		msg += "; sampling found no server to blame"
	}
	return msg
}

// contradicted samples s at its start, middle and end, and returns the
// first place where the bytes on disk differ from what every one of others
// that answered sends, with how many answered there; 0 when none
// contradicts it.
func contradicted(ctx context.Context, s manifest.Served, others []*segment.Fetcher, part *merge.PartFile) (at int64, against int) {
	n := min(s.End-s.Start, blameSample)
	disk := make([]byte, n)
	for _, off := range []int64{s.Start, s.Start + (s.End-s.Start)/2 - n/2, s.End - n} {
		if _, err := part.ReadAt(disk, off); err != nil {
			return 0, 0
		}
		answered, agreed := 0, false
		for _, f := range others {
			got, err := f.Sample(ctx, off, n)
			if err != nil {
				continue
			}
			answered++
			if bytes.Equal(got, disk) {
				agreed = true
				break
			}
		}
		if answered > 0 && !agreed {
			return off, answered
		}
	}
	return 0, 0
}

// mirrorProbeTries bounds the tries of a mirror's probe: a mirror that does
// not answer soon is not waited for.
func mirrorProbeTries(maxTries int) int {
	if maxTries > 0 {
		return min(maxTries, 3)
	}
	return 3
}

// vetting is the state of a download whose mirrors are compared with the
// primary while it runs (see runVetted). Safe for concurrent use.
type vetting struct {
	mu     sync.Mutex
	trial  map[string]bool  // redacted URLs of the servers on trial, or dropped
	agreed []segment.Remote // mirrors that passed, in the order they did
	prov   *provenance
}

// onTrial marks server u as on trial: its bytes are withheld (withheld).
func (v *vetting) onTrial(u string) {
	v.mu.Lock()
	v.trial[u] = true
	v.mu.Unlock()
}

// restart begins another round of comparisons: every mirror is compared
// again.
func (v *vetting) restart() {
	v.mu.Lock()
	v.agreed = nil
	v.mu.Unlock()
}

// passed ends mirror r's trial: its bytes count.
func (v *vetting) passed(r segment.Remote) {
	v.mu.Lock()
	delete(v.trial, redact.URL(r.URL))
	v.agreed = append(v.agreed, r)
	v.mu.Unlock()
}

// withheld returns the ranges that servers on trial (or dropped) wrote,
// in file order. Call it after taking the snapshot it is to trim: the
// provenance records a write before the plan counts it.
func (v *vetting) withheld() []manifest.Served {
	if v == nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.trial) == 0 {
		return nil
	}
	var out []manifest.Served
	for _, s := range v.prov.snapshot() {
		if v.trial[s.URL] {
			out = append(out, s)
		}
	}
	return out
}

// trusted trims segs, a snapshot of the plan, so that it claims no byte
// in withheld: a segment's written prefix ends before the first such byte.
func trusted(segs []segment.Segment, withheld []manifest.Served) []segment.Segment {
	if len(withheld) == 0 {
		return segs
	}
	out := make([]segment.Segment, len(segs))
	for i, s := range segs {
		for _, w := range withheld {
			if w.End > s.Start && w.Start < s.Start+s.Written {
				s.Written = max(0, min(s.Written, w.Start-s.Start))
			}
		}
		out[i] = s
	}
	return out
}

// runVetted fetches plan from the primary and the mirrors, comparing each
// mirror with the primary while the download runs. The primary starts as
// soon as its samples are in (bounded in time: see sampleWindow), and each
// mirror as soon as its answer shows the same size and real ranges and its
// own samples are in: a slow server holds no other back. A mirror is on
// trial until its samples are compared with the primary's: it sends bytes,
// but no manifest claims them and no hash follows them; one that fails is
// dropped at once and every byte it wrote is fetched again from the others
// before the run ends. The run ends once the plan is done and every
// mirror has passed or failed, so the file never holds a byte from a
// server that disagreed. cp learns each mirror that passes, for the
// manifest's sources; a server much slower than the others is named.
func (d *download) runVetted(ctx context.Context, primary segment.Remote, pf *segment.Fetcher, plan *segment.Plan,
	w io.WriterAt, cp *checkpointer, v *vetting, onWrite func(segment.Remote) func(off, n int64)) error {
	remotes := []segment.Remote{primary}
	for _, u := range d.cfg.Mirrors {
		remotes = append(remotes, segment.Remote{URL: u, FinalURL: u})
	}
	counts := d.shareConnections(remotes)
	speeds := newSpeeds(len(remotes))
	v.restart()
	// Server k is source k of the run: 0 the primary, k the k-th mirror.
	run := segment.StartSources(ctx, plan, w, nil, func(k int, err error) {
		if !d.pieces.dropped(k, err) {
			return // told already
		}
		if errors.As(err, new(disagreement)) {
			d.dropMirror(remotes[k].URL, err.Error())
			return
		}
		d.cfg.Logf("dropping %s: %v", redact.URL(remotes[k].URL), redact.Text(err.Error()))
		d.emit(Event{Type: "mirror-dropped", Mirror: redact.URL(remotes[k].URL), Error: redact.Text(err.Error())})
	})
	// join adds server k, fetched by f, to the run; it reports false when
	// the run has ended.
	join := func(k int, r segment.Remote, f *segment.Fetcher) bool {
		f.OnWrite = speeds.counting(k, f.OnWrite)
		src := d.source(f, counts[k])
		src.Stop = d.pieces.stop(k) // ends when its pieces get it dropped
		if !run.Add(k, src) {
			return false
		}
		speeds.joined(k, redact.URL(r.URL))
		return true
	}
	rctx := run.Context()
	want := d.primarySamples(rctx, primary)
	var wg sync.WaitGroup
	wg.Go(func() {
		// The primary's own connections start after its samples, which
		// they would otherwise compete with for its connections.
		ref, err := want.get()
		speeds.sampled(0, ref)
		if err != nil && rctx.Err() == nil {
			d.cfg.Logf("cannot sample %s to compare mirrors (%s): ignoring the mirrors", redact.URL(primary.URL), redact.Text(err.Error()))
		}
		join(0, primary, pf)
	})
	for k, u := range d.cfg.Mirrors {
		if counts[k+1] == 0 {
			continue // none left for it, or dropped in an earlier round
		}
		wg.Go(func() {
			r, why := d.probeMirror(rctx, u, primary)
			var got [][]byte
			if why == "" {
				var err error
				got, err = d.samples(rctx, r, want.places)
				speeds.sampled(k+1, got)
				if err != nil {
					why = "sampling it failed: " + redact.Text(err.Error())
				}
			}
			if why != "" {
				if rctx.Err() == nil {
					d.dropMirror(u, why)
				}
				return
			}
			f := d.newFetcher(r)
			f.OnWrite, f.Record = onWrite(r), v.prov.recorder(r)
			f.RegionSize, f.OnRegion, f.Budget = pf.RegionSize, pf.OnRegion, pf.Budget
			if d.cfg.MaxTries == 0 {
				// A mirror that keeps failing is dropped while others
				// work; the primary waits an outage out.
				f.MaxTries = defaultMaxTries
			}
			v.onTrial(redact.URL(r.URL))
			if !join(k+1, r, f) {
				return
			}
			if why := compareSamples(got, want); why != "" {
				run.Drop(k+1, disagreement(why))
				if n := d.takeBack(plan, v, redact.URL(r.URL)); n > 0 {
					d.cfg.Logf("fetching again the %s that %s sent before its comparison", units.FormatBytes(n), redact.URL(r.URL))
				}
				return
			}
			v.passed(r)
			cp.addSource(r)
		})
	}
	wg.Wait()
	run.Close()
	err := run.Wait()
	if errors.Is(err, errBadServer) && d.pieces.failed() == nil {
		// Its pieces got the last server of this round dropped, and others
		// are left: the next round gives them its connections.
		err = nil
	}
	d.mirrors = v.agreed
	if err == nil {
		speeds.report(d)
	}
	return err
}

// disagreement is why a mirror on trial failed its comparison.
type disagreement string

func (e disagreement) Error() string { return string(e) }

// takeBack gives back to plan every byte server u wrote, and returns how
// many.
func (d *download) takeBack(plan *segment.Plan, v *vetting, u string) int64 {
	var n int64
	for _, s := range v.prov.snapshot() {
		if s.URL == u {
			n += plan.Reopen(s.Start, s.End)
		}
	}
	return n
}

// shareConnections is how many connections each of remotes may use: the
// fixed count or the ceiling, shared round robin, at most -x to one host
// (the ceiling when adaptive without -x).
func (d *download) shareConnections(remotes []segment.Remote) []int {
	perHost := d.cfg.MaxPerHost
	if perHost == 0 { // adaptive, no -x: the ceiling alone bounds a host
		perHost = d.cfg.MaxConnections
	}
	counts := d.pieces.share(remotes, func(rs []segment.Remote) []int { return assignConnections(rs, d.mostConnections(), perHost) })
	if used := sumOf(counts); used < d.mostConnections() && !d.adaptive() {
		d.cfg.Logf("using %d of %d connections: at most %d to one host name with mirrors (-x, --max-per-host)", used, d.cfg.Connections, d.cfg.MaxPerHost)
	}
	return counts
}

// source is the segment.Source of f with its share of connections: all of
// them at once with a fixed count, a few at first when the count adapts.
// Without -x, the adaptive servers share the ceiling as they go (see
// segment.Source.Ceiling) rather than split it once: each starts within
// its share, and may grow past it into connections the others leave.
func (d *download) source(f *segment.Fetcher, share int) segment.Source {
	if !d.adaptive() || share == 0 {
		return segment.Source{Fetcher: f, Connections: share}
	}
	src := segment.Source{Fetcher: f, Connections: min(segment.StartConnections, share), Max: share}
	if d.cfg.MaxPerHost == 0 {
		src.Max, src.Ceiling = d.mostConnections(), d.mostConnections()
	}
	return src
}

// A server is named slow when it sent at slowBy times less than the
// fastest, in a run of at least slowAfter.
const (
	slowBy    = 5
	slowAfter = 500 * time.Millisecond
)

// speeds counts the bytes each server of a run sent, samples included,
// since the run began, to name at the end a server much slower than the
// others. Safe for concurrent use.
type speeds struct {
	start  time.Time
	mu     sync.Mutex
	urls   []string // of the servers that joined the run; "" for the others
	counts []atomic.Int64
}

func newSpeeds(n int) *speeds {
	return &speeds{start: time.Now(), urls: make([]string, n), counts: make([]atomic.Int64, n)}
}

// counting returns next (which may be nil), extended to count server i's
// bytes.
func (s *speeds) counting(i int, next func(off, n int64)) func(off, n int64) {
	return func(off, n int64) {
		s.counts[i].Add(n)
		if next != nil {
			next(off, n)
		}
	}
}

// sampled counts the bytes of server i's samples.
func (s *speeds) sampled(i int, samples [][]byte) {
	for _, b := range samples {
		s.counts[i].Add(int64(len(b)))
	}
}

// joined records that server i, at address u, joined the run.
func (s *speeds) joined(i int, u string) {
	s.mu.Lock()
	s.urls[i] = u
	s.mu.Unlock()
}

// report names, in a notice and a slow-server event, each server of the
// run that was much slower than the fastest.
func (s *speeds) report(d *download) {
	took := time.Since(s.start)
	if took < slowAfter {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fastest := -1
	for i, u := range s.urls {
		if u != "" && (fastest < 0 || s.counts[i].Load() > s.counts[fastest].Load()) {
			fastest = i
		}
	}
	if fastest < 0 {
		return
	}
	rate := func(i int) float64 { return float64(s.counts[i].Load()) / took.Seconds() }
	for i, u := range s.urls {
		if u == "" || rate(i)*slowBy >= rate(fastest) {
			continue
		}
		d.cfg.Logf("%s was slow: %s/s, against %s/s from %s; it sent %s", u,
			units.FormatBytes(int64(rate(i))), units.FormatBytes(int64(rate(fastest))), s.urls[fastest], units.FormatBytes(s.counts[i].Load()))
		d.emit(Event{Type: "slow-server", Mirror: u, Rate: rate(i)})
	}
}
