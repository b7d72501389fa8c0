package metalink

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

const (
	sha256Hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	sha1Hex   = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
	md5Hex    = "5d41402abc4b2a76b9719d911017c592"
	sha512Hex = "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043"
)

// doc4 wraps file elements in a Metalink 4 document.
func doc4(files ...string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<metalink xmlns="urn:ietf:params:xml:ns:metalink">
  <published>2026-01-01T00:00:00Z</published>
` + strings.Join(files, "\n") + `
</metalink>`
}

// file4 is a file element with the given inner elements.
func file4(name string, inner ...string) string {
	return fmt.Sprintf("<file name=%q>\n%s\n</file>", name, strings.Join(inner, "\n"))
}

const example4 = `<?xml version="1.0" encoding="UTF-8"?>
<metalink xmlns="urn:ietf:params:xml:ns:metalink">
  <generator>MirrorCache</generator>
  <file name="openSUSE-Tumbleweed-DVD-x86_64-Current.iso">
    <size>10</size>
    <hash type="md5">` + md5Hex + `</hash>
    <hash type="sha-256">` + sha256Hex + `</hash>
    <hash type="sha-1">` + sha1Hex + `</hash>
    <pieces length="4" type="sha-1">
      <hash>` + sha1Hex + `</hash>
      <hash>` + sha1Hex + `</hash>
      <hash>` + sha1Hex + `</hash>
    </pieces>
    <url location="us" priority="2">http://us.example.org/tw.iso</url>
    <url location="de" priority="1">https://de.example.org/tw.iso</url>
    <url>http://any.example.org/tw.iso</url>
    <metaurl mediatype="torrent" priority="1">http://example.org/tw.iso.torrent</metaurl>
  </file>
</metalink>`

const example3 = `<?xml version="1.0" encoding="utf-8"?>
<metalink version="3.0" xmlns="http://www.metalinker.org/">
  <files>
    <file name="fedora/Fedora.iso">
      <size>5</size>
      <verification>
        <hash type="md5">` + md5Hex + `</hash>
        <hash type="sha1">` + sha1Hex + `</hash>
        <pieces length="3" type="sha1">
          <hash piece="0">` + sha1Hex + `</hash>
          <hash piece="1">` + sha1Hex + `</hash>
        </pieces>
      </verification>
      <resources>
        <url type="http" location="fr" preference="100">http://fr.example.org/f.iso</url>
        <url type="http" location="jp" preference="90">http://jp.example.org/f.iso</url>
        <url type="bittorrent" preference="100">http://example.org/f.torrent</url>
      </resources>
    </file>
  </files>
</metalink>`

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestDecodeMetalink4(t *testing.T) {
	m, err := Decode(strings.NewReader(example4))
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 4 || len(m.Files) != 1 {
		t.Fatalf("version %d, %d files; want 4, 1", m.Version, len(m.Files))
	}
	f := m.Files[0]
	if f.Name != "openSUSE-Tumbleweed-DVD-x86_64-Current.iso" || f.Size != 10 {
		t.Errorf("name %q size %d", f.Name, f.Size)
	}
	if f.Hash == nil || f.Hash.Algo != "sha256" || !bytes.Equal(f.Hash.Sum, mustHex(sha256Hex)) {
		t.Errorf("hash %v, want the sha-256 one (the strongest given)", f.Hash)
	}
	if f.Pieces == nil || f.Pieces.Algo != "sha1" || f.Pieces.Length != 4 || len(f.Pieces.Hashes) != 3 || !bytes.Equal(f.Pieces.Hashes[2], mustHex(sha1Hex)) {
		t.Errorf("pieces %+v", f.Pieces)
	}
	want := []URL{
		{"http://us.example.org/tw.iso", 2, "us"},
		{"https://de.example.org/tw.iso", 1, "de"},
		{"http://any.example.org/tw.iso", LowestPriority, ""},
	}
	if fmt.Sprint(f.URLs) != fmt.Sprint(want) {
		t.Errorf("urls %v, want %v", f.URLs, want)
	}
	if len(f.MetaURLs) != 1 || f.MetaURLs[0].MediaType != "torrent" {
		t.Errorf("metaurls %v", f.MetaURLs)
	}
}

func TestDecodeMetalink3(t *testing.T) {
	m, err := Decode(strings.NewReader(example3))
	if err != nil {
		t.Fatal(err)
	}
	f := m.Files[0]
	if m.Version != 3 || f.Name != "fedora/Fedora.iso" || f.Size != 5 {
		t.Fatalf("version %d name %q size %d", m.Version, f.Name, f.Size)
	}
	if f.Hash == nil || f.Hash.Algo != "sha1" {
		t.Errorf("hash %v, want sha1", f.Hash)
	}
	if f.Pieces == nil || len(f.Pieces.Hashes) != 2 || f.Pieces.Length != 3 {
		t.Errorf("pieces %+v", f.Pieces)
	}
	// preference 100 is the first choice: priority 1.
	want := []URL{{"http://fr.example.org/f.iso", 1, "fr"}, {"http://jp.example.org/f.iso", 11, "jp"}}
	if fmt.Sprint(f.URLs) != fmt.Sprint(want) {
		t.Errorf("urls %v, want %v", f.URLs, want)
	}
	if len(f.MetaURLs) != 1 || f.MetaURLs[0].URL != "http://example.org/f.torrent" {
		t.Errorf("the bittorrent url should be a metaurl: %v", f.MetaURLs)
	}
}

func TestStrongestHash(t *testing.T) {
	tests := []struct {
		name    string
		hashes  []string // type=value
		want    string   // algo, "" for none
		unknown int
	}{
		{"md5-only", []string{"md5=" + md5Hex}, "md5", 0},
		{"md5-sha1", []string{"md5=" + md5Hex, "sha-1=" + sha1Hex}, "sha1", 0},
		{"sha512-first", []string{"sha-512=" + sha512Hex, "sha-256=" + sha256Hex, "md5=" + md5Hex}, "sha512", 0},
		{"sha256-last", []string{"md5=" + md5Hex, "sha-1=" + sha1Hex, "sha-256=" + sha256Hex}, "sha256", 0},
		{"unknown-only", []string{"tiger=abcd", "sha3-256=" + sha256Hex}, "", 2},
		{"unknown-and-md5", []string{"crc32=1234", "md5=" + md5Hex}, "md5", 1},
		{"upper-case-type-and-hex", []string{"SHA-256=" + strings.ToUpper(sha256Hex)}, "sha256", 0},
		{"none", nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var inner []string
			for _, h := range tt.hashes {
				typ, v, _ := strings.Cut(h, "=")
				inner = append(inner, fmt.Sprintf("<hash type=%q>%s</hash>", typ, v))
			}
			inner = append(inner, "<url>http://h/f</url>")
			m, err := Decode(strings.NewReader(doc4(file4("f", inner...))))
			if err != nil {
				t.Fatal(err)
			}
			f := m.Files[0]
			got := ""
			if f.Hash != nil {
				got = f.Hash.Algo
			}
			if got != tt.want || len(f.UnknownHashes) != tt.unknown {
				t.Errorf("hash %q, unknown %v; want %q and %d unknown", got, f.UnknownHashes, tt.want, tt.unknown)
			}
		})
	}
}

func TestDecodeSeveralFiles(t *testing.T) {
	m, err := Decode(strings.NewReader(doc4(
		file4("a.bin", "<size>1</size>", "<url>http://h/a</url>"),
		file4("sub/b.bin", "<url>http://h/b</url>"),
	)))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 2 || m.Files[0].Name != "a.bin" || m.Files[1].Name != "sub/b.bin" || m.Files[1].Size != -1 {
		t.Fatalf("files %+v", m.Files)
	}
}

// TestDecodeRefuses: documents built to hurt, or broken, each refused with
// an error that says why.
func TestDecodeRefuses(t *testing.T) {
	u := "<url>http://h/f</url>"
	manyURLs := strings.Repeat(u, 10000)
	manyFiles := ""
	for i := range MaxFiles + 1 {
		manyFiles += file4(fmt.Sprintf("f%d", i), u)
	}
	pieces := func(length string, n int) string {
		return fmt.Sprintf(`<pieces length=%q type="sha-1">%s</pieces>`, length, strings.Repeat("<hash>"+sha1Hex+"</hash>", n))
	}
	tests := []struct {
		name, doc, says string
	}{
		{"dot-dot", doc4(file4("../escape", u)), "out of the folder"},
		{"dot-dot-inside", doc4(file4("a/../../escape", u)), "out of the folder"},
		{"absolute", doc4(file4("/etc/passwd", u)), "absolute"},
		{"device", doc4(file4("NUL", u)), "device"},
		{"backslash", doc4(file4(`..\escape`, u)), "backslash"},
		{"no-name", doc4(file4("", u)), "empty name"},
		{"doctype", `<?xml version="1.0"?><!DOCTYPE metalink [<!ENTITY a "aaaaaaaaaa">]>` + doc4(file4("f", u))[len(`<?xml version="1.0" encoding="UTF-8"?>`):], "DOCTYPE"},
		{"entity-use", doc4(file4("f&x;", u)), "entity"},
		{"ten-thousand-urls", doc4(file4("f", manyURLs)), "addresses"},
		{"too-many-files", doc4(manyFiles), "files"},
		{"negative-size", doc4(file4("f", "<size>-1</size>", u)), "size"},
		{"absurd-size", doc4(file4("f", "<size>99999999999999999999</size>", u)), "size"},
		{"size-2^62", doc4(file4("f", "<size>4611686018427387904</size>", u)), "size"},
		{"two-sizes", doc4(file4("f", "<size>1</size><size>2</size>", u)), "size"},
		{"piece-length-zero", doc4(file4("f", "<size>10</size>", pieces("0", 0), u)), "piece length"},
		{"piece-length-negative", doc4(file4("f", "<size>10</size>", pieces("-4", 3), u)), "piece length"},
		{"too-few-pieces", doc4(file4("f", "<size>10</size>", pieces("4", 2), u)), "want 3"},
		{"too-many-pieces", doc4(file4("f", "<size>10</size>", pieces("4", 4), u)), "want 3"},
		{"pieces-without-size", doc4(file4("f", pieces("4", 1), u)), "size"},
		{"bad-piece-hash", doc4(file4("f", "<size>4</size>", `<pieces length="4" type="sha-1"><hash>xyz</hash></pieces>`, u)), "piece 0"},
		{"short-hash", doc4(file4("f", `<hash type="sha-256">abcd</hash>`, u)), "hexadecimal"},
		{"no-address", doc4(file4("f", "<size>1</size>")), "no address"},
		{"same-name-twice", doc4(file4("f", u), file4("f", u)), "two files"},
		{"no-files", doc4(), "no file"},
		{"wrong-namespace", `<metalink xmlns="urn:example">` + file4("f", u) + `</metalink>`, "namespace"},
		{"not-metalink", `<feed xmlns="urn:ietf:params:xml:ns:metalink"/>`, "not a <metalink>"},
		{"not-xml", "\x7fELF\x02\x01\x01", "invalid metalink"},
		{"truncated", doc4(file4("f", u))[:100], "invalid metalink"},
		{"latin1", `<?xml version="1.0" encoding="ISO-8859-1"?>` + doc4(file4("f", u))[len(`<?xml version="1.0" encoding="UTF-8"?>`):], "UTF-8"},
		{"empty", "", "invalid metalink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(strings.NewReader(tt.doc))
			if err == nil {
				t.Fatalf("Decode accepted it: %+v", m)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q, want ErrInvalid saying %q", err, tt.says)
			}
			if m != nil {
				t.Error("a document came back with the error")
			}
		})
	}
}

// countingReader is an endless document that counts the bytes read from it.
type countingReader struct{ n int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	r.n += int64(len(p))
	return len(p), nil
}

// TestDecodeStopsAtTheSizeLimit: a document of 100 MB (here endless) is
// refused after MaxDocument bytes, before parsing.
func TestDecodeStopsAtTheSizeLimit(t *testing.T) {
	r := &countingReader{}
	_, err := Decode(io.MultiReader(strings.NewReader(`<metalink xmlns="`+NS4+`">`), io.LimitReader(r, 100<<20)))
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("error %v, want a size error", err)
	}
	if r.n > MaxDocument+64<<10 {
		t.Errorf("read %d bytes of the document; the limit is %d", r.n, MaxDocument)
	}
	// Just under the limit, padding and all, a document is read.
	doc := doc4(file4("f", "<url>http://h/f</url>"))
	doc += strings.Repeat(" ", MaxDocument-len(doc))
	if _, err := Decode(strings.NewReader(doc)); err != nil {
		t.Errorf("a document of exactly MaxDocument bytes: %v", err)
	}
}

func TestDecodeReaderError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Decode(io.MultiReader(strings.NewReader("<metalink"), errReader{boom}))
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want the reader's", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestPieceCountAtTheEdges(t *testing.T) {
	tests := []struct {
		size, length int64
		n            int
		ok           bool
	}{
		{0, 4, 0, true},
		{1, 4, 1, true},
		{4, 4, 1, true},
		{5, 4, 2, true},
		{8, 4, 2, true},
		{8, 4, 3, false},
		{1 << 40, 1 << 62 >> 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("size=%d,length=%d,n=%d", tt.size, tt.length, tt.n), func(t *testing.T) {
			doc := doc4(file4("f", fmt.Sprintf("<size>%d</size>", tt.size),
				fmt.Sprintf(`<pieces length="%d" type="sha-1">%s</pieces>`, tt.length, strings.Repeat("<hash>"+sha1Hex+"</hash>", tt.n)),
				"<url>http://h/f</url>"))
			_, err := Decode(strings.NewReader(doc))
			if (err == nil) != tt.ok {
				t.Errorf("error %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestOrder(t *testing.T) {
	urls := []URL{
		{"http://us2/", 2, "us"},
		{"http://fr5/", 5, "fr"},
		{"http://de9/", 9, "de"},
		{"http://any1/", 1, ""},
		{"http://de3/", 3, "de"},
	}
	names := func(us []URL) string {
		var s []string
		for _, u := range us {
			s = append(s, u.URL[7:len(u.URL)-1])
		}
		return strings.Join(s, " ")
	}
	for _, tt := range []struct {
		locations []string
		want      string
	}{
		{nil, "any1 us2 de3 fr5 de9"},
		{[]string{"de"}, "de3 de9 any1 us2 fr5"},
		{[]string{"FR", "de"}, "fr5 de3 de9 any1 us2"},
		{[]string{"jp"}, "any1 us2 de3 fr5 de9"},
	} {
		if got := names(Order(urls, tt.locations)); got != tt.want {
			t.Errorf("Order(%v) = %s, want %s", tt.locations, got, tt.want)
		}
	}
	if names(urls) != "us2 fr5 de9 any1 de3" {
		t.Error("Order changed its argument")
	}
}
