package convoy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/merge"
)

func TestStreamToWriter(t *testing.T) {
	tests := []struct {
		name   string
		opts   []testserver.Option
		conns  int
		buffer int64
	}{
		{"ranges", nil, 8, 1 << 20},
		{"ranges-tiny-buffer", nil, 4, 64 << 10},
		{"ranges-cuts", []testserver.Option{testserver.CutAfter(50<<10, 10)}, 8, 512 << 10},
		{"no-ranges", []testserver.Option{testserver.NoRanges()}, 8, 1 << 20},
		{"no-content-length", []testserver.Option{testserver.NoContentLength()}, 8, 1 << 20},
		{"empty", []testserver.Option{testserver.Size(0)}, 8, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(5<<20 + 3)}, tt.opts...)...)
			var out bytes.Buffer
			cfg := fastConfig(srv.URL, t.TempDir())
			cfg.Writer, cfg.Buffer, cfg.Connections = &out, tt.buffer, tt.conns
			res, err := convoy.Download(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), srv.Content()) {
				t.Fatalf("stream of %d bytes differs from the %d-byte file", out.Len(), srv.Size())
			}
			if res.Size != srv.Size() {
				t.Errorf("result size %d, want %d", res.Size, srv.Size())
			}
			onlyOutput(t, cfg.Dir) // nothing on disk
		})
	}
}

func TestStreamToWriterCannotRewind(t *testing.T) {
	// No ranges, and the body is cut after 1 MiB (the probe's answer is the
	// first one cut): a second attempt would
	// start again from byte zero, which stdout cannot take back.
	srv := testserver.New(t, testserver.Size(3<<20), testserver.NoRanges(), testserver.CutAfter(1<<20, 2)) // the probe takes the first
	var out bytes.Buffer
	cfg := fastConfig(srv.URL, t.TempDir())
	cfg.Writer = &out
	_, err := convoy.Download(context.Background(), cfg)
	if !errors.Is(err, merge.ErrRewind) {
		t.Fatalf("error %v, want ErrRewind", err)
	}
}

func TestStreamToWriterChecksum(t *testing.T) {
	srv := testserver.New(t, testserver.Size(1<<20))
	for _, ok := range []bool{true, false} {
		t.Run(fmt.Sprint(ok), func(t *testing.T) {
			var out bytes.Buffer
			cfg := fastConfig(srv.URL, t.TempDir())
			cfg.Writer = &out
			cfg.Checksum = "sha256:" + sums(srv.Content())["sha256"]
			if !ok {
				cfg.Checksum = "sha256:" + sums(nil)["sha256"]
			}
			_, err := convoy.Download(context.Background(), cfg)
			if ok && err != nil {
				t.Fatal(err)
			}
			if !ok && !errors.Is(err, merge.ErrChecksum) {
				t.Fatalf("error %v, want a mismatch", err)
			}
		})
	}
}

// A closed pipe (the reader went away) stops the download at once: the
// error is the pipe's, no attempt is retried, and no connection comes back
// for more (the file would take 8 s to send).
func TestStreamToClosedPipe(t *testing.T) {
	const size, conns = 32 << 20, 4
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cfg := fastConfig(srv.URL, t.TempDir())
	cfg.Writer, cfg.Connections = w, conns
	var retries atomic.Int64
	cfg.OnEvent = func(e convoy.Event) {
		if e.Type == "retry" {
			retries.Add(1)
		}
	}
	_, err = convoy.Download(context.Background(), cfg)
	if !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("error %v, want the broken pipe", err)
	}
	if n := retries.Load(); n != 0 {
		t.Errorf("%d retries after the pipe broke", n)
	}
	// The probe's GET, then at most one request per connection.
	st := srv.Stats()
	if st.Gets > 1+conns || st.BodyBytes > size/4 {
		t.Errorf("the server answered %d GETs and sent %d of %d bytes after the pipe broke", st.Gets, st.BodyBytes, size)
	}
}

// A connection that fails for good while others wait beyond the window
// must not leave the download hanging.
func TestStreamToWriterPermanentErrorDoesNotHang(t *testing.T) {
	srv := testserver.New(t, testserver.Size(8<<20))
	srv.SetOption(testserver.OnRequest(func(r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Range"), "bytes=0-") && r.Header.Get("Range") != "bytes=0-0" {
			srv.SetOption(testserver.Statuses(403))
		}
	}))
	var out bytes.Buffer
	cfg := fastConfig(srv.URL, t.TempDir())
	cfg.Writer, cfg.Buffer, cfg.Connections = &out, 1<<20, 4
	done := make(chan error, 1)
	go func() {
		_, err := convoy.Download(context.Background(), cfg)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("error %v, want the 403", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Download hangs after a permanent error")
	}
}

// A stream to a writer probes as a download does: a dead first URL gives
// way to the next, and mirrors that agree share the ranges.
func TestStreamToWriterUsesMirrors(t *testing.T) {
	const size = 4<<20 + 5
	opts := []testserver.Option{testserver.Size(size), testserver.Rate(4 << 20)}
	a, b := testserver.New(t, opts...), testserver.New(t, opts...)
	closed := testserver.New(t)
	closedURL := closed.URL
	closed.Close()
	var out bytes.Buffer
	cfg := fastConfig(closedURL, t.TempDir())
	cfg.Mirrors = []string{a.URL, b.URL}
	cfg.Writer, cfg.MaxPerHost = &out, 4
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), a.Content()) {
		t.Fatalf("stream of %d bytes differs from the %d-byte file", out.Len(), size)
	}
	for i, s := range []*testserver.Server{a, b} {
		if sent := s.Stats().BodyBytes; sent < size/8 {
			t.Errorf("server %d sent %d bytes: want it to share the stream", i, sent)
		}
	}
}
