package convoy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
)

// Downloads verified by piece: a file of 4 MiB in pieces of 256 KiB,
// described by a Metalink with the pieces' SHA-256 hashes and the file's.
const (
	pieceFile   = 4 << 20
	pieceLength = 256 << 10
)

// asked is a ranged GET a server received: its bytes [start, end), and
// whether a piece-bad event had been emitted before it arrived.
type asked struct {
	start, end int64
	afterBad   bool
}

// pieceAsks records the ranged GETs of one server.
type pieceAsks struct {
	mu     sync.Mutex
	asked  []asked
	badNow *atomic.Bool // set once a piece-bad event is emitted
}

func (l *pieceAsks) hook(r *http.Request) {
	var a, b int64
	if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &a, &b); err != nil || r.Method != http.MethodGet {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked = append(l.asked, asked{start: a, end: b + 1, afterBad: l.badNow.Load()})
}

// after counts the ranged GETs that arrived after a piece-bad event and
// asked for bytes of [start, end).
func (l *pieceAsks) after(start, end int64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.asked {
		if a.afterBad && a.start < end && a.end > start {
			n++
		}
	}
	return n
}

// flipper serves a testserver.Handler's file and flips one byte of some
// answers, as a mirror with bad memory or a broken proxy does: of the
// ranged GETs asking for more than minLen bytes, the first times (< 0:
// all), the byte at offset at of the answer's body. It records where it
// flipped.
type flipper struct {
	*testserver.Handler
	URL     string
	minLen  int64
	at      int64
	log     *pieceAsks
	mu      sync.Mutex
	left    int
	flipped []int64 // file offsets
	gets    atomic.Int64
}

func newFlipper(t *testing.T, times int, minLen, at int64, log *pieceAsks, opts ...testserver.Option) *flipper {
	t.Helper()
	f := &flipper{Handler: testserver.NewHandler(opts...), minLen: minLen, at: at, log: log, left: times}
	ts := httptest.NewServer(f)
	t.Cleanup(func() {
		f.Handler.Close()
		ts.CloseClientConnections()
		ts.Close()
	})
	f.URL = ts.URL + f.FilePath()
	return f
}

func (f *flipper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var a, b int64
	if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &a, &b); err != nil || r.Method != http.MethodGet {
		f.Handler.ServeHTTP(w, r)
		return
	}
	f.gets.Add(1)
	if f.log != nil {
		f.log.hook(r)
	}
	f.mu.Lock()
	flip := b+1-a > f.minLen && b+1-a > f.at && f.left != 0
	if flip {
		f.left--
		f.flipped = append(f.flipped, a+f.at)
	}
	f.mu.Unlock()
	if flip {
		w = &flipWriter{ResponseWriter: w, at: f.at}
	}
	f.Handler.ServeHTTP(w, r)
}

// damaged returns the file offsets of the bytes flipped so far.
func (f *flipper) damaged() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.flipped)
}

// flipWriter inverts body byte at of an answer.
type flipWriter struct {
	http.ResponseWriter
	at, pos int64
}

func (w *flipWriter) Write(p []byte) (int, error) {
	if i := w.at - w.pos; i >= 0 && i < int64(len(p)) {
		p = slices.Clone(p)
		p[i] ^= 0xff
	}
	w.pos += int64(len(p))
	return w.ResponseWriter.Write(p)
}

func (w *flipWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// piecesConfig is a download of the file content from urls, described by a
// Metalink with its piece hashes and its SHA-256, with events and notices
// in rec; badNow is set at the first piece-bad event.
func piecesConfig(t *testing.T, dir string, content []byte, rec *recorder, badNow *atomic.Bool, urls ...string) convoy.Config {
	t.Helper()
	cfg := metalinkConfig(dir, rec)
	cfg.Metalink = writeMetalink(t, meta4(metalinkFile{name: "f.bin", size: int64(len(content)), sha256: sha256Of(content),
		urls: urls, extra: piecesXML(content, pieceLength)}))
	cfg.OnEvent = func(e convoy.Event) {
		if e.Type == "piece-bad" && badNow != nil {
			badNow.Store(true)
		}
		rec.event(e)
	}
	return cfg
}

// eventsOf returns rec's events of type typ.
func (r *recorder) eventsOf(typ string) []convoy.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []convoy.Event
	for _, e := range r.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// A mirror sends one piece damaged: the piece is found bad, its server
// named, and it is fetched again from the other server, never from the
// damaged one; the mirror stays. The file is whole, and its SHA-256,
// followed while it downloads, is right.
func TestPieceFetchedAgainFromAnotherMirror(t *testing.T) {
	var badNow atomic.Bool
	goodLog, badLog := &pieceAsks{badNow: &badNow}, &pieceAsks{badNow: &badNow}
	// Both are throttled, so that each fetches ranges: the first server
	// joins after its samples, the mirror after its own and its pieces.
	good := testserver.New(t, testserver.Size(pieceFile), testserver.Rate(1<<20), testserver.OnRequest(goodLog.hook))
	// The first and last pieces (256 KiB) are fetched to check the mirror:
	// only answers longer than that are damaged.
	bad := newFlipper(t, 1, pieceLength, 1000, badLog, testserver.Size(pieceFile), testserver.Rate(2<<20))
	dir := t.TempDir()
	rec := &recorder{}
	cfg := piecesConfig(t, dir, good.Content(), rec, &badNow, good.URL, bad.URL)
	cfg.Connections, cfg.MaxPerHost = 4, 4
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	good.Verify(t, filepath.Join(dir, "f.bin"))
	flipped := bad.damaged()
	if len(flipped) != 1 {
		t.Fatalf("the mirror damaged %d answers, want 1", len(flipped))
	}
	i := int(flipped[0] / pieceLength)
	start, end := int64(i)*pieceLength, int64(i+1)*pieceLength
	events := rec.eventsOf("piece-bad")
	if len(events) != 1 || events[0].Piece == nil {
		t.Fatalf("piece-bad events %+v, want one", events)
	}
	if p := events[0].Piece; p.Index != i || p.Start != start || p.End != end || !slices.Equal(p.Servers, []string{bad.URL}) || p.OnDisk {
		t.Errorf("piece-bad event %+v, want piece %d [%d,%d) from %s", *p, i, start, end, bad.URL)
	}
	if !rec.said(fmt.Sprintf("piece %d (bytes %d-%d) sent by %s does not match its sha256 hash: fetching it again from another server", i, start, end-1, bad.URL)) {
		t.Errorf("notices %q", rec.notices)
	}
	if n := badLog.after(start, end); n != 0 {
		t.Errorf("the damaged piece was asked again of the mirror that damaged it (%d times)", n)
	}
	if n := goodLog.after(start, end); n == 0 {
		t.Error("the damaged piece was not asked again of the other server")
	}
	if res.Refetched != 1 || !res.Verified {
		t.Errorf("refetched %d, verified %v; want 1 and the file's hash verified", res.Refetched, res.Verified)
	}
	if d := rec.eventsOf("mirror-dropped"); len(d) != 0 {
		t.Errorf("a mirror with one bad piece was dropped: %+v", d)
	}
}

// A mirror that damages two pieces is dropped at the second, and named;
// the other server fetches both again and the rest.
func TestMirrorDroppedAtItsSecondBadPiece(t *testing.T) {
	good := testserver.New(t, testserver.Size(pieceFile), testserver.Rate(1<<20)) // leaves the mirror ranges
	bad := newFlipper(t, 2, pieceLength, 1000, nil, testserver.Size(pieceFile), testserver.Rate(2<<20))
	dir := t.TempDir()
	rec := &recorder{}
	cfg := piecesConfig(t, dir, good.Content(), rec, nil, good.URL, bad.URL)
	cfg.Connections, cfg.MaxPerHost = 4, 4
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	good.Verify(t, filepath.Join(dir, "f.bin"))
	flipped := bad.damaged()
	if len(flipped) != 2 {
		t.Fatalf("the mirror damaged %d answers, want 2", len(flipped))
	}
	want := fmt.Sprintf("pieces %d, %d", flipped[0]/pieceLength, flipped[1]/pieceLength)
	wantRev := fmt.Sprintf("pieces %d, %d", flipped[1]/pieceLength, flipped[0]/pieceLength)
	dropped := rec.eventsOf("mirror-dropped")
	if len(dropped) != 1 || dropped[0].Mirror != bad.URL || !strings.Contains(dropped[0].Error, "do not match their hashes") ||
		!(strings.Contains(dropped[0].Error, want) || strings.Contains(dropped[0].Error, wantRev)) {
		t.Fatalf("mirror-dropped events %+v, want %s dropped for its %s", dropped, bad.URL, want)
	}
	if !rec.said("dropping " + bad.URL + ": it sent pieces that do not match their hashes") {
		t.Errorf("notices %q", rec.notices)
	}
	if res.Refetched != 2 {
		t.Errorf("refetched %d pieces, want 2", res.Refetched)
	}
}

// The only connection goes to a primary that damages every answer longer
// than the samples that compared it with its mirror: it is dropped at its
// second bad piece (the same piece, fetched again from it, there being no
// other connection), and the mirror, given the connection in the next
// round, fetches the piece and the file is whole.
func TestMirrorWithoutConnectionTakesOver(t *testing.T) {
	bad := newFlipper(t, -1, 0, 100<<10, nil, testserver.Size(pieceFile))
	good := testserver.New(t, testserver.Size(pieceFile))
	dir := t.TempDir()
	rec := &recorder{}
	cfg := piecesConfig(t, dir, good.Content(), rec, nil, bad.URL, good.URL)
	cfg.Connections, cfg.MaxPerHost = 1, 1
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	good.Verify(t, filepath.Join(dir, "f.bin"))
	if d := rec.eventsOf("mirror-dropped"); len(d) != 1 || d[0].Mirror != bad.URL || !strings.Contains(d[0].Error, "pieces 0, 0") {
		t.Fatalf("mirror-dropped events %+v, want %s dropped for piece 0 twice", d, bad.URL)
	}
	if res.Refetched != 2 {
		t.Errorf("refetched %d pieces, want 2", res.Refetched)
	}
}

// A lone server that damages one answer: the piece is fetched again from
// it, and the file is whole.
func TestPieceFetchedAgainFromTheOnlyServer(t *testing.T) {
	srv := newFlipper(t, 1, 0, 1000, nil, testserver.Size(pieceFile))
	dir := t.TempDir()
	rec := &recorder{}
	cfg := piecesConfig(t, dir, srv.Content(), rec, nil, srv.URL)
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, filepath.Join(dir, "f.bin"))
	i := int(srv.damaged()[0] / pieceLength)
	events := rec.eventsOf("piece-bad")
	if len(events) != 1 || events[0].Piece.Index != i || !slices.Equal(events[0].Piece.Servers, []string{srv.URL}) {
		t.Fatalf("piece-bad events %+v, want piece %d from %s", events, i, srv.URL)
	}
	if res.Refetched != 1 {
		t.Errorf("refetched %d pieces, want 1", res.Refetched)
	}
	onlyOutput(t, dir, "f.bin")
}

// The last piece is damaged, and found bad once the connection has
// fetched everything: the download runs another round for it. The summary
// still counts the connections of the first round.
func TestPieceBadAfterTheConnectionsEnded(t *testing.T) {
	for _, conns := range []int{1, 2} {
		t.Run(fmt.Sprintf("connections=%d", conns), func(t *testing.T) {
			at := int64(pieceFile - 1000) // the last piece, at the end of the one answer
			if conns == 2 {
				at = pieceFile/2 - 1000 // the last piece of the answer for the first half
			}
			srv := newFlipper(t, 1, 0, at, nil, testserver.Size(pieceFile))
			dir := t.TempDir()
			rec := &recorder{}
			cfg := piecesConfig(t, dir, srv.Content(), rec, nil, srv.URL)
			cfg.Connections = conns
			res, err := convoy.Download(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.Verify(t, filepath.Join(dir, "f.bin"))
			if len(srv.damaged()) != 1 || res.Refetched != 1 {
				t.Fatalf("damaged %v, refetched %d", srv.damaged(), res.Refetched)
			}
			if res.Connections != conns {
				t.Errorf("the summary counts %d connections, want %d", res.Connections, conns)
			}
		})
	}
}

// A lone server that damages every answer: the download fails after
// failAfterBad bad pieces with an error that names the server and the
// pieces, a checksum error; nothing is saved under the file's name, the
// part file and its manifest stay for a later run, and the server was
// asked a bounded number of times.
func TestOnlyServerAlwaysBadFails(t *testing.T) {
	srv := newFlipper(t, -1, 0, 0, nil, testserver.Size(pieceFile))
	dir := t.TempDir()
	rec := &recorder{}
	cfg := piecesConfig(t, dir, srv.Content(), rec, nil, srv.URL)
	_, err := convoy.Download(context.Background(), cfg)
	if !errors.Is(err, merge.ErrChecksum) {
		t.Fatalf("error %v, want a checksum error", err)
	}
	for _, s := range []string{srv.URL + " sent 4 pieces that do not match their sha256 hashes", "piece ", "no other server"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	onlyOutput(t, dir, "f.bin.part", "f.bin.convoy")
	if n := srv.gets.Load(); n > 40 {
		t.Errorf("the server was asked %d times", n)
	}
	if n := len(rec.eventsOf("piece-bad")); n < 4 {
		t.Errorf("%d piece-bad events, want at least 4", n)
	}
}

// An interrupted download's manifest records the pieces verified, each
// written and right on disk. A byte of one of them changes on disk before
// the resume: the resume checks the pieces the manifest claims, finds
// that one bad, says so, fetches it again, and the file is whole and
// matches its SHA-256.
func TestResumeChecksClaimedPieces(t *testing.T) {
	srv := testserver.New(t, testserver.Size(pieceFile), testserver.Rate(1<<20))
	content := srv.Content()
	dir := t.TempDir()
	out := filepath.Join(dir, "f.bin")
	rec := &recorder{}
	cfg := piecesConfig(t, dir, content, rec, nil, srv.URL)
	cfg.Connections = 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	onEvent := cfg.OnEvent
	cfg.OnEvent = func(e convoy.Event) {
		onEvent(e)
		if e.Type != "checkpoint" {
			return
		}
		// Decoded mid-download, the manifest claims pieces verified.
		if m, err := manifest.Load(out + convoy.ManifestSuffix); err == nil && verifiedPieces(m) >= 3 {
			cancel()
		}
	}
	if _, err := convoy.Download(ctx, cfg); !errors.Is(err, convoy.ErrInterrupted) {
		t.Fatalf("error %v, want ErrInterrupted", err)
	}
	m, err := manifest.Load(out + convoy.ManifestSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if m.PieceLength != pieceLength || verifiedPieces(m) < 3 || m.Complete() {
		t.Fatalf("manifest: piece length %d, %d pieces verified, complete %v", m.PieceLength, verifiedPieces(m), m.Complete())
	}
	part, err := os.ReadFile(out + convoy.PartSuffix)
	if err != nil {
		t.Fatal(err)
	}
	damaged := -1
	for i := range m.Pieces() {
		if !m.PieceVerified(i) {
			continue
		}
		s, e := i*pieceLength, min((i+1)*pieceLength, pieceFile)
		if string(part[s:e]) != string(content[s:e]) {
			t.Fatalf("piece %d is recorded verified but its bytes on disk are not the file's", i)
		}
		damaged = int(i)
	}
	at := int64(damaged)*pieceLength + 1234
	f, err := os.OpenFile(out+convoy.PartSuffix, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{content[at] ^ 0x10}, at); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	rec2 := &recorder{}
	cfg = piecesConfig(t, dir, content, rec2, nil, srv.URL)
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Verify(t, out)
	events := rec2.eventsOf("piece-bad")
	if len(events) != 1 || events[0].Piece.Index != damaged || !events[0].Piece.OnDisk {
		t.Fatalf("piece-bad events %+v, want piece %d, on disk", events, damaged)
	}
	if !rec2.said(fmt.Sprintf("piece %d (bytes %d-%d) no longer matches its sha256 hash: the part file changed on disk", damaged, int64(damaged)*pieceLength, int64(damaged+1)*pieceLength-1)) {
		t.Errorf("notices %q", rec2.notices)
	}
	if res.Refetched != 1 || !res.Verified {
		t.Errorf("refetched %d, verified %v", res.Refetched, res.Verified)
	}
}

// verifiedPieces counts the pieces m records as verified.
func verifiedPieces(m *manifest.Manifest) int {
	n := 0
	for i := range m.Pieces() {
		if m.PieceVerified(i) {
			n++
		}
	}
	return n
}
