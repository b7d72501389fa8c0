package merge

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
)

// ErrRewind reports a write before bytes already passed on: a stream that
// restarted from zero cannot take back what it sent.
var ErrRewind = errors.New("cannot rewrite bytes already sent")

// OrderedWriter turns parallel WriteAt calls into one ordered stream for an
// io.Writer (a pipe, stdout). Bytes at the cursor go straight through; bytes
// ahead of it wait in memory, at most window bytes of them; a write further
// ahead blocks until the cursor catches up. Memory stays bounded whatever the
// file size. It is safe for concurrent use.
type OrderedWriter struct {
	mu       sync.Mutex
	moved    *sync.Cond // the cursor advanced or the writer was aborted
	w        io.Writer
	h        hash.Hash // fed every byte in order, if set
	cursor   int64
	window   int64
	pending  map[int64][]byte
	buffered int64
	peak     int64
	err      error
}

// NewOrderedWriter returns a writer into w that buffers at most window bytes
// out of order; h, if not nil, is fed the stream as it leaves.
func NewOrderedWriter(w io.Writer, window int64, h hash.Hash) *OrderedWriter {
	o := &OrderedWriter{w: w, h: h, window: max(window, 1), pending: map[int64][]byte{}}
	o.moved = sync.NewCond(&o.mu)
	return o
}

// WriteAt places p at off in the stream. It blocks while p lies beyond the
// window, and fails once the writer is aborted or the underlying writer has
// failed.
func (o *OrderedWriter) WriteAt(p []byte, off int64) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		switch {
		case o.err != nil:
			return 0, o.err
		case off < o.cursor:
			return 0, fmt.Errorf("%w (offset %d, %d already sent)", ErrRewind, off, o.cursor)
		case off == o.cursor:
			if err := o.emit(p); err != nil {
				return 0, err
			}
			o.drain()
			o.moved.Broadcast()
			return len(p), o.err
		case off+int64(len(p)) <= o.cursor+o.window:
			if _, dup := o.pending[off]; dup {
				return 0, fmt.Errorf("two writes at offset %d", off)
			}
			o.pending[off] = append([]byte(nil), p...)
			o.buffered += int64(len(p))
			o.peak = max(o.peak, o.buffered)
			return len(p), nil
		}
		o.moved.Wait()
	}
}

// emit passes p on at the cursor. Caller holds mu.
func (o *OrderedWriter) emit(p []byte) error {
	if _, err := o.w.Write(p); err != nil {
		o.err = fmt.Errorf("writing the stream: %w", err)
		return o.err
	}
	if o.h != nil {
		o.h.Write(p)
	}
	o.cursor += int64(len(p))
	return nil
}

// drain passes on the buffered bytes that now sit at the cursor. Caller
// holds mu.
func (o *OrderedWriter) drain() {
	for o.err == nil {
		p, ok := o.pending[o.cursor]
		if !ok {
			return
		}
		delete(o.pending, o.cursor)
		o.buffered -= int64(len(p))
		if o.emit(p) != nil {
			return
		}
	}
}

// Abort makes every blocked and later WriteAt fail with err.
func (o *OrderedWriter) Abort(err error) {
	o.mu.Lock()
	if o.err == nil {
		o.err = err
	}
	o.moved.Broadcast()
	o.mu.Unlock()
}

// Written is the number of bytes passed on in order.
func (o *OrderedWriter) Written() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cursor
}

// PeakBuffered is the most bytes ever held out of order.
func (o *OrderedWriter) PeakBuffered() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.peak
}
