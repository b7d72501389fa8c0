package segment

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/testserver"
)

// A copy buffer doubles while reads into all of it fill it, up to its
// limit, and keeps its size when a read comes short or had less room.
func TestNextBuffer(t *testing.T) {
	tests := []struct {
		limit int
		reads [][2]int // room, n
		want  []int    // the size after each read
	}{
		{256 * kib, [][2]int{{64 * kib, 64 * kib}, {128 * kib, 128 * kib}, {256 * kib, 256 * kib}}, []int{128 * kib, 256 * kib, 256 * kib}},
		{256 * kib, [][2]int{{64 * kib, 16 * kib}, {64 * kib, 63 * kib}, {64 * kib, 1}}, []int{64 * kib, 64 * kib, 64 * kib}},
		{256 * kib, [][2]int{{32 * kib, 32 * kib}}, []int{64 * kib}},                                // room less than the buffer
		{96 * kib, [][2]int{{64 * kib, 64 * kib}, {96 * kib, 96 * kib}}, []int{96 * kib, 96 * kib}}, // capped at the limit
		{32 * kib, [][2]int{{64 * kib, 64 * kib}}, []int{64 * kib}},                                 // never shrinks
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("limit=%d/reads=%v", tt.limit, tt.reads), func(t *testing.T) {
			size := 64 * kib
			for i, r := range tt.reads {
				size = nextBuffer(size, tt.limit, r[0], r[1])
				if size != tt.want[i] {
					t.Fatalf("after read %d (%d of %d): size %d, want %d", i, r[1], r[0], size, tt.want[i])
				}
			}
		})
	}
}

// The connections of one source share BufferBudget, each between
// minBuffer and DefaultBufferSize.
func TestBufferShare(t *testing.T) {
	tests := []struct{ conns, want int }{
		{0, DefaultBufferSize},
		{1, DefaultBufferSize},
		{8, DefaultBufferSize},
		{16, 128 * kib},
		{32, 64 * kib},
		{12, 168 * kib}, // whole pages
		{64, 32 * kib},
		{1000, minBuffer},
	}
	for _, tt := range tests {
		if got := bufferShare(tt.conns); got != tt.want {
			t.Errorf("bufferShare(%d) = %d, want %d", tt.conns, got, tt.want)
		}
		if got, most := BuffersHeld(tt.conns), int64(max(BufferBudget, tt.conns*minBuffer)); got > most {
			t.Errorf("BuffersHeld(%d) = %d, over %d", tt.conns, got, most)
		}
	}
	f := &Fetcher{BufferSize: 1000}
	if got := f.bufferLimit(32); got != 1000 {
		t.Errorf("bufferLimit with BufferSize 1000: %d", got)
	}
}

// shapedReads makes every response body's reads fill all they are given,
// as a fast link with bytes waiting does, or return at most short bytes,
// as a throttled one does.
type shapedReads struct {
	base  http.RoundTripper
	short int // 0: fill
}

func (s shapedReads) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if err == nil {
		resp.Body = shapedBody{resp.Body, s.short}
	}
	return resp, err
}

type shapedBody struct {
	io.ReadCloser
	short int
}

func (b shapedBody) Read(p []byte) (int, error) {
	if b.short > 0 {
		return b.ReadCloser.Read(p[:min(len(p), b.short)])
	}
	n, err := io.ReadFull(b.ReadCloser, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

// A connection's copy buffer starts at startBuffer and grows only while
// reads fill it, up to its share of BufferBudget: the writes it makes
// show its size.
func TestCopyBufferGrows(t *testing.T) {
	tests := []struct {
		conns, short int
		first, most  int // the first write of the run, the largest
	}{
		{conns: 1, first: startBuffer, most: DefaultBufferSize},
		{conns: 1, short: 16 * kib, most: startBuffer}, // or less, if bytes waited flushAfter
		{conns: 16, most: 128 * kib},
		{conns: 32, most: 64 * kib},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("conns=%d/short=%d", tt.conns, tt.short), func(t *testing.T) {
			srv := testserver.New(t, testserver.Size(int64(tt.conns)*mib))
			f := newFetcher(t, srv, tt.conns)
			f.Client.Transport = shapedReads{f.Client.Transport, tt.short}
			var (
				mu          sync.Mutex
				first, most int64
			)
			f.OnWrite = func(_, n int64) {
				mu.Lock()
				defer mu.Unlock()
				if first == 0 {
					first = n
				}
				most = max(most, n)
			}
			w, plan, err := runPlan(t, f, tt.conns, 64*kib)
			if err != nil {
				t.Fatal(err)
			}
			w.check(t, srv.Content())
			checkDone(t, plan)
			if tt.first > 0 && first != int64(tt.first) {
				t.Errorf("first write %d bytes, want %d", first, tt.first)
			}
			if most != int64(tt.most) && (tt.short == 0 || most > int64(tt.most)) {
				t.Errorf("largest write %d bytes, want %d", most, tt.most)
			}
		})
	}
}

// When the count adapts, a connection's buffer grows to its share for the
// count, and comes down at its next answer once the count has grown.
func TestCopyBufferFollowsCount(t *testing.T) {
	const size = 2 * mib
	srv := testserver.New(t, testserver.Size(size))
	f := newFetcher(t, srv, 32)
	f.Client.Transport = shapedReads{f.Client.Transport, 0}
	var (
		mu   sync.Mutex
		most int64
	)
	f.OnWrite = func(_, n int64) {
		mu.Lock()
		defer mu.Unlock()
		most = max(most, n)
	}
	plan, err := NewPlan(size, nil, 1, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	pl := newPool(32, 4, time.Now(), time.Hour, time.Hour, nil)
	if !pl.enter(0) {
		t.Fatal("test setup: no place")
	}
	c := &conn{lim: newConnLimit(32, time.Hour), chunk: mib, pool: pl, meter: pl.meters[0]}
	span, _ := plan.Next()
	w := newMemWriter(t, size)
	for _, count := range []int{4, 32} {
		pl.mu.Lock()
		pl.g.count = count // as the growth would
		pl.mu.Unlock()
		most = 0
		if _, err := f.fetchOnce(context.Background(), span, w, c); err != nil {
			t.Fatal(err)
		}
		if want := bufferShare(count); most != int64(want) || len(c.buf) != want {
			t.Errorf("count %d: largest write %d bytes, buffer %d, want %d", count, most, len(c.buf), want)
		}
	}
	w.check(t, srv.Content())
}
