package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/internal/units"
)

// reporter prints notices and progress: on a terminal a live display that is
// redrawn in place and never taller than the terminal, elsewhere a plain
// line every few seconds.
type reporter struct {
	mu    sync.Mutex
	w     io.Writer
	quiet bool
	// size reports the terminal's columns and rows; nil off a terminal.
	size func() (cols, rows int)
	area *liveArea // on a terminal, unless quiet
	// status is the latest retry notice, shown on a terminal as the
	// frame's last line and replaced by the next: a server that keeps
	// failing costs one line, not a screenful.
	status string
	// single is the download shown outside a batch, once its progress
	// starts.
	single *task
	batch  *batchView // with -i
	drawn  time.Time  // when a frame was last drawn
}

// task follows the progress of one download.
type task struct {
	name      string           // in a batch, the file's name
	dir       string           // in a batch, the folder names are relative to
	first     *convoy.Progress // bytes from earlier runs do not count towards the rate
	last      convoy.Progress
	lastPlain time.Time
}

// update records p.
func (t *task) update(p convoy.Progress) {
	t.last = p
	if t.first == nil {
		t.first = &p
		t.lastPlain = time.Now() // a first plain line would have no rate yet
	}
	if t.dir != "" && p.Output != "" {
		// The name the file really gets (the server may have named it).
		if rel, err := filepath.Rel(t.dir, p.Output); err == nil && !strings.HasPrefix(rel, "..") {
			t.name = rel
		} else {
			t.name = p.Output
		}
	}
}

// batchView is what a batch shows: how far the list is, and each download
// running.
type batchView struct {
	total, finished, failed int
	running                 []*task
}

// plainEvery is how often a plain progress line is printed when stderr is
// not a terminal.
const plainEvery = 5 * time.Second

// minRedraw spaces the frames drawn on a terminal.
const minRedraw = 100 * time.Millisecond

// Assumed when the terminal does not tell its size.
const (
	defaultCols = 80
	defaultRows = 24
)

// newReporter reports to w; size, when w is a terminal, reports its
// columns and rows (0 when unknown), else it is nil.
func newReporter(w io.Writer, quiet bool, size func() (cols, rows int)) *reporter {
	r := &reporter{w: w, quiet: quiet, size: size}
	if size != nil && !quiet {
		r.area = &liveArea{w: w}
	}
	return r
}

// terminalSize reports the size of the terminal f is on (0 when unknown).
func terminalSize(f *os.File) func() (cols, rows int) {
	return func() (int, int) {
		cols, rows, err := term.GetSize(int(f.Fd()))
		if err != nil {
			return 0, 0
		}
		return cols, rows
	}
}

// screen is the terminal's size, or the default when it does not say.
func (r *reporter) screen() (cols, rows int) {
	cols, rows = r.size()
	if cols <= 0 || rows <= 0 {
		return defaultCols, defaultRows
	}
	return cols, rows
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
	if r.area != nil {
		r.area.print(line)
		return
	}
	fmt.Fprint(r.w, line)
}

// progress shows p of the download outside a batch.
func (r *reporter) progress(p convoy.Progress) {
	if r.quiet {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.single == nil {
		r.single = &task{}
	}
	r.single.update(p)
	r.show(r.single, false)
}

// show draws the display on a terminal (at most every minRedraw unless
// now), else prints t's plain line when it is due.
func (r *reporter) show(t *task, now bool) {
	if r.area != nil {
		if now || time.Since(r.drawn) >= minRedraw {
			r.draw()
		}
		return
	}
	if t == nil || t.first == nil || time.Since(t.lastPlain) < plainEvery {
		return
	}
	t.lastPlain = time.Now()
	name := ""
	if t.name != "" {
		name = t.name + ": "
	}
	fmt.Fprintf(r.w, "convoy: %s%s\n", name, progressLine(t.last, *t.first))
}

// draw draws the frame of what is shown now.
func (r *reporter) draw() {
	cols, rows := r.screen()
	if r.status != "" {
		rows-- // its line is the frame's last
	}
	var lines []string
	switch {
	case r.batch != nil:
		lines = batchFrame(r.batch, cols, rows)
	case r.single != nil:
		lines = downloadFrame(r.single.last, *r.single.first, cols, rows)
	}
	if r.status != "" {
		lines = append(lines, fitWidth(r.status, cols-1))
	}
	if len(lines) == 0 {
		return
	}
	r.area.draw(lines)
	r.drawn = time.Now()
}

// retried shows a retry notice: on a terminal as the frame's last line,
// replacing the one before; elsewhere as a line of its own.
func (r *reporter) retried(notice string) {
	if r.quiet {
		return
	}
	if r.area == nil {
		r.logf("%s", notice)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = "convoy: " + redact.Text(notice)
	r.draw()
}

// keepStatus returns the lines a closing frame leaves: the latest retry
// notice, if any, then more.
func (r *reporter) keepStatus(cols int, more ...string) []string {
	var keep []string
	if r.status != "" {
		keep = append(keep, fitWidth(r.status, cols-1))
		r.status = ""
	}
	return append(keep, more...)
}

// finish ends the display of the download outside a batch. After a
// success the frame is erased for the summary that follows; otherwise one
// line is left saying how far the download got.
func (r *reporter) finish(ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.single
	r.single = nil
	if r.area == nil {
		return
	}
	cols, _ := r.screen()
	if t == nil {
		if r.status != "" {
			r.area.close(r.keepStatus(cols))
		}
		return
	}
	var stopped []string
	if !ok {
		stopped = []string{fitWidth(stoppedLine(t.last, cols-1), cols-1)}
	}
	r.area.close(r.keepStatus(cols, stopped...))
}

// startBatch shows a batch of total downloads instead of one download.
func (r *reporter) startBatch(total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batch = &batchView{total: total}
}

// endBatch erases the batch's display, for its summary.
func (r *reporter) endBatch() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batch = nil
	if r.area != nil {
		cols, _ := r.screen()
		r.area.close(r.keepStatus(cols))
	}
}

// view is where the progress of one download goes.
type view interface {
	progress(convoy.Progress)
	finish(ok bool)
}

// jobView is one running download of a batch.
type jobView struct {
	r *reporter
	t *task
}

// startJob adds a running download to the batch's display, named name
// until its progress names the file it writes, relative to dir.
func (r *reporter) startJob(name, dir string) *jobView {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := &task{name: name, dir: dir}
	r.batch.running = append(r.batch.running, t)
	if r.area != nil {
		r.show(t, true)
	}
	return &jobView{r: r, t: t}
}

func (j *jobView) progress(p convoy.Progress) {
	if j.r.quiet {
		return
	}
	j.r.mu.Lock()
	defer j.r.mu.Unlock()
	j.t.update(p)
	j.r.show(j.t, false)
}

// finish takes the download off the display, counting it finished.
func (j *jobView) finish(ok bool) {
	r := j.r
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.batch
	b.running = slices.DeleteFunc(b.running, func(t *task) bool { return t == j.t })
	b.finished++
	if !ok {
		b.failed++
	}
	if r.area != nil {
		r.show(nil, true)
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
	if res.Refetched > 0 {
		extra = append(extra, count(res.Refetched, "piece", "pieces")+" refetched")
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
