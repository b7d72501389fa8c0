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

// reporter prints notices and progress: on a terminal a live display that is
// redrawn in place, elsewhere a plain line every few seconds.
type reporter struct {
	mu        sync.Mutex
	w         io.Writer
	quiet     bool
	terminal  bool
	bars      *barDisplay // on a terminal, once progress starts
	first     *convoy.Progress
	lastPlain time.Time
}

// plainEvery is how often a plain progress line is printed when stderr is
// not a terminal.
const plainEvery = 5 * time.Second

func newReporter(w io.Writer, quiet, terminal bool) *reporter {
	return &reporter{w: w, quiet: quiet, terminal: terminal}
}

func (r *reporter) logf(format string, args ...any) {
	if r.quiet {
		return
	}
	r.errorf(format, args...)
}

// errorf prints an error line even in quiet mode.
func (r *reporter) errorf(format string, args ...any) {
	line := fmt.Sprintf("convoy: %s\n", redact.Text(fmt.Sprintf(format, args...)))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bars != nil {
		r.bars.print(line)
		return
	}
	fmt.Fprint(r.w, line)
}

func (r *reporter) progress(p convoy.Progress) {
	if r.quiet {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.first == nil {
		r.first = &p             // bytes from earlier runs do not count towards the rate
		r.lastPlain = time.Now() // a first plain line would have no rate yet
	}
	switch {
	case r.terminal:
		if r.bars == nil {
			r.bars = newBarDisplay(r.w)
		}
		r.bars.update(p, *r.first)
	case time.Since(r.lastPlain) >= plainEvery:
		r.lastPlain = time.Now()
		fmt.Fprintf(r.w, "convoy: %s\n", progressLine(p, *r.first))
	}
}

// finish ends the progress display, marked complete when ok.
func (r *reporter) finish(ok bool) {
	r.mu.Lock()
	bars := r.bars
	r.bars, r.first = nil, nil
	r.mu.Unlock()
	if bars != nil {
		bars.close(ok)
	}
}

func (r *reporter) summary(res convoy.Result) {
	if r.quiet {
		return
	}
	if res.AlreadyComplete {
		r.logf("%s is already complete (%s)", res.Path, units.FormatExact(res.Size))
		return
	}
	rate := 0.0
	if s := res.Elapsed.Seconds(); s > 0 {
		rate = float64(res.Fetched) / s
	}
	var extra []string
	if res.Connections > 0 {
		extra = append(extra, count(res.Connections, "connection", "connections"))
	}
	if res.Resumed > 0 {
		extra = append(extra, units.FormatBytes(res.Resumed)+" resumed")
	}
	extra = append(extra, count(res.Retries, "retry", "retries"), units.FormatBytes(res.Twice)+" fetched twice")
	if res.Cuts > 0 {
		extra = append(extra, count(res.Cuts, "answer", "answers")+" cut short")
	}
	if res.Restarts > 0 {
		extra = append(extra, count(res.Restarts, "restart", "restarts"))
	}
	if res.Verified {
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
		eta = time.Duration(float64(p.Size-p.Done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%5.1f%%  %s / %s  %s/s  ETA %s", pct, units.FormatBytes(p.Done), units.FormatBytes(p.Size), units.FormatBytes(int64(rate)), eta)
}

// count writes n with the noun in the number it needs: "1 retry", "0 retries".
func count[N int | int64](n N, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
