//go:build soak

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
)

// TestSoak kills a download with SIGKILL at random moments, again and again,
// while the server resets connections at random points, then lets it finish
// and compares the file byte for byte. After every kill, every byte the
// manifest claims must already be in the part file. Run with "make soak".
func TestSoak(t *testing.T) {
	bin := buildBinary(t)
	const (
		size  = 128 << 20
		conns = 8
		kills = 50
		seed  = 20261125
	)
	rng := rand.New(rand.NewPCG(seed, seed))
	var resets atomic.Int64
	var srv *testserver.Server
	srv = testserver.New(t, testserver.Size(size), testserver.Rate(512<<10),
		testserver.OnRequest(func(r *http.Request) {
			// One ranged answer in four is reset after 64 KiB to 2 MiB.
			if r.Method == http.MethodGet && r.Header.Get("Range") != "bytes=0-0" && rand.IntN(4) == 0 {
				resets.Add(1)
				srv.SetOption(testserver.CutAfter(int64(64<<10+rand.IntN(2<<20)), 1))
			}
		}))
	content := srv.Content()
	dir := t.TempDir()
	out := filepath.Join(dir, "soak.bin")
	args := []string{"-q", "-n", fmt.Sprint(conns), "-d", dir, "-o", "soak.bin", "--checkpoint-interval", "250ms", srv.URL}

	deadline := time.Now().Add(10 * time.Minute)
	killed := 0
	for killed < kills && time.Now().Before(deadline) {
		cmd, log := startGet(t, bin, args...)
		time.Sleep(time.Duration(20+rng.IntN(600)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if err == nil {
			t.Fatalf("run %d finished before %d kills; make the download longer", killed, kills)
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("run %d ended on its own: %v\n%s", killed, err, log)
		}
		killed++
		checkClaims(t, out, content)
	}
	srv.SetOption(testserver.Rate(0))
	cmd, log := startGet(t, bin, args...)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("final run: %v\n%s", err, log)
	}
	srv.Verify(t, out)
	st := srv.Stats()
	t.Logf("soak: %d runs, %d kills, %d resets injected, %d requests, %d bytes sent for a %d-byte file; file identical: %v",
		killed+1, killed, resets.Load(), st.Requests, st.BodyBytes, int64(size), !t.Failed())
}

// checkClaims fails t unless every byte the manifest beside out claims is in
// the part file with the right value.
func checkClaims(t *testing.T, out string, content []byte) {
	t.Helper()
	m, err := manifest.Load(out + ".convoy")
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatalf("manifest after a kill: %v", err)
	}
	part, err := os.ReadFile(out + ".part")
	if err != nil {
		t.Fatalf("part file after a kill: %v", err)
	}
	for _, s := range m.Segments {
		if s.Written > 0 && !bytes.Equal(part[s.Start:s.Start+s.Written], content[s.Start:s.Start+s.Written]) {
			t.Fatalf("manifest claims [%d,%d) but the part file differs there", s.Start, s.Start+s.Written)
		}
	}
}
