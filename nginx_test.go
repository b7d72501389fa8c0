package convoy_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/nginxtest"
)

// Metalink downloads and repairs against real servers (issue 14): nginx on
// loopback, one server block per mirror, each on its own port, serving a
// file of 4 MiB in pieces of 256 KiB (see pieceFile, pieceLength) named
// f.bin. Its access logs tell which bytes each mirror sent.
//
// The first address of the Metalink is the primary: it fetches as soon as
// its samples (64 KiB at the start, middle and end, one write of nginx
// each) are in, and its connection takes the first part of the file. The
// others join once they have also sent the first and last pieces, to be
// checked, and their samples, which nginx paces at their rate: at 1 MiB/s
// that is more than a third of a second after the primary. There is one
// connection for each server, and the three parts of the file are its
// first MiB, its second and its last two: the primary's first MiB takes it
// a second, so each server starts with a part of its own.
const (
	ngxRate       = 1 << 20 // per connection, every server
	ngxFileName   = "f.bin"
	ngxPieceCount = pieceFile / pieceLength
)

// randomFile is size bytes of a random stream seeded with seed.
func randomFile(seed uint64, size int) []byte {
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'n', 'g', 'x'})
	_, _ = r.Read(b)
	return b
}

// folderWith writes content as f.bin in a new folder, which it returns.
func folderWith(t *testing.T, content []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ngxFileName), content, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startMirrors starts nginx with a server block for each root, every one
// at ngxRate, and returns it with the URLs of f.bin.
func startMirrors(t *testing.T, roots ...string) (*nginxtest.Nginx, []string) {
	t.Helper()
	var sites []nginxtest.Site
	for _, r := range roots {
		sites = append(sites, nginxtest.Site{Root: r, Rate: ngxRate})
	}
	ngx := nginxtest.Start(t, sites...)
	var urls []string
	for i := range roots {
		urls = append(urls, ngx.URL(i)+"/"+ngxFileName)
	}
	return ngx, urls
}

// ngxConfig downloads content from urls into dir, as a Metalink written to
// a file describes it: its size, its SHA-256, the urls in order and
// SHA-256 hashes of its pieces. There is a connection for each server,
// all of them to one host name, 127.0.0.1.
func ngxConfig(t *testing.T, dir string, content []byte, rec *recorder, urls ...string) convoy.Config {
	t.Helper()
	cfg := metalinkConfig(dir, rec)
	cfg.Metalink = writeMetalink(t, meta4(metalinkFile{name: ngxFileName, size: int64(len(content)), sha256: sha256Of(content),
		urls: urls, extra: piecesXML(content, pieceLength)}))
	cfg.Connections, cfg.MaxPerHost = len(urls), len(urls)
	return cfg
}

// sameFile fails t unless the file at path holds content.
func sameFile(t *testing.T, path string, content []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		i := 0
		for i < min(len(got), len(content)) && got[i] == content[i] {
			i++
		}
		t.Fatalf("%s differs from the file served: %d bytes, want %d; first difference at offset %d", path, len(got), len(content), i)
	}
}

// vetting reports whether r is one of the requests that check a server
// before it fetches: the range probe (bytes 0-0), a sample (64 KiB at
// most), or the first or last piece, fetched whole to check a mirror.
func vetting(r nginxtest.Request) bool {
	start, end, ok := r.Bounds()
	if !ok {
		return r.Method != "GET"
	}
	last := int64(ngxPieceCount-1) * pieceLength
	return end-start <= 64<<10 || (start == 0 && end == pieceLength) || (start == last && end == pieceFile)
}

// gets is the ranges of the GETs of f.bin in reqs, and the bytes nginx
// sent for them; with skip, those for which skip reports true are left
// out.
func gets(reqs []nginxtest.Request, skip func(nginxtest.Request) bool) (ranges [][2]int64, sent int64) {
	for _, r := range reqs {
		if r.Method != "GET" || r.URI != "/"+ngxFileName || (skip != nil && skip(r)) {
			continue
		}
		start, end, ok := r.Bounds()
		if !ok {
			start, end = 0, pieceFile // the whole file
		}
		ranges = append(ranges, [2]int64{start, end})
		sent += r.Body
	}
	return ranges, sent
}

// fetched is gets of the requests that fetched the file rather than
// checked the server.
func fetched(reqs []nginxtest.Request) (ranges [][2]int64, sent int64) { return gets(reqs, vetting) }

// overlapping counts the ranges that share a byte with [start, end).
func overlapping(ranges [][2]int64, start, end int64) int {
	n := 0
	for _, r := range ranges {
		if r[0] < end && r[1] > start {
			n++
		}
	}
	return n
}

// TestNginxMetalinkThreeMirrors: a Metalink names three nginx servers of
// one file, with its SHA-256 and the hashes of its pieces: the file is
// byte-identical, its hash verified, no piece bad, no mirror dropped, and
// each of the three sent part of the file (beyond the requests that
// checked it), by its access log.
func TestNginxMetalinkThreeMirrors(t *testing.T) {
	t.Parallel()
	content := randomFile(1, pieceFile)
	root := folderWith(t, content)
	ngx, urls := startMirrors(t, root, root, root)
	dir := t.TempDir()
	rec := &recorder{}
	res, err := convoy.Download(context.Background(), ngxConfig(t, dir, content, rec, urls...))
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, filepath.Join(dir, ngxFileName), content)
	if !res.Verified || !strings.HasPrefix(res.Checksum, "sha256:") || res.Refetched != 0 {
		t.Errorf("result %+v: want the sha256 verified and no piece fetched again", res)
	}
	if d, b := rec.eventsOf("mirror-dropped"), rec.eventsOf("piece-bad"); len(d)+len(b) > 0 {
		t.Errorf("mirror-dropped events %+v, piece-bad events for %v; want none", d, piecesOf(b))
	}
	for i, u := range urls {
		ranges, sent := fetched(ngx.Requests(i))
		t.Logf("%s sent %d bytes of the file in %d answers %v", u, sent, len(ranges), ranges)
		if sent == 0 {
			t.Errorf("%s sent no bytes of the file beyond its checks", u)
		}
	}
	onlyOutput(t, dir, ngxFileName)
}

// TestNginxMirrorServingAnotherFile: one mirror serves another file of the
// same size under the same path: it is dropped, named in a mirror-dropped
// event (its first piece does not match its hash, or its samples differ
// from the primary's, or, had it got past those, its pieces), the other
// two are kept, and the file is right.
func TestNginxMirrorServingAnotherFile(t *testing.T) {
	t.Parallel()
	content := randomFile(2, pieceFile)
	root, other := folderWith(t, content), folderWith(t, randomFile(3, pieceFile))
	ngx, urls := startMirrors(t, root, other, root)
	bad := urls[1]
	dir := t.TempDir()
	rec := &recorder{}
	res, err := convoy.Download(context.Background(), ngxConfig(t, dir, content, rec, urls...))
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, filepath.Join(dir, ngxFileName), content)
	if !res.Verified {
		t.Errorf("result %+v: want the sha256 verified", res)
	}
	dropped := rec.eventsOf("mirror-dropped")
	if len(dropped) != 1 || dropped[0].Mirror != bad {
		t.Fatalf("mirror-dropped events %+v, want one for %s", dropped, bad)
	}
	t.Logf("%s dropped: %s", bad, dropped[0].Error)
	// Had it got past its checks, each of its bad pieces names it (and
	// the other server that sent part of one, if any).
	for _, e := range rec.eventsOf("piece-bad") {
		if !slices.Contains(e.Piece.Servers, bad) {
			t.Errorf("piece-bad event %+v does not name %s", *e.Piece, bad)
		}
	}
	for i, u := range urls {
		if i == 1 {
			continue
		}
		if _, sent := fetched(ngx.Requests(i)); sent == 0 {
			t.Errorf("%s sent no bytes of the file beyond its checks", u)
		}
	}
}

// TestNginxMirrorWithABadPiece: the primary serves a copy with three bytes
// flipped in piece 1, where neither the samples (start, middle, end) nor
// the check of the first and last pieces look, so it passes for the same
// file. Its connection fetches the start of the file: piece 1 is found bad,
// in an event that names the primary alone, and is fetched again from the
// other mirrors, never from it; the file is right. One bad piece does not
// get a server dropped.
func TestNginxMirrorWithABadPiece(t *testing.T) {
	t.Parallel()
	content := randomFile(4, pieceFile)
	damaged := slices.Clone(content)
	const piece = 1
	for _, off := range []int64{1000, 77777, pieceLength - 1} {
		damaged[piece*pieceLength+off] ^= 0xff
	}
	root := folderWith(t, content)
	ngx, urls := startMirrors(t, folderWith(t, damaged), root, root)
	bad := urls[0]
	dir := t.TempDir()
	rec := &recorder{}
	res, err := convoy.Download(context.Background(), ngxConfig(t, dir, content, rec, urls...))
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, filepath.Join(dir, ngxFileName), content)
	start, end := int64(piece*pieceLength), int64((piece+1)*pieceLength)
	events := rec.eventsOf("piece-bad")
	if len(events) != 1 || events[0].Piece == nil {
		t.Fatalf("piece-bad events for %v, want one", piecesOf(events))
	}
	if p := events[0].Piece; p.Index != piece || p.Start != start || p.End != end || !slices.Equal(p.Servers, []string{bad}) || p.OnDisk {
		t.Errorf("piece-bad event %+v, want piece %d [%d,%d) sent by %s", *p, piece, start, end, bad)
	}
	if res.Refetched != 1 || !res.Verified {
		t.Errorf("refetched %d, verified %v; want 1 and the sha256 verified", res.Refetched, res.Verified)
	}
	if d := rec.eventsOf("mirror-dropped"); len(d) != 0 {
		t.Errorf("a server with one bad piece was dropped: %+v", d)
	}
	// The bad server was asked for the piece once: the answer that
	// brought it bad. Another one sent it again. (No sample, and no
	// piece fetched to check a mirror, touches the piece.)
	badRanges, _ := gets(ngx.Requests(0), nil)
	if n := overlapping(badRanges, start, end); n != 1 {
		t.Errorf("%s was asked for bytes of piece %d in %d answers %v, want 1", bad, piece, n, badRanges)
	}
	again := 0
	for i := 1; i < len(urls); i++ {
		ranges, _ := gets(ngx.Requests(i), nil)
		again += overlapping(ranges, start, end)
	}
	if again == 0 {
		t.Errorf("no other server was asked for piece %d", piece)
	}
}

// piecesOf lists the pieces of piece-bad events.
func piecesOf(events []convoy.Event) []convoy.BadPiece {
	var out []convoy.BadPiece
	for _, e := range events {
		if e.Piece != nil {
			out = append(out, *e.Piece)
		}
	}
	return out
}

// TestNginxRepair: a copy with three bytes flipped, in pieces 0, 5 and
// 15, is repaired with a Metalink that nginx serves (beside the file):
// exactly those three pieces are fetched, by nginx's access log (the
// Range of each GET and the bytes nginx sent), and the copy is
// byte-identical to the file.
func TestNginxRepair(t *testing.T) {
	t.Parallel()
	content := randomFile(5, pieceFile)
	root := folderWith(t, content)
	ngx := nginxtest.Start(t, nginxtest.Site{Root: root})
	fileURL := ngx.URL(0) + "/" + ngxFileName
	doc := meta4(metalinkFile{name: ngxFileName, size: pieceFile, sha256: sha256Of(content), urls: []string{fileURL},
		extra: piecesXML(content, pieceLength)})
	if err := os.WriteFile(filepath.Join(root, "f.meta4"), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyPath := filepath.Join(dir, ngxFileName)
	if err := os.WriteFile(copyPath, content, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := []int64{0, 5, ngxPieceCount - 1}
	for _, off := range []int64{0, 5*pieceLength + 77, pieceFile - 1} {
		flip(t, copyPath, off)
	}
	cfg := metalinkConfig(dir, &recorder{})
	cfg.Metalink = ngx.URL(0) + "/f.meta4"
	cfg.Output = copyPath
	res, err := convoy.Repair(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, copyPath, content)
	var got []int64
	for _, p := range res.Bad {
		got = append(got, int64(p.Index))
	}
	if !slices.Equal(got, bad) || res.Fetched != 3*pieceLength {
		t.Errorf("bad pieces %v, fetched %d bytes; want pieces %v, %d bytes", res.Bad, res.Fetched, bad, 3*pieceLength)
	}

	var metalinks int
	var fileBytes int64
	covered := make([]int64, ngxPieceCount) // bytes of each piece asked for
	for _, r := range ngx.Requests(0) {
		switch {
		case r.URI == "/f.meta4":
			metalinks++
			continue
		case r.URI != "/"+ngxFileName || r.Method != "GET":
			continue
		}
		start, end, ok := r.Bounds()
		if !ok {
			t.Errorf("a GET of the whole file: %+v", r)
			continue
		}
		if start == 0 && end == 1 {
			continue // the range probe
		}
		fileBytes += r.Body
		if !r.Complete || r.Body != end-start {
			t.Errorf("an answer cut short: %+v", r)
		}
		for i := start / pieceLength; i*pieceLength < end; i++ {
			covered[i] += min(end, (i+1)*pieceLength) - max(start, i*pieceLength)
		}
	}
	if metalinks != 1 {
		t.Errorf("the metalink was fetched %d times, want once", metalinks)
	}
	for i, n := range covered {
		if want := map[bool]int64{true: pieceLength}[slices.Contains(bad, int64(i))]; n != want {
			t.Errorf("piece %d: %d bytes asked for, want %d", i, n, want)
		}
	}
	if fileBytes != 3*pieceLength {
		t.Errorf("nginx sent %d bytes of the file beyond the probe, want %d: three pieces", fileBytes, 3*pieceLength)
	}
	onlyOutput(t, dir, ngxFileName)
}
