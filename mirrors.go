package convoy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/internal/units"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// sampleSize is how many bytes are compared at each sampled place before a
// mirror is trusted.
const sampleSize = 64 << 10

// sampleTimeout bounds the comparison of one mirror.
const sampleTimeout = time.Minute

// mirrorsFor probes every mirror of cfg and keeps those that serve the same
// file as the primary: same size, real range support, and the same bytes at
// the start, the middle and the end. Each one dropped is named in a notice.
func (d *download) mirrorsFor(ctx context.Context, primary segment.Remote) []segment.Remote {
	if len(d.cfg.Mirrors) == 0 {
		return nil
	}
	if !primary.Ranges || primary.Size <= 0 {
		d.cfg.Logf("%s cannot serve ranges: ignoring the mirrors", redact.URL(primary.URL))
		return nil
	}
	places := samplePlaces(primary.Size)
	// The primary is sampled while the mirrors are probed and sampled.
	var want [][]byte
	var wantErr error
	wantReady := make(chan struct{})
	go func() {
		defer close(wantReady)
		want, wantErr = d.samples(ctx, primary, places)
	}()
	found := make([]*segment.Remote, len(d.cfg.Mirrors))
	var wg sync.WaitGroup
	for i, u := range d.cfg.Mirrors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, why := d.checkMirror(ctx, u, primary, places, func() ([][]byte, error) {
				<-wantReady
				return want, wantErr
			})
			if why != "" {
				d.cfg.Logf("dropping mirror %s: %s", redact.URL(u), why)
				d.emit(Event{Type: "mirror-dropped", Mirror: redact.URL(u), Error: why})
				return
			}
			found[i] = &r
		}()
	}
	wg.Wait()
	<-wantReady
	if wantErr != nil {
		d.cfg.Logf("cannot sample %s to compare mirrors (%v): ignoring the mirrors", redact.URL(primary.URL), wantErr)
		return nil
	}
	var out []segment.Remote
	for _, r := range found {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out
}

// checkMirror probes one mirror and compares its samples; it returns why
// the mirror cannot be used, or "".
func (d *download) checkMirror(ctx context.Context, u string, primary segment.Remote, places []int64, primarySamples func() ([][]byte, error)) (segment.Remote, string) {
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
	got, err := d.samples(ctx, r, places)
	if err != nil {
		return r, "sampling it failed: " + redact.Text(err.Error())
	}
	want, err := primarySamples()
	if err != nil {
		return r, "" // the primary could not be sampled: all mirrors are ignored
	}
	for i := range places {
		if !bytes.Equal(got[i], want[i]) {
			return r, fmt.Sprintf("its bytes at offset %d differ from the primary's", places[i])
		}
	}
	return r, d.checkPieces(ctx, r)
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

// samples fetches the sampled bytes of r.
func (d *download) samples(ctx context.Context, r segment.Remote, places []int64) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, sampleTimeout)
	defer cancel()
	f := d.newFetcher(r)
	out := make([][]byte, len(places))
	errs := make([]error, len(places))
	var wg sync.WaitGroup
	for i, off := range places {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = f.Sample(ctx, off, min(r.Size-off, sampleSize))
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
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
