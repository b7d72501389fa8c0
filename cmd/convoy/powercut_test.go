package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/fsx"
	"github.com/convoy-dl/convoy/internal/lossyfs"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
)

// The power-cut tests run convoy on a lossy file system (internal/lossyfs)
// and, at chosen or random moments, kill it and cut the power: everything
// not made durable is lost. After each cut they check what convoy
// promises: a manifest claims only bytes that are right in the part file,
// a file under its final name is complete, a download that said it was
// done is still there, and the next run finishes the file fetching at most
// what the last durable checkpoint did not cover.

const (
	cutSize     = 2 << 20
	cutConns    = 4
	cutInterval = "20ms"
	// cutRunLimit bounds a run that must end on its own: a ceiling for a
	// slow machine, not a measure of speed.
	cutRunLimit = time.Minute
)

// proc is a convoy process on the lossy file system.
type proc struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{} // closed once the process is reaped
	err  error         // cmd.Wait's result, once done is closed
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd, out := startGet(t, bin, args...)
	p := &proc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

// stop kills p unless it has ended, and reports whether it had ended on
// its own with success.
func (p *proc) stop(t *testing.T) (succeeded bool) {
	t.Helper()
	select {
	case <-p.done:
		return p.err == nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	<-p.done
	return p.err == nil
}

// wait waits for p to end on its own and fails t unless it succeeded.
func (p *proc) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(cutRunLimit):
		p.stop(t)
		t.Fatalf("the run did not end within %v:\n%s", cutRunLimit, p.out)
	}
	if p.err != nil {
		t.Fatalf("the run failed (%v):\n%s", p.err, p.out)
	}
}

// fetched is the byte count of the done event of a --json run.
func (p *proc) fetched(t *testing.T) int64 {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(p.out.Bytes()))
	for sc.Scan() {
		var e struct {
			Event   string `json:"event"`
			Fetched int64  `json:"fetched"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Event == "done" {
			return e.Fetched
		}
	}
	t.Fatalf("no done event in the output:\n%s", p.out)
	return 0
}

// versions gives the content of each version of the test server's file by
// its ETag: a manifest is checked against the version it was saved for.
type versions struct {
	size  int64
	byTag map[string][]byte
}

func newVersions(size int64) *versions {
	v := &versions{size: size, byTag: map[string][]byte{}}
	for seed := uint64(1); seed <= 4; seed++ {
		h := testserver.NewHandler(testserver.Size(size), testserver.Seed(seed))
		v.byTag[h.ETag()] = h.Content()
		h.Close()
	}
	return v
}

// cutState is what a cut left of one download.
type cutState struct {
	claimed  int64 // bytes the manifest claims (0 without one)
	manifest bool
	final    bool // the file is under its final name (and complete)
}

// checkAfterCut fails t unless what a cut left of the download to out is
// true: a manifest decodes and claims only bytes that are right in the part
// file, and a file under the final name is complete (want).
func checkAfterCut(t *testing.T, out string, want []byte, v *versions) cutState {
	t.Helper()
	var s cutState
	m, err := manifest.Load(out + ".convoy")
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		t.Fatalf("manifest after the cut: %v", err)
	default:
		s.manifest = true
		s.claimed = m.Done()
		content, ok := v.byTag[m.ETag]
		if !ok {
			t.Fatalf("the manifest names ETag %q, of no version the server had", m.ETag)
		}
		part, err := os.ReadFile(out + ".part")
		if errors.Is(err, fs.ErrNotExist) {
			// Between the commit's rename and the manifest's removal the
			// manifest's claims are on the file under its final name
			// (checked below), and the next run only removes the manifest.
			part, err = os.ReadFile(out)
		}
		if err != nil && s.claimed > 0 {
			t.Fatalf("the manifest claims %d bytes, and neither the part file nor the final file is there: %v", s.claimed, err)
		}
		for _, sg := range m.Segments {
			if sg.Written == 0 {
				continue
			}
			end := sg.Start + sg.Written
			if end > int64(len(part)) {
				t.Fatalf("the manifest claims [%d,%d) of a %d-byte part file", sg.Start, end, len(part))
			}
			for i := sg.Start; i < end; i++ {
				if part[i] != content[i] {
					t.Fatalf("the manifest claims [%d,%d), but the part file differs at %d", sg.Start, end, i)
				}
			}
		}
	}
	got, err := os.ReadFile(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		t.Fatalf("the final file after the cut: %v", err)
	case !bytes.Equal(got, want):
		t.Fatalf("%s is under its final name after the cut, but is not the file (%d bytes, want %d)", filepath.Base(out), len(got), len(want))
	default:
		s.final = true
	}
	return s
}

// removeDurably removes the files at paths and syncs their folder, so that
// a cut does not bring them back.
func removeDurably(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if err := fsx.SyncDir(filepath.Dir(p)); err != nil {
			t.Fatal(err)
		}
	}
}

// nth returns a trigger that freezes the file system at the n-th operation
// match accepts, when says when.
func nth(n int, when lossyfs.When, match func(op lossyfs.Op) bool) func(lossyfs.Op) lossyfs.When {
	seen := 0
	return func(op lossyfs.Op) lossyfs.When {
		if !match(op) {
			return lossyfs.Continue
		}
		seen++
		if seen == n {
			return when
		}
		return lossyfs.Continue
	}
}

// isTemp tells whether path is a manifest's temporary file.
func isTemp(path, name string) bool {
	return strings.HasPrefix(filepath.Base(path), name+".convoy.tmp-")
}

// powerCuts runs downloads on a lossy file system and cuts the power cuts
// times at random moments while the server resets connections: half the
// cuts land a random time into a run, half at a random operation of it
// (the k-th write, sync, rename... it makes, frozen before or after it
// takes effect). After every cut the state is checked; a download that
// finished is checked to have survived, removed, and the next one starts.
// At the end, one more download is cut once and then finished without
// resets, and may fetch only what its manifest did not claim.
func powerCuts(t *testing.T, cuts int, seed uint64) {
	bin := buildBinary(t)
	lfs := lossyfs.MountForTest(t)
	t.Logf("seed %d", seed)
	start := time.Now()
	rng := rand.New(rand.NewPCG(seed, 1))
	var mu sync.Mutex // guards faults, drawn from by the handler goroutines
	faults := rand.New(rand.NewPCG(seed, 2))
	var resetting atomic.Bool
	resetting.Store(true)
	resets := 0
	var srv *testserver.Server
	srv = testserver.New(t, testserver.Size(cutSize), testserver.Rate(1<<20),
		testserver.OnRequest(func(r *http.Request) {
			if !resetting.Load() || r.Method != http.MethodGet || r.Header.Get("Range") == "bytes=0-0" {
				return
			}
			// One ranged answer in four is reset after 16 to 528 KiB.
			mu.Lock()
			reset := faults.IntN(4) == 0
			at := int64(16<<10 + faults.IntN(512<<10))
			if reset {
				resets++
			}
			mu.Unlock()
			if reset {
				srv.SetOption(testserver.CutAfter(at, 1))
			}
		}))
	content := srv.Content()
	v := newVersions(cutSize)
	dir := lfs.Dir()
	download, finished := 0, 0
	var claimed int64
	var timed, frozen, ended int
	for i := range cuts {
		name := fmt.Sprintf("c%d.bin", download)
		out := filepath.Join(dir, name)
		args := []string{"-q", "-n", fmt.Sprint(cutConns), "-d", dir, "-o", name, "--checkpoint-interval", cutInterval, srv.URL}
		byOp := rng.IntN(2) == 1
		delay := time.Duration(rng.Int64N(int64(700 * time.Millisecond)))
		k, when := 1+rng.IntN(200), lossyfs.When(1+rng.IntN(2))
		if byOp {
			lfs.SetTrigger(nth(k, when, func(lossyfs.Op) bool { return true }))
		}
		p := startProc(t, bin, args...)
		moment := ""
		if byOp {
			select {
			case <-lfs.Frozen():
				moment = "at " + map[lossyfs.When]string{lossyfs.Before: "before ", lossyfs.After: "after "}[when] + lfs.FrozenAt().String()
				frozen++
			case <-p.done:
			case <-time.After(cutRunLimit):
				t.Fatalf("cut %d: the run neither ended nor reached operation %d within %v", i, k, cutRunLimit)
			}
		} else {
			timer := time.NewTimer(delay)
			select {
			case <-timer.C:
				moment = fmt.Sprintf("%v into the run", delay.Round(time.Millisecond))
				timed++
			case <-p.done:
				timer.Stop()
			}
		}
		succeeded := p.stop(t)
		if moment == "" {
			moment = "after the run ended"
			ended++
		}
		if err := lfs.Cut(); err != nil {
			t.Fatal(err)
		}
		t.Logf("cut %d %s", i, moment)
		s := checkAfterCut(t, out, content, v)
		t.Logf("  %d of %d bytes claimed, final file %v", s.claimed, cutSize, s.final)
		if succeeded && !s.final {
			t.Fatalf("cut %d (seed %d): the run said %s was saved, and the cut lost it:\n%s", i, seed, name, p.out)
		}
		if s.final {
			removeDurably(t, out, out+".part", out+".convoy")
			download++
			finished++
			claimed = 0
			continue
		}
		if s.claimed < claimed {
			t.Fatalf("cut %d (seed %d): the manifest claims %d bytes, it claimed %d after the previous cut", i, seed, s.claimed, claimed)
		}
		claimed = s.claimed
	}
	// The download under way is finished without resets: it fetches only
	// what its manifest does not claim.
	resetting.Store(false)
	name := fmt.Sprintf("c%d.bin", download)
	out := filepath.Join(dir, name)
	p := startProc(t, bin, "-q", "--json", "-n", fmt.Sprint(cutConns), "-d", dir, "-o", name, "--checkpoint-interval", cutInterval, srv.URL)
	p.wait(t)
	if got, most := p.fetched(t), cutSize-claimed; got > most {
		t.Errorf("the last run fetched %d bytes; the manifest claimed %d of %d, so at most %d were missing", got, claimed, cutSize, most)
	}
	srv.Verify(t, out)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("seed %d: %d cuts (%d timed, %d at an operation, %d after the run ended), %d downloads finished, %d resets, in %v",
		seed, cuts, timed, frozen, ended, finished+1, resets, time.Since(start).Round(time.Millisecond))
}

// TestPowerCuts is the default run of the random power cuts; make soak
// runs a longer one (TestPowerCutSoak).
func TestPowerCuts(t *testing.T) {
	powerCuts(t, 200, 20261126)
}
