package main

import (
	"strings"
	"testing"
	"time"

	convoy "github.com/convoy-dl/convoy"
)

// The summary counts connections, retries, cuts and restarts in the number each needs.
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
	}
	for _, tt := range tests {
		var b strings.Builder
		tt.res.Path, tt.res.Size, tt.res.Elapsed = "f.bin", 1<<20, time.Second
		newReporter(&b, false, false).summary(tt.res)
		if !strings.Contains(b.String(), tt.says) {
			t.Errorf("summary %q, want it to contain %q", b.String(), tt.says)
		}
	}
}
