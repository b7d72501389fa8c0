package convoy_test

import (
	"bytes"
	"context"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
)

// Without Connections, convoy chooses the count: a lone server that takes 2
// connections and refuses more gets 2, said by a connections event naming
// the server and the reason, and is never given more; the start event
// names where the count started.
func TestAdaptiveCountRefused(t *testing.T) {
	const size = 4 << 20
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(2<<20), testserver.MaxConcurrent(2, ""))
	dir := t.TempDir()
	cfg := fastConfig(srv.URL, dir)
	cfg.Connections = 0
	var mu sync.Mutex
	var events []convoy.Event
	cfg.OnEvent = func(e convoy.Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Type == "start" || e.Type == "connections" {
			events = append(events, e)
		}
	}
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("events: %+v", events)
	if len(events) < 2 || events[0].Type != "start" || events[0].Connections != 4 {
		t.Fatalf("events %+v, want a start with 4 connections and then changes", events)
	}
	refused := false
	for _, e := range events[1:] {
		if e.Host != u.Host {
			t.Errorf("connections event for host %q, want %q", e.Host, u.Host)
		}
		if refused && e.Reason != "refused" && e.Connections > 2 {
			t.Errorf("after the refusal: %+v, above 2", e)
		}
		refused = refused || e.Reason == "refused"
	}
	if last := events[len(events)-1]; !refused || last.Connections != 2 {
		t.Errorf("events %+v, want refusals down to 2", events)
	}
	if st := srv.Stats(); st.Peak != 2 || st.Refused > 3 {
		t.Errorf("server stats %+v: want 2 answers at once and 2 or 3 refusals", st)
	}
}

// MaxConnections is checked like Connections.
func TestAdaptiveCountBadCeiling(t *testing.T) {
	for _, n := range []int{-1, convoy.MaxConnections + 1} {
		cfg := fastConfig("http://127.0.0.1:1/x", t.TempDir())
		cfg.Connections, cfg.MaxConnections = 0, n
		if _, err := convoy.Download(context.Background(), cfg); err == nil {
			t.Errorf("MaxConnections %d accepted", n)
		}
	}
}

// Without Connections, each server of a download from mirrors gets a count
// of its own: two mirrors that take 2 connections each and refuse more are
// each brought down to 2 (connections events naming each host), and the
// download uses both. Their samples, three at once, are refused too: the
// refused ones are asked again, and neither server is dropped.
func TestAdaptiveCountPerMirror(t *testing.T) {
	t.Parallel()
	const size = 8 << 20
	opts := []testserver.Option{testserver.Size(size), testserver.Rate(1 << 20), testserver.MaxConcurrent(2, "")}
	a := testserver.New(t, opts...)
	b := testserver.New(t, opts...)
	dir := t.TempDir()
	cfg := fastConfig(a.URL, dir)
	cfg.Mirrors = []string{b.URL}
	cfg.Connections = 0
	var n notices
	cfg.Logf = n.logf
	defer func() {
		if t.Failed() {
			t.Logf("notices: %q", n.lines)
		}
	}()
	var mu sync.Mutex
	last := map[string]int{} // host -> its last count
	cfg.OnEvent = func(e convoy.Event) {
		if e.Type == "connections" {
			mu.Lock()
			last[e.Host] = e.Connections
			mu.Unlock()
		}
	}
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	a.Verify(t, filepath.Join(dir, "out.bin"))
	mu.Lock()
	defer mu.Unlock()
	for _, s := range []*testserver.Server{a, b} {
		u, err := url.Parse(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := last[u.Host]; !ok || n != 2 {
			t.Errorf("%s: last count %d (told %v), want 2; all: %v", u.Host, n, ok, last)
		}
		if st := s.Stats(); st.Peak > 2 || st.BodyBytes < size/4 {
			t.Errorf("%s: peak %d answers at once, sent %d bytes", u.Host, st.Peak, st.BodyBytes)
		}
	}
}

// Without Connections, a stream to a writer (-o -) adapts its count too:
// a server that takes 2 connections gets 2, and the bytes come in order.
func TestAdaptiveCountToWriter(t *testing.T) {
	t.Parallel()
	const size = 4 << 20
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20), testserver.MaxConcurrent(2, ""))
	cfg := fastConfig(srv.URL, t.TempDir())
	cfg.Connections = 0
	var out bytes.Buffer
	cfg.Writer = &out
	var refused atomic.Bool
	cfg.OnEvent = func(e convoy.Event) {
		if e.Type == "connections" && e.Reason == "refused" {
			refused.Store(true)
		}
	}
	if _, err := convoy.Download(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), srv.Content()) {
		t.Fatal("the stream is not the file")
	}
	if st := srv.Stats(); st.Peak != 2 || !refused.Load() {
		t.Errorf("peak %d answers at once, refusal told %v; want 2 and a refusal", st.Peak, refused.Load())
	}
}
