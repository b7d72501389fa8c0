package convoy_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
)

// Every event names its download, so that the events of downloads running
// side by side can be told apart: url is the first URL given, even when a
// mirror took its place, and output is the file, from the first event when
// the Config names it and from the start event when the server does.
// A mirror-dropped event names the dropped server apart, in mirror.
func TestEveryEventNamesItsDownload(t *testing.T) {
	good := testserver.New(t, testserver.Size(1<<20), testserver.Statuses(503))
	missing := testserver.New(t, testserver.Statuses(404, 404, 404))
	for _, tt := range []struct {
		name   string
		output string // Config.Output
		want   string // every event's output, relative to the folder
	}{
		{"named", "out.bin", "out.bin"},
		{"server-named", "", "file.bin"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := fastConfig(missing.URL, dir)
			cfg.Output = tt.output
			cfg.Mirrors = []string{good.URL}
			var mu sync.Mutex
			var events []convoy.Event
			cfg.OnEvent = func(e convoy.Event) {
				mu.Lock()
				events = append(events, e)
				mu.Unlock()
			}
			res, err := convoy.Download(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(dir, tt.want)
			if res.Path != want {
				t.Fatalf("saved as %s, want %s", res.Path, want)
			}
			mu.Lock()
			defer mu.Unlock()
			started, dropped := false, false
			for _, e := range events {
				started = started || e.Type == "start"
				if e.URL != missing.URL {
					t.Errorf("%s event has url %q, want the first URL %q", e.Type, e.URL, missing.URL)
				}
				if (started || tt.output != "") && e.Output != want {
					t.Errorf("%s event has output %q, want %q", e.Type, e.Output, want)
				}
				if e.Type == "mirror-dropped" {
					dropped = true
					if e.Mirror != missing.URL {
						t.Errorf("mirror-dropped names %q, want %q", e.Mirror, missing.URL)
					}
				}
			}
			if !started || !dropped {
				t.Errorf("events %+v: want a mirror-dropped and a start", events)
			}
		})
	}
}

// A download that fails still names the file it was for, once known: from
// the start when the Config names it, after the probe when the server does.
func TestFailedDownloadNamesItsFile(t *testing.T) {
	srv := testserver.New(t, testserver.Size(1<<20))
	missing := testserver.New(t, testserver.Statuses(404, 404, 404))
	for _, tt := range []struct {
		name, url, output, checksumFile, want string
	}{
		{"404-named", missing.URL, "out.bin", "", "out.bin"},
		{"404-server-named", missing.URL, "", "", ""},
		{"no-checksum-file", srv.URL, "", "missing-SHA256SUMS", "file.bin"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := fastConfig(tt.url, dir)
			cfg.Output = tt.output
			if tt.checksumFile != "" {
				cfg.ChecksumFile = filepath.Join(dir, tt.checksumFile)
			}
			res, err := convoy.Download(context.Background(), cfg)
			if err == nil {
				t.Fatal("the download did not fail")
			}
			want := ""
			if tt.want != "" {
				want = filepath.Join(dir, tt.want)
			}
			if res.Path != want {
				t.Errorf("failed download's path %q, want %q (%v)", res.Path, want, err)
			}
		})
	}
}
