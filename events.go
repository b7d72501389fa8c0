package convoy

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/convoy-dl/convoy/internal/redact"
)

// Event is one step of a download, for scripts and interfaces: convoy get
// --json prints each as a line of JSON. Fields that do not apply to a type
// are left out.
type Event struct {
	// Type is "start", "progress", "checkpoint", "retry", "restart",
	// "mirror-found", "mirror-dropped", "slow-server", "connections" or
	// "piece-bad"; the command line adds "done" and "error".
	Type string    `json:"event"`
	Time time.Time `json:"time"`
	// URL and Output, on every event, tell which download it belongs to,
	// so that the events of downloads running side by side can be told
	// apart: URL is the first URL given (secrets redacted), Output the file
	// written ("-" for Config.Writer). Output is empty until the file's
	// name is known when Config.Output does not give it (the server may
	// name it).
	URL    string `json:"url,omitempty"`
	Output string `json:"output,omitempty"`
	// Mirror is the server a mirror-found event adds, a mirror-dropped
	// event drops, or a slow-server event names (secrets redacted).
	Mirror string `json:"mirror,omitempty"`
	// Size of the file (-1 unknown) and bytes on disk, on start, progress,
	// checkpoint and done. On a checkpoint Done counts the bytes made
	// durable.
	Size int64 `json:"size,omitempty"`
	Done int64 `json:"done,omitempty"`
	// Connections and Segments, on start. On connections, Connections is
	// the new connection count of server Host and Reason why it changed:
	// "grew", "plateau", "shrank", "refused", "accepted" or "yielded" (see
	// segment's Reason constants).
	Connections int    `json:"connections,omitempty"`
	Segments    int    `json:"segments,omitempty"`
	Host        string `json:"host,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Elapsed is the time since the download began, in seconds.
	Elapsed float64 `json:"elapsed,omitempty"`
	// Rate is bytes per second received by this run, on progress and done;
	// on slow-server, what that server sent per second.
	Rate float64 `json:"rate,omitempty"`
	// Wait is the pause before the next try, in seconds, on retry.
	Wait float64 `json:"wait,omitempty"`
	// Error says what went wrong, on retry, restart, piece-bad and error.
	Error string `json:"error,omitempty"`
	// Piece, on piece-bad, is the piece that did not match its hash.
	Piece *BadPiece `json:"piece,omitempty"`
	// Fetched, Retries, Cuts and Checksum, on done.
	Fetched  int64  `json:"fetched,omitempty"`
	Retries  int64  `json:"retries,omitempty"`
	Cuts     int    `json:"cuts,omitempty"`
	Checksum string `json:"checksum,omitempty"`
	// Refetched, on done, counts the pieces fetched again because they did
	// not match their hashes.
	Refetched int `json:"refetched,omitempty"`
}

// BadPiece is a piece that did not match its hash (a Metalink's piece
// hashes): its index, its bytes [Start, End), the servers that sent them
// (redacted; none when unknown), and OnDisk when an earlier run had
// verified it and the part file changed since. It is fetched again.
type BadPiece struct {
	Index   int      `json:"index"`
	Start   int64    `json:"start"`
	End     int64    `json:"end"`
	Servers []string `json:"servers,omitempty"`
	OnDisk  bool     `json:"on_disk,omitempty"`
}

// emit hands e to Config.OnEvent, one event at a time, with the URL and
// output that name the download.
func (d *download) emit(e Event) {
	if d.cfg.OnEvent == nil {
		return
	}
	e.Time = time.Now()
	if e.Elapsed == 0 {
		e.Elapsed = time.Since(d.start).Seconds()
	}
	d.eventMu.Lock()
	defer d.eventMu.Unlock()
	e.URL, e.Output = redact.URL(d.first), d.output
	d.cfg.OnEvent(e)
}

// setOutput records the output path once it is known, for the events.
func (d *download) setOutput(path string) {
	d.eventMu.Lock()
	defer d.eventMu.Unlock()
	d.output = path
}

// outputPath is the output path as far as it is known, "" before that.
func (d *download) outputPath() string {
	d.eventMu.Lock()
	defer d.eventMu.Unlock()
	return d.output
}

// plannedOutput is the output path cfg names before anything is probed:
// "-" for a writer, Output inside Dir, or "" when the server names it.
func plannedOutput(cfg Config) string {
	switch {
	case cfg.Writer != nil:
		return "-"
	case cfg.Output == "" || filepath.IsAbs(cfg.Output):
		return cfg.Output
	}
	return filepath.Join(cfg.Dir, cfg.Output)
}

// repeatEvery is how often a retry notice whose cause keeps repeating is
// printed again, with the count of repeats since it last was.
const repeatEvery = 30 * time.Second

// retryNotices turns retries into notices for people: the first retry of a
// cause is printed at once; its repeats are counted, and said at most once
// every repeatEvery and when the download ends. Eight connections meeting
// one outage, or one server refusing for minutes, cost a few lines, not a
// screenful. A cause is the error's text with its numbers left out (offsets
// and byte counts differ from try to try), URLs kept whole.
type retryNotices struct {
	mu      sync.Mutex
	logf    func(format string, args ...any) // where notices go: Logf, or RetryNotice
	verbose bool                             // say the retries that cost nothing too
	idle    func() time.Duration             // time without progress, 0 when unknown
	now     func() time.Time
	seen    map[string]*repeats
	causes  []string // in the order first seen
}

type repeats struct {
	text   string // the latest text of the cause
	n      int    // repeats not yet said
	saidAt time.Time
}

func newRetryNotices(logf func(format string, args ...any), verbose bool, idle func() time.Duration) *retryNotices {
	return &retryNotices{logf: logf, verbose: verbose, idle: idle, now: time.Now, seen: map[string]*repeats{}}
}

// retry records one retry of text, waiting wait before the next try.
func (r *retryNotices) retry(text string, wait time.Duration) {
	if wait == 0 && !r.verbose {
		// A connection cut while it delivered picks up at once: it cost
		// nothing, and is counted rather than said.
		return
	}
	key := causeOf(text)
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	rep, ok := r.seen[key]
	switch {
	case !ok:
		r.seen[key] = &repeats{text: text, saidAt: now}
		r.causes = append(r.causes, key)
		r.logf("retrying in %s: %s", wait.Round(time.Millisecond), text)
	case now.Sub(rep.saidAt) >= repeatEvery:
		waiting := ""
		if idle := r.idle(); idle >= time.Second {
			waiting = fmt.Sprintf("waiting for the server, no progress for %s; ", idle.Round(time.Second))
		}
		r.logf("%sstill retrying (%s since the last notice, next in %s): %s", waiting, times(rep.n+1), wait.Round(time.Millisecond), text)
		rep.text, rep.n, rep.saidAt = text, 0, now
	default:
		rep.text = text
		rep.n++
	}
}

// flush says the repeats not yet said, once the retries are over.
func (r *retryNotices) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, key := range r.causes {
		if rep := r.seen[key]; rep.n > 0 {
			r.logf("retried %s more for the same cause: %s", times(rep.n), rep.text)
			rep.n = 0
		}
	}
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// causeOf is text with each run of digits replaced by "#", except in URLs
// and in HTTP status codes.
func causeOf(text string) string {
	words := strings.Fields(text)
	for i, w := range words {
		if strings.Contains(w, "://") || (i > 0 && words[i-1] == "HTTP") {
			continue
		}
		var b strings.Builder
		digits := false
		for _, c := range w {
			if unicode.IsDigit(c) {
				if !digits {
					b.WriteByte('#')
				}
				digits = true
				continue
			}
			digits = false
			b.WriteRune(c)
		}
		words[i] = b.String()
	}
	return strings.Join(words, " ")
}
