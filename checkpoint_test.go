package convoy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
)

// holdingWriter passes an answer's body through, and calls hold once when
// the bytes it passed (over all answers sharing sent) reach at, after
// flushing them to the client.
type holdingWriter struct {
	http.ResponseWriter
	sent *atomic.Int64
	at   int64
	hold func()
}

func (w holdingWriter) Write(p []byte) (int, error) {
	before := w.sent.Load()
	if before < w.at && before+int64(len(p)) >= w.at {
		n, err := w.ResponseWriter.Write(p[:w.at-before])
		w.sent.Add(int64(n))
		if err != nil {
			return n, err
		}
		w.Flush()
		w.hold()
		m, err := w.ResponseWriter.Write(p[n:])
		w.sent.Add(int64(m))
		return n + m, err
	}
	n, err := w.ResponseWriter.Write(p)
	w.sent.Add(int64(n))
	return n, err
}

func (w holdingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// A checkpoint comes as soon as a MiB written is not in the last one,
// however long the interval: the server sends 2 MiB, then waits until the
// manifest claims a MiB before it sends the rest. With a checkpoint every
// hour, only the written bytes can have asked for it.
func TestCheckpointComesAfterAMiB(t *testing.T) {
	const size = 8 << 20
	h := testserver.NewHandler(testserver.Size(size))
	dir := t.TempDir()
	mpath := filepath.Join(dir, "out.bin.convoy")
	var (
		sent     atomic.Int64
		once     sync.Once
		claimed  atomic.Int64 // what the manifest claimed while the server waited
		answered = make(chan struct{})
	)
	hold := func() {
		once.Do(func() {
			defer close(answered)
			// A bound on the wait, not a measurement: without an early
			// checkpoint the manifest claims nothing for an hour.
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if m, err := manifest.Load(mpath); err == nil && m.Done() >= 1<<20 {
					claimed.Store(m.Done())
					return
				}
			}
		})
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.Header.Get("Range") != "" && r.Header.Get("Range") != "bytes=0-0" {
			w = holdingWriter{ResponseWriter: w, sent: &sent, at: 2 << 20, hold: hold}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	cfg := fastConfig(ts.URL+h.StartPath(), dir)
	cfg.Connections = 1
	cfg.CheckpointInterval = time.Hour
	cfg.StallTimeout = time.Minute // no retry while the server waits: it would finish the file
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	h.Verify(t, filepath.Join(dir, "out.bin"))
	select {
	case <-answered:
	default:
		t.Fatalf("the server sent %d bytes and never waited", sent.Load())
	}
	if claimed.Load() == 0 {
		t.Error("with 2 MiB sent and a checkpoint every hour, the manifest claimed less than 1 MiB")
	}
}
