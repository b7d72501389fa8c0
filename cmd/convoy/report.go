package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/internal/units"
)

// reporter prints notices and, on a terminal, one progress line that is
// redrawn in place.
type reporter struct {
	mu       sync.Mutex
	w        io.Writer
	quiet    bool
	terminal bool
	drawn    bool // a progress line is on screen
	first    *convoy.Progress
}

func newReporter(w io.Writer, quiet, terminal bool) *reporter {
	return &reporter{w: w, quiet: quiet, terminal: terminal}
}

func (r *reporter) logf(format string, args ...any) {
	if r.quiet {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clear()
	fmt.Fprintf(r.w, "convoy: %s\n", redact.Text(fmt.Sprintf(format, args...)))
}

// errorf prints an error line even in quiet mode.
func (r *reporter) errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clear()
	fmt.Fprintf(r.w, "convoy: %s\n", redact.Text(fmt.Sprintf(format, args...)))
}

func (r *reporter) progress(p convoy.Progress) {
	if r.quiet || !r.terminal {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.first == nil {
		r.first = &p // bytes from earlier runs do not count towards the rate
	}
	r.clear()
	fmt.Fprint(r.w, progressLine(p, *r.first))
	r.drawn = true
}

// clear erases the progress line. Caller holds mu.
func (r *reporter) clear() {
	if r.drawn {
		fmt.Fprint(r.w, "\r\033[K")
		r.drawn = false
	}
}

// finish ends the progress display.
func (r *reporter) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clear()
}

func (r *reporter) summary(res convoy.Result) {
	if r.quiet {
		return
	}
	if res.AlreadyComplete {
		r.logf("%s is already complete (%s)", res.Path, units.FormatBytes(res.Size))
		return
	}
	rate := 0.0
	if s := res.Elapsed.Seconds(); s > 0 {
		rate = float64(res.Fetched) / s
	}
	var extra []string
	if res.Resumed > 0 {
		extra = append(extra, units.FormatBytes(res.Resumed)+" resumed")
	}
	if res.Retries > 0 {
		extra = append(extra, fmt.Sprintf("%d retries", res.Retries))
	}
	if res.Restarts > 0 {
		extra = append(extra, fmt.Sprintf("%d restarts", res.Restarts))
	}
	if res.Checksum != "" {
		algo, _, _ := strings.Cut(res.Checksum, ":")
		extra = append(extra, algo+" verified")
	}
	verb := "saved " + res.Path
	if res.Path == "-" {
		verb = "streamed to stdout"
	}
	line := fmt.Sprintf("%s (%s) in %s, %s/s", verb, units.FormatBytes(res.Size), res.Elapsed.Round(time.Millisecond), units.FormatBytes(int64(rate)))
	if len(extra) > 0 {
		line += " (" + strings.Join(extra, ", ") + ")"
	}
	r.logf("%s", line)
}

// progressLine renders p, measuring the rate since first.
func progressLine(p, first convoy.Progress) string {
	rate := 0.0
	if s := (p.Elapsed - first.Elapsed).Seconds(); s > 0 {
		rate = float64(p.Done-first.Done) / s
	}
	if p.Size < 0 {
		return fmt.Sprintf("%s  %s/s", units.FormatBytes(p.Done), units.FormatBytes(int64(rate)))
	}
	pct := 100.0
	if p.Size > 0 {
		pct = 100 * float64(p.Done) / float64(p.Size)
	}
	eta := "--"
	if rate > 0 && p.Done < p.Size {
		eta = (time.Duration(float64(p.Size-p.Done)/rate) * time.Second / time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("%5.1f%%  %s / %s  %s/s  ETA %s", pct, units.FormatBytes(p.Done), units.FormatBytes(p.Size), units.FormatBytes(int64(rate)), eta)
}
