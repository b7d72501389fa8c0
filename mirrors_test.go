package convoy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// notices collects Logf lines.
type notices struct {
	mu    sync.Mutex
	lines []string
}

func (n *notices) logf(f string, a ...any) {
	n.mu.Lock()
	n.lines = append(n.lines, fmt.Sprintf(f, a...))
	n.mu.Unlock()
}

func (n *notices) has(sub string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.ContainsFunc(n.lines, func(l string) bool { return strings.Contains(l, sub) })
}

func TestMirrorsShareTheDownload(t *testing.T) {
	const size = 8 << 20
	opts := []testserver.Option{testserver.Size(size), testserver.Rate(2 << 20)}
	primary := testserver.New(t, opts...)
	m1 := testserver.New(t, opts...)
	m2 := testserver.New(t, opts...)
	dir := t.TempDir()
	cfg := fastConfig(primary.URL, dir)
	cfg.Mirrors = []string{m1.URL, m2.URL}
	cfg.Connections, cfg.MaxPerHost = 6, 6 // all three are 127.0.0.1
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	primary.Verify(t, filepath.Join(dir, "out.bin"))
	if res.Connections != 6 {
		t.Errorf("%d connections used, want 6", res.Connections)
	}
	for i, s := range []*testserver.Server{primary, m1, m2} {
		// Beyond the probe and the samples, each served ranges of the file.
		if st := s.Stats(); st.BodyBytes < size/8 {
			t.Errorf("server %d sent only %d bytes", i, st.BodyBytes)
		}
	}
}

func TestMirrorDisagreementsAreDropped(t *testing.T) {
	const size = 4 << 20
	tests := []struct {
		name string
		opts []testserver.Option
		says string
	}{
		{"other-size", []testserver.Option{testserver.Size(size + 1)}, "serves"},
		{"other-bytes", []testserver.Option{testserver.Size(size), testserver.Seed(99)}, "differ"},
		{"no-ranges", []testserver.Option{testserver.Size(size), testserver.NoRanges()}, "ranges"},
		{"missing", []testserver.Option{testserver.Statuses(404, 404, 404)}, "404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			primary := testserver.New(t, testserver.Size(size))
			bad := testserver.New(t, tt.opts...)
			dir := t.TempDir()
			cfg := fastConfig(primary.URL, dir)
			cfg.Mirrors = []string{bad.URL}
			var n notices
			cfg.Logf = n.logf
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			primary.Verify(t, filepath.Join(dir, "out.bin"))
			if !n.has("dropping mirror") || !n.has(tt.says) {
				t.Errorf("notices %q do not say the mirror was dropped for %q", n.lines, tt.says)
			}
			// A mirror that answers with the file's size and ranges sends
			// bytes while it is compared; when the comparison fails, they
			// are fetched again from the others (Verify above). The others
			// are asked for no more than the probe's byte.
			st := bad.Stats()
			if tt.name != "other-bytes" && st.RangeGets > 1 {
				t.Errorf("the dropped mirror got %d range requests", st.RangeGets)
			}
			// Bytes it sent past its samples were written, and fetched again,
			// unless its answers were cut in flight (up to 256 KiB here).
			if tt.name == "other-bytes" && st.BodyBytes > 3*(64<<10)+1+256<<10 && !n.has("fetching again") {
				t.Errorf("the dropped mirror sent %d bytes, and no notice says they were fetched again: %q", st.BodyBytes, n.lines)
			}
		})
	}
}

// The per-host cap counts host names: servers that share one get no more
// connections together than the cap.
func TestMaxPerHost(t *testing.T) {
	primary := testserver.New(t, testserver.Size(4<<20))
	mirror := testserver.New(t, testserver.Size(4<<20))
	dir := t.TempDir()
	cfg := fastConfig(primary.URL, dir)
	cfg.Mirrors = []string{mirror.URL}
	cfg.Connections, cfg.MaxPerHost = 8, 3
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Connections != 3 {
		t.Errorf("%d connections to one host, cap 3", res.Connections)
	}
	primary.Verify(t, filepath.Join(dir, "out.bin"))
}

// faultAfterSent makes s answer with the fault opts once it has sent at
// least n body bytes, by its own count: the first request for the file
// that arrives after that meets the fault, and so does every later one. It
// returns the count of bytes s had sent when the fault began, 0 until then.
func faultAfterSent(s *testserver.Server, n int64, opts ...testserver.Option) *atomic.Int64 {
	var at atomic.Int64
	var once sync.Once
	path := s.FilePath()
	s.SetOption(testserver.OnRequest(func(r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != path {
			return
		}
		if sent := s.Stats().BodyBytes; sent >= n {
			once.Do(func() {
				s.SetOption(opts...)
				at.Store(sent)
			})
		}
	}))
	return &at
}

// midDownload is how much a server must have sent before its fault: far
// more than the probe and the three samples that compare mirrors (under
// 200 KiB), so the fault meets a mirror that was serving the download.
const midDownload = 1 << 20

// A mirror that starts failing mid-download is dropped; the others finish.
func TestMirrorFailingMidDownload(t *testing.T) {
	// One connection each, 4 MiB requests: the mirror's second request, after
	// it sent its first 4 MiB, meets the refusal.
	const size = 16 << 20
	opts := []testserver.Option{testserver.Size(size), testserver.Rate(4 << 20)}
	primary := testserver.New(t, opts...)
	flaky := testserver.New(t, opts...)
	faultAt := faultAfterSent(flaky, midDownload, testserver.Statuses(403, 403, 403, 403, 403, 403, 403, 403), testserver.CutAfter(0, -1))
	dir := t.TempDir()
	cfg := fastConfig(primary.URL, dir)
	cfg.Mirrors = []string{flaky.URL}
	cfg.Connections = 2
	var n notices
	cfg.Logf = n.logf
	var mu sync.Mutex
	var dropped []string
	cfg.OnEvent = func(e convoy.Event) {
		if e.Type == "mirror-dropped" {
			mu.Lock()
			dropped = append(dropped, e.Mirror)
			mu.Unlock()
		}
	}
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	primary.Verify(t, filepath.Join(dir, "out.bin"))
	if at := faultAt.Load(); at < midDownload {
		t.Fatalf("the mirror's fault began after %d bytes sent, want at least %d: it never failed mid-download", at, midDownload)
	}
	if got := flaky.Stats().Statuses[http.StatusForbidden]; got < 1 {
		t.Errorf("the mirror answered 403 %d times: its fault was never met", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !n.has("dropping") || !slices.Equal(dropped, []string{flaky.URL}) {
		t.Errorf("notices %q, dropped %q: want the failing mirror dropped", n.lines, dropped)
	}
}

// When every source fails, the download fails.
func TestAllSourcesFailing(t *testing.T) {
	// One connection each, 4 MiB requests: each server's second request,
	// after it sent its first 4 MiB, meets the 410.
	opts := []testserver.Option{testserver.Size(16 << 20), testserver.Rate(4 << 20)}
	primary := testserver.New(t, opts...)
	mirror := testserver.New(t, opts...)
	var faults []*atomic.Int64
	for _, s := range []*testserver.Server{primary, mirror} {
		faults = append(faults, faultAfterSent(s, midDownload, testserver.Statuses(410, 410, 410, 410, 410, 410, 410, 410), testserver.CutAfter(0, -1)))
	}
	cfg := fastConfig(primary.URL, t.TempDir())
	cfg.Mirrors = []string{mirror.URL}
	cfg.Connections = 2
	_, err := convoy.Download(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "410") {
		t.Fatalf("error %v, want the 410", err)
	}
	for i, s := range []*testserver.Server{primary, mirror} {
		if at := faults[i].Load(); at < midDownload {
			t.Errorf("server %d's fault began after %d bytes sent, want at least %d", i, at, midDownload)
		}
		if got := s.Stats().Statuses[http.StatusGone]; got < 1 {
			t.Errorf("server %d answered 410 %d times: its fault was never met", i, got)
		}
	}
}

// A busy mirror (503 with Retry-After) loses connections instead of being
// hammered; the download finishes from the others.
func TestBusyMirrorIsNotHammered(t *testing.T) {
	const size = 8 << 20
	primary := testserver.New(t, testserver.Size(size), testserver.Rate(4<<20))
	var busy *testserver.Server
	var mu sync.Mutex
	ranged := 0
	busy = testserver.New(t, testserver.Size(size), testserver.OnRequest(func(r *http.Request) {
		if r.Method != http.MethodGet || r.Header.Get("Range") == "" {
			return
		}
		mu.Lock()
		ranged++
		n := ranged
		mu.Unlock()
		if n == 5 { // after the probe and the three samples, this and every later answer is 503
			codes := make([]int, 100)
			for i := range codes {
				codes[i] = 503
			}
			busy.SetOption(testserver.Statuses(codes...), testserver.RetryAfter("1"))
		}
	}))
	dir := t.TempDir()
	cfg := fastConfig(primary.URL, dir)
	cfg.Mirrors = []string{busy.URL}
	cfg.Connections, cfg.MaxPerHost, cfg.MaxTries = 8, 8, 3
	var n notices
	cfg.Logf = n.logf
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	primary.Verify(t, filepath.Join(dir, "out.bin"))
	if n.has("dropping mirror") {
		t.Fatalf("the mirror was dropped before the download (%q): shedding was not exercised", n.lines)
	}
	// 4 connections went to the mirror: 3 shed at their first 503, the last
	// one tries MaxTries times at most.
	if n := busy.Stats().Statuses[503]; n < 1 || n > 3+3 {
		t.Errorf("the busy mirror answered 503 %d times, want 1 to 6", n)
	}
}

// A mirror that serves damaged bytes away from the sampled places gets past
// the comparison; the checksum catches the file, and the error names that
// mirror, not the good ones. The manifest kept for the part file says which
// server sent which bytes.
func TestChecksumMismatchNamesTheBadMirror(t *testing.T) {
	const size = 4 << 20
	const sample, mid = 64 << 10, size / 2
	opts := []testserver.Option{testserver.Size(size), testserver.Rate(1 << 20)}
	primary := testserver.New(t, opts...)
	good := testserver.New(t, opts...)
	bad := testserver.New(t, append(opts, testserver.Corrupt(sample, mid-sample/2), testserver.Corrupt(mid+sample/2, size-sample))...)
	dir := t.TempDir()
	cfg := fastConfig(primary.URL, dir)
	cfg.Mirrors = []string{good.URL, bad.URL}
	cfg.Connections, cfg.MaxPerHost = 6, 6
	cfg.Checksum = "sha256:" + sums(primary.Content())["sha256"]
	_, err := convoy.Download(context.Background(), cfg)
	if !errors.Is(err, merge.ErrChecksum) {
		t.Fatalf("error %v, want a checksum mismatch", err)
	}
	msg := err.Error()
	_, suspects, ok := strings.Cut(msg, "suspect: ")
	if !ok || !strings.Contains(suspects, bad.URL) {
		t.Fatalf("error %q does not name the bad mirror %s as suspect", msg, bad.URL)
	}
	t.Log(msg)
	for _, u := range []string{primary.URL, good.URL} {
		if strings.Contains(suspects, "from "+u+" ") {
			t.Errorf("error %q blames the good server %s", msg, u)
		}
	}
	m, err := manifest.Load(filepath.Join(dir, "out.bin"+convoy.ManifestSuffix))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	from := map[string]int64{}
	for _, s := range m.ServedBy {
		total += s.End - s.Start
		from[s.URL] += s.End - s.Start
	}
	if total != size || len(from) != 3 {
		t.Fatalf("served_by accounts for %d of %d bytes from %d servers: %+v", total, size, len(from), m.ServedBy)
	}
}

// A mirror's signed address that expires mid-download is resolved again
// from the address the user gave, and the mirror stays; one that keeps
// refusing after that is dropped, and the others finish the file.
func TestMirrorExpiredSignedURL(t *testing.T) {
	for _, refuseAgain := range []bool{false, true} {
		t.Run(fmt.Sprintf("refuse-again=%v", refuseAgain), func(t *testing.T) {
			// Four connections, 8 MiB each, asked for 4 MiB at a time: the
			// mirror's second requests meet the expired address.
			const size = 32 << 20
			primary := testserver.New(t, testserver.Size(size), testserver.Rate(8<<20))
			h := testserver.NewHandler(testserver.Size(size), testserver.Rate(8<<20))
			mirror := newSignedServer(t, h)
			dir := t.TempDir()
			cfg := fastConfig(primary.URL, dir)
			cfg.Mirrors = []string{mirror.URL}
			cfg.Connections, cfg.MaxPerHost = 4, 4
			cfg.ProgressInterval = 20 * time.Millisecond
			var dropped []string
			var mu sync.Mutex
			cfg.OnEvent = func(e convoy.Event) {
				if e.Type == "mirror-dropped" {
					mu.Lock()
					dropped = append(dropped, e.Mirror)
					mu.Unlock()
				}
			}
			var once sync.Once
			issuedAtExpiry := 0
			cfg.OnProgress = func(p convoy.Progress) {
				if p.Done > 2<<20 {
					once.Do(func() {
						mirror.mu.Lock()
						issuedAtExpiry = mirror.issued
						mirror.refuseAll = refuseAgain
						mirror.mu.Unlock()
						mirror.expire()
					})
				}
			}
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			primary.Verify(t, filepath.Join(dir, "out.bin"))
			mirror.mu.Lock()
			issued := mirror.issued
			mirror.mu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			if issuedAtExpiry == 0 || issued <= issuedAtExpiry {
				t.Errorf("the mirror's address was issued %d times, %d before it expired: not resolved again", issued, issuedAtExpiry)
			}
			if wantDrop := refuseAgain; (len(dropped) == 1) != wantDrop || (wantDrop && dropped[0] != mirror.URL) {
				t.Errorf("dropped %q, want the mirror dropped: %v", dropped, wantDrop)
			}
		})
	}
}

// A slow mirror does not hold the tail: once the fast one has finished its
// own range, it cuts the slow answer where both end together, so the slow
// mirror sends a small part of its half, and the cut is reported.
func TestFasterMirrorTakesTheTail(t *testing.T) {
	const size = 4 << 20
	slow := testserver.New(t, testserver.Size(size), testserver.Rate(256<<10))
	fast := testserver.New(t, testserver.Size(size), testserver.Rate(4<<20))
	dir := t.TempDir()
	cfg := fastConfig(slow.URL, dir)
	cfg.Mirrors = []string{fast.URL}
	cfg.Connections, cfg.MaxPerHost = 2, 2 // one each: both are 127.0.0.1
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	slow.Verify(t, filepath.Join(dir, "out.bin"))
	if res.Cuts < 1 {
		t.Errorf("Result.Cuts = %d, want the slow answer cut", res.Cuts)
	}
	// Holding its range to the end, it would send half the file; it sends
	// its samples (3 x 64 KiB), what came before the fast one was idle, and
	// the sixteenth of the rest it keeps (a sixteenth of the speed). Where
	// the plan cuts is tested in segment.
	if sent := slow.Stats().BodyBytes; sent > size/4 {
		t.Errorf("the slow mirror sent %d of %d bytes: it held the tail", sent, size)
	}
}

// A first URL that fails before the download begins (a 404, a closed port)
// gives way to the next URL that answers; only when every URL fails does the
// download, with the first URL's error.
func TestDeadFirstURLGivesWayToAMirror(t *testing.T) {
	good := testserver.New(t, testserver.Size(1<<20))
	missing := func() string { return testserver.New(t, testserver.Statuses(404, 404, 404)).URL }
	closed := testserver.New(t)
	closedURL := closed.URL
	closed.Close()
	for _, tt := range []struct {
		name  string
		first string
	}{
		{"404", missing()},
		{"closed port", closedURL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := fastConfig(tt.first, dir)
			cfg.Mirrors = []string{closedURL, good.URL}
			var n notices
			cfg.Logf = n.logf
			var dropped []string
			cfg.OnEvent = func(e convoy.Event) {
				if e.Type == "mirror-dropped" {
					dropped = append(dropped, e.Mirror)
				}
			}
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			good.Verify(t, filepath.Join(dir, "out.bin"))
			if !n.has("trying") || len(dropped) != 2 {
				t.Errorf("notices %q and dropped %q: want each failed URL named", n.lines, dropped)
			}
		})
	}
	t.Run("all fail", func(t *testing.T) {
		cfg := fastConfig(missing(), t.TempDir())
		cfg.Mirrors = []string{closedURL}
		_, err := convoy.Download(context.Background(), cfg)
		var se *segment.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusNotFound || !strings.Contains(err.Error(), "every mirror failed") {
			t.Fatalf("error %v, want the first URL's 404, saying the mirrors failed too", err)
		}
	})
}

// Mirrors on one host name share its -x connections; when that leaves some
// of -n unused, a notice says so.
func TestPerHostCapIsNamed(t *testing.T) {
	opts := []testserver.Option{testserver.Size(2 << 20)}
	a, b := testserver.New(t, opts...), testserver.New(t, opts...)
	dir := t.TempDir()
	cfg := fastConfig(a.URL, dir)
	cfg.Mirrors = []string{b.URL}
	cfg.Connections, cfg.MaxPerHost = 8, 3 // both are 127.0.0.1
	var n notices
	cfg.Logf = n.logf
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Verify(t, filepath.Join(dir, "out.bin"))
	if res.Connections > 3 || !n.has("using 3 of 8 connections") {
		t.Errorf("%d connections, notices %q: want 3 and a notice naming the cap", res.Connections, n.lines)
	}
}

// Without -o the output is named after the first URL given, even when
// another answered for it: a resume whose first URL is down then finds the
// same part file.
func TestFailoverKeepsTheFirstURLsName(t *testing.T) {
	good := testserver.New(t, testserver.Size(256<<10), testserver.Path("/mirror-copy.bin"))
	closed := testserver.New(t)
	closedURL := strings.TrimSuffix(closed.URL, closed.FilePath()) + "/distro.iso"
	closed.Close()
	dir := t.TempDir()
	cfg := fastConfig(closedURL, dir)
	cfg.Output = ""
	cfg.Mirrors = []string{good.URL}
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	good.Verify(t, filepath.Join(dir, "distro.iso"))
	onlyOutput(t, dir, "distro.iso")
}

// A restart after the file changed compares the mirrors with the new
// version: a mirror that agreed with the old one, dropped for a passing
// fault before the change and healthy again after it, still serves the old
// bytes and must not send one of them into the new version's file.
func TestRestartComparesTheMirrorsAgain(t *testing.T) {
	const size = 4 << 20
	// Probe and three samples, two ranges of the old version; the file
	// changes for the next request, after the mirror was dropped.
	primary := testserver.New(t, testserver.Size(size), testserver.Rate(4<<20), testserver.ChangeAfter(6))
	stale := testserver.New(t, testserver.Size(size))
	dir := t.TempDir()
	cfg := fastConfig(primary.URL, dir)
	cfg.Mirrors = []string{stale.URL}
	cfg.MaxPerHost = 4
	var n notices
	cfg.Logf = n.logf
	starts := 0
	cfg.OnEvent = func(e convoy.Event) {
		switch {
		case e.Type == "start" && starts == 0:
			starts++
			stale.SetOption(testserver.Statuses(slices.Repeat([]int{http.StatusNotFound}, 100)...))
		case e.Type == "restart":
			stale.SetOption(testserver.Statuses())
		}
	}
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Restarts != 1 {
		t.Fatalf("%d restarts, want 1 (notices %q)", res.Restarts, n.lines)
	}
	primary.Verify(t, filepath.Join(dir, "out.bin")) // the new version only
	if !n.has("dropping mirror") {
		t.Errorf("notices %q: want the stale mirror dropped after the restart", n.lines)
	}
}

// A restart probes the URLs as the first probe does: when the primary is
// gone, the next URL that answers with the new version takes its place.
func TestRestartGivesWayToAMirror(t *testing.T) {
	const size = 2 << 20
	primary := testserver.New(t, testserver.Size(size), testserver.Rate(4<<20), testserver.ChangeAfter(4))
	// The mirror serves what the primary will change to, so it disagrees at
	// first and agrees after the change.
	next := testserver.New(t, testserver.Size(size), testserver.Seed(2))
	var gone atomic.Bool
	primary.SetOption(testserver.OnRequest(func(r *http.Request) {
		if gone.Load() {
			panic(http.ErrAbortHandler)
		}
	}))
	dir := t.TempDir()
	cfg := fastConfig(primary.URL, dir)
	cfg.Mirrors = []string{next.URL}
	cfg.OnEvent = func(e convoy.Event) {
		if e.Type == "restart" {
			gone.Store(true)
		}
	}
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Restarts != 1 {
		t.Errorf("%d restarts, want 1", res.Restarts)
	}
	next.Verify(t, filepath.Join(dir, "out.bin"))
}
