package main

import (
	"os"
	"runtime/debug"

	"github.com/convoy-dl/convoy"
)

// Memory a download holds on purpose: a base for the runtime, the HTTP
// client and the bookkeeping, and for each connection its copy buffer and
// its socket's read buffer.
const (
	memoryBase    = 8 << 20
	memoryPerConn = 320 << 10
)

// limitMemory sets the Go runtime's soft memory limit to what the download
// cfg holds on purpose, so that garbage is collected before it adds up: the
// heap would otherwise grow to twice what is live before a collection, and
// a long download's peak would exceed a short one's. A GOMEMLIMIT in the
// environment is the user's and is kept.
func limitMemory(cfg convoy.Config) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return
	}
	conns := max(cfg.Connections, 8)
	limit := int64(memoryBase) + int64(conns)*memoryPerConn
	if cfg.Writer != nil {
		limit += cfg.Buffer // held out of order on purpose
	}
	debug.SetMemoryLimit(limit)
}
