package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	cutSplit    = "256K" // so that every connection has a range of its own
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
	claimed  int64  // bytes the manifest claims (0 without one)
	etag     string // the version the manifest was saved for
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
		s.etag = m.ETag
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
	return strings.HasPrefix(path, name+".convoy.tmp-")
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
	var resetting atomic.Bool
	resetting.Store(true)
	srv, resets := resettingServer(t, seed, cutSize, 1<<20, 16<<10, 512<<10, resetting.Load)
	content := srv.Content()
	v := newVersions(cutSize)
	dir := lfs.Dir()
	download, finished := 0, 0
	var claimed int64
	var timed, frozen, ended int
	for i := range cuts {
		name := fmt.Sprintf("c%d.bin", download)
		out := filepath.Join(dir, name)
		args := []string{"-q", "-n", fmt.Sprint(cutConns), "-d", dir, "-o", name, "--checkpoint-interval", cutInterval, "--min-split-size", cutSplit, srv.URL}
		byOp := rng.IntN(2) == 1
		delay := time.Duration(rng.Int64N(int64(450 * time.Millisecond)))
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
	p := startProc(t, bin, "-q", "--json", "-n", fmt.Sprint(cutConns), "-d", dir, "-o", name, "--checkpoint-interval", cutInterval, "--min-split-size", cutSplit, srv.URL)
	p.wait(t)
	if got, most := p.fetched(t), cutSize-claimed; got > most {
		t.Errorf("the last run fetched %d bytes; the manifest claimed %d of %d, so at most %d were missing", got, claimed, cutSize, most)
	}
	srv.Verify(t, out)
	t.Logf("seed %d: %d cuts (%d timed, %d at an operation, %d after the run ended), %d downloads finished, %d resets, in %v",
		seed, cuts, timed, frozen, ended, finished+1, resets(), time.Since(start).Round(time.Millisecond))
}

// TestPowerCuts is the default run of the random power cuts; make soak
// runs a longer one (TestPowerCutSoak).
func TestPowerCuts(t *testing.T) {
	powerCuts(t, 200, 20261126)
}

// cutRig is one lossy mount and one server for a power-cut scenario.
type cutRig struct {
	bin  string
	lfs  *lossyfs.FS
	srv  *testserver.Server
	v    *versions
	outs []string // the files the scenario downloads, relative to the mount
	args []string // convoy get's arguments
}

// run starts convoy with the scenario's arguments and extra ones.
func (r *cutRig) run(t *testing.T, extra ...string) *proc {
	t.Helper()
	return startProc(t, r.bin, append(append([]string{}, extra...), r.args...)...)
}

// cutAt runs convoy until the file system freezes at the moment trigger
// picks, kills it and cuts the power; it fails t if the run ends before
// that moment came. It returns the state of each file after the cut.
func (r *cutRig) cutAt(t *testing.T, trigger func(lossyfs.Op) lossyfs.When) []cutState {
	t.Helper()
	r.lfs.SetTrigger(trigger)
	p := r.run(t)
	select {
	case <-r.lfs.Frozen():
	case <-p.done:
		t.Fatalf("the run ended (%v) before the moment came:\n%s", p.err, p.out)
	case <-time.After(cutRunLimit):
		p.stop(t)
		t.Fatalf("the moment did not come within %v", cutRunLimit)
	}
	at := r.lfs.FrozenAt()
	p.stop(t)
	t.Logf("frozen at %v, killed, power cut", at)
	return r.cut(t)
}

// cut cuts the power and checks every file of the scenario.
func (r *cutRig) cut(t *testing.T) []cutState {
	t.Helper()
	if err := r.lfs.Cut(); err != nil {
		t.Fatal(err)
	}
	var states []cutState
	for _, o := range r.outs {
		s := checkAfterCut(t, filepath.Join(r.lfs.Dir(), o), r.srv.Content(), r.v)
		t.Logf("%s: %d bytes claimed, manifest %v, final file %v", o, s.claimed, s.manifest, s.final)
		states = append(states, s)
	}
	return states
}

// finish runs convoy to the end, checks that it fetched no more than the
// manifests left after the cut did not claim (when bounded), and that the
// files are right and survive one more cut.
func (r *cutRig) finish(t *testing.T, states []cutState, bounded bool) {
	t.Helper()
	r.lfs.SetTrigger(nil)
	p := r.run(t, "--json")
	p.wait(t)
	if bounded {
		var claimed int64
		for _, s := range states {
			switch {
			case s.final:
				claimed += cutSize
			case s.etag == r.srv.ETag():
				claimed += s.claimed
			}
			// A manifest of an earlier version vouches for nothing now.
		}
		if got, most := p.fetched(t), int64(len(r.outs))*cutSize-claimed; got > most {
			t.Errorf("the run after the cut fetched %d bytes; the manifests claimed %d, so at most %d were missing", got, claimed, most)
		}
	}
	for _, o := range r.outs {
		r.srv.Verify(t, filepath.Join(r.lfs.Dir(), o))
	}
	for i, s := range r.cut(t) {
		if !s.final {
			t.Errorf("%s was saved, and a power cut after the run lost it", r.outs[i])
		}
	}
}

// opIs matches operations of kind on path (and to newPath, if not empty),
// with datasync telling fdatasync from fsync for OpFsync.
func opIs(kind lossyfs.OpKind, path, newPath string, datasync bool) func(lossyfs.Op) bool {
	return func(op lossyfs.Op) bool {
		return op.Kind == kind && op.Path == path && (newPath == "" || op.NewPath == newPath) && (kind != lossyfs.OpFsync || op.Datasync == datasync)
	}
}

// manifestRename matches the rename of one of name's manifest temporaries
// over its manifest.
func manifestRename(name string) func(lossyfs.Op) bool {
	return func(op lossyfs.Op) bool {
		return op.Kind == lossyfs.OpRename && isTemp(op.Path, name) && op.NewPath == name+".convoy"
	}
}

// TestPowerCutMoments cuts the power at the moments that matter, each on
// purpose: inside a checkpoint, during the final commit, during a restart
// after the file changed on the server, in a batch, and for a download
// that cannot resume (a stream). After each cut, the next run must finish
// the file, fetching no more than the last durable checkpoint did not
// cover, and a finished file must survive a further cut.
func TestPowerCutMoments(t *testing.T) {
	bin := buildBinary(t)
	const m = "m.bin"
	type scenario struct {
		name string
		opts []testserver.Option
		// batch downloads sub/a.bin and sub/deep/b.bin with -i (in folders
		// it makes); otherwise m.bin.
		batch bool
		// prepare runs before the cut, after the rig is set up.
		prepare func(t *testing.T, r *cutRig)
		// trigger picks the moment; nil lets the run finish, then cuts.
		trigger func(lossyfs.Op) lossyfs.When
		// unbounded: the download cannot resume, so the next run may fetch
		// it all again.
		unbounded bool
	}
	checkpointed := func(t *testing.T, r *cutRig) {
		// An earlier run left a partial download of three checkpoints.
		r.finishPrepare(t, r.cutAt(t, afterWrites(m, 2)))
	}
	scenarios := []scenario{
		{name: "checkpoint/after the data sync, before the manifest is written",
			trigger: nth(3, lossyfs.After, opIs(lossyfs.OpFsync, m+".part", "", true))},
		{name: "checkpoint/before the manifest rename",
			trigger: nth(3, lossyfs.Before, manifestRename(m))},
		{name: "checkpoint/after the manifest rename, before the folder sync",
			trigger: nth(3, lossyfs.After, manifestRename(m))},
		{name: "checkpoint/resumed run, after its first data sync",
			prepare: checkpointed,
			trigger: nth(1, lossyfs.After, opIs(lossyfs.OpFsync, m+".part", "", true))},
		{name: "commit/after the part file's fsync, before the rename",
			trigger: nth(1, lossyfs.After, opIs(lossyfs.OpFsync, m+".part", "", false))},
		{name: "commit/after the rename, before the folder sync",
			trigger: nth(1, lossyfs.After, opIs(lossyfs.OpRename, m+".part", m, false))},
		{name: "commit/after the folder sync, before the manifest is removed",
			trigger: nth(1, lossyfs.Before, opIs(lossyfs.OpUnlink, m+".convoy", "", false))},
		{name: "commit/after the manifest is removed, before the folder sync",
			trigger: nth(1, lossyfs.After, opIs(lossyfs.OpUnlink, m+".convoy", "", false))},
		{name: "commit/finished, then the cut"},
		{name: "restart/changed since the last run, after the new manifest's rename",
			prepare: func(t *testing.T, r *cutRig) {
				checkpointed(t, r)
				r.srv.SetOption(testserver.ChangeAfter(0))
			},
			trigger: nth(1, lossyfs.After, manifestRename(m))},
		{name: "restart/changed since the last run, after the second data sync of the new version",
			prepare: func(t *testing.T, r *cutRig) {
				checkpointed(t, r)
				r.srv.SetOption(testserver.ChangeAfter(0))
			},
			trigger: nth(2, lossyfs.After, opIs(lossyfs.OpFsync, m+".part", "", true))},
		{name: "restart/changed during the run, after the old manifest's removal",
			opts:    []testserver.Option{testserver.ChangeAfter(3)},
			trigger: afterRestart(m, 0)},
		{name: "restart/changed during the run, after the new version's first checkpoint",
			opts:    []testserver.Option{testserver.ChangeAfter(3)},
			trigger: afterRestart(m, 2)},
		{name: "batch/after the first file's rename into a new folder",
			batch:   true,
			trigger: nth(1, lossyfs.After, opIs(lossyfs.OpRename, "sub/a.bin.part", "sub/a.bin", false))},
		{name: "batch/after the second file's checkpoint",
			batch:   true,
			trigger: nth(2, lossyfs.After, manifestRename("sub/deep/b.bin"))},
		{name: "batch/finished, then the cut",
			batch: true},
		{name: "stream/after the rename, before the folder sync",
			opts:      []testserver.Option{testserver.NoRanges()},
			trigger:   nth(1, lossyfs.After, opIs(lossyfs.OpRename, m+".part", m, false)),
			unbounded: true},
		{name: "stream/finished, then the cut",
			opts:      []testserver.Option{testserver.NoRanges()},
			unbounded: true},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			lfs := lossyfs.MountForTest(t)
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(cutSize), testserver.Rate(1 << 20)}, sc.opts...)...)
			r := &cutRig{bin: bin, lfs: lfs, srv: srv, v: newVersions(cutSize)}
			common := []string{"-q", "-n", fmt.Sprint(cutConns), "-d", lfs.Dir(), "--checkpoint-interval", cutInterval, "--min-split-size", cutSplit}
			if sc.batch {
				list := filepath.Join(t.TempDir(), "list.txt")
				text := fmt.Sprintf("%s\n  out=sub/a.bin\n%s\n  out=sub/deep/b.bin\n", srv.URL, srv.URL)
				if err := os.WriteFile(list, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				r.outs = []string{"sub/a.bin", "sub/deep/b.bin"}
				r.args = append(common, "-j", "2", "-i", list)
			} else {
				r.outs = []string{m}
				r.args = append(common, "-o", m, srv.URL)
			}
			if sc.prepare != nil {
				sc.prepare(t, r)
			}
			if sc.trigger == nil {
				// The first run fetches it all; the cut comes after it.
				r.finish(t, nil, false)
				return
			}
			r.finish(t, r.cutAt(t, sc.trigger), !sc.unbounded)
		})
	}
}

// finishPrepare checks that a cut made while preparing a scenario left a
// partial download to resume.
func (r *cutRig) finishPrepare(t *testing.T, states []cutState) {
	t.Helper()
	for i, s := range states {
		if s.final || s.claimed == 0 {
			t.Fatalf("preparing: %s has %d bytes claimed, final %v; want a partial download", r.outs[i], s.claimed, s.final)
		}
	}
}

// afterRestart freezes the file system once the manifest of name is
// removed before the part file was committed (a restart: the file changed
// on the server), right after the removal (renames 0) or after the renames-th
// manifest rename that follows it.
func afterRestart(name string, renames int) func(lossyfs.Op) lossyfs.When {
	committed, removed, seen := false, false, 0
	rename := manifestRename(name)
	return func(op lossyfs.Op) lossyfs.When {
		switch {
		case opIs(lossyfs.OpRename, name+".part", name, false)(op):
			committed = true
		case !committed && !removed && opIs(lossyfs.OpUnlink, name+".convoy", "", false)(op):
			removed = true
			if renames == 0 {
				return lossyfs.After
			}
		case removed && rename(op):
			seen++
			if seen == renames {
				return lossyfs.After
			}
		}
		return lossyfs.Continue
	}
}

// afterWrites freezes the file system at the syncs-th folder fsync after
// the first write into name's part file: a checkpoint that claims bytes is
// then durable.
func afterWrites(name string, syncs int) func(lossyfs.Op) lossyfs.When {
	written, seen := false, 0
	return func(op lossyfs.Op) lossyfs.When {
		switch {
		case op.Kind == lossyfs.OpWrite && op.Path == name+".part":
			written = true
		case written && op.Kind == lossyfs.OpFsyncDir && op.Path == "":
			seen++
			if seen == syncs {
				return lossyfs.After
			}
		}
		return lossyfs.Continue
	}
}
