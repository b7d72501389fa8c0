package convoy

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// Verification by piece (issue 14): with a Metalink's piece hashes, each
// piece is checked as soon as all its bytes are written (merge.Verifier,
// in the background), and one that fails is fetched again, from another
// server when one is left. The servers that sent it are named; a server is
// dropped at its dropAfterBad-th bad piece while others are left, and the
// last one left fails the download at its failAfterBad-th. A pass fetches
// until every piece is verified, in at most maxRounds rounds: bytes found
// bad once the connections have ended need another.
const (
	dropAfterBad = 2
	failAfterBad = 4
	maxRounds    = 5
)

// errBadServer is the cause a server dropped for its bad pieces is stopped
// with: its drop is announced when it is decided, not again by runVetted.
var errBadServer = errors.New("it sent pieces that do not match their hashes")

// pieceCheck verifies one pass of a download by its piece hashes and deals
// with the pieces that fail. Safe for concurrent use.
type pieceCheck struct {
	d      *download
	v      *merge.Verifier
	pieces merge.Pieces
	plan   *segment.Plan
	size   int64
	prov   *provenance // who sent which bytes; nil for a lone server all along
	urls   []string    // the servers (redacted), numbered as runVetted does

	mu       sync.Mutex
	bad      [][]int // the pieces each server sent bad
	gone     []bool  // dropped, for bad pieces or another failure
	stops    []context.Context
	cancels  []context.CancelCauseFunc
	refetch  int   // pieces given back to fetch again
	failure  error // the last server sent too many bad pieces
	stopThis context.CancelCauseFunc
}

// usablePieces returns the Metalink's piece hashes of the file, if it gave
// them and they fit a file of size bytes; nil otherwise.
func (d *download) usablePieces(size int64) *merge.Pieces {
	m := d.cfg.meta
	if m == nil || m.pieces == nil || size < 0 {
		return nil
	}
	p := &merge.Pieces{Algo: m.pieces.Algo, Length: m.pieces.Length, Sums: m.pieces.Hashes}
	if err := p.CheckSize(size); err != nil {
		d.cfg.Logf("%s: its piece hashes do not fit the file (%v): not verifying by piece", m.source, err)
		return nil
	}
	return p
}

// newPieceCheck starts verifying the pass whose part file is part and
// plan, from the state prev left. The pieces of prev's manifest that it
// records as verified are checked again like all the bytes on disk; until
// then, checkpoints keep vouching for them.
func (d *download) newPieceCheck(p merge.Pieces, part *merge.PartFile, plan *segment.Plan, prev resumed, remote segment.Remote, prov *provenance) (*pieceCheck, error) {
	pc := &pieceCheck{d: d, pieces: p, plan: plan, size: remote.Size, prov: prov}
	for _, u := range append([]string{remote.URL}, d.cfg.Mirrors...) {
		pc.urls = append(pc.urls, redact.URL(u))
		ctx, cancel := context.WithCancelCause(context.Background())
		pc.stops, pc.cancels = append(pc.stops, ctx), append(pc.cancels, cancel)
	}
	pc.bad, pc.gone = make([][]int, len(pc.urls)), make([]bool, len(pc.urls))
	var vouched []byte
	if prev.m != nil && prev.m.PieceLength == p.Length {
		vouched = prev.m.PiecesVerified
	}
	var err error
	pc.v, err = merge.NewVerifier(part, p, remote.Size, merge.VerifierOptions{
		Written:  prev.segs,
		Vouched:  vouched,
		Verified: prev.verified,
		Snapshot: plan.Snapshot,
		OnBad:    pc.onBad,
		Workers:  max(1, min(4, runtime.GOMAXPROCS(0)/2)),
	})
	if err != nil {
		pc.close()
		return nil, err
	}
	return pc, nil
}

// close stops the verification; the pass is over.
func (pc *pieceCheck) close() {
	if pc.v != nil {
		_ = pc.v.Close() // a read error was reported where it mattered
	}
	for _, cancel := range pc.cancels {
		cancel(nil)
	}
}

// onWrite extends onWrite to tell the verifier of the bytes written, last,
// so that the provenance names their server before the piece is checked.
func (pc *pieceCheck) onWrite(onWrite func(off, n int64)) func(off, n int64) {
	if pc == nil {
		return onWrite
	}
	return func(off, n int64) {
		onWrite(off, n)
		pc.v.Wrote(off, n)
	}
}

// hashPrefix narrows prefix, the contiguous written prefix that the
// whole-file hash follows, to the verified pieces: the hash never reads
// bytes that a bad piece's refetch replaces later, so it never starts over.
func (pc *pieceCheck) hashPrefix(prefix func() int64) func() int64 {
	if pc == nil {
		return prefix
	}
	return func() int64 { return min(prefix(), pc.v.Prefix()) }
}

// stop is what stops server i for runVetted: it ends once i is dropped.
func (pc *pieceCheck) stop(i int) context.Context {
	if pc == nil {
		return nil
	}
	return pc.stops[i]
}

// share is assign(remotes), the connections of each server this round,
// with the servers dropped in earlier rounds left out, so that their share
// goes to the others (a server given no connection in the first round, say,
// fetches the pieces of one dropped there).
func (pc *pieceCheck) share(remotes []segment.Remote, assign func([]segment.Remote) []int) []int {
	if pc == nil {
		return assign(remotes)
	}
	pc.mu.Lock()
	var left []segment.Remote
	var at []int
	for i, r := range remotes {
		if !pc.gone[i] {
			left, at = append(left, r), append(at, i)
		}
	}
	pc.mu.Unlock()
	counts := make([]int, len(remotes))
	for j, n := range assign(left) {
		counts[at[j]] = n
	}
	return counts
}

// dropped records that runVetted dropped server i for err, so that later
// rounds leave it out too, and reports whether the drop is news to tell.
func (pc *pieceCheck) dropped(i int, err error) bool {
	if pc == nil {
		return true
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.gone[i] || errors.Is(err, errBadServer) {
		pc.gone[i] = true
		return false
	}
	pc.gone[i] = true
	pc.cancels[i](err)
	return true
}

// refetched counts the pieces given back to fetch again.
func (pc *pieceCheck) refetched() int {
	if pc == nil {
		return 0
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.refetch
}

// failed returns the error that ends the download, once there is one.
func (pc *pieceCheck) failed() error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.failure
}

// senders returns the servers of this run that sent bytes of [start, end)
// and the names of all that did (earlier runs' too), from the provenance;
// without one, a lone server sent what this run wrote.
func (pc *pieceCheck) senders(start, end int64, from merge.Origin) (idx []int, names []string) {
	if pc.prov == nil {
		if from == merge.Fresh {
			return []int{0}, []string{pc.urls[0]}
		}
		return nil, nil
	}
	for _, s := range pc.prov.snapshot() {
		if s.End <= start || s.Start >= end || slices.Contains(names, s.URL) {
			continue
		}
		names = append(names, s.URL)
		if k := slices.Index(pc.urls, s.URL); k >= 0 {
			idx = append(idx, k)
		}
	}
	return idx, names
}

// onBad deals with piece i, found bad: it names the servers that sent it,
// counts it against those of this run when this run wrote it, gives its
// bytes back to the plan, kept from those servers while another fetches,
// and drops a server that sent too many, or fails the download when it is
// the last.
func (pc *pieceCheck) onBad(i int, from merge.Origin) {
	d := pc.d
	start, end := pc.pieces.Bounds(i, pc.size)
	idx, names := pc.senders(start, end, from)
	what := fmt.Sprintf("piece %d (bytes %d-%d)", i, start, end-1)
	var notice, why string
	switch from {
	case merge.Vouched:
		why = "changed on disk since an earlier run verified it"
		notice = fmt.Sprintf("%s no longer matches its %s hash: the part file %s; fetching it again", what, pc.pieces.Algo, why)
		idx = nil // not the server's doing
	case merge.Earlier:
		why = fmt.Sprintf("does not match its %s hash", pc.pieces.Algo)
		notice = fmt.Sprintf("%s, downloaded by an earlier run%s, %s: fetching it again", what, sentBy(names), why)
	default:
		why = fmt.Sprintf("does not match its %s hash", pc.pieces.Algo)
		notice = fmt.Sprintf("%s%s %s: fetching it again", what, sentBy(names), why)
	}

	pc.mu.Lock()
	pc.refetch++
	var drop []int
	alive := 0
	for k := range pc.gone {
		if !pc.gone[k] {
			alive++
		}
	}
	if from == merge.Fresh {
		for _, k := range idx {
			if pc.gone[k] {
				continue
			}
			pc.bad[k] = append(pc.bad[k], i)
			switch n := len(pc.bad[k]); {
			case n >= dropAfterBad && alive > 1:
				pc.gone[k] = true
				alive--
				drop = append(drop, k)
			case n >= failAfterBad && alive == 1 && pc.failure == nil:
				pc.failure = pc.tooMany(k)
			}
		}
	}
	other := false // a server left that did not send it
	for k, g := range pc.gone {
		other = other || (!g && !slices.Contains(idx, k))
	}
	if pc.failure == nil && len(idx) > 0 && other {
		notice += " from another server"
	}
	failure, stopThis := pc.failure, pc.stopThis
	pc.mu.Unlock()

	d.cfg.Logf("%s", notice)
	d.emit(Event{Type: "piece-bad", Piece: &BadPiece{Index: i, Start: start, End: end, Servers: names, OnDisk: from == merge.Vouched},
		Error: why})
	pc.plan.ReopenAvoiding(start, end, idx...)
	for _, k := range drop {
		err := fmt.Errorf("%w (pieces %s)", errBadServer, pieceList(pc.badOf(k)))
		d.cfg.Logf("dropping %s: %v", pc.urls[k], err)
		d.emit(Event{Type: "mirror-dropped", Mirror: pc.urls[k], Error: err.Error()})
		pc.cancels[k](err)
	}
	if failure != nil && stopThis != nil {
		stopThis(failure)
	}
}

// badOf returns the pieces server k sent bad.
func (pc *pieceCheck) badOf(k int) []int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return slices.Clone(pc.bad[k])
}

// tooMany is the error of a download whose last server, k, sent too many
// bad pieces. Caller holds mu.
func (pc *pieceCheck) tooMany(k int) error {
	var list []string
	times := map[int]int{}
	for _, i := range pc.bad[k] {
		times[i]++
	}
	for _, i := range pc.bad[k] {
		n := times[i]
		if n == 0 {
			continue // listed already
		}
		delete(times, i)
		s, e := pc.pieces.Bounds(i, pc.size)
		item := fmt.Sprintf("piece %d, bytes %d-%d", i, s, e-1)
		if n > 1 {
			item += fmt.Sprintf(", %d times", n)
		}
		list = append(list, item)
	}
	return fmt.Errorf("%w: %s sent %d pieces that do not match their %s hashes (%s), and no other server is left to fetch them from",
		merge.ErrChecksum, pc.urls[k], len(pc.bad[k]), pc.pieces.Algo, strings.Join(list, "; "))
}

// sentBy is " sent by A and B", or "" when nobody is known to have.
func sentBy(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " sent by " + strings.Join(names, " and ")
}

// pieceList is "3, 7".
func pieceList(pieces []int) string {
	s := make([]string, len(pieces))
	for i, p := range pieces {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ", ")
}

// rounds runs fetch until every byte is written and every piece verified:
// after each run it waits for the pieces still being checked, and runs
// fetch again for those found bad, at most maxRounds times in all. A
// download whose last server sent too many bad pieces stops at once.
func (pc *pieceCheck) rounds(ctx context.Context, fetch func(context.Context) error) error {
	for round := 1; ; round++ {
		rctx, cancel := context.WithCancelCause(ctx)
		pc.mu.Lock()
		pc.stopThis = cancel
		failure := pc.failure
		pc.mu.Unlock()
		var err error
		if failure == nil {
			err = fetch(rctx)
		}
		pc.mu.Lock()
		pc.stopThis = nil
		pc.mu.Unlock()
		cancel(nil)
		if failure := pc.failed(); failure != nil {
			return failure
		}
		if err != nil {
			return err
		}
		if err := pc.v.Settle(ctx); err != nil {
			return err
		}
		if failure := pc.failed(); failure != nil {
			return failure
		}
		if pc.plan.Written() == pc.size {
			if n, first := pc.v.Unverified(); n > 0 {
				// Settle checked every written piece: this is a bug.
				return fmt.Errorf("%d pieces (%s) are written but not verified", n, pieceList(first))
			}
			return nil
		}
		if round == maxRounds {
			n, first := pc.v.Unverified()
			return fmt.Errorf("%w: %d pieces (%s) still do not match their %s hashes after %d rounds of fetching", merge.ErrChecksum, n, pieceList(first), pc.pieces.Algo, round)
		}
		pc.d.cfg.Logf("fetching again the pieces that did not match their hashes")
		pc.d.usedEarlier.Store(int64(pc.d.usedConnections()))
	}
}

// recordPieces is what a manifest saved with segs records of the pieces
// verified (see merge.Verifier.Record).
func (pc *pieceCheck) recordPieces(m *manifest.Manifest, segs []segment.Segment) {
	if pc != nil {
		m.PiecesVerified = pc.v.Record(segs)
	}
}
