package segment

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/testserver"
)

// streamFetcher returns a Fetcher for a plain GET of srv's file; size is what
// the caller believes the size is (-1: unknown).
func streamFetcher(t testing.TB, srv *testserver.Server, size int64) *Fetcher {
	t.Helper()
	return &Fetcher{
		Client:       newTestClient(t, ClientOptions{Connections: 1}),
		URL:          srv.URL,
		Size:         size,
		StallTimeout: 10 * time.Second,
		MaxTries:     5,
		RetryInitial: fastInitial,
		RetryMax:     fastMax,
	}
}

func TestStream(t *testing.T) {
	tests := []struct {
		name      string
		opts      []testserver.Option
		knownSize bool
	}{
		{"no ranges, size known", []testserver.Option{testserver.NoRanges()}, true},
		{"no ranges, size unknown", []testserver.Option{testserver.NoRanges()}, false},
		{"no content length", []testserver.Option{testserver.NoContentLength()}, false},
		{"no content length, size known", []testserver.Option{testserver.NoContentLength()}, true},
		{"ranges available", nil, true},
		{"empty file", []testserver.Option{testserver.Size(0)}, true},
		{"empty file, no content length", []testserver.Option{testserver.Size(0), testserver.NoContentLength()}, false},
		{"odd size", []testserver.Option{testserver.Size(DefaultBufferSize*3 + 1), testserver.NoContentLength()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log requestLog
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(mib + 17), testserver.OnRequest(log.hook)}, tt.opts...)...)
			size := int64(-1)
			if tt.knownSize {
				size = srv.Size()
			}
			f := streamFetcher(t, srv, size)
			var reported atomic.Int64
			f.OnWrite = func(_, n int64) { reported.Add(n) }
			w := newMemWriter(t, srv.Size())
			n, err := f.Stream(context.Background(), w)
			if err != nil {
				t.Fatal(err)
			}
			if n != srv.Size() {
				t.Fatalf("Stream = %d bytes, want %d", n, srv.Size())
			}
			w.check(t, srv.Content())
			if reported.Load() != n {
				t.Errorf("OnWrite reported %d bytes, want %d", reported.Load(), n)
			}
			for _, r := range log.all() {
				if r.rng != "" || r.ifRange != "" {
					t.Errorf("stream request carries Range %q If-Range %q", r.rng, r.ifRange)
				}
				if r.acceptEncoding != "identity" {
					t.Errorf("stream request Accept-Encoding %q, want identity", r.acceptEncoding)
				}
			}
			if st := srv.Stats(); st.Gets != 1 {
				t.Errorf("%d GETs, want 1", st.Gets)
			}
		})
	}
}

// A stream that breaks starts again from byte 0 and still ends with the
// right file.
func TestStreamRestartsFromZero(t *testing.T) {
	tests := []struct {
		name      string
		opts      []testserver.Option
		knownSize bool
	}{
		{"cut, no ranges, size known", []testserver.Option{testserver.NoRanges(), testserver.CutAfter(100000, 2)}, true},
		{"cut, no ranges, size from Content-Length", []testserver.Option{testserver.NoRanges(), testserver.CutAfter(100000, 2)}, false},
		{"cut, no content length, size known", []testserver.Option{testserver.NoContentLength(), testserver.CutAfter(100000, 2)}, true},
		{"stall, no ranges", []testserver.Option{testserver.NoRanges(), testserver.StallAfter(100000, 30*time.Second, 1)}, true},
		{"503 first", []testserver.Option{testserver.NoRanges(), testserver.Statuses(503, 0)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(mib)}, tt.opts...)...)
			size := int64(-1)
			if tt.knownSize {
				size = srv.Size()
			}
			f := streamFetcher(t, srv, size)
			f.StallTimeout = 200 * time.Millisecond
			var offsets []int64
			f.OnWrite = func(off, _ int64) { offsets = append(offsets, off) }
			w := newMemWriter(t, srv.Size())
			w.overlap = true
			n, err := f.Stream(context.Background(), w)
			if err != nil {
				t.Fatal(err)
			}
			if n != srv.Size() {
				t.Fatalf("Stream = %d bytes, want %d", n, srv.Size())
			}
			w.check(t, srv.Content())
			restarts := 0
			for i, off := range offsets {
				if off == 0 && i > 0 {
					restarts++
				}
			}
			st := srv.Stats()
			if st.Gets < 2 {
				t.Fatalf("%d GETs, want a retry", st.Gets)
			}
			if st.Statuses[503] == 0 && restarts != st.Gets-1 {
				t.Errorf("%d restarts from offset 0 for %d GETs", restarts, st.Gets)
			}
		})
	}
}

// A chunked body that breaks off is not the end of a file of unknown size:
// the stream must try again rather than call the first part the whole file.
func TestStreamCutChunkedBodyOfUnknownSize(t *testing.T) {
	srv := testserver.New(t, testserver.Size(mib), testserver.NoContentLength(), testserver.CutAfter(100000, 1))
	f := streamFetcher(t, srv, -1)
	w := newMemWriter(t, srv.Size())
	w.overlap = true
	n, err := f.Stream(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if n != srv.Size() {
		t.Fatalf("Stream = %d bytes, nil; the body was cut after 100000 of %d bytes", n, srv.Size())
	}
	w.check(t, srv.Content())
}

// A body without Content-Length that runs past the size the caller knows
// means the file is not the one expected.
func TestStreamLongerThanKnownSize(t *testing.T) {
	srv := testserver.New(t, testserver.Size(mib), testserver.NoContentLength())
	f := streamFetcher(t, srv, srv.Size()-10)
	w := newMemWriter(t, srv.Size())
	n, err := f.Stream(context.Background(), w)
	if !errors.Is(err, ErrRemoteChanged) {
		t.Fatalf("Stream = %d, %v; want ErrRemoteChanged for a body longer than %d bytes", n, err, f.Size)
	}
}

// A body shorter than the size the caller knows is retried, then given up.
func TestStreamShorterThanKnownSize(t *testing.T) {
	srv := testserver.New(t, testserver.Size(mib), testserver.NoContentLength())
	f := streamFetcher(t, srv, srv.Size()+10)
	f.MaxTries = 2
	w := newMemWriter(t, srv.Size()+10)
	w.overlap = true
	n, err := f.Stream(context.Background(), w)
	if err == nil {
		t.Fatalf("Stream = %d, nil for a body 10 bytes short", n)
	}
	if !strings.Contains(err.Error(), "giving up after 2 tries") {
		t.Errorf("error %q does not say it gave up", err)
	}
}

func TestStreamErrors(t *testing.T) {
	tests := []struct {
		name  string
		opts  []testserver.Option
		size  int64 // relative to the server's size
		check func(error) bool
		gets  int
	}{
		{"404", []testserver.Option{testserver.Statuses(404)}, 0,
			func(err error) bool { var se *StatusError; return errors.As(err, &se) && se.Code == 404 }, 1},
		{"Content-Length differs", nil, +1,
			func(err error) bool { return errors.Is(err, ErrRemoteChanged) }, 1},
		{"206 to a plain GET", []testserver.Option{testserver.Statuses(206)}, 0,
			func(err error) bool { var se *StatusError; return errors.As(err, &se) && se.Code == 206 }, 1},
		{"503 until giving up", []testserver.Option{testserver.Statuses(503, 503, 503, 503, 503, 503)}, 0,
			func(err error) bool { return err != nil && strings.Contains(err.Error(), "giving up after 5 tries") }, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(100 * kib)}, tt.opts...)...)
			f := streamFetcher(t, srv, srv.Size()+tt.size)
			w := newMemWriter(t, srv.Size()+max(tt.size, 0))
			_, err := f.Stream(context.Background(), w)
			if !tt.check(err) {
				t.Fatalf("Stream error %v", err)
			}
			if st := srv.Stats(); st.Gets != tt.gets {
				t.Errorf("%d GETs, want %d", st.Gets, tt.gets)
			}
		})
	}
}

func TestStreamRejectsCompressed(t *testing.T) {
	content := []byte(strings.Repeat("convoy ", 1000))
	ts := gzipRangeServer(t, content)
	f := &Fetcher{
		Client: newTestClient(t, ClientOptions{Connections: 1}), URL: ts.URL, Size: -1,
		RetryInitial: fastInitial, RetryMax: fastMax,
	}
	w := newMemWriter(t, int64(len(content)))
	_, err := f.Stream(context.Background(), w)
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("Stream = %v, want a *ProtocolError", err)
	}
	if writes, _ := w.stats(); writes != 0 {
		t.Errorf("%d writes of compressed bytes", writes)
	}
}

func TestStreamWriteErrorIsPermanent(t *testing.T) {
	srv := testserver.New(t, testserver.Size(mib), testserver.NoRanges())
	f := streamFetcher(t, srv, -1)
	var w failWriter
	_, err := f.Stream(context.Background(), &w)
	var we *WriteError
	if !errors.As(err, &we) || we.Offset != 0 {
		t.Fatalf("Stream = %v, want a *WriteError at 0", err)
	}
	if st := srv.Stats(); st.Gets != 1 || w.calls != 1 {
		t.Errorf("%d GETs and %d writes, want 1 each", st.Gets, w.calls)
	}
}

func TestStreamCancel(t *testing.T) {
	srv := testserver.New(t, testserver.Size(4*mib), testserver.NoRanges(), testserver.Rate(256*kib))
	f := streamFetcher(t, srv, -1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.BufferSize = 16 * kib
	f.OnWrite = func(int64, int64) { cancel() }
	start := time.Now()
	n, err := f.Stream(ctx, newMemWriter(t, srv.Size()))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream = %d, %v; want context.Canceled", n, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stream returned after %v", d)
	}
	if n >= srv.Size() {
		t.Errorf("Stream got all %d bytes despite the cancel", n)
	}
}
