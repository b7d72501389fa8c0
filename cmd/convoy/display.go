package main

import (
	"fmt"
	"io"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/units"
)

// maxConnBars bounds the per-connection bars drawn; more connections still
// count in the total.
const maxConnBars = 16

// barDisplay draws the live terminal display: a bar for the whole file with
// rate, ETA and percentage, and a compact bar per connection with its server
// and speed. mpb redraws it in place and follows the terminal's width.
type barDisplay struct {
	mu    sync.Mutex
	p     *mpb.Progress
	total *mpb.Bar
	conns []*mpb.Bar
	text  []string // per connection: "#i host  speed"
	line  string   // the total's figures
}

func newBarDisplay(w io.Writer) *barDisplay {
	d := &barDisplay{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(100), mpb.WithAutoRefresh())}
	d.total = d.p.New(0, mpb.BarStyle(),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return d.figures() })),
		mpb.BarPriority(0),
	)
	return d
}

func (d *barDisplay) figures() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.line
}

func (d *barDisplay) connText(i int) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.text[i]
}

// update shows p; first is the first snapshot of this run, for the rate.
func (d *barDisplay) update(p, first convoy.Progress) {
	d.mu.Lock()
	d.line = progressLine(p, first)
	for i := len(d.text); i < min(len(p.Connections), maxConnBars); i++ {
		d.text = append(d.text, "")
	}
	for i, c := range p.Connections {
		if i >= maxConnBars {
			break
		}
		speed := "idle"
		if c.Busy {
			speed = units.FormatBytes(int64(c.Rate)) + "/s"
		}
		d.text[i] = fmt.Sprintf("#%-2d %s  %s", i+1, c.Host, speed)
	}
	d.mu.Unlock()

	if p.Size >= 0 {
		d.total.SetTotal(p.Size, false)
	}
	d.total.SetCurrent(p.Done)
	for i, c := range p.Connections {
		if i >= maxConnBars {
			break
		}
		if i >= len(d.conns) {
			d.conns = append(d.conns, d.p.New(0, mpb.BarStyle().Lbound("[").Rbound("]"),
				mpb.BarWidth(20),
				mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return d.connText(i) }, decor.WC{W: 36, C: decor.DindentRight})),
				mpb.BarPriority(i+1),
			))
		}
		if !c.Busy && c.Written > 0 { // its work is done
			d.conns[i].SetTotal(1, false)
			d.conns[i].SetCurrent(1)
			continue
		}
		d.conns[i].SetTotal(max(c.SpanSize, 1), false)
		d.conns[i].SetCurrent(c.SpanDone)
	}
}

// print writes a line above the bars.
func (d *barDisplay) print(line string) {
	_, _ = d.p.Write([]byte(line)) // the display is gone: nowhere left to print
}

// close ends every bar (complete when ok) and waits until mpb has drawn the
// last frame and stopped.
func (d *barDisplay) close(ok bool) {
	for _, b := range append([]*mpb.Bar{d.total}, d.conns...) {
		if ok {
			b.SetTotal(-1, true)
		} else {
			b.Abort(false)
		}
	}
	d.p.Wait()
}
