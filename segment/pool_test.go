package segment

import (
	"fmt"
	"testing"
	"time"
)

// A pool whose count is raised takes the new places as a slow start takes
// packets: one connection waits for its first answer, then two, then four.
func TestPoolTakesPlacesInDoublingRounds(t *testing.T) {
	p := newPool(16, 1, t0, time.Hour, time.Hour, nil)
	if !p.enter(0) {
		t.Fatal("the first place was refused")
	}
	p.answered(0, true)
	p.mu.Lock()
	p.tell(p.g.set(16, ReasonGrew, t0), true)
	p.mu.Unlock()

	next := 1
	for round, want := range []int{1, 2, 4, 8} {
		var in []int
		for next < 16 && p.enter(next) {
			in = append(in, next)
			next++
		}
		if len(in) != want {
			t.Fatalf("round %d: %d connections took a place before any answered, want %d", round, len(in), want)
		}
		for _, k := range in {
			p.answered(k, true)
		}
	}
	if p.working != 16 {
		t.Fatalf("%d places taken, want 16", p.working)
	}
}

// A failed first answer frees its turn without earning more: only good
// answers let more connections wait at once.
func TestPoolFailedAnswerEarnsNoMore(t *testing.T) {
	p := newPool(8, 1, t0, time.Hour, time.Hour, nil)
	p.mu.Lock()
	p.tell(p.g.set(8, ReasonGrew, t0), true)
	p.mu.Unlock()
	if !p.enter(0) || p.enter(1) {
		t.Fatal("want exactly one place taken before an answer")
	}
	p.answered(0, false)
	if !p.enter(1) {
		t.Fatal("the failed answer did not free the turn")
	}
	if p.enter(2) {
		t.Fatal("a failed answer let two connections wait at once")
	}
}

// A connection refused a place waits on a turn that closes as soon as it
// may be admitted, not on a poll.
func TestPoolTurnClosesWhenAPlaceMayBeFree(t *testing.T) {
	p := newPool(4, 1, t0, time.Hour, time.Hour, nil)
	p.enter(0)
	closed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	turn := p.turn()
	if p.enter(1) {
		t.Fatal("admitted beyond the count")
	}
	p.answered(0, true)
	if !closed(turn) {
		t.Fatal("the turn stayed open after the first answer")
	}
	turn = p.turn()
	p.mu.Lock()
	p.tell(p.g.set(2, ReasonGrew, t0), true)
	p.mu.Unlock()
	if !closed(turn) {
		t.Fatal("the turn stayed open after the count grew")
	}
	turn = p.turn()
	p.mu.Lock()
	p.leave(0)
	p.mu.Unlock()
	if !closed(turn) {
		t.Fatal("the turn stayed open after a place was given back")
	}
}

// A sample is a whole window in which no place moved: a move starts the
// window again, and a window not yet full decides nothing.
func TestPoolSampleStartsAgainWhenAPlaceMoves(t *testing.T) {
	var changes []change
	const window = 100 * time.Millisecond
	p := newPool(8, 2, t0, window, 0, func(c change) { changes = append(changes, c) })
	p.enter(0)
	p.answered(0, true)
	p.enter(1)
	// The second connection's first answer comes 60 ms in: the window
	// restarts there, so the sample at 100 ms is not yet due.
	p.sample(at(20 * time.Millisecond))
	p.answered(1, true)
	p.meters[0].read(1 << 20)
	p.sample(at(60 * time.Millisecond))
	p.meters[0].read(1 << 20)
	p.meters[1].read(1 << 20)
	p.sample(at(100 * time.Millisecond))
	if len(changes) != 0 {
		t.Fatalf("decided %+v from a window of 40 ms", changes)
	}
	p.sample(at(160 * time.Millisecond))
	if len(changes) != 1 || changes[0].Count != 3 {
		t.Fatalf("changes %+v, want the first step (2 to 3) after one full window", changes)
	}
}

// Connections that spend much of a sample blocked in WriteAt are held
// back by the disk: the first ramp ends, and a step that brought its worth
// adds one connection, not all up to the top.
func TestPoolDiskBoundEndsTheRamp(t *testing.T) {
	for _, tt := range []struct {
		name    string
		writing time.Duration // per connection and sample of 100 ms
		want    int           // the count after the second step
	}{
		{"network-bound", 0, 32},
		{"disk-bound", 50 * time.Millisecond, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const window = 100 * time.Millisecond
			var changes []change
			p := newPool(32, 4, t0, window, 0, func(c change) { changes = append(changes, c) })
			now := t0
			for range 20 {
				if len(changes) == 2 {
					break
				}
				for k := range 32 {
					if p.enter(k) {
						p.answered(k, true)
					}
				}
				p.sample(now) // when places moved, the window starts again
				now = now.Add(window)
				// Each connection brings 1 MiB a window: linear.
				for _, m := range p.meters {
					if m.place {
						m.read(1 << 20)
						m.wrote(tt.writing)
					}
				}
				p.sample(now)
			}
			if len(changes) != 2 || changes[1].Count != tt.want {
				t.Fatalf("changes %+v, want the second to %d", changes, tt.want)
			}
		})
	}
}

// In the first ramp a sample is a rampShare of the window: each step's
// sample is time below the top. Once the ramp ended, a sample is the
// whole window again.
func TestPoolRampSamplesAreShorter(t *testing.T) {
	for _, ramp := range []bool{true, false} {
		t.Run(fmt.Sprint("ramp=", ramp), func(t *testing.T) {
			const window = 100 * time.Millisecond
			var changes []change
			p := newPool(8, 2, t0, window, 0, func(c change) { changes = append(changes, c) })
			if !ramp {
				p.g.diskBound()
			}
			for k := range 2 {
				p.enter(k)
				p.answered(k, true)
			}
			p.sample(t0) // the places moved: the sample starts here
			for _, m := range p.meters[:2] {
				m.read(1 << 20)
			}
			p.sample(at(window / rampShare))
			if got := len(changes) == 1; got != ramp {
				t.Fatalf("changes %+v after a sample of %v, want a step: %v", changes, window/rampShare, ramp)
			}
		})
	}
}
