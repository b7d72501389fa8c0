package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/creack/pty"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/internal/units"
	"github.com/convoy-dl/convoy/manifest"
)

// termRun is the convoy binary running with stderr on a pseudo-terminal of
// a fixed size, its output interpreted by a vt as it arrives.
type termRun struct {
	cmd     *exec.Cmd
	ptmx    *os.File // the terminal's side the test reads
	stdout  bytes.Buffer
	mu      sync.Mutex
	vt      *vt
	screens [][]string // the screen after each read from the terminal
	// scrolled counts the scrollback's lines at each of screens.
	scrolled []int
	changed  chan struct{} // closed, and replaced, after each read
	ended    chan struct{} // closed when the terminal's output has ended
	// top tells the first line of a frame (default: a download's total).
	top func(line string) bool
}

// startOnTerminal runs bin with args, stderr on a terminal of rows x cols
// and stdout into a buffer.
func startOnTerminal(t *testing.T, bin string, rows, cols int, args ...string) *termRun {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)}); err != nil {
		t.Fatal(err)
	}
	r := &termRun{ptmx: ptmx, vt: newVT(rows, cols), changed: make(chan struct{}), ended: make(chan struct{}), top: totalRow}
	r.cmd = exec.Command(bin, args...)
	r.cmd.Stderr, r.cmd.Stdout = tty, &r.stdout
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Only the child holds the terminal now: its exit ends the output.
	if err := tty.Close(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(r.ended)
		buf := make([]byte, 64<<10)
		for {
			n, err := ptmx.Read(buf) // EIO once the child has exited
			r.mu.Lock()
			if n > 0 {
				r.vt.write(buf[:n])
				r.screens = append(r.screens, r.vt.lines())
				r.scrolled = append(r.scrolled, len(r.vt.scrolled))
				close(r.changed)
				r.changed = make(chan struct{})
			}
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
		_ = ptmx.Close()
		<-r.ended
	})
	return r
}

// waitFor returns the first screen for which holds is true, waiting for
// more output as long as the run goes on (and 60 s at most).
func (r *termRun) waitFor(t *testing.T, what string, holds func(screen []string) bool) []string {
	t.Helper()
	s, _ := r.waitFrom(t, 0, what, holds)
	return s
}

// waitFrom is waitFor from the screen numbered from on; it also returns the
// screen's number.
func (r *termRun) waitFrom(t *testing.T, from int, what string, holds func(screen []string) bool) ([]string, int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	seen := from
	for {
		r.mu.Lock()
		for ; seen < len(r.screens); seen++ {
			if holds(r.screens[seen]) {
				defer r.mu.Unlock()
				return r.screens[seen], seen
			}
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-r.ended:
			r.mu.Lock()
			defer r.mu.Unlock()
			for ; seen < len(r.screens); seen++ {
				if holds(r.screens[seen]) {
					return r.screens[seen], seen
				}
			}
			t.Fatalf("the output ended without %s; the screen:\n%s", what, strings.Join(r.vt.lines(), "\n"))
		case <-deadline:
			t.Fatalf("no %s after 60 s; the screen:\n%s", what, strings.Join(r.vt.lines(), "\n"))
		}
	}
}

// resize gives the terminal another size, first to the vt (so that what
// comes after is read at the new size), then to the program; it returns
// the number of the next screen.
func (r *termRun) resize(t *testing.T, rows, cols int) int {
	t.Helper()
	r.mu.Lock()
	r.vt.resize(rows, cols)
	next := len(r.screens)
	r.mu.Unlock()
	if err := pty.Setsize(r.ptmx, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)}); err != nil {
		t.Fatal(err)
	}
	return next
}

// first returns the first screen for which holds is true, nil if none.
func (r *termRun) first(holds func(screen []string) bool) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.screens {
		if holds(s) {
			return s
		}
	}
	return nil
}

// last returns the last screen for which holds is true, nil if none.
func (r *termRun) last(holds func(screen []string) bool) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.screens) - 1; i >= 0; i-- {
		if holds(r.screens[i]) {
			return r.screens[i]
		}
	}
	return nil
}

// wait waits for the run to exit and its output to be read to the end.
func (r *termRun) wait() error {
	err := r.cmd.Wait()
	<-r.ended
	return err
}

// check fails t if the output held a control sequence the vt does not
// know, if a screen ever showed two frames at once, or if a line of the
// display reached the scrollback, as every redraw of a frame taller than
// the terminal makes it do.
func (r *termRun) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.vt.unknown) > 0 {
		t.Errorf("sequences a display does not need: %q", r.vt.unknown)
	}
	for _, l := range r.vt.scrolled {
		if displayRow(l) {
			t.Errorf("a line of the display scrolled off the terminal: %q\nscrollback:\n%s", l, strings.Join(r.vt.scrolled, "\n"))
			break
		}
	}
	for _, s := range r.screens {
		tops := 0
		for _, l := range s {
			if r.top(l) {
				tops++
			}
		}
		if tops > 1 {
			t.Errorf("a screen shows %d frames at once:\n%s", tops, strings.Join(s, "\n"))
			break
		}
	}
}

// totalRow reports whether l is the line of a whole download.
func totalRow(l string) bool { return strings.Contains(l, "ETA ") }

// connRow reports whether l is the line of a connection ("#12 host ...").
func connRow(l string) bool {
	var n int
	_, err := fmt.Sscanf(l, "#%d ", &n)
	return err == nil
}

// displayRow reports whether l is a line of the live display rather than
// a notice or a summary.
func displayRow(l string) bool {
	return totalRow(l) || connRow(l) || batchHead(l) || strings.HasPrefix(l, "+") || strings.HasPrefix(l, "[")
}

// batchHead reports whether l is the first line of a batch's display.
func batchHead(l string) bool {
	return strings.HasPrefix(l, "batch: ") && strings.HasSuffix(l, " running")
}

// frameAt finds the frame on screen: the index of its total line, -1 if
// none.
func frameAt(screen []string) int {
	for i, l := range screen {
		if totalRow(l) {
			return i
		}
	}
	return -1
}

// With 16 connections in a 12-row terminal the display keeps to 11 rows:
// the total first, then eight connections, then "+8 more connections", then
// the latest retry notice, which the next one replaces in place. No redraw
// scrolls a line of it into the scrollback, and after the end only the
// notice and the summary are left.
func TestDisplayFitsTheTerminal(t *testing.T) {
	bin := buildBinary(t)
	srv := testserver.New(t, testserver.Size(32<<20), testserver.Rate(1<<20), testserver.Statuses(0, 500))
	dir := t.TempDir()
	run := startOnTerminal(t, bin, 12, 120, "get", "-n", "16", "-d", dir, "-o", "big.bin", srv.URL)
	if err := run.wait(); err != nil {
		t.Fatalf("%v:\n%s", err, strings.Join(run.vt.lines(), "\n"))
	}
	run.check(t)
	screen := run.first(func(s []string) bool {
		k := frameAt(s)
		return k >= 0 && k+10 < len(s) && s[k+9] == "+8 more connections" && connRow(s[k+8]) &&
			strings.HasPrefix(s[k+10], "convoy: retrying in")
	})
	if screen == nil {
		t.Fatalf("no screen showed the total, eight connections, \"+8 more connections\" and the retry notice; the last frame:\n%s", strings.Join(run.last(func(s []string) bool { return frameAt(s) >= 0 }), "\n"))
	}
	k := frameAt(screen)
	for i, l := range screen[k+1 : k+9] {
		if !connRow(l) || !strings.Contains(l, "127.0.0.1") || !strings.Contains(l, "/s") {
			t.Errorf("row %d of the frame is %q, want a connection with its server and speed", i+2, l)
		}
	}
	for _, l := range screen[k+11:] {
		if l != "" {
			t.Errorf("below the frame: %q", l)
		}
	}
	if !strings.Contains(screen[k], "%") || !strings.Contains(screen[k], "/ 32.0 MiB") {
		t.Errorf("the total line %q lacks the percentage and the size", screen[k])
	}
	left := run.vt.text()
	if len(left) < 2 || !strings.HasPrefix(left[0], "convoy: retrying in") || !strings.HasPrefix(left[1], "convoy: saved") {
		t.Errorf("left on the screen:\n%s\nwant the retry notice and the summary", strings.Join(left, "\n"))
	}
	for _, l := range left {
		if displayRow(l) {
			t.Errorf("a line of the display was left behind: %q", l)
		}
	}
	srv.Verify(t, filepath.Join(dir, "big.bin"))
}

// Interrupted, the display leaves one line with what is really on disk
// (the bytes the manifest claims), not bars jumping to full, below the
// notice printed while it ran (a retry), and then the message that says
// how to resume.
func TestDisplayAtInterrupt(t *testing.T) {
	bin := buildBinary(t)
	srv := testserver.New(t, testserver.Size(16<<20), testserver.Rate(512<<10), testserver.Statuses(0, 500))
	dir := t.TempDir()
	run := startOnTerminal(t, bin, 12, 120, "get", "-n", "4", "-d", dir, "-o", "f.bin", srv.URL)
	run.waitFor(t, "a frame with progress", func(s []string) bool {
		k := frameAt(s)
		return k >= 0 && k+4 < len(s) && connRow(s[k+4]) && !strings.Contains(s[k], "  0 B /")
	})
	if err := run.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	// Which non-zero code an interruption exits with is TestSignals's
	// business; this test is about the screen.
	if err := run.wait(); !errors.As(err, &ee) || ee.ExitCode() <= 0 {
		t.Fatalf("exit %v, want a failure:\n%s", err, strings.Join(run.vt.lines(), "\n"))
	}
	run.check(t)
	m, err := manifest.Load(filepath.Join(dir, "f.bin.convoy"))
	if err != nil {
		t.Fatal(err)
	}
	left := run.vt.text()
	want := units.FormatBytes(m.Done()) + " / 16.0 MiB  stopped"
	if len(left) != 3 || !strings.HasPrefix(left[0], "convoy: retrying in") || !strings.HasSuffix(left[1], want) || !strings.HasPrefix(left[2], "convoy: interrupted") {
		t.Errorf("left on the screen:\n%s\nwant the retry notice, a line ending %q, then the message", strings.Join(left, "\n"), want)
	}
	if m.Done() >= 16<<20 || strings.Contains(strings.Join(left, "\n"), "100.0%") {
		t.Errorf("the download was not interrupted before the end (%d bytes done): the test proves nothing", m.Done())
	}
}

// Streamed without ranges (-o -, the fallback for such a server), the file
// still has a known size: the display shows the percentage and the ETA,
// and the notice that there is one connection comes before it.
func TestDisplayOfAStream(t *testing.T) {
	bin := buildBinary(t)
	srv := testserver.New(t, testserver.Size(3<<20), testserver.Rate(1<<20), testserver.NoRanges())
	run := startOnTerminal(t, bin, 12, 80, "get", "-o", "-", srv.URL)
	const notice = "convoy: the server does not support ranges: one connection"
	screen := run.waitFor(t, "a frame", func(s []string) bool { return frameAt(s) >= 0 })
	k := frameAt(screen)
	if k < 1 || screen[k-1] != notice {
		t.Errorf("the first frame:\n%s\nwant the notice %q above it", strings.Join(screen, "\n"), notice)
	}
	if !strings.Contains(screen[k], "%") || !strings.Contains(screen[k], "/ 3.0 MiB") {
		t.Errorf("the total line %q lacks the percentage and the size", screen[k])
	}
	run.waitFor(t, "an ETA", func(s []string) bool {
		k := frameAt(s)
		return k >= 0 && !strings.Contains(s[k], "ETA --")
	})
	if err := run.wait(); err != nil {
		t.Fatalf("%v:\n%s", err, strings.Join(run.vt.lines(), "\n"))
	}
	run.check(t)
	if !bytes.Equal(run.stdout.Bytes(), srv.Content()) {
		t.Errorf("stdout holds %d bytes that are not the file", run.stdout.Len())
	}
	if left := run.vt.text(); len(left) < 2 || left[0] != notice || !strings.HasPrefix(left[1], "convoy: streamed to stdout") || slices.ContainsFunc(left, displayRow) {
		t.Errorf("left on the screen:\n%s\nwant the notice and the summary", strings.Join(left, "\n"))
	}
}

// A frame never has more lines than the terminal has rows, less one, nor
// lines wider than its columns, less one; the total comes first, then the
// connections that fit (busy ones first), then how many more there are.
func TestDownloadFrameFits(t *testing.T) {
	for _, rows := range []int{1, 2, 3, 12, 40} {
		for _, cols := range []int{10, 40, 80, 200} {
			for _, n := range []int{0, 1, 16} {
				t.Run(fmt.Sprintf("%dx%d-%d", rows, cols, n), func(t *testing.T) {
					p := convoy.Progress{Size: 1 << 30, Done: 1 << 29, Elapsed: time.Second}
					for i := range n {
						busy := i%2 == 1
						p.Connections = append(p.Connections, convoy.ConnProgress{Host: "mirror-東京.example:443", Busy: busy, Rate: 1 << 20, SpanDone: 1 << 20, SpanSize: 4 << 20})
					}
					lines := downloadFrame(p, convoy.Progress{}, cols, rows)
					if len(lines) > max(rows-1, 1) || len(lines) == 0 {
						t.Fatalf("%d lines for %d rows", len(lines), rows)
					}
					for _, l := range lines {
						// The test's own measure: the CJK in the host name
						// takes two columns a rune.
						w := 0
						for _, r := range l {
							w++
							if unicode.Is(unicode.Han, r) {
								w++
							}
						}
						if w > cols-1 {
							t.Errorf("line %q is %d columns wide in %d", l, w, cols)
						}
					}
					if !strings.HasPrefix(fitWidth(totalLine(p, convoy.Progress{}, cols-1), cols-1), lines[0]) {
						t.Errorf("first line %q is not the total", lines[0])
					}
					shown, more := 0, 0
					for i, l := range lines[1:] {
						if _, err := fmt.Sscanf(l, "+%d", &more); err == nil {
							if i != len(lines)-2 {
								t.Errorf("%q is not the last line", l)
							}
							continue
						}
						shown++
						var id int
						if _, err := fmt.Sscanf(l, "#%d", &id); err != nil {
							t.Fatalf("line %q is not a connection", l)
						}
						if busy := id%2 == 0; !busy && shown <= n/2 {
							t.Errorf("idle connection #%d shown before a busy one", id)
						}
					}
					if rows >= 3 && shown+more != n {
						t.Errorf("%d connections shown and %d more, want %d in all", shown, more, n)
					}
				})
			}
		}
	}
}

// A batch shows how far the list is, then a line for each download
// running with its name and its total, as many as fit (here 5 of the 8
// that -j 8 runs at once in 8 rows), then how many more are running; each
// summary is printed above it, and after the end only the summaries are
// left.
func TestBatchDisplay(t *testing.T) {
	bin := buildBinary(t)
	srv := testserver.New(t, testserver.Size(1<<20), testserver.Rate(512<<10))
	dir := t.TempDir()
	list := filepath.Join(dir, "list.txt")
	var content strings.Builder
	for i := range 10 {
		fmt.Fprintf(&content, "%s\n  out=f%d.bin\n", srv.URL, i)
	}
	if err := os.WriteFile(list, []byte(content.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run := startOnTerminal(t, bin, 8, 160, "get", "-n", "2", "-j", "8", "-d", dir, "-i", list)
	run.top = batchHead
	if err := run.wait(); err != nil {
		t.Fatalf("%v:\n%s", err, strings.Join(run.vt.lines(), "\n"))
	}
	run.check(t)
	// The name, then the total: bar, percentage, bytes of the size.
	jobRow := regexp.MustCompile(`^f[0-9]\.bin +\[[=> ]+\] +[0-9.]+%  .* / 1\.0 MiB  .*ETA `)
	screen := run.first(func(s []string) bool {
		k := slices.IndexFunc(s, batchHead)
		if k < 0 || k+6 >= len(s) || !strings.HasSuffix(s[k], ", 8 running") || s[k+6] != "+3 more downloads" {
			return false
		}
		for _, l := range s[k+1 : k+6] {
			if !jobRow.MatchString(l) {
				return false
			}
		}
		return true
	})
	if screen == nil {
		t.Fatalf("no screen showed the batch, five downloads with their totals and \"+3 more downloads\"; the last:\n%s", strings.Join(run.last(func(s []string) bool { return slices.ContainsFunc(s, batchHead) }), "\n"))
	}
	// The count is right all along: a download that ends leaves the
	// running ones, and -j 8 are running at most.
	late := false
	run.first(func(s []string) bool {
		for _, l := range s {
			var finished, total, running int
			if _, err := fmt.Sscanf(l, "batch: %d of %d finished, %d running", &finished, &total, &running); err != nil {
				continue
			}
			if total != 10 || finished+running > 10 || running > 8 {
				t.Errorf("the batch's line says %q", l)
			}
			late = late || finished >= 8
		}
		return false
	})
	if !late {
		t.Error("no screen showed the batch with 8 or more downloads finished")
	}
	left := append(slices.Clone(run.vt.scrolled), run.vt.text()...)
	saved := 0
	for _, l := range left {
		if displayRow(l) {
			t.Errorf("a line of the display was left behind: %q", l)
		}
		if strings.HasPrefix(l, "convoy: saved ") {
			saved++
		}
	}
	if saved != 10 || left[len(left)-1] != "convoy: batch: 10 of 10 downloads succeeded" {
		t.Errorf("left:\n%s\nwant ten summaries and the batch's", strings.Join(left, "\n"))
	}
}

// The display follows the terminal's size at every redraw: a frame of all
// 16 connections in 40 rows becomes, once the terminal has 12, the total,
// nine connections and "+7 more connections", and from then on no redraw
// scrolls.
func TestDisplayFollowsAResize(t *testing.T) {
	bin := buildBinary(t)
	srv := testserver.New(t, testserver.Size(48<<20), testserver.Rate(1<<20))
	dir := t.TempDir()
	run := startOnTerminal(t, bin, 40, 100, "get", "-n", "16", "-d", dir, "-o", "big.bin", srv.URL)
	run.waitFor(t, "a frame of all 16 connections", func(s []string) bool {
		k := frameAt(s)
		return k >= 0 && k+16 < len(s) && connRow(s[k+16])
	})
	next := run.resize(t, 12, 100)
	_, i := run.waitFrom(t, next, "a frame of 12 rows", func(s []string) bool {
		k := frameAt(s)
		return k >= 0 && k+10 < len(s) && s[k+10] == "+7 more connections" && slices.Equal(s[k+11:], make([]string, len(s)-k-11))
	})
	if err := run.wait(); err != nil {
		t.Fatalf("%v:\n%s", err, strings.Join(run.vt.lines(), "\n"))
	}
	// The lines the smaller terminal pushed off its top were the old
	// frame's; after that, nothing of the display may scroll.
	run.mu.Lock()
	defer run.mu.Unlock()
	for _, l := range run.vt.scrolled[run.scrolled[i]:] {
		if displayRow(l) {
			t.Errorf("a line of the display scrolled off after the resize: %q", l)
		}
	}
	if len(run.vt.unknown) > 0 {
		t.Errorf("sequences a display does not need: %q", run.vt.unknown)
	}
	srv.Verify(t, filepath.Join(dir, "big.bin"))
}

// The total line says how many connections fetch now: the count convoy
// chooses changes as the download runs.
func TestTotalLineCountsBusyConnections(t *testing.T) {
	p := convoy.Progress{Size: 100, Done: 50, Elapsed: time.Second,
		Connections: []convoy.ConnProgress{{Busy: true}, {}, {Busy: true}, {Busy: true}, {}}}
	if line := totalLine(p, convoy.Progress{}, 200); !strings.HasSuffix(line, "  3 conns") {
		t.Errorf("total line %q does not end with the 3 busy connections", line)
	}
	p.Connections = p.Connections[:2]
	if line := totalLine(p, convoy.Progress{}, 200); !strings.HasSuffix(line, "  1 conn") {
		t.Errorf("total line %q does not end with the 1 busy connection", line)
	}
}

// On a terminal the retry notices share one line that each new one
// replaces: a server failing for several causes in turn leaves the latest
// notice and the summary, not a line per cause.
func TestRetryNoticesShareOneLine(t *testing.T) {
	bin := buildBinary(t)
	srv := testserver.New(t, testserver.Size(4<<20), testserver.Rate(2<<20), testserver.Statuses(0, 500, 502, 504))
	dir := t.TempDir()
	run := startOnTerminal(t, bin, 24, 120, "get", "-n", "1", "-d", dir, "-o", "r.bin", srv.URL)
	if err := run.wait(); err != nil {
		t.Fatalf("%v:\n%s", err, strings.Join(run.vt.lines(), "\n"))
	}
	run.check(t)
	left := run.vt.text()
	if len(left) < 2 || !strings.Contains(left[0], "504") || !strings.HasPrefix(left[1], "convoy: saved") {
		t.Errorf("left on the screen:\n%s\nwant the latest notice (504) and the summary", strings.Join(left, "\n"))
	}
	for _, l := range append(run.vt.scrolled, left...) {
		if strings.Contains(l, "500 Internal") || strings.Contains(l, "502 Bad") {
			t.Errorf("an earlier notice was left: %q", l)
		}
	}
	srv.Verify(t, filepath.Join(dir, "r.bin"))
}
