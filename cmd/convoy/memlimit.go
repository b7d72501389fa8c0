package main

import (
	"os"
	"runtime/debug"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/segment"
)

// Memory a download holds on purpose: a base for the runtime, the HTTP
// client and the bookkeeping, for each connection its socket's read and
// write buffers and the stacks of the goroutines that serve it, and the
// connections' copy buffers, which share a budget (segment.BuffersHeld).
const (
	memoryBase    = 8 << 20
	memoryPerConn = 64 << 10
)

// memoryFor is what conns connections hold on purpose besides the base.
func memoryFor(conns int) int64 {
	return segment.BuffersHeld(conns) + int64(conns)*memoryPerConn
}

// limitMemory sets the Go runtime's soft memory limit to what the download
// cfg holds on purpose, so that garbage is collected before it adds up: the
// heap would otherwise grow to twice what is live before a collection, and
// a long download's peak would exceed a short one's. When convoy chooses
// the connection count, the limit follows the count (through cfg.OnEvent)
// from the few connections it starts with. A GOMEMLIMIT in the environment
// is the user's and is kept.
func limitMemory(cfg *convoy.Config) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return
	}
	var held int64 = memoryBase
	if cfg.Writer != nil {
		held += cfg.Buffer // held out of order on purpose
	}
	set := func(forConns int64) { debug.SetMemoryLimit(held + max(forConns, memoryFor(8))) }
	if cfg.Connections > 0 {
		set(memoryFor(cfg.Connections))
		return
	}
	set(memoryFor(connectionsAtMost(*cfg) / 2)) // until the first count is known
	perHost := map[string]int{}
	next := cfg.OnEvent
	cfg.OnEvent = func(e convoy.Event) { // called one at a time
		if e.Type == "connections" {
			perHost[e.Host] = e.Connections
			var total int64
			for _, n := range perHost {
				total += memoryFor(n) // each server's connections share a buffer budget
			}
			set(total)
		}
		if next != nil {
			next(e)
		}
	}
}

// connectionsAtMost is the most connections cfg opens: -n, or the ceiling
// of the count convoy chooses.
func connectionsAtMost(cfg convoy.Config) int {
	switch {
	case cfg.Connections > 0:
		return cfg.Connections
	case cfg.MaxConnections > 0:
		return cfg.MaxConnections
	}
	return convoy.DefaultMaxConnections
}
