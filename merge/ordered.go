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
	emitting bool // a WriteAt is passing bytes on, without the lock
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
// failed. The underlying writer is called without the lock held, so Abort
// never waits behind a slow reader.
func (o *OrderedWriter) WriteAt(p []byte, off int64) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		switch {
		case o.err != nil:
			return 0, o.err
		case off < o.cursor:
			return 0, fmt.Errorf("%w (offset %d, %d already sent)", ErrRewind, off, o.cursor)
		case off == o.cursor && !o.emitting:
			if err := o.emit(p); err != nil {
				return 0, err
			}
			return len(p), nil
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

// emit passes p on at the cursor, then every buffered piece that follows
// it. Caller holds mu; emit releases it around each write.
func (o *OrderedWriter) emit(p []byte) error {
	o.emitting = true
	defer func() { o.emitting = false }()
	for {
		o.mu.Unlock()
		_, err := o.w.Write(p)
		if err == nil && o.h != nil {
			o.h.Write(p)
		}
		o.mu.Lock()
		if err != nil && o.err == nil {
			o.err = fmt.Errorf("writing the stream: %w", err)
		}
		if err == nil {
			o.cursor += int64(len(p))
		}
		o.moved.Broadcast()
		if o.err != nil {
			return o.err
		}
		next, ok := o.pending[o.cursor]
		if !ok {
			return nil
		}
		delete(o.pending, o.cursor)
		o.buffered -= int64(len(next))
		p = next
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
