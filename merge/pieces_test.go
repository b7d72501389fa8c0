package merge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
)

// piecesOf returns the sha256 pieces of data in pieces of length bytes.
func piecesOf(data []byte, length int64) Pieces {
	p := Pieces{Algo: "sha256", Length: length}
	for off := int64(0); off < int64(len(data)); off += length {
		sum := sha256.Sum256(data[off:min(off+length, int64(len(data)))])
		p.Sums = append(p.Sums, sum[:])
	}
	return p
}

func TestPiecesCheckAllFindsFlippedBytes(t *testing.T) {
	data := make([]byte, 10<<20+123) // the last piece is short
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	p := piecesOf(data, 1<<20)
	if err := p.CheckSize(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	damaged := slices.Clone(data)
	for _, off := range []int{5, 3<<20 + 17, len(data) - 1} {
		damaged[off] ^= 0x40
	}
	var checked atomic.Int64
	bad, err := p.CheckAll(context.Background(), bytes.NewReader(damaged), int64(len(data)), 4, func(n int64) { checked.Add(n) })
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 3, 10}; !slices.Equal(bad, want) {
		t.Fatalf("bad pieces %v, want %v", bad, want)
	}
	if checked.Load() != int64(len(data)) {
		t.Fatalf("progress counted %d bytes, want %d", checked.Load(), len(data))
	}
	if bad, err := p.CheckAll(context.Background(), bytes.NewReader(data), int64(len(data)), 2, nil); err != nil || len(bad) != 0 {
		t.Fatalf("intact file: bad %v, err %v", bad, err)
	}
}

// A file shorter than the pieces say is a read error, not a bad piece.
func TestPiecesCheckShortFile(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 3000)
	p := piecesOf(data, 1000)
	_, err := p.CheckAll(context.Background(), bytes.NewReader(data[:2500]), 3000, 2, nil)
	if err == nil {
		t.Fatal("a short file passed")
	}
}

func TestPiecesCheckAllStops(t *testing.T) {
	data := make([]byte, 1<<20)
	p := piecesOf(data, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.CheckAll(ctx, bytes.NewReader(data), int64(len(data)), 2, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestPiecesCheckSize(t *testing.T) {
	p := Pieces{Algo: "sha256", Length: 100, Sums: make([][]byte, 3)}
	for _, tt := range []struct {
		size int64
		ok   bool
	}{{300, true}, {201, true}, {200, false}, {301, false}, {0, false}} {
		if err := p.CheckSize(tt.size); (err == nil) != tt.ok {
			t.Errorf("CheckSize(%d) = %v, want ok %v", tt.size, err, tt.ok)
		}
	}
	if err := (Pieces{Algo: "sha256", Length: 0}).CheckSize(0); err == nil {
		t.Error("a zero piece length passed")
	}
	if err := (Pieces{Algo: "crc32", Length: 1, Sums: make([][]byte, 1)}).CheckSize(1); err == nil {
		t.Error("an unknown algorithm passed")
	}
}

func TestPiecesRanges(t *testing.T) {
	p := Pieces{Length: 100, Sums: make([][]byte, 5)} // a file of 450 bytes
	const size = 450
	if s, e := p.Bounds(4, size); s != 400 || e != 450 {
		t.Errorf("Bounds(4) = %d, %d", s, e)
	}
	for _, tt := range []struct {
		start, end       int64
		within, touching [2]int
	}{
		{0, 450, [2]int{0, 5}, [2]int{0, 5}},
		{50, 250, [2]int{1, 2}, [2]int{0, 3}},
		{100, 200, [2]int{1, 2}, [2]int{1, 2}},
		{120, 180, [2]int{2, 2}, [2]int{1, 2}},
		{400, 450, [2]int{4, 5}, [2]int{4, 5}},
	} {
		if f, l := p.Within(tt.start, tt.end, size); [2]int{f, l} != tt.within {
			t.Errorf("Within(%d, %d) = %d, %d, want %v", tt.start, tt.end, f, l, tt.within)
		}
		if f, l := p.Touching(tt.start, tt.end); [2]int{f, l} != tt.touching {
			t.Errorf("Touching(%d, %d) = %d, %d, want %v", tt.start, tt.end, f, l, tt.touching)
		}
	}
}
