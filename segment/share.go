package segment

import (
	"sync"
	"time"
)

// ReasonYielded is the reason of a change of a server's count that gave a
// connection to a server bringing at least fasterBy times as much per
// connection, at a shared ceiling (see Source.Ceiling).
const ReasonYielded = "yielded"

// ceiling is the connection budget the adaptive sources of a run share:
// their counts together never exceed most, except by a probe's place
// that a server accepted while another grew. Safe for concurrent use; a
// pool's mu may be held when calling it, never the other way round.
type ceiling struct {
	mu     sync.Mutex
	most   int
	counts map[*pool]int
	moved  time.Time // when rebalance last moved a connection; its caller's alone
}

func newCeiling(most int) *ceiling {
	return &ceiling{most: most, counts: map[*pool]int{}}
}

// raise makes the budget most, if that is more.
func (c *ceiling) raise(most int) {
	c.mu.Lock()
	c.most = max(c.most, most)
	c.mu.Unlock()
}

// room is how many more connections the sources may have in all.
func (c *ceiling) room() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	used := 0
	for _, n := range c.counts {
		used += n
	}
	return max(c.most-used, 0)
}

// set records that p's count is n.
func (c *ceiling) set(p *pool, n int) {
	c.mu.Lock()
	c.counts[p] = n
	c.mu.Unlock()
}

// remove forgets p: its source was dropped.
func (c *ceiling) remove(p *pool) {
	c.mu.Lock()
	delete(c.counts, p)
	c.mu.Unlock()
}

// pools returns the pools sharing c.
func (c *ceiling) pools() []*pool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*pool, 0, len(c.counts))
	for p := range c.counts {
		out = append(out, p)
	}
	return out
}

// rebalance gives one connection, once the shared ceiling is reached, from
// the source that brings the least per connection to the one that brings
// the most, when that one brings fasterBy times as much or more: the
// ceiling's connections end where they bring the most. It moves at most
// one connection every hold, and it is called by the run's sampler only.
func (c *ceiling) rebalance(now time.Time, hold time.Duration) {
	if now.Sub(c.moved) < hold || c.room() > 0 {
		return
	}
	var slow, fast *pool
	var slowRate, fastRate float64
	for _, p := range c.pools() {
		count, rate := p.perConnection()
		if rate <= 0 {
			continue
		}
		if count > 1 && (slow == nil || rate < slowRate) {
			slow, slowRate = p, rate
		}
		if fast == nil || rate > fastRate {
			fast, fastRate = p, rate
		}
	}
	if slow == nil || fast == slow || fastRate < fasterBy*slowRate || !fast.canGrow() {
		return
	}
	slow.force(-1, ReasonYielded, now)
	fast.force(+1, ReasonGrew, now)
	c.moved = now
}
