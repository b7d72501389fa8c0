package merge

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
)

// TestOrderedWriterConcurrent writes a file in random order from many
// goroutines through a small window: the stream comes out whole and in
// order, and the memory held never passes the window.
func TestOrderedWriterConcurrent(t *testing.T) {
	for _, tt := range []struct{ size, chunk, window int64 }{
		{1 << 20, 4 << 10, 64 << 10},
		{3<<20 + 17, 64 << 10, 256 << 10},
		{100, 7, 7},
	} {
		t.Run(fmt.Sprintf("size=%d/chunk=%d/window=%d", tt.size, tt.chunk, tt.window), func(t *testing.T) {
			data := make([]byte, tt.size)
			for i := range data {
				data[i] = byte(i * 7 / 3)
			}
			var out bytes.Buffer
			h := sha256.New()
			o := NewOrderedWriter(&out, tt.window, h)
			// Each worker takes the next chunk in order and writes it in
			// random sized pieces, as connections do.
			var next int64
			var mu sync.Mutex
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(w), 1))
					for {
						mu.Lock()
						start := next
						next += tt.chunk
						mu.Unlock()
						if start >= tt.size {
							return
						}
						end := min(start+tt.chunk, tt.size)
						for at := start; at < end; {
							n := min(int64(1+r.IntN(int(tt.chunk))), end-at)
							if _, err := o.WriteAt(data[at:at+n], at); err != nil {
								t.Error(err)
								return
							}
							at += n
						}
					}
				}()
			}
			wg.Wait()
			if !bytes.Equal(out.Bytes(), data) {
				t.Fatal("stream differs from the data")
			}
			if sum := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Error("hash of the stream differs")
			}
			if p := o.PeakBuffered(); p > tt.window {
				t.Errorf("held %d bytes out of order, window %d", p, tt.window)
			}
		})
	}
}

func TestOrderedWriterAbortUnblocks(t *testing.T) {
	// In a bubble synctest.Wait returns only once the writer is blocked
	// (sync.Cond.Wait blocks durably), so Abort meets a write that waits,
	// and a write Abort failed to wake is seen at once instead of hanging.
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		o := NewOrderedWriter(&out, 10, nil)
		errc := make(chan error, 1)
		go func() {
			_, err := o.WriteAt(make([]byte, 5), 100) // far beyond the window: blocks
			errc <- err
		}()
		synctest.Wait()
		select {
		case err := <-errc:
			t.Fatalf("a write beyond the window returned %v without blocking", err)
		default:
		}
		stop := errors.New("stop")
		o.Abort(stop)
		synctest.Wait()
		select {
		case err := <-errc:
			if !errors.Is(err, stop) {
				t.Fatalf("blocked write returned %v, want the abort error", err)
			}
		default:
			o.moved.Broadcast() // release it, so the bubble can end
			t.Fatal("Abort left the blocked write waiting")
		}
	})
}

func TestOrderedWriterRewindRefused(t *testing.T) {
	var out bytes.Buffer
	o := NewOrderedWriter(&out, 10, nil)
	if _, err := o.WriteAt([]byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := o.WriteAt([]byte("a"), 0); !errors.Is(err, ErrRewind) {
		t.Fatalf("rewrite: %v, want ErrRewind", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestOrderedWriterSinkFailureIsSticky(t *testing.T) {
	o := NewOrderedWriter(failingWriter{}, 10, nil)
	if _, err := o.WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("write to a broken sink succeeded")
	}
	if _, err := o.WriteAt([]byte("y"), 1); err == nil {
		t.Fatal("later write succeeded after the sink failed")
	}
}
