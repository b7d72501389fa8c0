package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
)

// withSecrets returns u with a user and password and a token in its query.
func withSecrets(u, password, token string) string {
	return strings.Replace(u, "http://", "http://me:"+password+"@", 1) + "?token=" + token
}

// breakDown makes s cut every answer to a range of the download (not the
// probe's byte, nor a 64 KiB sample) after 128 KiB, so that it is retried,
// and answer 404 for good once it sent 512 KiB by its own count.
func breakDown(s *testserver.Server) {
	var gone sync.Once
	s.SetOption(testserver.OnRequest(func(r *http.Request) {
		var first, last int64
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err != nil || last-first < 64<<10 {
			return
		}
		if s.Stats().BodyBytes >= 512<<10 {
			gone.Do(func() {
				s.SetOption(testserver.Statuses(slices.Repeat([]int{http.StatusNotFound}, 100)...), testserver.CutAfter(0, -1))
			})
			return
		}
		s.SetOption(testserver.CutAfter(128<<10, 1))
	}))
}

// No secret of a URL or a header is printed, wherever a URL surfaces on
// the command line: every notice on stderr (retries that name a server,
// mirrors dropped at the comparison and mid-download) and the error, every
// --json event, convoy status and the resume command it prints, and
// convoy bench's table, JSON and notices.
func TestSecretsNeverPrintedWithMirrors(t *testing.T) {
	const size = 4 << 20
	opts := []testserver.Option{testserver.Size(size), testserver.Rate(1 << 20)}
	origin := testserver.New(t, opts...)
	front := testserver.New(t, testserver.RedirectTo(origin.FileURL()+"?X-Amz-Signature=s1gnature-val"))
	good := testserver.New(t, opts...)
	failing := testserver.New(t, opts...)
	other := testserver.New(t, append(opts, testserver.Seed(9))...)
	// Every server that agrees breaks down, so the download fails with its
	// manifest kept, for convoy status.
	for _, s := range []*testserver.Server{origin, good, failing} {
		breakDown(s)
	}
	secrets := []string{"pr1mary-pw", "pr1mary-tok", "s1gnature-val", "g00d-pw", "g00d-tok",
		"fa1l-pw", "fa1l-tok", "0ther-pw", "0ther-tok", "b3arer-val", "c00kie-val"}
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"convoy", "get", "--json", "-v", "-n", "6", "-x", "6", "-d", dir, "-o", "s.bin", // -v: every notice
		"-H", "Authorization: Bearer b3arer-val", "-H", "Cookie: session=c00kie-val",
		withSecrets(front.URL, "pr1mary-pw", "pr1mary-tok"),
		withSecrets(good.URL, "g00d-pw", "g00d-tok"),
		withSecrets(failing.URL, "fa1l-pw", "fa1l-tok"),
		withSecrets(other.URL, "0ther-pw", "0ther-tok"),
	}, &stdout, &stderr)
	if code != exitHTTP || !strings.Contains(stderr.String(), "404") {
		t.Fatalf("exit %d, want %d with every server gone (404); stderr:\n%s", code, exitHTTP, stderr.String())
	}
	printed := map[string]string{"get's events": stdout.String(), "get's notices": stderr.String()}
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var e convoy.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not a JSON event: %q: %v", line, err)
		}
		types = append(types, e.Type)
	}
	for _, want := range []string{"start", "retry", "mirror-dropped", "checkpoint", "error"} {
		if !slices.Contains(types, want) {
			t.Errorf("events %v lack %q", types, want)
		}
	}
	for _, want := range []string{"retrying in", "closed the connection", "dropping mirror", "dropping http", "REDACTED@127.0.0.1"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("notices lack %q:\n%s", want, stderr.String())
		}
	}

	code, status := runCLI(t, "status", filepath.Join(dir, "s.bin"))
	if code != exitOK {
		t.Fatalf("status: exit %d: %s", code, status)
	}
	printed["status"] = status
	for _, want := range []string{"servers:", "redirected to:", "X-Amz-Signature=REDACTED", "resume with:", "put back the secrets"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}

	// bench: a mirror that answers, one that disagrees and one that fails.
	benchURLs := []string{
		withSecrets(testserver.New(t, testserver.Size(1<<20)).URL, "g00d-pw", "g00d-tok"),
		withSecrets(testserver.New(t, testserver.Size(1<<20), testserver.Seed(9)).URL, "0ther-pw", "0ther-tok"),
		withSecrets(testserver.New(t, testserver.Statuses(404, 404, 404, 404)).URL, "fa1l-pw", "fa1l-tok"),
	}
	for _, mode := range [][]string{nil, {"--json"}, {"--top", "1"}} {
		var stdout, stderr bytes.Buffer
		args := append(append([]string{"convoy", "bench", "--duration", "100ms", "-n", "2"}, mode...), benchURLs...)
		if code := run(args, &stdout, &stderr); code != exitOK {
			t.Fatalf("bench %v: exit %d: %s", mode, code, stderr.String())
		}
		name := "bench " + strings.Join(mode, " ")
		if mode == nil {
			name = "bench's table"
		}
		if mode == nil || mode[0] != "--top" {
			printed[name] = stdout.String()
			if !strings.Contains(stdout.String(), "REDACTED@127.0.0.1") || !strings.Contains(stdout.String(), "404") {
				t.Errorf("%s names no mirror, or not the one that failed:\n%s", name, stdout.String())
			}
		} else if got := strings.TrimSpace(stdout.String()); got != benchURLs[0] {
			// --top prints the URLs as given, secrets included, for convoy get.
			t.Errorf("%s printed %q, want the first URL as given", name, got)
		}
		printed[name+" (stderr)"] = stderr.String()
	}
	if !strings.Contains(printed["bench --top 1 (stderr)"], "left out http://REDACTED@") {
		t.Errorf("bench --top names no mirror it left out:\n%s", printed["bench --top 1 (stderr)"])
	}

	for where, text := range printed {
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%q is in %s:\n%s", secret, where, text)
			}
		}
	}
}
