package segment

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/convoy-dl/convoy/internal/testserver"
)

// Two servers share a ceiling of 8: at the ceiling, the one that brings
// far less per connection gives connections, one at a time, to the other,
// and the two counts together never pass the ceiling.
func TestSharedCeilingMovesConnectionsToTheFasterServer(t *testing.T) {
	t.Parallel() // mostly waiting for the throttled bodies
	const size, most = 24 * mib, 8
	fast := testserver.New(t, testserver.Size(size), testserver.Rate(mib))
	slow := testserver.New(t, testserver.Size(size), testserver.Rate(64*kib))
	var (
		mu      sync.Mutex
		counts  = [2]int{4, 4}
		over    []string
		yielded int
	)
	source := func(i int, srv *testserver.Server) Source {
		f := newFetcher(t, srv, most)
		f.growEvery = 100 * time.Millisecond
		f.probeEvery = time.Hour
		f.OnConnections = func(count, was int, reason string) {
			mu.Lock()
			defer mu.Unlock()
			counts[i] = count
			if counts[0]+counts[1] > most {
				over = append(over, reason)
			}
			if reason == ReasonYielded {
				yielded++
			}
		}
		return Source{Fetcher: f, Connections: 4, Max: most, Ceiling: most}
	}
	plan, err := NewPlan(size, nil, 8, 64*kib)
	if err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(t, size)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := RunSources(ctx, plan, w, []Source{source(0, fast), source(1, slow)}, nil); err != nil {
		t.Fatal(err)
	}
	w.check(t, fast.Content())
	mu.Lock()
	defer mu.Unlock()
	if len(over) > 0 {
		t.Errorf("the counts passed the ceiling %d, after changes %v", most, over)
	}
	if yielded == 0 || counts[1] >= 4 || counts[0] <= 4 {
		t.Errorf("counts fast %d, slow %d after %d yielded: want connections moved to the fast server", counts[0], counts[1], yielded)
	}
}

// A dropped source's pool leaves the shared budget for good: a later
// change of its count takes no room from the others.
func TestUnsharedPoolTakesNoRoom(t *testing.T) {
	c := newCeiling(8)
	a := newPool(8, 4, t0, time.Hour, time.Hour, nil)
	b := newPool(8, 4, t0, time.Hour, time.Hour, nil)
	a.share(c)
	b.share(c)
	if n := c.room(); n != 0 {
		t.Fatalf("room %d with 4 + 4 of 8", n)
	}
	b.unshare()
	b.mu.Lock()
	b.tell(b.g.set(3, ReasonRefused, t0), true) // as a parked connection would
	b.mu.Unlock()
	if n := c.room(); n != 4 {
		t.Fatalf("room %d after the drop, want 4", n)
	}
}
