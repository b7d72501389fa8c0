package convoy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
)

// A first URL that serves 40 KiB/s in all holds nothing back: the fast
// mirror given second starts sending before the slow server has sent its
// samples, the slow one gets no range it would finish last, and the
// notices name it. (How long it takes is for bench/, not a test.)
func TestSlowFirstURLIsOffTheCriticalPath(t *testing.T) {
	t.Parallel()
	const size = 16 << 20
	slow := testserver.New(t, testserver.Size(size), testserver.TotalRate(40<<10))
	var atFirstRange atomic.Int64 // what slow had sent when fast got its first range request
	atFirstRange.Store(-1)
	fast := testserver.New(t, testserver.Size(size), testserver.OnRequest(func(r *http.Request) {
		// Samples and the probe ask for 64 KiB at most; a download asks
		// for more.
		var start, end int64
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &start, &end); err == nil && end-start+1 > 64<<10 {
			atFirstRange.CompareAndSwap(-1, slow.Stats().BodyBytes)
		}
	}))
	dir := t.TempDir()
	cfg := fastConfig(slow.URL, dir)
	cfg.Connections = 0 // adaptive
	cfg.Mirrors = []string{fast.URL}
	var n notices
	cfg.Logf = n.logf
	var slowEvents atomic.Int32
	cfg.OnEvent = func(e convoy.Event) {
		if e.Type == "slow-server" && e.Mirror == slow.URL {
			slowEvents.Add(1)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := convoy.Download(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	fast.Verify(t, filepath.Join(dir, "out.bin"))
	if got := atFirstRange.Load(); got < 0 || got >= 64<<10 {
		t.Errorf("the fast mirror was first asked for bytes after the slow server had sent %d", got)
	}
	if got := slow.Stats().BodyBytes; got > 1<<20 {
		t.Errorf("the slow server sent %d bytes of %d", got, size)
	}
	if !n.has(slow.URL+" was slow") || slowEvents.Load() != 1 {
		t.Errorf("the slow server was not named (%d events): %q", slowEvents.Load(), n.lines)
	}
	if n.has(fast.URL + " was slow") {
		t.Errorf("the fast server was named slow: %q", n.lines)
	}
}

// A mirror that serves other bytes at the same size sends some while it is
// compared with a slower primary: it is dropped when the comparison fails,
// and every byte it sent is fetched again from the others. No manifest
// ever claims one of its bytes, no hash follows them, and the file is
// the primary's.
func TestMirrorThatDisagreesAfterSendingIsRefetched(t *testing.T) {
	t.Parallel()
	for _, checksum := range []bool{false, true} {
		name := "plain"
		if checksum {
			name = "checksum"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const size = 8 << 20
			primary := testserver.New(t, testserver.Size(size), testserver.TotalRate(256<<10))
			good := testserver.New(t, testserver.Size(size), testserver.Rate(4<<20))
			bad := testserver.New(t, testserver.Size(size), testserver.Seed(99), testserver.Rate(4<<20))
			want := primary.Content()
			dir := t.TempDir()
			cfg := fastConfig(primary.URL, dir)
			cfg.Mirrors = []string{bad.URL, good.URL}
			cfg.Connections, cfg.MaxPerHost = 6, 6 // all are 127.0.0.1
			if checksum {
				sum := sha256.Sum256(want)
				cfg.Checksum = "sha256:" + hex.EncodeToString(sum[:])
			}
			var n notices
			cfg.Logf = n.logf
			mpath := filepath.Join(dir, "out.bin"+convoy.ManifestSuffix)
			ppath := filepath.Join(dir, "out.bin"+convoy.PartSuffix)
			var mu sync.Mutex
			checked, claimed := 0, int64(0)
			cfg.OnEvent = func(e convoy.Event) {
				if e.Type != "checkpoint" {
					return
				}
				m, err := manifest.Load(mpath)
				if err != nil {
					return // removed after the commit
				}
				got, err := os.ReadFile(ppath)
				if err != nil {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, s := range m.Segments {
					if s.Written > 0 && !bytes.Equal(got[s.Start:s.Start+s.Written], want[s.Start:s.Start+s.Written]) {
						t.Errorf("a manifest claims [%d,%d), which holds other bytes", s.Start, s.Start+s.Written)
					}
				}
				checked++
				claimed = max(claimed, m.Done())
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := convoy.Download(ctx, cfg)
			if err != nil {
				t.Fatalf("%v (notices %q)", err, n.lines)
			}
			primary.Verify(t, filepath.Join(dir, "out.bin"))
			if sent := bad.Stats().BodyBytes; sent <= 3*(64<<10)+1 {
				t.Fatalf("test setup: the bad mirror sent only %d bytes, its samples", sent)
			}
			if !n.has("dropping mirror "+bad.URL) || !n.has("differ") || !n.has("fetching again") {
				t.Errorf("notices %q do not say the mirror was dropped and its bytes fetched again", n.lines)
			}
			if checked == 0 || claimed == 0 {
				t.Errorf("only %d manifests with %d bytes claimed were checked", checked, claimed)
			}
			if checksum && !res.Verified {
				t.Error("the checksum was not verified")
			}
		})
	}
}
