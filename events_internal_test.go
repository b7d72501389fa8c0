package convoy

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestCauseOf(t *testing.T) {
	for _, tt := range []struct{ a, b string }{
		{"http://h:1/f closed the connection after 10 of 2000 bytes", "http://h:1/f closed the connection after 99 of 2000 bytes"},
		{"connection stalled: no data after 5 of 6 bytes", "connection stalled: no data after 7 of 8 bytes"},
	} {
		if causeOf(tt.a) != causeOf(tt.b) {
			t.Errorf("%q and %q are different causes", tt.a, tt.b)
		}
	}
	if causeOf("HTTP 503 from http://a:1/f") == causeOf("HTTP 503 from http://a:2/f") {
		t.Error("two servers' answers are one cause")
	}
	if causeOf("HTTP 503 from http://a/f") == causeOf("HTTP 502 from http://a/f") {
		t.Error("two statuses are one cause")
	}
}

// A cause that keeps repeating is said again every repeatEvery with its
// count, and its last repeats at the end; another cause is said at once.
func TestRetryNoticesCount(t *testing.T) {
	var lines []string
	r := newRetryNotices(func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }, false, func() time.Duration { return 0 })
	now := time.Unix(0, 0)
	r.now = func() time.Time { return now }
	for i := range 10 {
		r.retry(fmt.Sprintf("HTTP 503 from http://a/f after %d bytes", i), time.Second)
		now = now.Add(5 * time.Second)
	}
	r.retry("cannot reach a: connection refused", time.Second)
	r.flush()
	r.flush() // says nothing twice
	want := []string{
		"retrying in 1s: HTTP 503 from http://a/f after 0 bytes",
		"still retrying (6 times since the last notice, next in 1s): HTTP 503 from http://a/f after 6 bytes",
		"retrying in 1s: cannot reach a: connection refused",
		"retried 3 times more for the same cause: HTTP 503 from http://a/f after 9 bytes",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("notices\n%q\nwant\n%q", lines, want)
	}
}

// Once the download is under way, a repeated notice says how long it has
// gone without progress: what a user waiting out an outage wants to know.
func TestRetryNoticesSayTheWait(t *testing.T) {
	var lines []string
	r := newRetryNotices(func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }, false, func() time.Duration { return 80 * time.Second })
	now := time.Unix(0, 0)
	r.now = func() time.Time { return now }
	r.retry("cannot reach h: connection refused", time.Second)
	now = now.Add(repeatEvery)
	r.retry("cannot reach h: connection refused", 2*time.Second)
	want := "waiting for the server, no progress for 1m20s; still retrying (once since the last notice, next in 2s): cannot reach h: connection refused"
	if len(lines) != 2 || lines[1] != want {
		t.Errorf("notices %q, want the second to be %q", lines, want)
	}
}

// A reconnect that cost nothing (no wait: the connection was delivering) is
// said only when verbose.
func TestRetryNoticesKeepFreeReconnectsQuiet(t *testing.T) {
	for _, verbose := range []bool{false, true} {
		var lines []string
		r := newRetryNotices(func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }, verbose, func() time.Duration { return 0 })
		r.retry("http://h/f closed the connection after 10 of 20 bytes", 0)
		r.retry("HTTP 500 from http://h/f", time.Second)
		if want := map[bool]int{false: 1, true: 2}[verbose]; len(lines) != want {
			t.Errorf("verbose %v: notices %q, want %d", verbose, lines, want)
		}
	}
}
