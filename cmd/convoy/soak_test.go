//go:build soak

package main

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestSoak kills a download with SIGKILL 50 times, each after a checkpoint
// of its run, while the server resets connections at random points, then
// lets it finish and compares the file byte for byte; after every kill,
// every byte the manifest claims must be in the part file. Run with "make
// soak"; the seed is new each time and printed, and SOAK_SEED=N replays
// one ("make soak SOAK_SEED=N").
func TestSoak(t *testing.T) {
	seed := soakSeed(t)
	killRepeatedly(t, 50, seed, 128<<20)
}

// TestPowerCutSoak is the power-cut test (powerCuts) with 1000 cuts.
func TestPowerCutSoak(t *testing.T) {
	seed := soakSeed(t)
	powerCuts(t, 1000, seed)
}

// soakSeed is SOAK_SEED, or a new seed each run; it is printed.
func soakSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SOAK_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SOAK_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("replay with: make soak SOAK_SEED=%d", seed)
	return seed
}
