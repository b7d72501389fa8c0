package convoy

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// An early checkpoint waits a tenth of the interval after the last one, or
// earlySpacingCost times as long as that one took, whichever is longer.
func TestEarlySpacing(t *testing.T) {
	var e earlySpacing
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if !e.allows(t0) {
		t.Fatal("no early checkpoint before the first save")
	}
	for _, tt := range []struct {
		interval, took, gap time.Duration
	}{
		{250 * time.Millisecond, 2 * time.Millisecond, 25 * time.Millisecond},
		{250 * time.Millisecond, 10 * time.Millisecond, 40 * time.Millisecond},
		{time.Hour, time.Millisecond, 6 * time.Minute},
	} {
		ended := t0.Add(tt.took)
		e.saved(t0, ended, tt.interval)
		if e.allows(ended.Add(tt.gap - time.Nanosecond)) {
			t.Errorf("interval %v, a save of %v: an early checkpoint %v after it", tt.interval, tt.took, tt.gap-time.Nanosecond)
		}
		if !e.allows(ended.Add(tt.gap)) {
			t.Errorf("interval %v, a save of %v: no early checkpoint %v after it", tt.interval, tt.took, tt.gap)
		}
	}
}

// wrote asks for a checkpoint once checkpointBytes are unsaved, never
// blocks, and asks at most once until the loop takes the signal.
func TestWroteAsksAtCheckpointBytes(t *testing.T) {
	c := &checkpointer{due: make(chan struct{}, 1)}
	c.wrote(checkpointBytes - 1)
	select {
	case <-c.due:
		t.Fatal("asked for a checkpoint one byte short")
	default:
	}
	c.wrote(1)
	select {
	case <-c.due:
	default:
		t.Fatal("no checkpoint asked for at checkpointBytes")
	}
	c.wrote(1)
	// The signal of the first is not taken: this one does not wait.
	c.wrote(1)
	// No one listens: no wait either.
	(&checkpointer{}).wrote(checkpointBytes)
}

// A save takes the bytes written before its snapshot off the unsaved count,
// so the next early checkpoint waits for a MiB more.
func TestSaveTakesUnsavedBytes(t *testing.T) {
	const size = 4 << 20
	dir := t.TempDir()
	part, err := merge.Open(filepath.Join(dir, "f.part"), size, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := part.Close(); err != nil {
			t.Error(err)
		}
	})
	plan, err := segment.NewPlan(size, []segment.Segment{{Start: 0, End: size, Written: 3 << 20}}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := &checkpointer{plan: plan, part: part, path: filepath.Join(dir, "f.convoy"), due: make(chan struct{}, 1),
		base: manifest.Manifest{URL: "http://h/f", Size: size}}
	c.wrote(3 << 20)
	if err := c.save(); err != nil {
		t.Fatal(err)
	}
	if n := c.unsaved.Load(); n != 0 {
		t.Errorf("%d bytes unsaved after a save", n)
	}
	if c.durable != 3<<20 {
		t.Errorf("the save claims %d bytes, want %d", c.durable, 3<<20)
	}
}
