package convoy_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
)

// Every progress report and progress event carries the file's size when
// the server gave one, whichever way the file is fetched: in ranges, in
// one stream without ranges, or streamed to a writer; -1 only when the
// size is unknown. A progress report names the output.
func TestProgressCarriesTheKnownSize(t *testing.T) {
	const size = 2<<20 + 5
	tests := []struct {
		name   string
		opts   []testserver.Option
		writer bool
		want   int64
	}{
		{"ranges", nil, false, size},
		{"no-ranges", []testserver.Option{testserver.NoRanges()}, false, size},
		{"no-ranges-to-writer", []testserver.Option{testserver.NoRanges()}, true, size},
		{"ranges-to-writer", nil, true, size},
		{"no-content-length", []testserver.Option{testserver.NoContentLength()}, false, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(size), testserver.Rate(8 << 20)}, tt.opts...)...)
			cfg := fastConfig(srv.URL, t.TempDir())
			var out bytes.Buffer
			if tt.writer {
				cfg.Writer = &out
			}
			cfg.ProgressInterval = 20 * time.Millisecond
			var mu sync.Mutex
			var sizes, eventSizes []int64
			wantOutput := filepath.Join(cfg.Dir, cfg.Output)
			if tt.writer {
				wantOutput = "-"
			}
			cfg.OnProgress = func(p convoy.Progress) {
				mu.Lock()
				sizes = append(sizes, p.Size)
				mu.Unlock()
				if p.Output != wantOutput {
					t.Errorf("progress of %q, want %q", p.Output, wantOutput)
				}
			}
			cfg.OnEvent = func(e convoy.Event) {
				if e.Type == "progress" {
					mu.Lock()
					eventSizes = append(eventSizes, e.Size)
					mu.Unlock()
				}
			}
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(sizes) == 0 || len(eventSizes) == 0 {
				t.Fatalf("%d progress reports and %d progress events, want some of each", len(sizes), len(eventSizes))
			}
			for i, s := range sizes {
				if s != tt.want {
					t.Fatalf("progress report %d of %d says size %d, want %d", i, len(sizes), s, tt.want)
				}
			}
			for i, s := range eventSizes {
				if s != tt.want {
					t.Fatalf("progress event %d of %d says size %d, want %d", i, len(eventSizes), s, tt.want)
				}
			}
		})
	}
}

// A file that can only come in one stream is said to before the download
// starts (before its start event and its first progress), not only when
// an interruption finds nothing to keep; an empty file, or one in ranges,
// has nothing to say.
func TestOneStreamSaidBeforeTheStart(t *testing.T) {
	tests := []struct {
		name   string
		opts   []testserver.Option
		writer bool
		says   string // "" for no notice
	}{
		{"no-ranges", []testserver.Option{testserver.NoRanges()}, false, "the server does not support ranges: one connection, and an interrupted download starts over"},
		{"no-ranges-to-writer", []testserver.Option{testserver.NoRanges()}, true, "the server does not support ranges: one connection"},
		{"no-content-length", []testserver.Option{testserver.NoContentLength()}, false, "the server does not support ranges: one connection, and an interrupted download starts over"},
		{"ranges", nil, false, ""},
		{"empty-no-ranges", []testserver.Option{testserver.NoRanges(), testserver.Size(0)}, false, ""},
		{"empty-no-ranges-to-writer", []testserver.Option{testserver.NoRanges(), testserver.Size(0)}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(1 << 20)}, tt.opts...)...)
			cfg := fastConfig(srv.URL, t.TempDir())
			var out bytes.Buffer
			if tt.writer {
				cfg.Writer = &out
			}
			var mu sync.Mutex
			var steps []string // notices and events in the order they came
			cfg.Logf = func(f string, a ...any) {
				mu.Lock()
				steps = append(steps, "notice: "+fmt.Sprintf(f, a...))
				mu.Unlock()
			}
			cfg.OnEvent = func(e convoy.Event) {
				mu.Lock()
				steps = append(steps, "event: "+e.Type)
				mu.Unlock()
			}
			cfg.OnProgress = func(convoy.Progress) {
				mu.Lock()
				steps = append(steps, "progress")
				mu.Unlock()
			}
			if _, err := convoy.Download(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			said := slices.IndexFunc(steps, func(s string) bool { return strings.Contains(s, "one connection") })
			start := slices.Index(steps, "event: start")
			switch {
			case tt.says == "" && said >= 0:
				t.Errorf("said %q for a file it fetches normally", steps[said])
			case tt.says != "" && (said < 0 || steps[said] != "notice: "+tt.says):
				t.Errorf("steps %q: want the notice %q", steps, tt.says)
			case tt.says != "" && (start < 0 || said > start):
				t.Errorf("steps %q: want the notice before the start", steps)
			}
		})
	}
}
