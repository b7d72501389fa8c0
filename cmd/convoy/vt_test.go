package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// vt is a small terminal emulator for tests: a screen of rows x cols
// runes, a cursor, lines scrolled off the top kept as scrollback. It knows
// what the live display may send (printable text, CR, LF, backspace, CSI
// n A/B/C/D/G/H, K, J, m) and records any other control sequence in
// unknown, so a test can fail on output it cannot judge. Text wraps at the
// last column as xterm does: the cursor waits there and the next printable
// rune starts a new line. Clearing the whole screen moves it into the
// scrollback first, as tmux does, so a display that erases itself that way
// shows in the scrollback as one that scrolls.
type vt struct {
	rows, cols int
	grid       [][]rune
	row, col   int
	wrapNext   bool
	scrolled   []string // lines pushed off the top, oldest first
	unknown    []string
	pending    []byte // an escape sequence or rune cut by the end of a write
}

func newVT(rows, cols int) *vt {
	v := &vt{rows: rows, cols: cols}
	v.grid = make([][]rune, rows)
	for i := range v.grid {
		v.grid[i] = blankRow(cols)
	}
	return v
}

func blankRow(cols int) []rune {
	r := make([]rune, cols)
	for i := range r {
		r[i] = ' '
	}
	return r
}

// write interprets p, which may end in the middle of a sequence.
func (v *vt) write(p []byte) {
	buf := append(v.pending, p...)
	v.pending = nil
	for len(buf) > 0 {
		n := v.step(buf)
		if n == 0 { // incomplete: wait for more
			v.pending = append([]byte(nil), buf...)
			return
		}
		buf = buf[n:]
	}
}

// step interprets the start of buf and returns how many bytes it took, 0
// when buf holds only the start of a sequence.
func (v *vt) step(buf []byte) int {
	switch c := buf[0]; {
	case c == 0x1b:
		if len(buf) < 2 {
			return 0
		}
		if buf[1] != '[' {
			v.unknown = append(v.unknown, fmt.Sprintf("ESC %q", buf[1]))
			return 2
		}
		for i := 2; i < len(buf); i++ {
			if buf[i] >= 0x40 && buf[i] <= 0x7e {
				v.csi(string(buf[2:i]), buf[i])
				return i + 1
			}
		}
		return 0
	case c == '\r':
		v.col, v.wrapNext = 0, false
	case c == '\n':
		v.lineFeed()
	case c == '\b':
		v.col, v.wrapNext = max(v.col-1, 0), false
	case c < 0x20 || c == 0x7f:
		v.unknown = append(v.unknown, fmt.Sprintf("control %#x", c))
	default:
		if !utf8.FullRune(buf) {
			return 0
		}
		r, n := utf8.DecodeRune(buf)
		v.put(r)
		return n
	}
	return 1
}

func (v *vt) put(r rune) {
	if v.wrapNext {
		v.col, v.wrapNext = 0, false
		v.lineFeed()
	}
	v.grid[v.row][v.col] = r
	if v.col == v.cols-1 {
		v.wrapNext = true
	} else {
		v.col++
	}
}

func (v *vt) lineFeed() {
	v.wrapNext = false
	if v.row < v.rows-1 {
		v.row++
		return
	}
	v.scrolled = append(v.scrolled, strings.TrimRight(string(v.grid[0]), " "))
	copy(v.grid, v.grid[1:])
	v.grid[v.rows-1] = blankRow(v.cols)
}

func (v *vt) csi(params string, final byte) {
	arg := func(i, def int) int {
		parts := strings.Split(params, ";")
		if i >= len(parts) || parts[i] == "" {
			return def
		}
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			v.unknown = append(v.unknown, fmt.Sprintf("CSI %s%c", params, final))
			return def
		}
		return n
	}
	if strings.HasPrefix(params, "?") {
		v.unknown = append(v.unknown, fmt.Sprintf("CSI %s%c", params, final))
		return
	}
	v.wrapNext = false
	switch final {
	case 'A':
		v.row = max(v.row-max(arg(0, 1), 1), 0)
	case 'B':
		v.row = min(v.row+max(arg(0, 1), 1), v.rows-1)
	case 'C':
		v.col = min(v.col+max(arg(0, 1), 1), v.cols-1)
	case 'D':
		v.col = max(v.col-max(arg(0, 1), 1), 0)
	case 'G':
		v.col = min(max(arg(0, 1), 1), v.cols) - 1
	case 'H':
		v.row = min(max(arg(0, 1), 1), v.rows) - 1
		v.col = min(max(arg(1, 1), 1), v.cols) - 1
	case 'K':
		from, to := v.col, v.cols // 0: to the end of the line
		switch arg(0, 0) {
		case 1:
			from, to = 0, v.col+1
		case 2:
			from = 0
		}
		for i := from; i < to; i++ {
			v.grid[v.row][i] = ' '
		}
	case 'J':
		mode := arg(0, 0)
		if mode == 2 || (mode == 0 && v.row == 0 && v.col == 0) {
			v.clearToHistory()
		}
		switch mode {
		case 0:
			for i := v.col; i < v.cols; i++ {
				v.grid[v.row][i] = ' '
			}
			for r := v.row + 1; r < v.rows; r++ {
				v.grid[r] = blankRow(v.cols)
			}
		case 2:
			for r := range v.grid {
				v.grid[r] = blankRow(v.cols)
			}
		default:
			v.unknown = append(v.unknown, fmt.Sprintf("CSI %s%c", params, final))
		}
	case 'm': // colours do not move anything
	default:
		v.unknown = append(v.unknown, fmt.Sprintf("CSI %s%c", params, final))
	}
}

// resize gives the screen another size as xterm does: when it loses rows
// below the cursor's, the lines at the top go to the scrollback so that
// the cursor stays on its line; lines are cut or filled to the new width,
// not wrapped again.
func (v *vt) resize(rows, cols int) {
	if push := v.row - (rows - 1); push > 0 {
		for _, l := range v.grid[:push] {
			v.scrolled = append(v.scrolled, strings.TrimRight(string(l), " "))
		}
		v.grid = v.grid[push:]
		v.row -= push
	}
	grid := make([][]rune, rows)
	for i := range grid {
		grid[i] = blankRow(cols)
		if i < len(v.grid) {
			copy(grid[i], v.grid[i])
		}
	}
	v.grid, v.rows, v.cols = grid, rows, cols
	v.col = min(v.col, cols-1)
	v.wrapNext = false
}

// clearToHistory does what tmux does before it clears the whole screen
// (erasing from the top-left corner is that too): it moves the screen's
// lines, up to the last that is not blank, into the scrollback.
func (v *vt) clearToHistory() {
	l := v.lines()
	for len(l) > 0 && l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	v.scrolled = append(v.scrolled, l...)
}

// lines is the screen, each row without trailing spaces.
func (v *vt) lines() []string {
	out := make([]string, v.rows)
	for i, r := range v.grid {
		out[i] = strings.TrimRight(string(r), " ")
	}
	return out
}

// text is what is left on the screen: its rows without the blank ones at
// the end.
func (v *vt) text() []string {
	l := v.lines()
	for len(l) > 0 && l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	return l
}

// The emulator itself: wrapping, scrolling, moving up and erasing, a
// sequence cut between two writes, a resize.
func TestVT(t *testing.T) {
	v := newVT(3, 5)
	v.write([]byte("abcdefg\r\n"))              // wraps after e
	v.write([]byte("xy\r\nz"))                  // scrolls abcde off
	v.write([]byte("\x1b"))                     // cut here
	v.write([]byte("[2A\rQ\x1b[K\n\x1b[J\xc3")) // and here, in a rune; LF keeps the column
	v.write([]byte("\xa9"))
	if got, want := v.lines(), []string{"Q", "xé", ""}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("screen %q, want %q", got, want)
	}
	if len(v.scrolled) != 1 || v.scrolled[0] != "abcde" {
		t.Errorf("scrollback %q, want [abcde]", v.scrolled)
	}
	v = newVT(2, 4)
	v.write([]byte("x\r\n\x1b[1A\x1b[J"))
	if len(v.scrolled) != 1 || v.scrolled[0] != "x" {
		t.Errorf("clearing from the top-left corner: scrollback %q, want [x]", v.scrolled)
	}
	v = newVT(3, 4)
	v.write([]byte("a\r\nb\r\nc"))
	v.resize(2, 2) // the cursor's line stays: a goes to the scrollback
	if got := v.lines(); len(v.scrolled) != 1 || v.scrolled[0] != "a" || strings.Join(got, "|") != "b|c" {
		t.Errorf("after a resize: screen %q, scrollback %q", got, v.scrolled)
	}
	v.write([]byte("\x1b[?25l\x07"))
	if len(v.unknown) != 2 {
		t.Errorf("unknown %q, want the cursor mode and the bell", v.unknown)
	}
}
