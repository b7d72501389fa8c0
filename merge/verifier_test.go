package merge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/convoy-dl/convoy/internal/ranges"
)

// disk is a real file being downloaded, and the record of which of its
// bytes are written that a plan would keep.
type disk struct {
	t    *testing.T
	f    *os.File
	size int64

	mu      sync.Mutex
	written []bool
}

func newDisk(t *testing.T, size int64) *disk {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "f.part"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return &disk{t: t, f: f, size: size, written: make([]bool, size)}
}

// write puts p at off and marks it written, as a fetch does before it
// tells the verifier.
func (d *disk) write(p []byte, off int64) {
	if _, err := d.f.WriteAt(p, off); err != nil {
		d.t.Error(err)
	}
	d.mu.Lock()
	for i := range p {
		d.written[off+int64(i)] = true
	}
	d.mu.Unlock()
}

// unwrite marks [start, end) as not written, as Plan.Reopen does.
func (d *disk) unwrite(start, end int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := start; i < end; i++ {
		d.written[i] = false
	}
}

// snapshot is the written state as a plan's snapshot gives it: segments
// in file order, each a written run and the unwritten run after it.
func (d *disk) snapshot() []ranges.Segment {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []ranges.Segment
	for i := int64(0); i < d.size; {
		s := ranges.Segment{Start: i}
		for i < d.size && d.written[i] {
			i++
		}
		s.Written = i - s.Start
		for i < d.size && !d.written[i] {
			i++
		}
		s.End = i
		out = append(out, s)
	}
	if out == nil {
		out = []ranges.Segment{{}}
	}
	return out
}

func (d *disk) content() []byte {
	b, err := io.ReadAll(io.NewSectionReader(d.f, 0, d.size))
	if err != nil {
		d.t.Fatal(err)
	}
	return b
}

func randomData(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// badLog collects what OnBad is told.
type badLog struct {
	mu   sync.Mutex
	bad  []int
	from []Origin
}

func (l *badLog) add(i int, from Origin) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bad = append(l.bad, i)
	l.from = append(l.from, from)
}

func (l *badLog) get() ([]int, []Origin) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.bad), slices.Clone(l.from)
}

// Four writers write the file in chunks that straddle pieces, in random
// order; two pieces arrive damaged. Each is reported once, as fresh, and
// the bytes written again in their place (as a refetch would) are checked
// in turn. Every piece ends verified.
func TestVerifierChecksPiecesAsWritten(t *testing.T) {
	const size, piece, chunk = 1<<20 + 123, 64 << 10, 40 << 10
	data := randomData(size, 1)
	p := piecesOf(data, piece)
	d := newDisk(t, size)
	damaged := map[int]bool{3: true, 11: true}
	var log badLog
	var v *Verifier
	var refetch sync.WaitGroup
	v, err := NewVerifier(d.f, p, size, VerifierOptions{Snapshot: d.snapshot, Workers: 2,
		OnBad: func(i int, from Origin) {
			log.add(i, from)
			s, e := p.Bounds(i, size)
			d.unwrite(s, e)
			refetch.Go(func() {
				d.write(data[s:e], s)
				v.Wrote(s, e-s)
			})
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var offs []int64
	for off := int64(0); off < size; off += chunk {
		offs = append(offs, off)
	}
	rand.New(rand.NewPCG(2, 3)).Shuffle(len(offs), func(a, b int) { offs[a], offs[b] = offs[b], offs[a] })
	next := make(chan int64)
	var writers sync.WaitGroup
	for range 4 {
		writers.Go(func() {
			for off := range next {
				buf := slices.Clone(data[off:min(off+chunk, size)])
				for i := range buf {
					if damaged[int((off+int64(i))/piece)] {
						buf[i] ^= 0x55
					}
				}
				d.write(buf, off)
				v.Wrote(off, int64(len(buf)))
			}
		})
	}
	for _, off := range offs {
		next <- off
	}
	close(next)
	writers.Wait()
	if err := v.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	refetch.Wait()
	if err := v.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	bad, from := log.get()
	slices.Sort(bad)
	if !slices.Equal(bad, []int{3, 11}) || slices.ContainsFunc(from, func(o Origin) bool { return o != Fresh }) {
		t.Fatalf("OnBad told %v %v, want pieces 3 and 11, fresh", bad, from)
	}
	if n, first := v.Unverified(); n != 0 {
		t.Fatalf("%d pieces unverified, first %v", n, first)
	}
	if v.Prefix() != size || v.Bad() != 2 {
		t.Fatalf("prefix %d, bad %d", v.Prefix(), v.Bad())
	}
	if !bytes.Equal(d.content(), data) {
		t.Fatal("the file is not the data")
	}
	all := v.Record(d.snapshot())
	for i := range len(p.Sums) {
		if all[i/8]&(1<<(i%8)) == 0 {
			t.Fatalf("Record misses piece %d: %x", i, all)
		}
	}
}

// gatedReader holds every read until its gate opens, as a slow disk would.
type gatedReader struct {
	r    io.ReaderAt
	gate chan struct{}
}

func (g *gatedReader) ReadAt(p []byte, off int64) (int, error) {
	<-g.gate
	return g.r.ReadAt(p, off)
}

// A resume: the pieces on disk are checked before they are trusted. A
// vouched piece damaged on disk is reported as Vouched, an unvouched one
// as Earlier; until they are checked, Record vouches for the vouched ones
// the written bytes hold whole, and nothing else. A partly written piece
// is completed by the writes that follow. While every worker is held up,
// writes are still taken.
func TestVerifierResume(t *testing.T) {
	const size, piece = 10 * 1000, 1000
	data := randomData(size, 7)
	p := piecesOf(data, piece)
	d := newDisk(t, size)
	d.write(data[:5500], 0) // pieces 0-4 whole, 5 half
	d.write([]byte{data[1500] ^ 1}, 1500)
	d.write([]byte{data[3500] ^ 1}, 3500)
	vouched := []byte{0b1000_0011, 0} // 0, 1 and 7: 7 is not written
	gate := make(chan struct{})
	var log badLog
	var v *Verifier
	v, err := NewVerifier(&gatedReader{r: d.f, gate: gate}, p, size, VerifierOptions{
		Written: d.snapshot(), Vouched: vouched, Snapshot: d.snapshot,
		OnBad: func(i int, from Origin) {
			log.add(i, from)
			s, e := p.Bounds(i, size)
			d.unwrite(s, e)
			d.write(data[s:e], s) // fetched again at once
			v.Wrote(s, e-s)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if got := v.Record(d.snapshot()); !bytes.Equal(got, []byte{0b11, 0}) {
		t.Fatalf("Record before any check = %08b, want pieces 0 and 1", got)
	}
	d.write(data[5500:], 5500)
	v.Wrote(5500, size-5500) // the workers are held up: this must not wait for them
	close(gate)
	if err := v.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	bad, from := log.get()
	if !slices.Equal(bad, []int{1, 3}) || !slices.Equal(from, []Origin{Vouched, Earlier}) {
		t.Fatalf("OnBad told %v %v, want 1 vouched, 3 earlier", bad, from)
	}
	if n, first := v.Unverified(); n != 0 {
		t.Fatalf("%d pieces unverified, first %v", n, first)
	}
	if !bytes.Equal(d.content(), data) {
		t.Fatal("the file is not the data")
	}
}

// Bytes of a verified piece given back by someone else (a plan reopened
// them) and written again are checked again; the piece counts as
// unverified meanwhile, and a piece the counts say is complete is not
// hashed before the snapshot agrees. Settle also finds a piece written
// without a word to the verifier.
func TestVerifierPieceWrittenAgain(t *testing.T) {
	const size, piece = 4000, 1000
	data := randomData(size, 9)
	p := piecesOf(data, piece)
	d := newDisk(t, size)
	var log badLog
	v, err := NewVerifier(d.f, p, size, VerifierOptions{Snapshot: d.snapshot, OnBad: func(i int, from Origin) {
		log.add(i, from)
		d.unwrite(p.Bounds(i, size)) // to fetch again, later
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	d.write(data[:3000], 0)
	v.Wrote(0, 3000)
	d.write(data[3000:], 3000) // not told: Settle finds it
	if err := v.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, first := v.Unverified(); n != 0 {
		t.Fatalf("%d pieces unverified, first %v", n, first)
	}
	d.unwrite(1000, 2000)
	d.write([]byte{data[1200] ^ 1}, 1200)
	v.Wrote(1200, 1)
	if n, first := v.Unverified(); n != 1 || first[0] != 1 || v.Prefix() != 1000 {
		t.Fatalf("unverified %d %v, prefix %d, want piece 1 and 1000", n, first, v.Prefix())
	}
	// Counted twice (the count reaches the piece's length), but the
	// snapshot says bytes are missing: not hashed yet.
	v.Wrote(1000, 999)
	if err := v.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if bad, _ := log.get(); len(bad) != 0 {
		t.Fatalf("a piece not all written was hashed: bad %v", bad)
	}
	d.write(data[1000:1200], 1000)
	d.write(data[1201:2000], 1201)
	v.Wrote(1000, 200)
	v.Wrote(1201, 799)
	if err := v.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if bad, from := log.get(); !slices.Equal(bad, []int{1}) || from[0] != Fresh {
		t.Fatalf("OnBad told %v %v, want piece 1, fresh", bad, from)
	}
	if got := v.Record(d.snapshot()); !bytes.Equal(got, []byte{0b1101}) {
		t.Fatalf("Record = %08b, want pieces 0, 2 and 3", got)
	}
}

// A piece written again while a worker hashes it: the worker's result is
// dropped, and the piece waits for its new bytes.
func TestVerifierDropsStaleHash(t *testing.T) {
	const size, piece = 2000, 1000
	data := randomData(size, 17)
	p := piecesOf(data, piece)
	d := newDisk(t, size)
	d.write(data, 0)
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	r := readerFunc(func(b []byte, off int64) (int, error) {
		if off == 0 {
			select {
			case entered <- struct{}{}:
				<-gate
			default:
			}
		}
		return d.f.ReadAt(b, off)
	})
	v, err := NewVerifier(r, p, size, VerifierOptions{Snapshot: d.snapshot})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	v.Wrote(0, size)
	<-entered // a worker reads piece 0
	d.unwrite(0, 1000)
	d.write(data[:10], 0) // the same bytes, but the rest is not written yet
	v.Wrote(0, 10)
	close(gate)
	if err := v.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, first := v.Unverified(); n != 1 || first[0] != 0 {
		t.Fatalf("unverified %d %v, want piece 0 waiting for its bytes", n, first)
	}
	d.write(data[10:1000], 10)
	v.Wrote(10, 990)
	if err := v.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, first := v.Unverified(); n != 0 {
		t.Fatalf("unverified %d %v", n, first)
	}
}

type readerFunc func(p []byte, off int64) (int, error)

func (f readerFunc) ReadAt(p []byte, off int64) (int, error) { return f(p, off) }

type failingReader struct{}

var errRead = errors.New("input/output error (test)")

func (failingReader) ReadAt([]byte, int64) (int, error) { return 0, errRead }

// A read error stops the verifier: Settle and Err return it, and nothing
// counts as bad.
func TestVerifierReadError(t *testing.T) {
	data := randomData(3000, 11)
	p := piecesOf(data, 1000)
	var log badLog
	v, err := NewVerifier(failingReader{}, p, 3000, VerifierOptions{OnBad: log.add})
	if err != nil {
		t.Fatal(err)
	}
	v.Wrote(0, 3000)
	if err := v.Settle(context.Background()); !errors.Is(err, errRead) {
		t.Fatalf("Settle = %v, want the read error", err)
	}
	if err := v.Close(); !errors.Is(err, errRead) {
		t.Fatalf("Close = %v, want the read error", err)
	}
	if bad, _ := log.get(); len(bad) != 0 {
		t.Fatalf("bad %v after a read error", bad)
	}
}

// Record vouches only for pieces the given snapshot holds whole.
func TestVerifierRecordFollowsSnapshot(t *testing.T) {
	const size, piece = 3000, 1000
	data := randomData(size, 13)
	p := piecesOf(data, piece)
	d := newDisk(t, size)
	d.write(data, 0)
	v, err := NewVerifier(d.f, p, size, VerifierOptions{Written: d.snapshot()})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	older := []ranges.Segment{{Start: 0, End: 1500, Written: 1200}, {Start: 1500, End: 3000, Written: 1500}}
	if got := v.Record(older); !bytes.Equal(got, []byte{0b101}) {
		t.Fatalf("Record = %08b, want pieces 0 and 2", got)
	}
	if got := v.Record([]ranges.Segment{{Start: 0, End: 3000}}); got != nil {
		t.Fatalf("Record of nothing written = %08b", got)
	}
}

// Pieces this process has just found good (Verified) are not read again;
// the other pieces on disk are, and count once checked.
func TestVerifierTrustsVerified(t *testing.T) {
	const size, piece = 4 * 1000, 1000
	data := randomData(size, 9)
	p := piecesOf(data, piece)
	d := newDisk(t, size)
	d.write(data, 0)
	var mu sync.Mutex
	var reads []int64
	r := readerFunc(func(b []byte, off int64) (int, error) {
		mu.Lock()
		reads = append(reads, off/piece)
		mu.Unlock()
		return d.f.ReadAt(b, off)
	})
	v, err := NewVerifier(r, p, size, VerifierOptions{Written: d.snapshot(), Verified: []byte{0b0101}, Snapshot: d.snapshot})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(reads, 0) || slices.Contains(reads, 2) || !slices.Contains(reads, 1) || !slices.Contains(reads, 3) {
		t.Fatalf("read pieces %v, want 1 and 3 only", reads)
	}
	if n, first := v.Unverified(); n != 0 {
		t.Fatalf("%d pieces unverified, first %v", n, first)
	}
}
