package main

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/convoy-dl/convoy/internal/testserver"
)

func TestParseBytes(t *testing.T) {
	good := map[string]int64{"0": 0, "123": 123, "4K": 4 << 10, "3m": 3 << 20, "2G": 2 << 30}
	for in, want := range good {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "K", "-1", "1T", "1.5M", "99999999999G"} {
		if got, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) = %d, want an error", in, got)
		}
	}
}

func TestContentSum(t *testing.T) {
	const size = 3<<20 + 5 // spans several chunks
	p := make([]byte, size)
	testserver.Pattern(4, 0, p)
	want := sha256.Sum256(p)
	if got := contentSum(4, size); got != hex.EncodeToString(want[:]) {
		t.Fatalf("contentSum = %s, want %x", got, want)
	}
}
