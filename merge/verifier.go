package merge

import (
	"context"
	"errors"
	"io"
	"math/bits"
	"sync"

	"github.com/convoy-dl/convoy/internal/ranges"
)

// Origin says where the bytes of a piece found bad came from.
type Origin int

const (
	// Fresh: bytes of the piece were written since the Verifier started.
	Fresh Origin = iota
	// Earlier: the piece was on disk when the Verifier started, unchecked.
	Earlier
	// Vouched: the piece was on disk when the Verifier started, vouched for
	// by an earlier check; it changed on disk since.
	Vouched
)

// VerifierOptions configures a Verifier.
type VerifierOptions struct {
	// Written is what is on disk when the verifier starts, as segments in
	// file order (a plan's snapshot); nil for nothing. Its complete pieces
	// are checked first.
	Written []ranges.Segment
	// Vouched marks the pieces an earlier check found good, bit i%8 of byte
	// i/8 for piece i (as manifest.PiecesVerified); those Written does not
	// hold whole are ignored. They are checked again like the others, and
	// count as verified for Record until then.
	Vouched []byte
	// Verified marks, as Vouched does, the pieces this process has just
	// found good (a part file adopted after a check of every piece): those
	// Written holds whole count as verified and are not checked again.
	Verified []byte
	// Snapshot, if set, returns what is written now (a plan's snapshot). A
	// piece whose count of written bytes says it is complete is hashed
	// only once Snapshot agrees, and Settle finds with it the complete
	// pieces the counts missed, so that bytes given back to fetch again by
	// someone else than OnBad are counted right.
	Snapshot func() []ranges.Segment
	// OnBad is told of each piece that does not match its digest, from a
	// worker, with where its bytes came from. From then on the piece counts
	// as not written: OnBad is to have its bytes fetched again (see
	// segment.Plan.Reopen). Settle does not return while it runs.
	OnBad func(i int, from Origin)
	// Workers is how many pieces are hashed at once (default 1).
	Workers int
}

// Verifier checks the pieces of a file against their digests while the
// file is written, out of order and by many writers: told of each write, it
// hashes each piece once every byte of it is written, in background
// workers, so that a writer only counts bytes and is never held up by a
// hash. Its memory follows the number of pieces (a few bits each) and the
// pieces partly written, not the file size. It is safe for concurrent use.
type Verifier struct {
	r    io.ReaderAt
	p    Pieces
	size int64
	n    int
	o    VerifierOptions

	mu      sync.Mutex
	counts  map[int]int64 // bytes written of pieces partly written
	pending bitset        // complete pieces waiting for a worker
	waiting int           // pieces in pending
	scan    int           // no piece below it is pending
	hashing map[int]*job  // pieces a worker hashes now
	good    bitset        // pieces that matched their digests
	vouched bitset        // Vouched pieces not yet checked again
	earlier bitset        // other pieces on disk at the start, not yet checked
	prefix  int           // pieces [0, prefix) are good
	bad     int           // pieces found bad so far
	err     error         // a read error, which stopped the workers
	closed  bool
	changed chan struct{} // closed and replaced at each change workers and Settle wait for
	stop    chan struct{}
	wg      sync.WaitGroup
}

// job is the hashing of one piece by a worker; it turns stale when the
// piece is written again meanwhile, and its result is then dropped.
type job struct{ stale bool }

// NewVerifier starts verifying the pieces p of a file of size bytes, read
// from r. Close stops it.
func NewVerifier(r io.ReaderAt, p Pieces, size int64, o VerifierOptions) (*Verifier, error) {
	if err := p.CheckSize(size); err != nil {
		return nil, err
	}
	n := len(p.Sums)
	v := &Verifier{r: r, p: p, size: size, n: n, o: o,
		counts: map[int]int64{}, pending: newBitset(n), hashing: map[int]*job{},
		good: newBitset(n), vouched: newBitset(n), earlier: newBitset(n),
		changed: make(chan struct{}), stop: make(chan struct{})}
	if len(o.Written) > 0 {
		for i := range n {
			s, e := p.Bounds(i, size)
			switch w := ranges.WrittenIn(o.Written, s, e); {
			case w == e-s && i/8 < len(o.Verified) && o.Verified[i/8]&(1<<(i%8)) != 0:
				v.good.set(i)
			case w == e-s:
				v.pending.set(i)
				v.waiting++
				if i/8 < len(o.Vouched) && o.Vouched[i/8]&(1<<(i%8)) != 0 {
					v.vouched.set(i)
				} else {
					v.earlier.set(i)
				}
			case w > 0:
				v.counts[i] = w
			}
		}
	}
	if n > 0 {
		for range max(o.Workers, 1) {
			v.wg.Add(1)
			go v.work()
		}
	}
	return v, nil
}

// Wrote records that bytes [off, off+n) were written (WriteAt returned).
func (v *Verifier) Wrote(off, n int64) {
	if n <= 0 || v.n == 0 {
		return
	}
	end := off + n
	first, last := v.p.Touching(off, end)
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := first; i < last; i++ {
		s, e := v.p.Bounds(i, v.size)
		add := min(e, end) - max(s, off)
		if v.settled(i) {
			// Written again after it was complete: someone gave its bytes
			// back to fetch them again. Count them anew.
			v.unsettle(i, s, e)
			if v.o.Snapshot == nil {
				v.counts[i] += add
			}
		} else {
			v.counts[i] += add
		}
		if v.counts[i] >= e-s {
			v.complete(i, s, e)
		}
	}
}

// settled reports whether piece i is past counting: complete, hashed or
// being hashed. Caller holds mu.
func (v *Verifier) settled(i int) bool {
	_, h := v.hashing[i]
	return h || v.pending.has(i) || v.good.has(i) || v.vouched.has(i) || v.earlier.has(i)
}

// unsettle puts piece i, bytes [s, e), back to counting, with the bytes
// Snapshot says are written (none without it). Caller holds mu.
func (v *Verifier) unsettle(i int, s, e int64) {
	if v.pending.has(i) {
		v.pending.clear(i)
		v.waiting--
	}
	if j := v.hashing[i]; j != nil {
		j.stale = true
	}
	if v.good.has(i) {
		v.good.clear(i)
		v.prefix = min(v.prefix, i)
	}
	v.vouched.clear(i)
	v.earlier.clear(i)
	v.counts[i] = 0
	if v.o.Snapshot != nil {
		v.counts[i] = ranges.WrittenIn(v.o.Snapshot(), s, e)
	}
}

// complete queues piece i, bytes [s, e), for hashing once Snapshot, if
// set, agrees that it is written. Caller holds mu.
func (v *Verifier) complete(i int, s, e int64) {
	if v.o.Snapshot != nil {
		if w := ranges.WrittenIn(v.o.Snapshot(), s, e); w < e-s {
			v.counts[i] = w
			return
		}
	}
	delete(v.counts, i)
	v.pending.set(i)
	v.waiting++
	v.scan = min(v.scan, i)
	v.signal()
}

// signal wakes the workers and Settle. Caller holds mu.
func (v *Verifier) signal() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// work hashes pending pieces, lowest first, until Close or a read error.
func (v *Verifier) work() {
	defer v.wg.Done()
	buf := make([]byte, max(1, min(v.p.Length, pieceBuffer)))
	v.mu.Lock()
	defer v.mu.Unlock()
	for {
		for v.err == nil && !v.closed && v.waiting == 0 {
			ch := v.changed
			v.mu.Unlock()
			select {
			case <-ch:
			case <-v.stop:
			}
			v.mu.Lock()
		}
		if v.err != nil || v.closed {
			return
		}
		i := v.pending.next(v.scan)
		if i < 0 {
			i = v.pending.next(0)
		}
		v.pending.clear(i)
		v.waiting--
		v.scan = i + 1
		from := Fresh
		switch {
		case v.vouched.has(i):
			from = Vouched
		case v.earlier.has(i):
			from = Earlier
		}
		j := &job{}
		v.hashing[i] = j
		v.mu.Unlock()
		ok, err := v.p.Check(v.r, i, v.size, buf)
		v.mu.Lock()
		switch {
		case err != nil:
			if v.err == nil {
				v.err = err
			}
		case j.stale:
			// Written again meanwhile: Wrote counts it anew.
		case ok:
			v.vouched.clear(i)
			v.earlier.clear(i)
			v.good.set(i)
			for v.prefix < v.n && v.good.has(v.prefix) {
				v.prefix++
			}
		default:
			v.vouched.clear(i)
			v.earlier.clear(i)
			v.bad++
			if v.o.OnBad != nil {
				// Held in hashing meanwhile, so that Settle waits for the
				// bytes to be given back.
				v.mu.Unlock()
				v.o.OnBad(i, from)
				v.mu.Lock()
			}
		}
		if v.hashing[i] == j {
			delete(v.hashing, i)
		}
		v.signal()
	}
}

// Settle waits until every piece written is checked: it queues the complete
// pieces the counts missed (see VerifierOptions.Snapshot) and returns once
// no piece waits or is being hashed, and OnBad has returned for each bad
// one. Call it once the writers have stopped. It returns the read error
// that stopped the verifier, if one did, or ctx's.
func (v *Verifier) Settle(ctx context.Context) error {
	var segs []ranges.Segment
	if v.o.Snapshot != nil {
		segs = v.o.Snapshot()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if segs != nil {
		for i := range v.n {
			if v.settled(i) {
				continue
			}
			if s, e := v.p.Bounds(i, v.size); ranges.WrittenIn(segs, s, e) == e-s {
				v.complete(i, s, e)
			}
		}
	}
	for v.err == nil && (v.waiting > 0 || len(v.hashing) > 0) {
		if v.closed {
			return errors.New("the piece verifier was closed")
		}
		ch := v.changed
		v.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		v.mu.Lock()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return v.err
}

// Err returns the read error that stopped the verifier, if one has.
func (v *Verifier) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

// Prefix returns the length of the run of verified pieces from the start
// of the file, in bytes: they matched their digests since the verifier
// started (a Vouched piece counts once checked again).
func (v *Verifier) Prefix() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.prefix == v.n {
		return v.size
	}
	return int64(v.prefix) * v.p.Length
}

// Unverified returns how many pieces have not matched their digests since
// the verifier started, and the first few of them.
func (v *Verifier) Unverified() (n int, first []int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := v.good.nextClear(v.prefix, v.n); i >= 0; i = v.good.nextClear(i+1, v.n) {
		if n++; len(first) < 8 {
			first = append(first, i)
		}
	}
	return n, first
}

// Bad returns how many pieces did not match their digests so far.
func (v *Verifier) Bad() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.bad
}

// Record returns the pieces to vouch for beside segs, a snapshot of what
// is written, as a bitmap like VerifierOptions.Vouched (nil for none):
// those that matched their digests and those still vouched for, that segs
// hold whole. Take segs before calling it and make the file durable after:
// then every piece it returns was checked from bytes made durable.
func (v *Verifier) Record(segs []ranges.Segment) []byte {
	runs := ranges.Runs(segs)
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []byte
	r := 0
	for w := range v.good {
		for word := v.good[w] | v.vouched[w]; word != 0; word &= word - 1 {
			i := w*64 + bits.TrailingZeros64(word)
			s, e := v.p.Bounds(i, v.size)
			for r < len(runs) && runs[r][1] <= s {
				r++
			}
			if r == len(runs) || runs[r][0] > s || runs[r][1] < e {
				continue
			}
			if out == nil {
				out = make([]byte, (v.n+7)/8)
			}
			out[i/8] |= 1 << (i % 8)
		}
	}
	return out
}

// Close stops the workers and waits for them; it returns the read error
// that stopped them, if one did. It may be called more than once.
func (v *Verifier) Close() error {
	v.mu.Lock()
	if !v.closed {
		v.closed = true
		close(v.stop)
	}
	v.mu.Unlock()
	v.wg.Wait()
	return v.Err()
}

// bitset is a set of piece indices.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) has(i int) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) set(i int)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) clear(i int)    { b[i/64] &^= 1 << (i % 64) }

// next returns the first index in b at or after i, or -1.
func (b bitset) next(i int) int {
	for w := i / 64; w < len(b); w++ {
		word := b[w]
		if w == i/64 {
			word &= ^uint64(0) << (i % 64)
		}
		if word != 0 {
			return w*64 + bits.TrailingZeros64(word)
		}
	}
	return -1
}

// nextClear returns the first index below n not in b at or after i, or -1.
func (b bitset) nextClear(i, n int) int {
	for ; i < n; i++ {
		if w := b[i/64]; w == ^uint64(0) && i%64 == 0 {
			i += 63
			continue
		}
		if !b.has(i) {
			return i
		}
	}
	return -1
}
