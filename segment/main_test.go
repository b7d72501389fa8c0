package segment

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine (a fetching connection, a
// stall timer, a transport loop) outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Retry intervals small enough that a test with several retries stays fast.
const (
	fastInitial = time.Millisecond
	fastMax     = 10 * time.Millisecond
)

// newTestClient returns a segment client for conns connections whose idle
// connections are closed when the test ends.
func newTestClient(t testing.TB, o ClientOptions) *http.Client {
	t.Helper()
	c := NewClient(o)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// memWriter is an io.WriterAt over a buffer of a fixed size that fails the
// test on any write outside [0, size), and, unless overlap is allowed, on a
// write to a byte that was already written.
type memWriter struct {
	t       testing.TB
	overlap bool // a stream that restarts from 0 rewrites bytes

	mu      sync.Mutex
	buf     []byte
	seen    []bool
	writes  int
	bytes   int64
	outside int
	twice   int
}

func newMemWriter(t testing.TB, size int64) *memWriter {
	return &memWriter{t: t, buf: make([]byte, size), seen: make([]bool, size)}
}

func (w *memWriter) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if off < 0 || off+int64(len(p)) > int64(len(w.buf)) {
		w.outside++
		w.t.Errorf("WriteAt(%d bytes, off %d) outside [0,%d)", len(p), off, len(w.buf))
		return 0, fmt.Errorf("write outside the file")
	}
	if !w.overlap {
		for i := range p {
			if w.seen[off+int64(i)] {
				w.twice++
				w.t.Errorf("WriteAt(%d bytes, off %d) rewrites byte %d", len(p), off, off+int64(i))
				break
			}
		}
	}
	copy(w.buf[off:], p)
	for i := range p {
		w.seen[off+int64(i)] = true
	}
	w.bytes += int64(len(p))
	return len(p), nil
}

// prefill marks [start, end) as already on disk with content want.
func (w *memWriter) prefill(want []byte, start, end int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	copy(w.buf[start:end], want[start:end])
	for i := start; i < end; i++ {
		w.seen[i] = true
	}
}

// stats returns the number of WriteAt calls and bytes written.
func (w *memWriter) stats() (writes int, n int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes, w.bytes
}

// check fails the test unless the buffer equals want and every byte was
// written.
func (w *memWriter) check(t testing.TB, want []byte) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) != len(want) {
		t.Fatalf("file has %d bytes, want %d", len(w.buf), len(want))
	}
	for i := range w.seen {
		if !w.seen[i] {
			t.Fatalf("byte %d was never written", i)
		}
	}
	if !bytes.Equal(w.buf, want) {
		for i := range want {
			if w.buf[i] != want[i] {
				t.Fatalf("content differs first at offset %d", i)
			}
		}
	}
}

// failWriter is an io.WriterAt whose every write fails, like a full disk.
type failWriter struct {
	mu    sync.Mutex
	calls int
}

var errDiskFull = fmt.Errorf("no space left on device (test)")

func (w *failWriter) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	w.calls++
	w.mu.Unlock()
	return 0, errDiskFull
}

// requestLog records the Range and If-Range headers of every GET.
type requestLog struct {
	mu   sync.Mutex
	reqs []loggedRequest
}

type loggedRequest struct {
	method, path, rng, ifRange, acceptEncoding string
}

func (l *requestLog) hook(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, loggedRequest{
		method:         r.Method,
		path:           r.URL.Path,
		rng:            r.Header.Get("Range"),
		ifRange:        r.Header.Get("If-Range"),
		acceptEncoding: r.Header.Get("Accept-Encoding"),
	})
}

func (l *requestLog) all() []loggedRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]loggedRequest(nil), l.reqs...)
}
