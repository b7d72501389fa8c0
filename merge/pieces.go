package merge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Pieces are the expected digests of a file cut into consecutive pieces of
// Length bytes; the last piece may be shorter.
type Pieces struct {
	Algo   string // a canonical name: "md5", "sha1", "sha256" or "sha512"
	Length int64
	Sums   [][]byte
}

// CheckSize reports whether the pieces describe a file of size bytes: a
// positive length, and exactly one digest for each piece.
func (p Pieces) CheckSize(size int64) error {
	if p.Length <= 0 {
		return fmt.Errorf("piece length %d is not positive", p.Length)
	}
	if _, err := NewHash(p.Algo); err != nil {
		return err
	}
	want := (size + p.Length - 1) / p.Length
	if int64(len(p.Sums)) != want {
		return fmt.Errorf("%d piece digests for %d bytes in pieces of %d: want %d", len(p.Sums), size, p.Length, want)
	}
	return nil
}

// Bounds returns the byte range [start, end) of piece i in a file of size
// bytes.
func (p Pieces) Bounds(i int, size int64) (start, end int64) {
	start = int64(i) * p.Length
	return start, min(start+p.Length, size)
}

// Within returns the pieces that lie wholly inside [start, end), as the
// half-open index range [first, last).
func (p Pieces) Within(start, end, size int64) (first, last int) {
	first = int((start + p.Length - 1) / p.Length)
	if end >= size {
		last = len(p.Sums)
	} else {
		last = int(end / p.Length)
	}
	return first, max(first, last)
}

// Touching returns the pieces that share at least one byte with
// [start, end), as the half-open index range [first, last).
func (p Pieces) Touching(start, end int64) (first, last int) {
	if end <= start {
		return 0, 0
	}
	first = int(start / p.Length)
	last = min(int((end+p.Length-1)/p.Length), len(p.Sums))
	return first, max(first, last)
}

// Check reads piece i of a file of size bytes from r and reports whether its
// digest is the expected one. It reads through buf (allocated when nil), so
// memory does not grow with the piece length; a read error is returned as
// such, never as a bad piece.
func (p Pieces) Check(r io.ReaderAt, i int, size int64, buf []byte) (bool, error) {
	h, err := NewHash(p.Algo)
	if err != nil {
		return false, err
	}
	start, end := p.Bounds(i, size)
	if len(buf) == 0 {
		buf = make([]byte, min(end-start, pieceBuffer))
	}
	n, err := io.CopyBuffer(h, io.NewSectionReader(r, start, end-start), buf)
	if err == nil && n != end-start {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return false, fmt.Errorf("reading piece %d: %w", i, err)
	}
	return bytes.Equal(h.Sum(nil), p.Sums[i]), nil
}

// pieceBuffer is the read size of a piece check.
const pieceBuffer = 1 << 20

// CheckAll checks every piece of a file of size bytes read from r, with up
// to workers pieces hashed at once, and returns the indices of the pieces
// that do not match, in order. progress, when set, is called (from any of
// the workers) with the bytes of each piece checked. It stops early when ctx
// ends, with ctx's error.
func (p Pieces) CheckAll(ctx context.Context, r io.ReaderAt, size int64, workers int, progress func(n int64)) ([]int, error) {
	if err := p.CheckSize(size); err != nil {
		return nil, err
	}
	workers = max(1, min(workers, len(p.Sums)))
	bad := make([]bool, len(p.Sums))
	next := make(chan int)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, max(1, min(p.Length, pieceBuffer)))
			for i := range next {
				ok, err := p.Check(r, i, size, buf)
				if err != nil {
					errs[w] = err
					continue
				}
				bad[i] = !ok
				if progress != nil {
					s, e := p.Bounds(i, size)
					progress(e - s)
				}
			}
		}()
	}
	var stopped error
	for i := range p.Sums {
		if err := ctx.Err(); err != nil {
			stopped = err
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(append(errs, stopped)...); err != nil {
		return nil, err
	}
	var out []int
	for i, b := range bad {
		if b {
			out = append(out, i)
		}
	}
	return out, nil
}
