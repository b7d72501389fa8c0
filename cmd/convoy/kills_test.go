package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
)

// progressLimit bounds the wait for a run's next checkpoint: a ceiling for
// a slow machine, not a measure of speed.
const progressLimit = time.Minute

// running is a convoy get process being watched.
type running struct {
	cmd    *exec.Cmd
	out    *bytes.Buffer
	exited chan error // receives cmd.Wait's result
}

func startWatched(t *testing.T, bin string, args ...string) *running {
	t.Helper()
	cmd, out := startGet(t, bin, args...)
	r := &running{cmd: cmd, out: out, exited: make(chan error, 1)}
	go func() { r.exited <- cmd.Wait() }()
	return r
}

// waitForClaim returns once the manifest at mpath claims more than beyond
// bytes: a checkpoint of this run has recorded progress, so a kill from
// now on leaves something to check. It fails t if the run ends first.
func (r *running) waitForClaim(t *testing.T, mpath string, beyond int64) int64 {
	t.Helper()
	deadline := time.Now().Add(progressLimit)
	for time.Now().Before(deadline) {
		select {
		case err := <-r.exited:
			t.Fatalf("the run ended on its own (%v) before its manifest claimed more than %d bytes; make the download longer:\n%s", err, beyond, r.out)
		case <-time.After(5 * time.Millisecond):
		}
		if m, err := manifest.Load(mpath); err == nil && m.Done() > beyond {
			return m.Done()
		}
	}
	r.kill(t)
	t.Fatalf("the manifest claimed no more than %d bytes within %v", beyond, progressLimit)
	return 0
}

// kill sends SIGKILL and fails t unless that is what ended the run.
func (r *running) kill(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	err := <-r.exited
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the run ended on its own (%v), not by the kill:\n%s", err, r.out)
	}
}

// checkClaims fails t unless every byte the manifest beside out claims is in
// the part file with the right value, and returns how many it claims (0
// without a manifest).
func checkClaims(t *testing.T, out string, content []byte) int64 {
	t.Helper()
	m, err := manifest.Load(out + ".convoy")
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatalf("manifest after a kill: %v", err)
	}
	part, err := os.ReadFile(out + ".part")
	if err != nil {
		t.Fatalf("part file after a kill: %v", err)
	}
	for _, s := range m.Segments {
		if s.Written == 0 {
			continue
		}
		if s.Start+s.Written > int64(len(part)) {
			t.Fatalf("manifest claims [%d,%d) of a %d-byte part file", s.Start, s.Start+s.Written, len(part))
		}
		if !bytes.Equal(part[s.Start:s.Start+s.Written], content[s.Start:s.Start+s.Written]) {
			t.Fatalf("manifest claims [%d,%d) but the part file differs there", s.Start, s.Start+s.Written)
		}
	}
	return m.Done()
}

// killRepeatedly kills a download with SIGKILL kills times while the
// server resets connections, then lets it finish and compares the file
// byte for byte. Each kill lands after a checkpoint of its run recorded
// progress, a random part of the checkpoint interval later; after every
// kill, every byte the manifest claims must be in the part file, right.
// The random choices (kill delays, which answers are reset and where) come
// from seed alone, so a failure is replayed with its seed; which request
// meets which reset still depends on timing.
func killRepeatedly(t *testing.T, kills int, seed uint64, size int64) {
	bin := buildBinary(t)
	t.Logf("seed %d", seed)
	const (
		conns    = 8
		interval = 250 * time.Millisecond
	)
	delays := rand.New(rand.NewPCG(seed, 1))
	srv, resets := resettingServer(t, seed, size, 512<<10, 64<<10, 2<<20, nil)
	content := srv.Content()
	dir := t.TempDir()
	out := filepath.Join(dir, "k.bin")
	args := []string{"-q", "-n", fmt.Sprint(conns), "-d", dir, "-o", "k.bin", "--checkpoint-interval", interval.String(), srv.URL}
	var claimed int64
	for i := range kills {
		r := startWatched(t, bin, args...)
		r.waitForClaim(t, out+".convoy", claimed)
		delay := time.Duration(delays.Int64N(int64(interval)))
		time.Sleep(delay)
		r.kill(t)
		now := checkClaims(t, out, content)
		t.Logf("kill %d, %v after a checkpoint: %d of %d bytes claimed", i, delay, now, size)
		if now <= claimed {
			t.Fatalf("kill %d (seed %d): the manifest claims %d bytes, it claimed more than %d before the kill", i, seed, now, claimed)
		}
		claimed = now
	}
	srv.SetOption(testserver.Rate(0))
	r := startWatched(t, bin, args...)
	if err := <-r.exited; err != nil {
		t.Fatalf("final run: %v\n%s", err, r.out)
	}
	srv.Verify(t, out)
	st := srv.Stats()
	t.Logf("seed %d: %d runs, %d kills, %d resets injected, %d requests, %d bytes sent for a %d-byte file; file identical: %v",
		seed, kills+1, kills, resets(), st.Requests, st.BodyBytes, size, !t.Failed())
}

// TestKillsKeepTheManifestTrue is the short kill run of the default tests;
// make soak runs a longer one (TestSoak).
func TestKillsKeepTheManifestTrue(t *testing.T) {
	killRepeatedly(t, 10, 20261125, 32<<20)
}

// resettingServer serves a file of size bytes at rate and resets one ranged
// answer in four after from to from+spread bytes, drawn from seed, while
// on() holds (nil: always); resets counts the resets injected so far.
func resettingServer(t *testing.T, seed uint64, size, rate int64, from, spread int, on func() bool) (srv *testserver.Server, resets func() int) {
	var mu sync.Mutex // guards faults and n, used by the handler goroutines
	faults := rand.New(rand.NewPCG(seed, 2))
	n := 0
	srv = testserver.New(t, testserver.Size(size), testserver.Rate(rate),
		testserver.OnRequest(func(r *http.Request) {
			if on != nil && !on() || r.Method != http.MethodGet || r.Header.Get("Range") == "bytes=0-0" {
				return
			}
			mu.Lock()
			reset := faults.IntN(4) == 0
			at := int64(from + faults.IntN(spread))
			if reset {
				n++
			}
			mu.Unlock()
			if reset {
				srv.SetOption(testserver.CutAfter(at, 1))
			}
		}))
	return srv, func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}
