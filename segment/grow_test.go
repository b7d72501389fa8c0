package segment

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// The tests of growth feed it numbers: a model server gives the throughput
// of n connections, samples come every sampleEvery, and the test checks the
// counts the controller chooses. No server, no clock.

// Samples come as often as in a download, and changes are held as long.
const (
	sampleEvery = DefaultGrowEvery
	hold        = growHold * DefaultGrowEvery
)

// model is a server as the controller sees it: the throughput of n
// connections (in connections' worth of a lone one, say MiB/s), and the
// most connections it accepts (0: any number).
type model struct {
	rate   func(n int) float64
	accept int
	noise  float64 // each sample is off by up to this fraction, either way
}

// trace is what a run of the controller did.
type trace struct {
	counts  []int    // the count after each sample
	changes []change // every change, in order
	at      []time.Time
}

// simulate feeds g the samples of m over d and returns what it did. Refused
// connections are reported one by one, as the runner does, in the sample
// where the count exceeds what the server accepts.
func simulate(t *testing.T, g *growth, m model, d time.Duration) trace {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var tr trace
	note := func(c change, ok bool, now time.Time) {
		if !ok {
			return
		}
		if c.Count == c.Was {
			t.Fatalf("a change to the same count: %+v", c)
		}
		tr.changes = append(tr.changes, c)
		tr.at = append(tr.at, now)
	}
	for i := range int(d / sampleEvery) {
		now := t0.Add(time.Duration(i+1) * sampleEvery)
		for m.accept > 0 && g.count > m.accept {
			c, ok := g.refused(now, m.accept)
			note(c, ok, now)
		}
		r := m.rate(g.count)
		if m.noise > 0 {
			r *= 1 + m.noise*(2*rng.Float64()-1)
		}
		c, ok := g.sample(now, r, true)
		note(c, ok, now)
		if g.count > g.ceiling || g.count < 1 {
			t.Fatalf("sample %d: count %d outside 1..%d", i, g.count, g.ceiling)
		}
		tr.counts = append(tr.counts, g.count)
	}
	return tr
}

// linear is a server that throttles each connection and nothing else.
func linear(n int) float64 { return float64(n) }

// capped is a server whose total is capped at c connections' worth.
func capped(c float64) func(int) float64 {
	return func(n int) float64 { return min(float64(n), c) }
}

// checkSpacing fails t if two changes decided from samples (not refusals
// or probes) came less than hold apart; the steps of the first ramp, which
// only add connections, may come every second sample.
func checkSpacing(t *testing.T, tr trace, hold time.Duration) {
	t.Helper()
	ramp := true
	for i := 1; i < len(tr.changes); i++ {
		r := tr.changes[i].Reason
		if ramp && r == ReasonGrew {
			if d := tr.at[i].Sub(tr.at[i-1]); d < 2*sampleEvery {
				t.Errorf("ramp step %d (%+v) came %v after the one before", i, tr.changes[i], d)
			}
			continue
		}
		ramp = false
		if r == ReasonRefused || r == ReasonAccepted {
			continue
		}
		if d := tr.at[i].Sub(tr.at[i-1]); d < hold {
			t.Errorf("change %d (%+v) came %v after the one before: faster than %v", i, tr.changes[i], d, hold)
		}
	}
}

// A per-connection throttle and no other bottleneck: every added
// connection brings its whole worth, so the count grows to the ceiling, by
// doubling, and stays near it.
func TestGrowthLinearGrowsToTheCeiling(t *testing.T) {
	for _, ceiling := range []int{1, 4, 10, 32} {
		t.Run(fmt.Sprint("ceiling=", ceiling), func(t *testing.T) {
			g := newGrowth(StartConnections, ceiling, hold)
			tr := simulate(t, g, model{rate: linear}, 30*time.Second)
			checkSpacing(t, tr, hold)
			reached := -1
			for i, n := range tr.counts {
				if n == ceiling {
					reached = i
					break
				}
			}
			// From 4: 6 at the first sample, and the ceiling two
			// samples later (the one after a change is skipped).
			if reached < 0 || reached > 3 {
				t.Fatalf("counts %v: the ceiling %d not reached within 3 samples", tr.counts, ceiling)
			}
			for i, n := range tr.counts[reached:] {
				if n < ceiling-1 {
					t.Fatalf("sample %d: count %d, fell below %d after reaching the ceiling", reached+i, n, ceiling-1)
				}
			}
		})
	}
}

// A server whose total is capped: the throughput saturates, the count
// settles where it does (8 connections' worth), and the explorations
// around it come back to it.
func TestGrowthPlateauAtTheTotalCap(t *testing.T) {
	for _, total := range []float64{6, 8, 13} {
		t.Run(fmt.Sprint("total=", total), func(t *testing.T) {
			g := newGrowth(StartConnections, 32, hold)
			tr := simulate(t, g, model{rate: capped(total)}, time.Minute)
			checkSpacing(t, tr, hold)
			want := int(total)
			var plateau int
			for i, c := range tr.changes {
				if c.Reason == ReasonPlateau {
					plateau = i
					if c.Count != want {
						t.Errorf("plateau at %d, want %d", c.Count, want)
					}
					break
				}
			}
			if plateau == 0 {
				t.Fatalf("no plateau: %+v", tr.changes)
			}
			// From the plateau on the count stays within one of the cap,
			// and is at it most of the time.
			from := int(tr.at[plateau].Sub(t0) / sampleEvery)
			at := 0
			for i, n := range tr.counts[from:] {
				if n < want-1 || n > want+1 {
					t.Fatalf("sample %d: count %d, want %d±1 (changes %+v)", from+i, n, want, tr.changes)
				}
				if n == want {
					at++
				}
			}
			if at < len(tr.counts[from:])*3/4 {
				t.Errorf("at %d only %d of %d samples", want, at, len(tr.counts[from:]))
			}
		})
	}
}

// A server that takes 3 connections and refuses more: the count drops to 3
// at the refusal and never goes above it again, though every exploration
// upwards would raise the throughput.
func TestGrowthRefusedStaysBelow(t *testing.T) {
	for _, accept := range []int{1, 3, 6} {
		t.Run(fmt.Sprint("accept=", accept), func(t *testing.T) {
			g := newGrowth(StartConnections, 32, hold)
			tr := simulate(t, g, model{rate: linear, accept: accept}, 40*time.Second)
			refusedAt := -1
			for i, c := range tr.changes {
				if c.Reason == ReasonRefused {
					refusedAt = i
					break
				}
			}
			if refusedAt < 0 {
				t.Fatalf("no refusal: %+v", tr.changes)
			}
			for _, c := range tr.changes[refusedAt:] {
				if c.Reason != ReasonRefused && c.Count > accept {
					t.Fatalf("after the refusal the count went to %d, above %d: %+v", c.Count, accept, tr.changes)
				}
			}
			if last := tr.counts[len(tr.counts)-1]; last < accept-1 {
				t.Errorf("the count ended at %d, want %d or %d", last, accept-1, accept)
			}
		})
	}
}

// An accepted probe raises the cap by one: the count follows, and may grow
// to the new cap only.
func TestGrowthAcceptedProbeRaisesTheCap(t *testing.T) {
	g := newGrowth(4, 32, hold)
	now := t0
	if c, ok := g.refused(now, 3); !ok || c != (change{Count: 3, Was: 4, Reason: ReasonRefused}) {
		t.Fatalf("refused: %+v %v", c, ok)
	}
	if c, ok := g.accepted(now); !ok || c != (change{Count: 4, Was: 3, Reason: ReasonAccepted}) {
		t.Fatalf("accepted: %+v %v", c, ok)
	}
	for i := range 40 {
		now = now.Add(sampleEvery)
		if c, ok := g.sample(now, linear(g.count), true); ok && c.Count > 4 {
			t.Fatalf("sample %d: grew to %d past the raised cap 4", i, c.Count)
		}
	}
}

// Noisy samples around a saturated server: the count never changes faster
// than the hold time, stays near the saturation point, and changes only
// at explorations (a handful of times a minute), never flapping.
func TestGrowthNoisyDoesNotOscillate(t *testing.T) {
	for _, noise := range []float64{0.02, 0.05, 0.1} {
		t.Run(fmt.Sprint("noise=", noise), func(t *testing.T) {
			g := newGrowth(StartConnections, 32, hold)
			tr := simulate(t, g, model{rate: capped(8), noise: noise}, 150*time.Second)
			settled := int(10 * time.Second / sampleEvery)
			checkSpacing(t, tr, hold)
			for i, n := range tr.counts[settled:] {
				if n < 5 || n > 11 {
					t.Fatalf("sample %d: count %d strayed from 8 (changes %+v)", settled+i, n, tr.changes)
				}
			}
			// An exploration every exploreAfter steady measurements costs
			// at most a few changes; flapping would cost one every two
			// measurements.
			samples := len(tr.counts)
			if most := 8 * samples / (perMeasure * exploreAfter); len(tr.changes) > most {
				t.Errorf("%d changes in %d samples, want at most %d", len(tr.changes), samples, most)
			}
		})
	}
}

// Incomplete samples (a connection out of work, one just started) decide
// nothing, however far the throughput moves.
func TestGrowthIncompleteSamplesDecideNothing(t *testing.T) {
	g := newGrowth(StartConnections, 32, hold)
	now := t0
	for i := range 30 {
		now = now.Add(sampleEvery)
		if c, ok := g.sample(now, float64(1+i*i), false); ok {
			t.Fatalf("sample %d: changed %+v on an incomplete sample", i, c)
		}
	}
	// The first complete one after them measures, and the ramp grows.
	now = now.Add(sampleEvery)
	if c, ok := g.sample(now, 4, true); !ok || c.Count != 6 {
		t.Fatalf("the first complete sample: %+v %v, want growth to 6", c, ok)
	}
}

// After a change, the next sample is skipped even when it comes after the
// hold time: the new connections are still starting.
func TestGrowthSkipsTheSampleAfterAChange(t *testing.T) {
	g := newGrowth(4, 32, 0)
	if c, ok := g.sample(at(time.Second), 4, true); !ok || c.Count != 6 {
		t.Fatalf("first measurement: %+v %v, want growth to 6", c, ok)
	}
	// The new connections still starting: were it counted, a plateau.
	if c, ok := g.sample(at(2*time.Second), 4, true); ok {
		t.Fatalf("the sample right after a change decided %+v", c)
	}
	if c, ok := g.sample(at(3*time.Second), 6, true); !ok || c.Count != 32 {
		t.Fatalf("second measurement: %+v %v, want growth to the ceiling, 32", c, ok)
	}
}

// A connection given back that the throughput misses is taken back at
// once; one it does not miss stays given back, and the next is tried.
func TestGrowthShrinks(t *testing.T) {
	// Four connections carry all this server gives: from 8, explorations
	// give back connections one at a time down to 4 and keep 4.
	g := newGrowth(8, 8, hold)
	tr := simulate(t, g, model{rate: capped(4)}, time.Minute)
	checkSpacing(t, tr, hold)
	if last := tr.counts[len(tr.counts)-1]; last < 4 || last > 5 {
		t.Errorf("ended at %d connections, want 4 (or 5 while exploring); changes %+v", last, tr.changes)
	}
	shrank := 0
	for _, c := range tr.changes {
		if c.Reason == ReasonShrank {
			shrank++
		}
	}
	if shrank < 4 {
		t.Errorf("gave back %d connections, want 4 or more: %+v", shrank, tr.changes)
	}
}

// Once a plateau was found, more room on the server (its cap lifted) is
// taken one connection at a time, never by doubling again.
func TestGrowthOneAtATimeAfterThePlateau(t *testing.T) {
	g := newGrowth(StartConnections, 32, hold)
	lifted := false
	m := model{rate: func(n int) float64 {
		if lifted {
			return linear(n)
		}
		return capped(8)(n)
	}}
	tr := simulate(t, g, m, 20*time.Second)
	plateau := false
	for _, c := range tr.changes {
		plateau = plateau || c.Reason == ReasonPlateau
	}
	if !plateau {
		t.Fatalf("no plateau: %+v", tr.changes)
	}
	lifted = true
	tr = simulate(t, g, m, 100*time.Second)
	grown := 0
	for _, c := range tr.changes {
		if c.Count > c.Was+1 {
			t.Fatalf("grew from %d to %d at once after the plateau", c.Was, c.Count)
		}
		if c.Count > c.Was {
			grown++
		}
	}
	if last := tr.counts[len(tr.counts)-1]; last <= 9 || grown == 0 {
		t.Errorf("the count ended at %d after the cap was lifted: %+v", last, tr.changes)
	}
}

// In the first ramp, an incomplete sample after a change (connections
// joined during it) stands for the skipped one: the next complete sample
// decides.
func TestGrowthRampCountsAnIncompleteSampleAsTheSkip(t *testing.T) {
	g := newGrowth(4, 32, hold)
	if c, ok := g.sample(at(time.Second), 4, true); !ok || c.Count != 6 {
		t.Fatalf("first measurement: %+v %v, want growth to 6", c, ok)
	}
	if _, ok := g.sample(at(1500*time.Millisecond), 5, false); ok {
		t.Fatal("an incomplete sample decided")
	}
	if c, ok := g.sample(at(2*time.Second), 6, true); !ok || c.Count != 32 {
		t.Fatalf("the next complete sample: %+v %v, want growth to the ceiling, 32", c, ok)
	}
}
