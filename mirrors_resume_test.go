package convoy_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
)

// Mixed-mirror resume: the list of servers may change between two runs of one
// download. A resume is fine whenever the new primary still has the size and
// validators the manifest recorded; the bytes on disk must never end up as a
// mix of two versions of the file.

const (
	// mixedSize is the file of these tests: large enough that the sampling
	// of every server (3 x 64 KiB per server and run) stays small beside it.
	mixedSize = 8 << 20
	// mixedFirstRate throttles each answer of the first run, so that it is
	// interrupted midway with a wide margin (about a second at 4
	// connections) for a slow checkpoint to delay the cancellation;
	// mixedRate throttles the second run, just enough that every server
	// keeps a share.
	mixedFirstRate = 1 << 20
	mixedRate      = 4 << 20
	// mixedSamples is what comparing one server costs: start, middle and end,
	// 64 KiB each (mirrors.go, sampleSize), plus a probe byte.
	mixedSamples = 3*(64<<10) + 1
	// mixedSlack covers bytes received twice: an answer cut short when its
	// range was split on a loaded machine.
	mixedSlack = mixedSize / 8
	// mixedWaste covers bytes servers sent that never reached the file:
	// what was on the wire or in socket buffers when run 1 was interrupted.
	mixedWaste = mixedSize / 4
	// mixedTimeout bounds each run of Download.
	mixedTimeout = 8 * time.Second
)

// mixedEvents records the events of one Download.
type mixedEvents struct {
	mu     sync.Mutex
	events []convoy.Event
}

func (e *mixedEvents) add(ev convoy.Event) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

// dropped returns the URLs of the mirror-dropped events.
func (e *mixedEvents) dropped() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var urls []string
	for _, ev := range e.events {
		if ev.Type == "mirror-dropped" {
			urls = append(urls, ev.Mirror)
		}
	}
	return urls
}

// sentBy sums the body bytes the servers have sent so far.
func sentBy(servers ...*testserver.Server) int64 {
	var n int64
	for _, s := range servers {
		n += s.Stats().BodyBytes
	}
	return n
}

// newVersion2 starts a server of the same size whose content is another
// version of the file: other bytes, other ETag, Last-Modified an hour later.
// Every server it starts serves the same version 2, with equal validators.
func newVersion2(t *testing.T) *testserver.Server {
	t.Helper()
	s := testserver.New(t, testserver.Size(mixedSize), testserver.Rate(mixedRate))
	etag, lastMod := s.ETag(), s.LastModified()
	s.SetOption(testserver.Seed(2)) // a content change: new ETag and Last-Modified
	if s.ETag() == etag || s.LastModified() == lastMod {
		t.Fatalf("test setup: version 2 kept a validator (%s %s)", s.ETag(), s.LastModified())
	}
	return s
}

// mixedFirstRun downloads version 1 of the file from primary a with mirror b
// (started with bOpts too) into a fresh folder and interrupts it once half the file is on disk. It
// returns the servers (at the second run's rate), the Config of the run and
// the manifest the run left.
func mixedFirstRun(t *testing.T, bOpts ...testserver.Option) (a, b *testserver.Server, cfg convoy.Config, m *manifest.Manifest) {
	t.Helper()
	a = testserver.New(t, testserver.Size(mixedSize), testserver.Rate(mixedFirstRate))
	b = testserver.New(t, append([]testserver.Option{testserver.Size(mixedSize), testserver.Rate(mixedFirstRate)}, bOpts...)...)
	cfg = fastConfig(a.URL, t.TempDir())
	cfg.Mirrors = []string{b.URL}
	cfg.Connections, cfg.MaxPerHost = 4, 4 // every server is 127.0.0.1
	if err := interruptAfter(t, cfg, mixedSize/2); !errors.Is(err, convoy.ErrInterrupted) {
		t.Fatalf("first run: error %v, want ErrInterrupted", err)
	}
	m, err := manifest.Load(filepath.Join(cfg.Dir, "out.bin.convoy"))
	if err != nil {
		t.Fatalf("first run left no usable manifest: %v", err)
	}
	// The last checkpoint, taken as the run stopped, counts every byte
	// written, so at least the half that triggered the interrupt.
	if m.Done() < mixedSize/2 || m.Done() >= mixedSize {
		t.Fatalf("first run: manifest records %d of %d bytes, want an interrupt midway", m.Done(), int64(mixedSize))
	}
	if m.ETag != a.ETag() || m.LastModified != a.LastModified() {
		t.Fatalf("manifest validators %q %q, the primary sent %q %q", m.ETag, m.LastModified, a.ETag(), a.LastModified())
	}
	// The mirror really shared the first run: what is on disk came from two
	// servers.
	if sent := b.Stats().BodyBytes; sent < mixedSize/8 {
		t.Fatalf("first run: the mirror sent only %d bytes", sent)
	}
	a.SetOption(testserver.Rate(mixedRate))
	b.SetOption(testserver.Rate(mixedRate))
	return a, b, cfg, m
}

// checkResumed fails t unless the second run left only the file, byte for
// byte srv's, and kept every byte the manifest m of the first run recorded.
func checkResumed(t *testing.T, srv *testserver.Server, cfg convoy.Config, res convoy.Result, m *manifest.Manifest, n *notices) {
	t.Helper()
	srv.Verify(t, filepath.Join(cfg.Dir, "out.bin"))
	onlyOutput(t, cfg.Dir, "out.bin")
	if res.Resumed == 0 || res.Resumed != m.Done() {
		t.Errorf("second run resumed %d bytes, the manifest had %d (notices %q)", res.Resumed, m.Done(), n.lines)
	}
}

// mixedRun is the second run: cfg with another set of servers, recording
// events and notices.
func mixedRun(t *testing.T, cfg convoy.Config, primary string, mirrors ...string) (convoy.Result, *mixedEvents, *notices, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), mixedTimeout)
	defer cancel()
	cfg.URL, cfg.Mirrors = primary, mirrors
	ev, n := &mixedEvents{}, &notices{}
	cfg.OnEvent, cfg.Logf = ev.add, n.logf
	res, err := convoy.Download(ctx, cfg)
	return res, ev, n, err
}

// A download interrupted while a primary and a mirror shared it resumes
// from another set of servers that serve the same file (same bytes, size
// and validators): the bytes on disk are kept, only the rest is fetched, and
// the file is whole.
func TestMixedMirrorResumeWithOtherServers(t *testing.T) {
	tests := []struct {
		name string
		// set picks run 2's primary and mirrors from b (run 1's mirror)
		// and c (a server run 1 never saw).
		set func(b, c *testserver.Server) (string, []string)
	}{
		{"primary-C-mirror-B", func(b, c *testserver.Server) (string, []string) { return c.URL, []string{b.URL} }},
		{"primary-B-mirror-C", func(b, c *testserver.Server) (string, []string) { return b.URL, []string{c.URL} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, cfg, m := mixedFirstRun(t)
			c := testserver.New(t, testserver.Size(mixedSize), testserver.Rate(mixedRate))
			// Run 1's primary is gone: run 2 must need nothing from it.
			a.Close()
			aSent, bSent := a.Stats().BodyBytes, b.Stats().BodyBytes

			primary, mirrors := tt.set(b, c)
			res, ev, n, err := mixedRun(t, cfg, primary, mirrors...)
			if err != nil {
				t.Fatalf("second run: %v (notices %q)", err, n.lines)
			}
			checkResumed(t, c, cfg, res, m, n)
			if !n.has("resuming") {
				t.Errorf("no notice said the download resumed: %q", n.lines)
			}
			if d := ev.dropped(); len(d) > 0 {
				t.Errorf("servers of the same file were dropped: %q (notices %q)", d, n.lines)
			}
			// Over both runs the file was fetched about once: run 1 wrote
			// what its manifest records, run 2 the rest. A download that
			// started over would fetch the m.Done() >= size/2 bytes again.
			if missing := mixedSize - m.Done(); res.Fetched > missing+mixedSlack {
				t.Errorf("second run fetched %d bytes, %d were missing", res.Fetched, missing)
			}
			if got := a.Stats().BodyBytes; got != aSent {
				t.Errorf("run 1's primary, not in run 2's set, sent %d more bytes", got-aSent)
			}
			// Both servers of the new set shared the rest of the file, beyond
			// the probe and the samples.
			for name, sent := range map[string]int64{"B": b.Stats().BodyBytes - bSent, "C": c.Stats().BodyBytes} {
				if sent <= mixedSamples {
					t.Errorf("server %s sent only %d bytes in the second run", name, sent)
				}
			}
			// The servers' count agrees: the file crossed the wire about once.
			overhead := int64(4 * mixedSamples) // two servers compared per run
			total := sentBy(a, b, c)
			t.Logf("resumed %d, fetched %d, twice %d; servers sent %d over both runs", res.Resumed, res.Fetched, res.Twice, total)
			if total > mixedSize+overhead+mixedWaste {
				t.Errorf("both runs together fetched %d bytes for a %d-byte file (%d resumed)", total, int64(mixedSize), m.Done())
			}
		})
	}
}

// A resume whose new primary serves another version of the file (same size,
// other bytes, ETag and Last-Modified) must not splice the versions: a
// server the manifest does not know is compared with the bytes on disk and
// rejected, one it knows is rejected by its changed validators; the
// download starts over from zero and says so, and the file is wholly the
// primary's version.
func TestMixedMirrorResumeOtherVersionStartsOver(t *testing.T) {
	tests := []struct {
		name string
		// set starts run 2's servers from a and b, run 1's primary and
		// mirror (version 1): the file must end up as the primary's
		// content, and the mirrors in dropped must be dropped for serving
		// other bytes than the primary.
		set func(t *testing.T, a, b *testserver.Server) (primary *testserver.Server, mirrors, dropped []*testserver.Server)
	}{
		{"all-servers-version-2", func(t *testing.T, _, _ *testserver.Server) (*testserver.Server, []*testserver.Server, []*testserver.Server) {
			return newVersion2(t), []*testserver.Server{newVersion2(t)}, nil
		}},
		{"version-2-primary-old-mirror", func(t *testing.T, _, b *testserver.Server) (*testserver.Server, []*testserver.Server, []*testserver.Server) {
			return newVersion2(t), []*testserver.Server{b}, []*testserver.Server{b}
		}},
		{"same-primary-changed", func(t *testing.T, a, _ *testserver.Server) (*testserver.Server, []*testserver.Server, []*testserver.Server) {
			a.SetOption(testserver.Seed(2)) // a new version at the same address
			return a, nil, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, cfg, m := mixedFirstRun(t)
			primary, mirrors, dropped := tt.set(t, a, b)
			if primary.ETag() == m.ETag {
				t.Fatalf("test setup: the new primary has the manifest's ETag %s", m.ETag)
			}
			var urls, want []string
			for _, s := range mirrors {
				urls = append(urls, s.URL)
			}
			for _, s := range dropped {
				want = append(want, s.URL)
			}
			res, ev, n, err := mixedRun(t, cfg, primary.URL, urls...)
			if err != nil {
				t.Fatalf("second run: %v (notices %q)", err, n.lines)
			}
			t.Logf("manifest had %d; resumed %d, fetched %d", m.Done(), res.Resumed, res.Fetched)
			// Byte for byte the primary's version, with nothing left of the
			// part file run 1 wrote.
			primary.Verify(t, filepath.Join(cfg.Dir, "out.bin"))
			onlyOutput(t, cfg.Dir, "out.bin")
			if res.Resumed != 0 {
				t.Errorf("resumed %d bytes written for another version (ETag %s, now %s)", res.Resumed, m.ETag, primary.ETag())
			}
			if !n.has("cannot resume") || !n.has("starting over") {
				t.Errorf("no notice said the partial download was discarded: %q", n.lines)
			}
			if res.Fetched < mixedSize {
				t.Errorf("second run fetched %d bytes of a %d-byte file it could not resume", res.Fetched, int64(mixedSize))
			}
			if got := ev.dropped(); !slices.Equal(got, want) {
				t.Errorf("dropped mirrors %q, want %q (notices %q)", got, want, n.lines)
			}
		})
	}
}

// A resume where one mirror of the new set serves other bytes than the
// primary, at the same size, drops that mirror after sampling it and
// finishes from the others: the resumed bytes are kept and the file is
// whole. Its validators do not matter: one with the primary's very ETag and
// Last-Modified but other bytes is caught by the samples too.
func TestMixedMirrorResumeDropsDisagreeingMirror(t *testing.T) {
	tests := []struct {
		name string
		// bad starts the mirror that serves other bytes than primary;
		// sameValidators says it also sends the primary's ETag and
		// Last-Modified.
		bad            func(t *testing.T, primary *testserver.Server) *testserver.Server
		sameValidators bool
	}{
		{"other-version", func(t *testing.T, _ *testserver.Server) *testserver.Server { return newVersion2(t) }, false},
		{"same-validators-other-bytes", func(t *testing.T, p *testserver.Server) *testserver.Server {
			return testserver.New(t, testserver.Size(mixedSize), testserver.Rate(mixedRate),
				testserver.Seed(2), testserver.ETagValue(p.ETag()))
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, cfg, m := mixedFirstRun(t)
			c := testserver.New(t, testserver.Size(mixedSize), testserver.Rate(mixedRate))
			bad := tt.bad(t, c)
			if bad.Size() != c.Size() {
				t.Fatal("test setup: the bad mirror has another size")
			}
			if same := bad.ETag() == c.ETag() && bad.LastModified() == c.LastModified(); same != tt.sameValidators {
				t.Fatalf("test setup: validators %s %s, the primary's %s %s", bad.ETag(), bad.LastModified(), c.ETag(), c.LastModified())
			}
			a.Close()

			res, ev, n, err := mixedRun(t, cfg, c.URL, bad.URL, b.URL)
			if err != nil {
				t.Fatalf("second run: %v (notices %q)", err, n.lines)
			}
			t.Logf("resumed %d, fetched %d; the bad mirror sent %d bytes", res.Resumed, res.Fetched, bad.Stats().BodyBytes)
			checkResumed(t, c, cfg, res, m, n)
			if got := ev.dropped(); !slices.Equal(got, []string{bad.URL}) {
				t.Errorf("dropped mirrors %q, want only %s (notices %q)", got, bad.URL, n.lines)
			}
			if !n.has("differ") {
				t.Errorf("no notice said the mirror's bytes differ: %q", n.lines)
			}
			// The bad mirror sent bytes while it was compared: none of them
			// is in the file (checkResumed), and they were fetched again.
			sent := bad.Stats().BodyBytes
			if sent > mixedSamples && !n.has("fetching again") {
				t.Errorf("the dropped mirror sent %d bytes, and no notice says they were fetched again: %q", sent, n.lines)
			}
			if missing := mixedSize - m.Done(); res.Fetched > missing+mixedSlack+sent {
				t.Errorf("second run fetched %d bytes, %d were missing and the bad mirror sent %d", res.Fetched, missing, sent)
			}
		})
	}
}

// Servers of one file send validators of their own (nginx derives its ETag
// from the file's mtime on each mirror). A resume from run 1's mirror is
// checked against the validators that mirror sent, recorded in the
// manifest; a server the manifest does not know is trusted once its bytes
// agree with those on disk, whatever its ETag.
func TestMixedMirrorResumeAcrossValidators(t *testing.T) {
	tests := []struct {
		name string
		set  func(t *testing.T, b *testserver.Server) (primary *testserver.Server, mirrors []string)
		// sampled: the resume had to compare the primary's bytes with the
		// disk, since no recorded validators vouched for it.
		sampled bool
	}{
		{"run-1-mirror-as-primary", func(t *testing.T, b *testserver.Server) (*testserver.Server, []string) {
			return b, nil
		}, false},
		{"unknown-server-other-etag", func(t *testing.T, b *testserver.Server) (*testserver.Server, []string) {
			c := testserver.New(t, testserver.Size(mixedSize), testserver.Rate(mixedRate), testserver.ETagValue(`"elsewhere"`))
			return c, []string{b.URL}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, cfg, m := mixedFirstRun(t, testserver.ETagValue(`"mirror-b-own"`))
			if b.ETag() == a.ETag() {
				t.Fatal("test setup: the mirror has the primary's ETag")
			}
			a.Close()
			primary, mirrors := tt.set(t, b)
			res, _, n, err := mixedRun(t, cfg, primary.URL, mirrors...)
			if err != nil {
				t.Fatalf("second run: %v (notices %q)", err, n.lines)
			}
			checkResumed(t, primary, cfg, res, m, n)
			if !n.has("resuming") || n.has("starting over") {
				t.Errorf("notices %q do not say the download resumed, or say it started over", n.lines)
			}
			if sampled := n.has("has not used before"); sampled != tt.sampled {
				t.Errorf("primary compared with the disk: %v, want %v (notices %q)", sampled, tt.sampled, n.lines)
			}
			if missing := mixedSize - m.Done(); res.Fetched > missing+mixedSlack {
				t.Errorf("second run fetched %d bytes, %d were missing", res.Fetched, missing)
			}
		})
	}
}
