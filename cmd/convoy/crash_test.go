package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
)

// buildBinary compiles convoy once for the process tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "convoy")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startGet starts "convoy get" as a child process.
func startGet(t *testing.T, bin string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, append([]string{"get"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// TestCrashAndResume SIGKILLs a download at several moments, runs the same
// command again each time, and checks the claims of the manifest after each
// kill, the final file byte for byte, and the bytes the server had to send
// twice. Each kill lands after a checkpoint of its run recorded progress
// (so that every kill leaves something to check), a set part of the
// checkpoint interval later.
func TestCrashAndResume(t *testing.T) {
	bin := buildBinary(t)
	const (
		size     = 48 << 20
		conns    = 8
		rate     = 768 << 10 // per answer, so about 6 MiB/s in all
		interval = time.Second
	)
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(rate))
	content := srv.Content()
	dir := t.TempDir()
	out := filepath.Join(dir, "big.bin")
	args := []string{"-q", "-n", fmt.Sprint(conns), "-d", dir, "-o", "big.bin", "--checkpoint-interval", interval.String(), srv.URL}
	kills := []float64{0.05, 0.3, 0.5, 0.7, 0.9} // of the interval, after a checkpoint
	var claimed int64
	for i, part := range kills {
		r := startWatched(t, bin, args...)
		r.waitForClaim(t, out+".convoy", claimed)
		after := time.Duration(part * float64(interval))
		time.Sleep(after)
		r.kill(t)
		now := checkClaims(t, out, content)
		if now <= claimed {
			t.Fatalf("kill %d: the manifest claims %d bytes, it claimed more than %d before the kill", i, now, claimed)
		}
		claimed = now
		t.Logf("kill %d, %v after a checkpoint: %d of %d bytes recorded", i, after, claimed, int64(size))
	}
	srv.SetOption(testserver.Rate(0))
	cmd, log := startGet(t, bin, args...)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("final run: %v\n%s", err, log)
	}
	srv.Verify(t, out)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("left beside the file: %v", names)
	}
	// Each kill may lose what arrived since the last checkpoint: at most one
	// interval of every connection's throughput, plus 100 ms of it for the
	// bytes that wait in a buffer before they are written.
	twice := srv.Stats().BodyBytes - size - int64(len(kills)+1) // one probe byte per run
	perKill := int64(float64(conns*rate) * (interval + 100*time.Millisecond).Seconds())
	t.Logf("bytes fetched twice: %d over %d kills (bound %d per kill)", twice, len(kills), perKill)
	if twice > int64(len(kills))*perKill {
		t.Errorf("fetched %d bytes twice over %d kills, more than %d per kill", twice, len(kills), perKill)
	}
}

// TestCrashWithChecksumResumes SIGKILLs a download that verifies a
// checksum once its manifest holds a hash state, then runs the same command
// again: the resume continues from the manifest (it fetches only what the
// manifest did not claim), checks the saved hash state against the bytes on
// disk, and ends with the verified file.
func TestCrashWithChecksumResumes(t *testing.T) {
	bin := buildBinary(t)
	const size = 32 << 20
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20))
	content := srv.Content()
	sum := sha256.Sum256(content)
	want := "sha256:" + hex.EncodeToString(sum[:])
	dir := t.TempDir()
	out := filepath.Join(dir, "sum.bin")
	args := []string{"-n", "4", "-d", dir, "-o", "sum.bin", "--checksum", want, srv.URL}

	r := startWatched(t, bin, args...)
	t.Cleanup(func() { _ = r.cmd.Process.Kill() })
	r.waitManifest(t, out+".convoy", "holds a hash state", func(m *manifest.Manifest) bool { return m.HashPos > 0 })
	r.kill(t)
	claimed := checkClaims(t, out, content)
	m, err := manifest.Load(out + ".convoy")
	if err != nil {
		t.Fatalf("manifest after the kill: %v", err)
	}
	if m.HashAlgo != "sha256" || m.HashPos <= 0 || m.HashPos > claimed {
		t.Fatalf("manifest after the kill: hash %s at %d, %d bytes claimed", m.HashAlgo, m.HashPos, claimed)
	}
	t.Logf("killed with %d of %d bytes claimed, the hash state at %d", claimed, int64(size), m.HashPos)

	srv.SetOption(testserver.Rate(0))
	r = startWatched(t, bin, append([]string{"--json"}, args...)...)
	t.Cleanup(func() { _ = r.cmd.Process.Kill() })
	if err := r.wait(t, processCeiling); err != nil {
		t.Fatalf("resume: %v\n%s", err, r.out)
	}
	srv.Verify(t, out)
	log := r.out.String()
	if !strings.Contains(log, "resuming") {
		t.Errorf("the second run did not resume: %s", log)
	}
	var done struct {
		Checksum string `json:"checksum"`
		Fetched  int64  `json:"fetched"`
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, `{"event":"done"`) {
			if err := json.Unmarshal([]byte(line), &done); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
		}
	}
	if done.Checksum != want {
		t.Errorf("done event has checksum %q, want %q: %s", done.Checksum, want, log)
	}
	if done.Fetched <= 0 || done.Fetched > size-claimed {
		t.Errorf("the resume fetched %d bytes; the manifest left %d to fetch", done.Fetched, size-claimed)
	}
	onlyFile(t, dir, "sum.bin")
}

// processCeiling bounds the wait for a whole run at full speed, or for a
// run to stop: a ceiling for a slow machine, not a measure of speed.
const processCeiling = time.Minute

// waitManifest returns the manifest at mpath once it satisfies ok (it is
// what). It fails t if the run ends first or progressLimit passes.
func (r *running) waitManifest(t *testing.T, mpath, what string, ok func(*manifest.Manifest) bool) *manifest.Manifest {
	t.Helper()
	deadline := time.Now().Add(progressLimit)
	for time.Now().Before(deadline) {
		select {
		case err := <-r.exited:
			t.Fatalf("the run ended (%v) before its manifest %s:\n%s", err, what, r.out)
		case <-time.After(5 * time.Millisecond):
		}
		if m, err := manifest.Load(mpath); err == nil && ok(m) {
			return m
		}
	}
	r.kill(t)
	t.Fatalf("the manifest never %s within %v", what, progressLimit)
	return nil
}

// wait returns what ended the run, waiting at most ceiling; after that it
// kills the run and fails t.
func (r *running) wait(t *testing.T, ceiling time.Duration) error {
	t.Helper()
	select {
	case err := <-r.exited:
		return err
	case <-time.After(ceiling):
		_ = r.cmd.Process.Kill()
		<-r.exited
		t.Fatalf("the run still went on after %v; killed it:\n%s", ceiling, r.out)
		return nil
	}
}

// onlyFile fails t unless dir holds exactly the file name.
func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != name {
		t.Errorf("%s holds %v, want only %s", dir, names, name)
	}
}

// TestSignalsCheckpointAndExit sends SIGINT and SIGTERM to a running
// download once its manifest claims bytes: it must stop long before the
// file could have arrived, say how to resume, exit 130 with its progress
// saved, and the next run must finish the file.
func TestSignalsCheckpointAndExit(t *testing.T) {
	bin := buildBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			// 32 MiB over 4 connections at 128 KiB/s each takes a minute;
			// every request asks for 4 MiB, half a minute's worth, so
			// neither running on nor finishing the answers under way
			// passes for a stop within the ceiling.
			const size = 32 << 20
			srv := testserver.New(t, testserver.Size(size), testserver.Rate(128<<10))
			dir := t.TempDir()
			args := []string{"-n", "4", "-d", dir, "-o", "f.bin", srv.URL}
			mpath := filepath.Join(dir, "f.bin.convoy")
			r := startWatched(t, bin, args...)
			t.Cleanup(func() { _ = r.cmd.Process.Kill() })
			claimed := r.waitForClaim(t, mpath, 0)
			if err := r.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := r.wait(t, 20*time.Second)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
				t.Fatalf("exit %v, want code %d: %s", err, exitInterrupted, r.out)
			}
			out := r.out.String()
			if !strings.Contains(out, "interrupted") || !strings.Contains(out, "run the same command to resume") {
				t.Errorf("output does not say how to resume: %s", out)
			}
			m, err := manifest.Load(mpath)
			if err != nil || m.Done() < claimed {
				t.Fatalf("manifest after %v: %v (done %v, %d claimed before the signal)", sig, err, m, claimed)
			}
			srv.SetOption(testserver.Rate(0))
			r = startWatched(t, bin, args...)
			t.Cleanup(func() { _ = r.cmd.Process.Kill() })
			if err := r.wait(t, processCeiling); err != nil {
				t.Fatalf("resume: %v\n%s", err, r.out)
			}
			srv.Verify(t, filepath.Join(dir, "f.bin"))
			if !strings.Contains(r.out.String(), "resuming") {
				t.Errorf("second run did not say it resumed: %s", r.out)
			}
		})
	}
}

// TestSecondProcessFailsFast runs two processes on one output: the second
// fails on the lock while the first still downloads, instead of waiting
// for it.
func TestSecondProcessFailsFast(t *testing.T) {
	bin := buildBinary(t)
	// 8 MiB over 8 connections at 64 KiB/s each: 16 s for the first run.
	srv := testserver.New(t, testserver.Size(8<<20), testserver.Rate(64<<10))
	dir := t.TempDir()
	args := []string{"-q", "-d", dir, "-o", "f.bin", srv.URL}
	first := startWatched(t, bin, args...)
	t.Cleanup(func() { _ = first.cmd.Process.Kill() })
	first.waitManifest(t, filepath.Join(dir, "f.bin.convoy"), "is written", func(*manifest.Manifest) bool { return true })
	second := startWatched(t, bin, args...)
	t.Cleanup(func() { _ = second.cmd.Process.Kill() })
	err := second.wait(t, processCeiling)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
		t.Fatalf("second run: %v, want exit %d: %s", err, exitFailure, second.out)
	}
	if !strings.Contains(second.out.String(), "already downloading") {
		t.Errorf("second run says %q", second.out)
	}
	select {
	case err := <-first.exited:
		t.Errorf("the second run ended only after the first (%v): it waited for the lock", err)
	default:
	}
}

// TestProxyFromEnvironment runs convoy with HTTP_PROXY set: every request
// goes to the proxy. (net/http never proxies loopback hosts, so the URL
// names a host that only the proxy knows.)
func TestProxyFromEnvironment(t *testing.T) {
	bin := buildBinary(t)
	var mu sync.Mutex
	var hosts []string
	proxy := testserver.New(t, testserver.Size(3<<20), testserver.OnRequest(func(r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host)
		mu.Unlock()
	}))
	dir := t.TempDir()
	cmd := exec.Command(bin, "get", "-q", "-d", dir, "-o", "p.bin", "http://convoy.test/file.bin")
	cmd.Env = append(os.Environ(), "HTTP_PROXY="+strings.TrimSuffix(proxy.URL, "/file.bin"), "NO_PROXY=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	proxy.Verify(t, filepath.Join(dir, "p.bin"))
	mu.Lock()
	defer mu.Unlock()
	if len(hosts) == 0 || slices.ContainsFunc(hosts, func(h string) bool { return h != "convoy.test" }) {
		t.Errorf("proxy saw hosts %v, want only convoy.test", hosts)
	}
}

// TestProgressOnTerminal runs convoy with stderr on a pseudo-terminal: the
// live display (a total bar and one bar per connection) is drawn and redrawn
// in place, survives the terminal being resized while the download runs, and
// the summary follows it cleanly.
func TestProgressOnTerminal(t *testing.T) {
	bin := buildBinary(t)
	// 8 MiB over 4 connections at 512 KiB/s each: about 4 s, long enough
	// to resize twice and see the display redrawn after each.
	const size = 8 << 20
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(512<<10))
	dir := t.TempDir()
	cmd := exec.Command(bin, "get", "-n", "4", "-d", dir, "-o", "t.bin", srv.URL)
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	if err := pty.Setsize(tty, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	var screen lockedBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(&screen, tty) // ends with EIO when the child exits
	}()
	// A frame is drawn once its total bar shows an ETA; two of them after a
	// point prove that a whole frame was drawn after it.
	drawn := func(after, frames int, what string) int {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out := screen.String()
			if strings.Count(out[after:], "ETA") >= frames {
				return len(out)
			}
			select {
			case <-done:
				t.Fatalf("convoy ended before %s was drawn: %q", what, out)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s was not drawn within 30 s: %q", what, out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	at := drawn(0, 1, "the first frame")
	for _, cols := range []uint16{60, 150} {
		if err := pty.Setsize(tty, &pty.Winsize{Rows: 40, Cols: cols}); err != nil {
			t.Fatal(err)
		}
		at = drawn(at, 2, fmt.Sprintf("a frame after the resize to %d columns", cols))
	}
	// The server had not sent the whole file (and its probe byte) yet: the
	// download was still running when the resized display was drawn.
	sent := srv.Stats().BodyBytes
	t.Logf("%d of %d bytes sent when the last resize was drawn", sent, int64(size))
	if sent > size {
		t.Errorf("the server had sent all %d bytes before the last resize was drawn: the test resized no running download", sent)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, screen.String())
	}
	<-done
	out := screen.String()
	for _, want := range []string{"#1 ", "#4 ", "MiB/s", "\x1b["} {
		if !strings.Contains(out, want) {
			t.Errorf("display lacks %q: %q", want, out)
		}
	}
	i := strings.LastIndex(out, "convoy: saved")
	if i < 0 || strings.TrimSpace(out[i:]) != strings.TrimSpace(out[i:strings.IndexByte(out[i:], '\n')+i]) {
		t.Errorf("the summary is not the last thing on the screen: %q", out)
	}
	srv.Verify(t, filepath.Join(dir, "t.bin"))
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
