package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
)

// runCLI runs the command line in-process and returns its exit code and
// what it printed.
func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(append([]string{"convoy"}, args...), &out, &out)
	return code, out.String()
}

func TestExitCodes(t *testing.T) {
	srv := testserver.New(t, testserver.Size(200<<10))
	missing := testserver.New(t, testserver.Statuses(404))
	closed := testserver.New(t)
	closed.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mine.bin"), []byte("another file"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no-url", []string{"get"}, exitUsage, "takes a URL"},
		{"mirror-not-http", []string{"get", srv.URL, "ftp://b/y"}, exitUsage, "mirror"},
		{"unknown-flag", []string{"get", "--bogus", srv.URL}, exitUsage, "bogus"},
		{"bad-connections", []string{"get", "-n", "0", srv.URL}, exitUsage, "connections"},
		{"bad-min-split", []string{"get", "--min-split-size", "lots", srv.URL}, exitUsage, "min-split-size"},
		{"bad-limit-rate", []string{"get", "--limit-rate", "fast", srv.URL}, exitUsage, "limit-rate"},
		{"bad-checksum", []string{"get", "--checksum", "sha256:zz", srv.URL}, exitUsage, "sha256"},
		{"bad-header", []string{"get", "-H", "NoColon", srv.URL}, exitUsage, "header"},
		{"bad-scheme", []string{"get", "ftp://example.com/x"}, exitUsage, "not an http or https URL"},
		{"unknown-command", []string{"fetch", srv.URL}, exitUsage, "unknown command"},
		{"verify-without-checksum", []string{"verify", "x"}, exitUsage, "--checksum"},
		{"not-found", []string{"get", "-q", "-d", dir, "-o", "nf.bin", missing.URL}, exitHTTP, "404"},
		// Not quiet: one line in all, no retry notices before it.
		{"unreachable", []string{"get", "-d", dir, "-o", "ur.bin", closed.URL}, exitNetwork, "connection refused"},
		{"unreachable-retried", []string{"get", "-d", dir, "-o", "ur.bin", "--retry-connrefused", "--max-tries", "2", "-q", closed.URL}, exitNetwork, "giving up after 2 tries"},
		{"ok", []string{"get", "-q", "-d", dir, "-o", "ok.bin", srv.URL}, exitOK, ""},
		{"already-complete", []string{"get", "-q", "-d", dir, "-o", "ok.bin", srv.URL}, exitOK, ""},
		{"checksum-mismatch", []string{"get", "-q", "-d", dir, "-o", "bad.bin", "--checksum", "sha256:" + strings.Repeat("00", 32), srv.URL}, exitChecksum, "checksum"},
		{"exists", []string{"get", "-q", "-d", dir, "-o", "mine.bin", srv.URL}, exitFailure, "--overwrite"},
		{"flags-after-url", []string{"get", srv.URL, "-q", "-d", dir, "-o", "after.bin", "--overwrite"}, exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tt.code, out)
			}
			if tt.says != "" && !strings.Contains(out, tt.says) {
				t.Errorf("output %q does not mention %q", out, tt.says)
			}
			if tt.code != exitOK && strings.Count(strings.TrimSpace(out), "\n") > 0 && tt.code != exitUsage {
				t.Errorf("error output is more than one line:\n%s", out)
			}
			if tt.code == exitOK && out != "" {
				t.Errorf("-q printed %q", out)
			}
		})
	}
	srv.Verify(t, filepath.Join(dir, "ok.bin"))
	srv.Verify(t, filepath.Join(dir, "after.bin"))
}

// A checksum mismatch on a one-stream download (a server without ranges)
// exits with the checksum's code and a message that names the mismatch, and
// leaves no file behind.
func TestChecksumMismatchInOneStream(t *testing.T) {
	srv := testserver.New(t, testserver.Size(300<<10), testserver.NoRanges())
	dir := t.TempDir()
	wrong := sha256.Sum256([]byte("something else"))
	code, out := runCLI(t, "get", "-q", "-d", dir, "-o", "s.bin", "--checksum", "sha256:"+hex.EncodeToString(wrong[:]), srv.URL)
	if code != exitChecksum {
		t.Errorf("exit %d, want %d; output:\n%s", code, exitChecksum, out)
	}
	for _, want := range []string{"checksum mismatch", hex.EncodeToString(wrong[:]), "nothing was saved as " + filepath.Join(dir, "s.bin")} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q does not say %q", out, want)
		}
	}
	if n := strings.Count(strings.TrimSpace(out), "\n"); n > 0 {
		t.Errorf("the error takes %d lines:\n%s", n+1, out)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("folder holds %v (%v), want nothing", entries, err)
	}
}

// The user's headers go with every request: the probe's HEAD and GET and
// each connection's ranges, not only the last request.
func TestSummaryAndHeaders(t *testing.T) {
	type seen struct{ method, rng, ua, token string }
	var mu sync.Mutex
	var requests []seen
	srv := testserver.New(t, testserver.Size(4<<20), testserver.OnRequest(func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		requests = append(requests, seen{r.Method, r.Header.Get("Range"), r.Header.Get("User-Agent"), r.Header.Get("X-Token")})
	}))
	dir := t.TempDir()
	code, out := runCLI(t, "get", "-n", "4", "-d", dir, "--user-agent", "agent/2", "-H", "X-Token: abc", srv.URL)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	if !strings.Contains(out, "saved") || !strings.Contains(out, "file.bin") {
		t.Errorf("summary %q does not name the saved file", out)
	}
	mu.Lock()
	defer mu.Unlock()
	heads, ranges := 0, 0
	for _, r := range requests {
		if r.ua != "agent/2" || r.token != "abc" {
			t.Errorf("%s (Range %q) carried User-Agent %q and X-Token %q", r.method, r.rng, r.ua, r.token)
		}
		switch {
		case r.method == http.MethodHead:
			heads++
		case r.rng != "" && r.rng != "bytes=0-0":
			ranges++
		}
	}
	if heads == 0 || ranges < 2 {
		t.Errorf("the server saw %d HEADs and %d ranged GETs, want the probe and several connections: %+v", heads, ranges, requests)
	}
	srv.Verify(t, filepath.Join(dir, "file.bin"))
}

// convoy verify exits 0 on a match, with the checksum code on a mismatch
// (naming both digests), 1 for a file it cannot read, and 2 for a checksum
// it cannot parse.
func TestVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.bin")
	content := []byte("the bytes on disk\n")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	right := hex.EncodeToString(sum[:])
	other := sha256.Sum256([]byte("other bytes\n"))
	wrong := hex.EncodeToString(other[:])
	tests := []struct {
		name     string
		checksum string
		file     string
		code     int
		says     []string
	}{
		{"match", "sha256:" + right, path, exitOK, []string{"OK", right}},
		{"mismatch", "sha256:" + wrong, path, exitChecksum, []string{"mismatch", "expected " + wrong, "got " + right}},
		{"missing-file", "sha256:" + right, filepath.Join(dir, "none.bin"), exitFailure, []string{"none.bin"}},
		{"bad-checksum", "sha256:zz", path, exitUsage, []string{"sha256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runCLI(t, "verify", "--checksum", tt.checksum, tt.file)
			if code != tt.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tt.code, out)
			}
			for _, want := range tt.says {
				if !strings.Contains(out, want) {
					t.Errorf("output %q does not mention %q", out, want)
				}
			}
			if tt.code != exitOK && strings.Contains(out, "OK") {
				t.Errorf("a failed check says OK: %q", out)
			}
		})
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, content) {
		t.Errorf("verify changed the file: %q, %v", got, err)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	srv := testserver.New(t, testserver.Statuses(403))
	u := strings.Replace(srv.URL, "http://", "http://me:pa55word@", 1) + "?sig=s1gn4ture&page=2"
	code, out := runCLI(t, "get", "-d", t.TempDir(), u)
	if code != exitHTTP {
		t.Fatalf("exit %d, want %d", code, exitHTTP)
	}
	for _, secret := range []string{"pa55word", "s1gn4ture"} {
		if strings.Contains(out, secret) {
			t.Errorf("output shows %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, "403") {
		t.Errorf("output does not name the status: %s", out)
	}
}

func TestInsecureWarns(t *testing.T) {
	srv := testserver.New(t, testserver.Size(1000))
	code, out := runCLI(t, "get", "--insecure", "-d", t.TempDir(), srv.URL)
	if code != exitOK || !strings.Contains(out, "not verified") {
		t.Errorf("exit %d, output %q: want success and a warning", code, out)
	}
}

func TestPrivateCA(t *testing.T) {
	h := testserver.NewHandler(testserver.Size(100 << 10))
	ts := httptest.NewTLSServer(h)
	t.Cleanup(func() { h.Close(); ts.Close() })
	dir := t.TempDir()
	url := ts.URL + h.FilePath()

	code, out := runCLI(t, "get", "-q", "-d", dir, "-o", "untrusted.bin", url)
	if code != exitFailure || !strings.Contains(out, "certificate") {
		t.Errorf("without --ca-cert: exit %d, %q; want a certificate error", code, out)
	}
	ca := filepath.Join(dir, "ca.pem")
	block := &pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}
	if err := os.WriteFile(ca, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := runCLI(t, "get", "-q", "-d", dir, "-o", "trusted.bin", "--ca-cert", ca, url); code != exitOK {
		t.Fatalf("with --ca-cert: exit %d, %s", code, out)
	}
	h.Verify(t, filepath.Join(dir, "trusted.bin"))

	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := runCLI(t, "get", "-d", dir, "--ca-cert", bad, url); code != exitUsage {
		t.Errorf("bad --ca-cert: exit %d, %q; want %d", code, out, exitUsage)
	}
}

func TestDowngradeRedirect(t *testing.T) {
	plain := testserver.New(t, testserver.Size(50<<10))
	h := testserver.NewHandler(testserver.RedirectTo(plain.URL))
	ts := httptest.NewTLSServer(h)
	t.Cleanup(func() { h.Close(); ts.Close() })
	dir := t.TempDir()
	url := ts.URL + h.StartPath()
	code, out := runCLI(t, "get", "-q", "--insecure", "-d", dir, "-o", "a.bin", url)
	if code != exitFailure || !strings.Contains(out, "https to plain http") {
		t.Errorf("downgrade: exit %d, %q; want it refused", code, out)
	}
	if code, out := runCLI(t, "get", "-q", "--insecure", "--allow-downgrade", "-d", dir, "-o", "b.bin", url); code != exitOK {
		t.Fatalf("--allow-downgrade: exit %d, %s", code, out)
	}
	plain.Verify(t, filepath.Join(dir, "b.bin"))
}

// interruptHalfway runs cfg with quick checkpoints and cancels it once half
// the file is written, leaving a partial download behind.
func interruptHalfway(t *testing.T, cfg convoy.Config) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.MinSplitSize = 64 << 10
	cfg.CheckpointInterval, cfg.ProgressInterval = 20*time.Millisecond, 10*time.Millisecond
	cfg.OnProgress = func(p convoy.Progress) {
		if p.Done > p.Size/2 {
			cancel()
		}
	}
	if _, err := convoy.Download(ctx, cfg); !errors.Is(err, convoy.ErrInterrupted) {
		t.Fatalf("error %v, want ErrInterrupted", err)
	}
}

func TestStatusOfPartialDownload(t *testing.T) {
	const size = 2 << 20
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20))
	dir := t.TempDir()
	u := srv.URL + "?token=s3cr3tvalue"
	interruptHalfway(t, convoy.Config{URL: u, Dir: dir, Output: "p.bin", Connections: 2})
	out := filepath.Join(dir, "p.bin")
	code, text := runCLI(t, "status", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, text)
	}
	for _, want := range []string{"of 2.0 MiB", "%", "segments:", " MiB ", "(bytes ", "resume with:   convoy get -n 2 -o " + out, "token=REDACTED", srv.ETag()} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "s3cr3tvalue") {
		t.Errorf("status shows the token:\n%s", text)
	}
	if code, text := runCLI(t, "status", filepath.Join(dir, "none.bin")); code != exitFailure || !strings.Contains(text, "no download in progress") {
		t.Errorf("status of nothing: exit %d, %q", code, text)
	}
	// While a process holds the download, status names it and prints no
	// resume command that would fail.
	lock, err := manifest.Acquire(out + ".part")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := lock.Release(); err != nil {
			t.Error(err)
		}
	}()
	code, text = runCLI(t, "status", out)
	if want := fmt.Sprintf("running:       yes, in process %d", os.Getpid()); code != exitOK || !strings.Contains(text, want) || strings.Contains(text, "resume with") {
		t.Errorf("status of a running download: exit %d, want it to say %q and no resume command:\n%s", code, want, text)
	}
}

// The status of a download from mirrors lists each server with what it
// sent, and the command it prints resumes from all of them.
func TestStatusOfMirroredDownload(t *testing.T) {
	const size = 4 << 20
	a := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20))
	b := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20), testserver.ETagValue(`"b-own"`))
	dir := t.TempDir()
	interruptHalfway(t, convoy.Config{URL: a.URL, Mirrors: []string{b.URL}, MaxPerHost: 4, Dir: dir, Output: "m.bin", Connections: 4})
	out := filepath.Join(dir, "m.bin")
	code, text := runCLI(t, "status", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, text)
	}
	for _, want := range []string{"servers:", a.URL + "  sent ", b.URL + "  sent ", `"b-own"`, "resume with:   convoy get -n 4 -o " + out + " '" + a.URL + "' '" + b.URL + "'"} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "sent 0 B") {
		t.Errorf("a server is shown as having sent nothing:\n%s", text)
	}
}

func TestJSONEvents(t *testing.T) {
	// One connection: the 503 is retried (with more, the refused one would
	// park while the other works, and nothing would be retried).
	srv := testserver.New(t, testserver.Size(3<<20), testserver.Rate(2<<20), testserver.Statuses(0, 503))
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"convoy", "get", "--json", "-q", "-n", "1", "--checkpoint-interval", "200ms", "-d", dir, "-o", "j.bin", srv.URL}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var e convoy.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not a JSON event: %q: %v", line, err)
		}
		if e.Time.IsZero() {
			t.Errorf("event without a time: %q", line)
		}
		types = append(types, e.Type)
	}
	if types[0] != "start" || types[len(types)-1] != "done" {
		t.Errorf("events %v: want start first and done last", types)
	}
	var done convoy.Event
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &done); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(srv.Content()); done.Checksum != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("done event checksum %q, want the file's SHA-256", done.Checksum)
	}
	for _, want := range []string{"progress", "checkpoint", "retry"} {
		if !slices.Contains(types, want) {
			t.Errorf("events %v lack %q", types, want)
		}
	}

	missing := testserver.New(t, testserver.Statuses(404))
	stdout.Reset()
	code = run([]string{"convoy", "get", "--json", "-q", "-d", dir, missing.URL}, &stdout, &stderr)
	var last convoy.Event
	lines = strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || code != exitHTTP || last.Type != "error" || !strings.Contains(last.Error, "404") {
		t.Errorf("failed download: exit %d, last event %+v (%v)", code, last, err)
	}

	// A server without ranges streams the file: its progress events still
	// carry the size it gave.
	stream := testserver.New(t, testserver.Size(2<<20), testserver.Rate(2<<20), testserver.NoRanges())
	stdout.Reset()
	if code := run([]string{"convoy", "get", "--json", "-q", "-d", dir, "-o", "s.bin", stream.URL}, &stdout, &stderr); code != exitOK {
		t.Fatalf("stream: exit %d: %s", code, stderr.String())
	}
	progress := 0
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var e convoy.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if e.Type == "progress" {
			progress++
			if e.Size != stream.Size() {
				t.Errorf("stream's progress event %q: want size %d", line, stream.Size())
			}
		}
	}
	if progress == 0 {
		t.Errorf("the stream printed no progress event: %s", stdout.String())
	}
}

func TestOutputToStdout(t *testing.T) {
	srv := testserver.New(t, testserver.Size(3<<20+1))
	var stdout, stderr bytes.Buffer
	code := run([]string{"convoy", "get", "-q", "-n", "6", "--buffer", "1M", "-o", "-", srv.URL}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !bytes.Equal(stdout.Bytes(), srv.Content()) {
		t.Errorf("stdout holds %d bytes that differ from the %d-byte file", stdout.Len(), srv.Size())
	}
	if code, out := runCLI(t, "get", "--json", "-o", "-", srv.URL); code != exitUsage {
		t.Errorf("-o - with --json: exit %d, %q", code, out)
	}
}

// The completion script runs in a real bash and offers get's options.
func TestCompletion(t *testing.T) {
	bin := buildBinary(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := `eval "$(` + bin + ` completion bash)"
COMP_WORDS=(` + bin + ` get --che); COMP_CWORD=2
_convoy_complete
printf '%s\n' "${COMPREPLY[@]}"
COMP_WORDS=(` + bin + ` ver); COMP_CWORD=1
_convoy_complete
printf '%s\n' "${COMPREPLY[@]}"`
	out, err := exec.Command(bash, "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, []string{"--checksum", "--checksum-file", "--checkpoint-interval", "verify"}) {
		t.Errorf("completions %q", got)
	}
	if code, text := runCLI(t, "--version"); code != exitOK || !strings.Contains(text, "convoy version") {
		t.Errorf("--version: exit %d, %q", code, text)
	}
}

func TestMirrorsOnTheCommandLine(t *testing.T) {
	primary := testserver.New(t, testserver.Size(2<<20))
	m1 := testserver.New(t, testserver.Size(2<<20))
	bad := testserver.New(t, testserver.Size(2<<20), testserver.Seed(5))
	dir := t.TempDir()
	list := filepath.Join(dir, "mirrors.txt")
	if err := os.WriteFile(list, []byte("# mirrors\n"+bad.URL+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runCLI(t, "get", "-d", dir, "-o", "m.bin", "-x", "8", "--mirror-file", list, primary.URL, m1.URL)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	if !strings.Contains(out, "dropping mirror") || !strings.Contains(out, "differ") {
		t.Errorf("output does not say the bad mirror was dropped: %s", out)
	}
	primary.Verify(t, filepath.Join(dir, "m.bin"))
}

func TestBenchRanksMirrors(t *testing.T) {
	const size = 32 << 20
	slow := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20))
	mid := testserver.New(t, testserver.Size(size), testserver.Rate(2<<20))
	fast := testserver.New(t, testserver.Size(size), testserver.Rate(4<<20))
	other := testserver.New(t, testserver.Size(size), testserver.Seed(9), testserver.Rate(8<<20))
	missing := testserver.New(t, testserver.Statuses(404, 404, 404, 404))
	noRanges := testserver.New(t, testserver.Size(size), testserver.NoRanges())
	urls := []string{slow.URL, mid.URL, fast.URL, other.URL, noRanges.URL, missing.URL}

	var stdout, stderr bytes.Buffer
	args := append([]string{"convoy", "bench", "--duration", "400ms", "-n", "2", "--json"}, urls...)
	if code := run(args, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var reports []convoy.MirrorReport
	if err := json.Unmarshal(stdout.Bytes(), &reports); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	var order []string
	for _, r := range reports {
		order = append(order, r.URL)
		if r.URL == other.URL && r.Agrees {
			t.Error("the mirror with other bytes agrees")
		}
		if r.URL == missing.URL && !strings.Contains(r.Error, "404") {
			t.Errorf("the missing mirror's error is %q", r.Error)
		}
		if r.URL == noRanges.URL && (r.Ranges || r.Error != "") {
			t.Errorf("the mirror without ranges: ranges %v, error %q; want false and no error", r.Ranges, r.Error)
		}
	}
	// The one with other bytes is fastest, but the agreeing ones rank 4 > 2 > 1.
	var agreeing []string
	for _, u := range order {
		if u == slow.URL || u == mid.URL || u == fast.URL {
			agreeing = append(agreeing, u)
		}
	}
	if !slices.Equal(agreeing, []string{fast.URL, mid.URL, slow.URL}) || order[len(order)-1] != missing.URL {
		t.Errorf("ranked %v", order)
	}

	stdout.Reset()
	args = append([]string{"convoy", "bench", "--duration", "400ms", "-n", "2", "--top", "2"}, slow.URL, mid.URL, fast.URL)
	if code := run(args, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := strings.Fields(stdout.String()); !slices.Equal(got, []string{fast.URL, mid.URL}) {
		t.Errorf("--top 2 printed %q", got)
	}
}

// --top prints the fastest mirrors of the largest group that agrees (the
// first URL's on a tie), names every mirror left out on stderr, and fails
// rather than print nothing.
func TestBenchTop(t *testing.T) {
	const size = 2 << 20
	a := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20))
	b := testserver.New(t, testserver.Size(size), testserver.Rate(2<<20))
	other := testserver.New(t, testserver.Size(size), testserver.Seed(9), testserver.Rate(8<<20))
	missing := testserver.New(t, testserver.Statuses(404, 404, 404, 404))
	for _, tt := range []struct {
		name     string
		urls     []string
		top      string
		code     int
		want     []string
		leftOut  []string
		disagree string
	}{
		{"fastest serves another file", []string{other.URL, a.URL, b.URL}, "3", exitOK, []string{b.URL, a.URL}, []string{other.URL}, "bytes differ"},
		{"tie: the first URL's group", []string{a.URL, other.URL}, "1", exitOK, []string{a.URL}, []string{other.URL}, "bytes differ"},
		{"none usable", []string{missing.URL}, "1", exitFailure, nil, []string{missing.URL}, "404"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"convoy", "bench", "--duration", "200ms", "-n", "2", "--top", tt.top}, tt.urls...)
			if code := run(args, &stdout, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, stderr.String())
			}
			// Which agreeing mirror is faster is TestBenchRanksMirrors'
			// to check; here the group and the count matter.
			got := strings.Fields(stdout.String())
			if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(tt.want))) {
				t.Errorf("printed %q, want %q in some order", got, tt.want)
			}
			for _, u := range tt.leftOut {
				if !strings.Contains(stderr.String(), "left out "+u) || !strings.Contains(stderr.String(), tt.disagree) {
					t.Errorf("stderr %q does not name %s with its reason", stderr.String(), u)
				}
			}
		})
	}
}

// Answers of 503 met while measuring are counted in the report.
func TestBenchCountsBusyAnswers(t *testing.T) {
	// The probe and three timed samples pass; the throughput runs meet 503s.
	srv := testserver.New(t, testserver.Size(2<<20), testserver.Statuses(0, 0, 0, 0, 503, 503))
	var stdout, stderr bytes.Buffer
	if code := run([]string{"convoy", "bench", "--duration", "300ms", "-n", "1", "--json", srv.URL}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var reports []convoy.MirrorReport
	if err := json.Unmarshal(stdout.Bytes(), &reports); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if len(reports) != 1 || reports[0].Busy < 1 {
		t.Fatalf("reports %+v: want the 503 answers counted", reports)
	}
	stdout.Reset()
	srv.SetOption(testserver.Statuses(0, 0, 0, 0, 503))
	if code := run([]string{"convoy", "bench", "--duration", "300ms", "-n", "1", srv.URL}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if lines := strings.Split(stdout.String(), "\n"); !strings.Contains(lines[0], "503/429") || !strings.Contains(lines[1], "  1  ") {
		t.Errorf("table %q: want a 503/429 column counting 1", stdout.String())
	}
}

// A disk fault has an exit code of its own: here a folder on a read-only
// file system.
func TestDiskFaultExitCode(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot mount a read-only tmpfs in CI: %v %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	srv := testserver.New(t, testserver.Size(1000))
	code, out := runCLI(t, "get", "-q", "-d", dir, "-o", "x.bin", srv.URL)
	if code != exitDisk || !strings.Contains(out, "read-only") {
		t.Fatalf("exit %d, want %d saying read-only: %s", code, exitDisk, out)
	}
}
