package main

import (
	"strings"
	"testing"
	"time"

	convoy "github.com/convoy-dl/convoy"
)

// The summary counts connections, retries, cuts, restarts and pieces
// refetched in the number each needs.
func TestSummaryCounts(t *testing.T) {
	tests := []struct {
		res  convoy.Result
		says string
	}{
		{convoy.Result{Connections: 1}, "(1 connection, 0 retries, 0 B fetched twice)"},
		{convoy.Result{Connections: 16, Retries: 1, Twice: 1024, Cuts: 1, Restarts: 1},
			"(16 connections, 1 retry, 1.0 KiB fetched twice, 1 answer cut short, 1 restart)"},
		{convoy.Result{Connections: 16, Retries: 3, Cuts: 2, Restarts: 2},
			"(16 connections, 3 retries, 0 B fetched twice, 2 answers cut short, 2 restarts)"},
		{convoy.Result{Connections: 2, Refetched: 1}, "(2 connections, 0 retries, 0 B fetched twice, 1 piece refetched)"},
		{convoy.Result{Connections: 2, Refetched: 3}, "(2 connections, 0 retries, 0 B fetched twice, 3 pieces refetched)"},
	}
	for _, tt := range tests {
		var b strings.Builder
		tt.res.Path, tt.res.Size, tt.res.Elapsed = "f.bin", 1<<20, time.Second
		newReporter(&b, false, nil).summary(tt.res)
		if !strings.Contains(b.String(), tt.says) {
			t.Errorf("summary %q, want it to contain %q", b.String(), tt.says)
		}
	}
}

// Off a terminal, a progress line is printed every plainEvery, never before
// there is a rate to show.
func TestPlainProgressHasARate(t *testing.T) {
	var b strings.Builder
	r := newReporter(&b, false, nil)
	r.progress(convoy.Progress{Size: 100 << 20, Done: 10 << 20, Elapsed: time.Second})
	if b.Len() != 0 {
		t.Fatalf("first update printed %q", b.String())
	}
	r.single.lastPlain = r.single.lastPlain.Add(-plainEvery) // as if plainEvery had passed
	r.progress(convoy.Progress{Size: 100 << 20, Done: 60 << 20, Elapsed: 6 * time.Second})
	if got := b.String(); !strings.Contains(got, "60.0%") || !strings.Contains(got, "10.0 MiB/s") || strings.Contains(got, "ETA --") {
		t.Errorf("progress line %q, want 60.0%% at 10.0 MiB/s with an ETA", got)
	}
}

// Off a terminal, each download of a batch prints its own plain line,
// named after the file it writes (relative to the folder).
func TestPlainProgressOfABatch(t *testing.T) {
	var b strings.Builder
	r := newReporter(&b, false, nil)
	r.startBatch(2)
	j := r.startJob("guess.bin", "/srv")
	j.progress(convoy.Progress{Output: "/srv/sub/a.bin", Size: 100 << 20, Done: 10 << 20, Elapsed: time.Second})
	j.t.lastPlain = j.t.lastPlain.Add(-plainEvery)
	j.progress(convoy.Progress{Output: "/srv/sub/a.bin", Size: 100 << 20, Done: 60 << 20, Elapsed: 6 * time.Second})
	if got := b.String(); !strings.HasPrefix(got, "convoy: sub/a.bin: ") || !strings.Contains(got, "60.0%") {
		t.Errorf("progress line %q, want it named sub/a.bin", got)
	}
	j.finish(true)
	r.endBatch()
}
