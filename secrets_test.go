package convoy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
)

// withSecrets returns u with a user and password and a token in its query.
func withSecrets(u, password, token string) string {
	return strings.Replace(u, "http://", "http://me:"+password+"@", 1) + "?token=" + token
}

// isDataRequest reports whether r asks for a range of the download: not the
// probe's first byte, nor one of the 64 KiB samples that compare mirrors.
func isDataRequest(r *http.Request) bool {
	var first, last int64
	if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err != nil {
		return false
	}
	return r.Method == http.MethodGet && last-first+1 > 64<<10
}

// onDataRequest calls f with the count of data requests s has received,
// this one included, before s answers it; options f sets apply to it.
func onDataRequest(s *testserver.Server, f func(n int64)) {
	var count atomic.Int64
	s.SetOption(testserver.OnRequest(func(r *http.Request) {
		if isDataRequest(r) {
			f(count.Add(1))
		}
	}))
}

// No secret of a URL (a password, a signed query) or of a header reaches
// anything convoy writes or says, wherever the URL surfaces: the manifest
// (url, final_url, sources, served_by), every notice (a retry that names
// the server, a stalled connection, a mirror dropped at the comparison or
// mid-download), every event, the status read back, and the error.
func TestSecretsStayOutOfEveryOutput(t *testing.T) {
	// Large enough that the download is still running when all was said.
	const size = 16 << 20
	opts := []testserver.Option{testserver.Size(size), testserver.Rate(1 << 20)}
	// The first URL redirects to a signed address, as a CDN does.
	origin := testserver.New(t, opts...)
	front := testserver.New(t, testserver.RedirectTo(origin.FileURL()+"?X-Amz-Signature=s1gnature-val"))
	good := testserver.New(t, opts...)
	failing := testserver.New(t, opts...)
	other := testserver.New(t, append(opts, testserver.Seed(9))...)
	// The origin stalls its first answer once: a slow server, retried.
	onDataRequest(origin, func(n int64) {
		if n == 1 {
			origin.SetOption(testserver.StallAfter(64<<10, time.Minute, 1))
		}
	})
	// A mirror fails its first answer (retried, naming the server in the
	// notice), then answers 404 (dropped mid-download).
	var gone sync.Once
	onDataRequest(failing, func(n int64) {
		switch {
		case n == 1:
			failing.SetOption(testserver.Statuses(http.StatusInternalServerError))
		case n >= 3:
			gone.Do(func() {
				failing.SetOption(testserver.Statuses(404, 404, 404, 404, 404, 404, 404, 404), testserver.CutAfter(0, -1))
			})
		}
	})
	secrets := []string{"pr1mary-pw", "pr1mary-tok", "s1gnature-val", "g00d-pw", "g00d-tok",
		"fa1l-pw", "fa1l-tok", "0ther-pw", "0ther-tok", "b3arer-val", "c00kie-val"}
	dir := t.TempDir()
	cfg := fastConfig(withSecrets(front.URL, "pr1mary-pw", "pr1mary-tok"), dir)
	cfg.Mirrors = []string{
		withSecrets(good.URL, "g00d-pw", "g00d-tok"),
		withSecrets(failing.URL, "fa1l-pw", "fa1l-tok"),
		withSecrets(other.URL, "0ther-pw", "0ther-tok"), // other bytes: dropped at the comparison
	}
	cfg.Header = http.Header{"Authorization": {"Bearer b3arer-val"}, "Cookie": {"session=c00kie-val"}}
	cfg.Connections, cfg.MaxPerHost = 6, 6 // all are 127.0.0.1
	cfg.StallTimeout = time.Second
	cfg.ProgressInterval = 10 * time.Millisecond

	var mu sync.Mutex
	var said []string // every notice, event and progress report, as written
	// seen holds what must be said before the download is interrupted.
	seen := map[string]bool{}
	saw := func(line string) {
		said = append(said, line)
		for _, want := range []string{"retrying in", "HTTP 500", "stalled", "dropping mirror", "dropping http"} {
			if strings.Contains(line, want) {
				seen[want] = true
			}
		}
	}
	cfg.Logf = func(format string, args ...any) {
		mu.Lock()
		saw("notice: " + fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	cfg.OnEvent = func(e convoy.Event) {
		line, err := json.Marshal(e)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		saw("event: " + string(line))
		mu.Unlock()
	}
	// Interrupted once all was said, with some of the file on disk; a
	// download that completes first fails the test.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.OnProgress = func(p convoy.Progress) {
		mu.Lock()
		saw(fmt.Sprintf("progress: %+v", p))
		all := len(seen) == 5
		mu.Unlock()
		if all && p.Done > size/4 {
			cancel()
		}
	}
	_, derr := convoy.Download(ctx, cfg)
	if !errors.Is(derr, convoy.ErrInterrupted) {
		t.Fatalf("error %v, want the download interrupted (it is, once everything was said: %v)", derr, seen)
	}
	out := filepath.Join(dir, "out.bin")
	data, err := os.ReadFile(out + convoy.ManifestSuffix)
	if err != nil {
		t.Fatal(err)
	}
	st, serr := convoy.ReadStatus(out)
	if serr != nil {
		t.Fatal(serr)
	}
	mu.Lock()
	defer mu.Unlock()
	places := map[string]string{
		"the error":    derr.Error(),
		"the manifest": string(data),
		"the status":   fmt.Sprintf("%+v", st),
	}
	for i, s := range said {
		places[fmt.Sprintf("line %d of what was said", i)] = s
	}
	for where, text := range places {
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%q is in %s:\n%s", secret, where, text)
			}
		}
	}

	// Each place was written, with the servers in it.
	m, err := manifest.Load(out + convoy.ManifestSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Sources) != 3 || !strings.Contains(m.FinalURL, "X-Amz-Signature=REDACTED") {
		t.Errorf("manifest sources %+v, final URL %q: want the first URL and the two mirrors that agreed, and the signed address", m.Sources, m.FinalURL)
	}
	from := map[string]bool{}
	for _, s := range m.ServedBy {
		from[s.URL] = true
	}
	if len(from) < 3 {
		t.Errorf("served_by names %d servers, want the first URL and both mirrors that agreed: %+v", len(from), m.ServedBy)
	}
	for _, want := range []string{
		"notice: retrying in", "HTTP 500", "stalled", // retries, one of them a slow server
		"notice: dropping mirror", "notice: dropping http", // at the comparison, and mid-download
		`"event":"retry"`, `"event":"mirror-dropped"`, "REDACTED@127.0.0.1",
	} {
		found := false
		for _, s := range said {
			found = found || strings.Contains(s, want)
		}
		if !found {
			t.Errorf("nothing said %q; said:\n%s", want, strings.Join(said, "\n"))
		}
	}
}
