package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
)

// testMeta4 writes a Metalink 4 document: for each server, a file of
// that name with its size, its SHA-256 and its address, plus the more
// addresses given (as "URL" or "URL location priority").
func testMeta4(files map[string]*testserver.Server, more map[string][]string) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><metalink xmlns="urn:ietf:params:xml:ns:metalink">`)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		s := files[n]
		fmt.Fprintf(&b, "<file name=%q><size>%d</size><hash type=\"sha-256\">%x</hash>", n, s.Size(), sha256.Sum256(s.Content()))
		for _, u := range append(more[n], s.URL) {
			f := strings.Fields(u)
			if len(f) == 3 {
				fmt.Fprintf(&b, "<url location=%q priority=%q>%s</url>", f[1], f[2], f[0])
			} else {
				fmt.Fprintf(&b, "<url>%s</url>", f[0])
			}
		}
		b.WriteString("</file>")
	}
	b.WriteString("</metalink>")
	return []byte(b.String())
}

// serveMetalink serves doc at /doc and /doc.meta4 with the Metalink 4
// media type.
func serveMetalink(t *testing.T, doc []byte) (plain, meta4 string) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/metalink4+xml")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/doc", ts.URL + "/doc.meta4"
}

// jsonEvents reads --json output into events.
func jsonEvents(t *testing.T, out string) []convoy.Event {
	t.Helper()
	var evs []convoy.Event
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var e convoy.Event
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Type != "" {
			evs = append(evs, e)
		}
	}
	return evs
}

// TestGetMetalinkFile: convoy get FILE.meta4 downloads each file it
// describes, as a batch, into the folders its names give, verified.
func TestGetMetalinkFile(t *testing.T) {
	a := testserver.New(t, testserver.Size(300<<10), testserver.Seed(1))
	b := testserver.New(t, testserver.Size(200<<10), testserver.Seed(2))
	doc := filepath.Join(t.TempDir(), "set.meta4")
	if err := os.WriteFile(doc, testMeta4(map[string]*testserver.Server{"a.bin": a, "sub/b.bin": b}, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	code, out := runCLI(t, "get", "-j", "2", "-d", dir, doc)
	if code != exitOK || !strings.Contains(out, "2 of 2 downloads succeeded") {
		t.Fatalf("exit %d: %s", code, out)
	}
	a.Verify(t, filepath.Join(dir, "a.bin"))
	b.Verify(t, filepath.Join(dir, "sub", "b.bin"))

	// The same document by URL, with --metalink and as the argument.
	_, meta4 := serveMetalink(t, testMeta4(map[string]*testserver.Server{"c.bin": a}, nil))
	for _, args := range [][]string{{"--metalink", meta4}, {meta4}} {
		dir := t.TempDir()
		code, out := runCLI(t, append([]string{"get", "-d", dir}, args...)...)
		if code != exitOK || !strings.Contains(out, "sha256") {
			t.Fatalf("%v: exit %d: %s", args, code, out)
		}
		a.Verify(t, filepath.Join(dir, "c.bin"))
	}
}

// TestGetMetalinkByContentType: a URL that answers with a Metalink of
// several files is run as a batch of them; with --no-discover it is saved
// as it is.
func TestGetMetalinkByContentType(t *testing.T) {
	a := testserver.New(t, testserver.Size(100<<10), testserver.Seed(1))
	b := testserver.New(t, testserver.Size(50<<10), testserver.Seed(2))
	doc := testMeta4(map[string]*testserver.Server{"a.bin": a, "b.bin": b}, nil)
	plain, _ := serveMetalink(t, doc)
	dir := t.TempDir()
	code, out := runCLI(t, "get", "-d", dir, plain)
	if code != exitOK || !strings.Contains(out, "2 of 2 downloads succeeded") {
		t.Fatalf("exit %d: %s", code, out)
	}
	a.Verify(t, filepath.Join(dir, "a.bin"))
	b.Verify(t, filepath.Join(dir, "b.bin"))

	dir = t.TempDir()
	if code, out := runCLI(t, "get", "-q", "--no-discover", "-d", dir, plain); code != exitOK {
		t.Fatalf("--no-discover: exit %d: %s", code, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "doc"))
	if err != nil || string(got) != string(doc) {
		t.Errorf("--no-discover saved %q (%v), want the document itself", got, err)
	}
}

// TestGetMetalinkLocation: --metalink-location puts the servers of those
// countries first: the download is named after (and starts from) the
// first.
func TestGetMetalinkLocation(t *testing.T) {
	us := testserver.New(t, testserver.Size(64<<10))
	fr := testserver.New(t, testserver.Size(64<<10))
	doc := filepath.Join(t.TempDir(), "f.meta4")
	// us has the better priority; fr is listed with location fr.
	if err := os.WriteFile(doc, testMeta4(map[string]*testserver.Server{"f.bin": us}, map[string][]string{"f.bin": {fr.URL + " fr 5"}}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args  []string
		first string
	}{
		{nil, fr.URL}, // no priority on us's url: fr's 5 comes first
		{[]string{"--metalink-location", "us,FR"}, fr.URL},
		{[]string{"--metalink-location", "de, fr"}, fr.URL},
	} {
		dir := t.TempDir()
		code, out := runCLI(t, append(append([]string{"get", "--json", "-d", dir}, tt.args...), doc)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", tt.args, code, out)
		}
		evs := jsonEvents(t, out)
		if len(evs) == 0 || evs[0].URL != tt.first {
			t.Errorf("%v: first event %+v, want the download to start from %s", tt.args, evs, tt.first)
		}
	}
	// With a priority on us's address, it is first unless fr is asked for.
	if err := os.WriteFile(doc, testMeta4(map[string]*testserver.Server{"f.bin": us}, map[string][]string{"f.bin": {us.URL + " us 1", fr.URL + " fr 5"}}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		loc, first string
	}{{"", us.URL}, {"fr", fr.URL}, {"jp", us.URL}} {
		dir := t.TempDir()
		code, out := runCLI(t, "get", "--json", "-d", dir, "--metalink-location", tt.loc, "--metalink", doc)
		if code != exitOK {
			t.Fatalf("%q: exit %d: %s", tt.loc, code, out)
		}
		if evs := jsonEvents(t, out); len(evs) == 0 || evs[0].URL != tt.first {
			t.Errorf("--metalink-location %q: events %+v, want the download to start from %s", tt.loc, evs, tt.first)
		}
	}
}

// TestGetDiscovers: convoy get of a MirrorCache URL finds the mirrors its
// Link headers name (a notice and a mirror-found event each) and verifies
// the file by the Metalink's hash; --no-discover ignores them.
func TestGetDiscovers(t *testing.T) {
	mirrors := []*testserver.Server{testserver.New(t, testserver.Size(1<<20)), testserver.New(t, testserver.Size(1<<20))}
	mc := testserver.NewMirrorCache(t, testserver.MirrorCacheConfig{
		Mirrors: []string{mirrors[0].URL, mirrors[1].URL}, Geo: []string{"de", "fr"}, Content: mirrors[0].Content(),
		Metalink: func(string) []byte {
			return testMeta4(map[string]*testserver.Server{"file.bin": mirrors[0]}, nil)
		},
	})
	dir := t.TempDir()
	code, out := runCLI(t, "get", "--json", "-d", dir, mc.URL)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	mirrors[0].Verify(t, filepath.Join(dir, "file.bin"))
	var found []string
	verified := false
	for _, e := range jsonEvents(t, out) {
		if e.Type == "mirror-found" {
			found = append(found, e.Mirror)
		}
		verified = verified || e.Type == "done" && strings.HasPrefix(e.Checksum, "sha256:")
	}
	if !slices.Equal(found, []string{mirrors[1].URL}) || !strings.Contains(out, "found mirror "+mirrors[1].URL+" (fr)") || !verified {
		t.Errorf("found %v, verified %v; output:\n%s", found, verified, out)
	}
	if mc.MetalinkFetches.Load() != 1 {
		t.Errorf("metalink fetched %d times", mc.MetalinkFetches.Load())
	}

	dir = t.TempDir()
	before := mirrors[1].Stats().Requests
	code, out = runCLI(t, "get", "--json", "--no-discover", "-d", dir, mc.URL)
	if code != exitOK || strings.Contains(out, "mirror-found") || mirrors[1].Stats().Requests != before || mc.MetalinkFetches.Load() != 1 {
		t.Errorf("--no-discover: exit %d, mirror asked %d times; output:\n%s", code, mirrors[1].Stats().Requests-before, out)
	}
}

// TestGetHostileMetalink: a document that would write outside --dir, or is
// built to hurt, is refused with a usage error naming the problem, and
// nothing is written.
func TestGetHostileMetalink(t *testing.T) {
	s := testserver.New(t, testserver.Size(1024))
	file := func(name string) string {
		return fmt.Sprintf(`<file name=%q><size>1024</size><url>%s</url></file>`, name, s.URL)
	}
	wrap := func(inner string) string {
		return `<?xml version="1.0"?><metalink xmlns="urn:ietf:params:xml:ns:metalink">` + inner + `</metalink>`
	}
	tests := []struct {
		name, doc, says string
	}{
		{"dot-dot", wrap(file("../../escape.bin")), "out of the folder"},
		{"absolute", wrap(file("/tmp/escape.bin")), "absolute"},
		{"entities", `<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>` + wrap(file("f&b;")), "DOCTYPE"},
		{"huge", wrap(file("f") + "<!--" + strings.Repeat("x", 5<<20) + "-->"), "larger than"},
		{"many-urls", wrap(`<file name="f">` + strings.Repeat("<url>"+s.URL+"</url>", 10000) + `</file>`), "addresses"},
		{"bad-size", wrap(`<file name="f"><size>-5</size><url>` + s.URL + `</url></file>`), "size"},
		{"piece-length-zero", wrap(`<file name="f"><size>1024</size><pieces length="0" type="sha-1"></pieces><url>` + s.URL + `</url></file>`), "piece length"},
		{"piece-count", wrap(`<file name="f"><size>1024</size><pieces length="512" type="sha-1"><hash>` + strings.Repeat("0", 40) + `</hash></pieces><url>` + s.URL + `</url></file>`), "want 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			doc := filepath.Join(t.TempDir(), "evil.meta4")
			if err := os.WriteFile(doc, []byte(tt.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			before := s.Stats().Requests
			code, out := runCLI(t, "get", "-d", filepath.Join(root, "dl"), doc)
			if code != exitUsage || !strings.Contains(out, tt.says) {
				t.Errorf("exit %d, want %d saying %q: %s", code, exitUsage, tt.says, out)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 || s.Stats().Requests != before {
				t.Errorf("written %v, %d requests", entries, s.Stats().Requests-before)
			}
		})
	}
	// A file with only hash types convoy does not know cannot be verified:
	// a usage error with nothing fetched, unless --checksum gives the digest.
	doc := filepath.Join(t.TempDir(), "unknown.meta4")
	if err := os.WriteFile(doc, []byte(wrap(`<file name="f"><size>1024</size><hash type="tiger">abcd</hash><url>`+s.URL+`</url></file>`)), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	before := s.Stats().Requests
	code, out := runCLI(t, "get", "-d", dir, doc)
	if code != exitUsage || !strings.Contains(out, "does not know (tiger)") || s.Stats().Requests != before {
		t.Errorf("exit %d, %d requests: %s", code, s.Stats().Requests-before, out)
	}
	sum := sha256.Sum256(s.Content())
	code, out = runCLI(t, "get", "-d", dir, "--checksum", "sha256:"+hex.EncodeToString(sum[:]), doc)
	if code != exitOK {
		t.Errorf("with --checksum: exit %d: %s", code, out)
	}
}

// TestInputFileListsMetalink: a line of -i naming a .meta4 stands for the
// files it describes.
func TestInputFileListsMetalink(t *testing.T) {
	a := testserver.New(t, testserver.Size(100<<10), testserver.Seed(1))
	b := testserver.New(t, testserver.Size(80<<10), testserver.Seed(2))
	c := testserver.New(t, testserver.Size(60<<10), testserver.Seed(3))
	_, meta4 := serveMetalink(t, testMeta4(map[string]*testserver.Server{"a.bin": a, "b.bin": b}, nil))
	dir := t.TempDir()
	list := filepath.Join(t.TempDir(), "list.txt")
	if err := os.WriteFile(list, []byte(meta4+"\n"+c.URL+"\n  out=c.bin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runCLI(t, "get", "-q", "-j", "3", "-d", dir, "-i", list)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	for name, s := range map[string]*testserver.Server{"a.bin": a, "b.bin": b, "c.bin": c} {
		s.Verify(t, filepath.Join(dir, name))
	}
}

func TestMetalinkUsage(t *testing.T) {
	s := testserver.New(t, testserver.Size(1024))
	doc := filepath.Join(t.TempDir(), "f.meta4")
	if err := os.WriteFile(doc, testMeta4(map[string]*testserver.Server{"f": s, "g": s}, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	mirrorFile := filepath.Join(t.TempDir(), "mirrors")
	if err := os.WriteFile(mirrorFile, []byte(s.URL+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--metalink", doc, s.URL},
		{"--metalink", doc, "-i", doc},
		{"-o", "one.bin", doc}, // two files
		{"--checksum", "md5:" + strings.Repeat("00", 16), doc},
		{"--mirror-file", mirrorFile, doc},
		{"--metalink", filepath.Join(t.TempDir(), "missing.meta4")},
	} {
		if code, out := runCLI(t, append([]string{"get", "-d", t.TempDir()}, args...)...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, out)
		}
	}
}

// TestGetMetalinkAgain: running the same Metalink again after a success
// finds every file already complete, by its hash, and fetches nothing.
func TestGetMetalinkAgain(t *testing.T) {
	a := testserver.New(t, testserver.Size(100<<10), testserver.Seed(1))
	b := testserver.New(t, testserver.Size(80<<10), testserver.Seed(2))
	doc := filepath.Join(t.TempDir(), "set.meta4")
	if err := os.WriteFile(doc, testMeta4(map[string]*testserver.Server{"a.bin": a, "b/b.bin": b}, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if code, out := runCLI(t, "get", "-q", "-d", dir, doc); code != exitOK {
		t.Fatalf("first run: exit %d: %s", code, out)
	}
	sent := a.Stats().BodyBytes + b.Stats().BodyBytes
	code, out := runCLI(t, "get", "-d", dir, doc)
	if code != exitOK || !strings.Contains(out, "2 of 2 downloads succeeded (2 already complete)") {
		t.Fatalf("second run: exit %d: %s", code, out)
	}
	if more := a.Stats().BodyBytes + b.Stats().BodyBytes - sent; more > 2 {
		t.Errorf("the second run fetched %d bytes", more)
	}
}
