package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/units"
)

// The live display is a frame of lines drawn below everything printed so
// far and redrawn in place: the cursor goes back to the frame's first line,
// each line is written and the rest of it cleared, and whatever an older,
// taller frame left below is cleared too. It uses carriage return, line
// feed and three control sequences only: cursor up (CSI n A), erase to the
// end of the line (CSI K) and erase to the end of the screen (CSI J).
//
// A frame that is taller than the terminal cannot be redrawn in place (its
// top has scrolled away, and each redraw scrolls again), and a line as wide
// as the terminal wraps on some of them: so a frame has at most one line
// fewer than the terminal's rows, and each line at most one column fewer
// than its width, both measured again at every redraw.

const (
	cursorUp    = "\x1b[%dA"
	eraseLine   = "\x1b[K"
	eraseScreen = "\x1b[J"
)

// liveArea draws frames on a terminal. It is not safe for concurrent use.
type liveArea struct {
	w io.Writer
	// height is the number of lines of the frame on the screen; the cursor
	// is at the end of its last line.
	height int
	lines  []string // the frame on the screen
}

// rewind moves the cursor to the start of the frame's first line.
func (a *liveArea) rewind(b *bytes.Buffer) {
	if a.height == 0 {
		return
	}
	b.WriteByte('\r')
	if a.height > 1 {
		fmt.Fprintf(b, cursorUp, a.height-1)
	}
}

// blank erases the frame line by line and leaves the cursor at the start of
// its first line, where the frame no longer is. (Erasing to the end of the
// screen would take one sequence, but from the top-left corner tmux moves
// the whole screen into its scrollback, frame and all.)
func (a *liveArea) blank(b *bytes.Buffer) {
	a.rewind(b)
	for i := range a.height {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(eraseLine)
	}
	a.rewind(b)
	a.height, a.lines = 0, nil
}

// frame writes lines from the cursor on, the cursor staying at the end of
// the last one, and clears what an older, taller frame left below.
func (a *liveArea) frame(b *bytes.Buffer, lines []string) {
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
		b.WriteString(eraseLine)
	}
	if len(lines) > 0 {
		b.WriteString(eraseScreen)
	}
	a.height, a.lines = len(lines), lines
}

// draw replaces the frame on the screen with lines, which must fit the
// terminal (see fitFrame).
func (a *liveArea) draw(lines []string) {
	var b bytes.Buffer
	a.rewind(&b)
	a.frame(&b, lines)
	a.write(b.Bytes())
}

// print writes text (whole lines) above the frame: the frame is erased,
// text printed where it was, and the frame drawn again below it.
func (a *liveArea) print(text string) {
	var b bytes.Buffer
	lines := a.lines
	a.blank(&b)
	b.WriteString(text)
	a.frame(&b, lines)
	a.write(b.Bytes())
}

// close erases the frame and leaves keep (whole lines) in its place; the
// cursor is then at the start of the line after them.
func (a *liveArea) close(keep []string) {
	var b bytes.Buffer
	a.blank(&b)
	for _, l := range keep {
		b.WriteString(l)
		b.WriteString(eraseLine)
		b.WriteByte('\n')
	}
	a.write(b.Bytes())
}

func (a *liveArea) write(p []byte) {
	if len(p) > 0 {
		_, _ = a.w.Write(p) // the terminal is gone: nowhere left to draw
	}
}

// fitFrame keeps the first rows-1 lines (at least one) and cuts each to
// cols-1 columns, so the frame can be redrawn in place on a terminal of that
// size.
func fitFrame(lines []string, cols, rows int) []string {
	lines = lines[:min(len(lines), max(rows-1, 1))]
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = fitWidth(l, cols-1)
	}
	return out
}

// fitWidth drops what is not printable from s (a file or host name may
// hold anything) and cuts it to at most n columns.
func fitWidth(s string, n int) string {
	var b strings.Builder
	w := 0
	for _, r := range s {
		if !unicode.IsPrint(r) {
			continue
		}
		if w+runeWidth(r) > n {
			break
		}
		w += runeWidth(r)
		b.WriteRune(r)
	}
	return b.String()
}

// runeWidth is the columns r takes at most: a rune from U+1100 on counts
// two, since the wide ones (CJK, emoji) are all there, so that a width is
// never underestimated.
func runeWidth(r rune) int {
	if r >= 0x1100 {
		return 2
	}
	return 1
}

// width is the columns s takes at most.
func width(s string) int {
	w := 0
	for _, r := range s {
		w += runeWidth(r)
	}
	return w
}

// pad cuts s to n columns and fills it with spaces up to them.
func pad(s string, n int) string {
	s = fitWidth(s, n)
	return s + strings.Repeat(" ", max(n-width(s), 0))
}

// bar draws done of total in width columns between brackets, as
// "[=====>    ]".
func bar(done, total int64, width int) string {
	inner := max(width-2, 1)
	filled := inner
	if total > 0 && done < total {
		filled = int(float64(inner) * float64(max(done, 0)) / float64(total))
	}
	head := ""
	if filled < inner {
		head = ">"
	}
	return "[" + strings.Repeat("=", filled) + head + strings.Repeat(" ", inner-filled-len(head)) + "]"
}

// Bar widths, in columns with the brackets: the total's is as wide as the
// line allows within these bounds, and dropped when narrower; a
// connection's is fixed.
const (
	minTotalBar = 12
	maxTotalBar = 42
	connBar     = 22
)

// totalLine is the line for the whole file, in width columns: a bar when
// the size is known and there is room, the figures of progressLine, and how
// many connections are fetching now (the count convoy chooses changes).
func totalLine(p, first convoy.Progress, width int) string {
	figures := progressLine(p, first)
	busy := 0
	for _, c := range p.Connections {
		if c.Busy {
			busy++
		}
	}
	if busy > 0 {
		figures += "  " + count(busy, "conn", "conns")
	}
	return withBar(figures, p, width)
}

// stoppedLine is the line the display leaves when the download ended
// without completing: what is on disk, no rate or ETA.
func stoppedLine(p convoy.Progress, width int) string {
	figures := units.FormatBytes(p.Done) + "  stopped"
	if p.Size >= 0 {
		figures = fmt.Sprintf("%5.1f%%  %s / %s  stopped", percent(p), units.FormatBytes(p.Done), units.FormatBytes(p.Size))
	}
	return withBar(figures, p, width)
}

// withBar puts a bar of p before figures when the size is known and the
// width leaves room for one.
func withBar(figures string, p convoy.Progress, width int) string {
	room := width - len(figures) - 2 // figures are ASCII
	if p.Size < 0 || room < minTotalBar {
		return figures
	}
	return bar(p.Done, p.Size, min(room, maxTotalBar)) + "  " + figures
}

func percent(p convoy.Progress) float64 {
	if p.Size <= 0 {
		return 100
	}
	return 100 * float64(p.Done) / float64(p.Size)
}

// connLine is connection i's line: its number, server and speed, and how
// far it is through its current range.
func connLine(i int, c convoy.ConnProgress) string {
	speed := "idle"
	if c.Busy {
		speed = units.FormatBytes(int64(c.Rate)) + "/s"
	}
	line := fmt.Sprintf("#%-3d %s %12s", i+1, pad(c.Host, 24), speed)
	if c.Busy && c.SpanSize > 0 {
		line += fmt.Sprintf("  %s %3d%%", bar(c.SpanDone, c.SpanSize, connBar), int(100*c.SpanDone/c.SpanSize))
	}
	return line
}

// downloadFrame is the display of one download on a terminal of cols x
// rows: the total first, then as many connections as fit (busy ones first,
// each group in the order of their numbers), then how many more there are.
func downloadFrame(p, first convoy.Progress, cols, rows int) []string {
	lines := []string{totalLine(p, first, cols-1)}
	order := make([]int, 0, len(p.Connections))
	for _, busy := range []bool{true, false} {
		for i, c := range p.Connections {
			if c.Busy == busy {
				order = append(order, i)
			}
		}
	}
	return fitFrame(append(lines, rowsThatFit(order, rows-2, "connection", "connections", func(i int) string {
		return connLine(i, p.Connections[i])
	})...), cols, rows)
}

// rowsThatFit renders items in at most room lines: all of them when they
// fit, else as many as fit in room-1 and a last line saying how many more
// there are.
func rowsThatFit[T any](items []T, room int, one, many string, render func(T) string) []string {
	if room <= 0 {
		return nil
	}
	shown := len(items)
	if shown > room {
		shown = room - 1
	}
	var lines []string
	for _, it := range items[:shown] {
		lines = append(lines, render(it))
	}
	if more := len(items) - shown; more > 0 {
		lines = append(lines, "+"+count(more, "more "+one, "more "+many))
	}
	return lines
}

// batchFrame is the display of a batch on a terminal of cols x rows: how
// far the list is, then a line for each download running, as many as fit,
// with its name and its total, then how many more are running.
func batchFrame(b *batchView, cols, rows int) []string {
	head := fmt.Sprintf("batch: %d of %d finished", b.finished, b.total)
	if b.failed > 0 {
		head += fmt.Sprintf(" (%d failed)", b.failed)
	}
	head += fmt.Sprintf(", %d running", len(b.running))
	nameWidth := min(max(cols/4, 8), 32)
	return fitFrame(append([]string{head}, rowsThatFit(b.running, rows-2, "download", "downloads", func(t *task) string {
		line := pad(t.name, nameWidth) + "  "
		if t.first == nil {
			return line + "starting"
		}
		return line + totalLine(t.last, *t.first, cols-1-nameWidth-2)
	})...), cols, rows)
}
