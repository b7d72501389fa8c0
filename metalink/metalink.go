package metalink

import (
	"bytes"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/convoy-dl/convoy/internal/names"
)

// Limits on a document. A Metalink for one large file with piece hashes
// stays well under a MiB; these bounds only stop documents built to hurt.
const (
	// MaxDocument is the most bytes Decode reads; a longer document is an
	// error, found before any parsing.
	MaxDocument = 4 << 20
	// MaxFiles bounds the file elements of a document.
	MaxFiles = 1000
	// MaxURLs bounds the url (and metaurl) elements of one file.
	MaxURLs = 1000
	// MaxSize bounds a file's size: 2^62 bytes.
	MaxSize = 1 << 62
	// LowestPriority is the priority of an address that states none: the
	// last to be tried (RFC 5854 priorities run from 1, the first, to
	// 999999).
	LowestPriority = 999999
)

// Namespaces of the two versions.
const (
	NS4 = "urn:ietf:params:xml:ns:metalink"
	NS3 = "http://www.metalinker.org/"
)

// Media types of the two versions, as servers label them.
const (
	MediaType4 = "application/metalink4+xml"
	MediaType3 = "application/metalink+xml"
)

// ErrInvalid marks every error about the document itself.
var ErrInvalid = errors.New("invalid metalink")

// Metalink is a decoded document: the files it describes, in its order.
type Metalink struct {
	// Version is 4 (RFC 5854) or 3 (metalinker.org 3.0).
	Version int
	Files   []File
}

// File is one file of a document.
type File struct {
	// Name is the file's name, relative to the download's folder; it may
	// name subfolders, never a way out (checked as names.CheckRelative).
	Name string
	// Size in bytes, -1 when the document does not say.
	Size int64
	// Hash is the strongest whole-file hash of a known type (sha-512, then
	// sha-256, sha-1, md5), nil when there is none.
	Hash *Hash
	// UnknownHashes lists the hash types the document gives that Decode
	// does not know, so that the caller can say why a file has no Hash.
	UnknownHashes []string
	// Pieces are the hashes of consecutive pieces of the file, of the
	// strongest known type given; nil when none are.
	Pieces *Pieces
	// URLs are the file's addresses in document order; sort them with
	// Order.
	URLs []URL
	// MetaURLs are addresses of other descriptions of the file, such as
	// torrents, which convoy does not use.
	MetaURLs []MetaURL
}

// Hash is a whole-file digest. Algo is "md5", "sha1", "sha256" or "sha512",
// the spelling the merge package uses.
type Hash struct {
	Algo string
	Sum  []byte
}

// String is the hash as "ALGO:HEX".
func (h Hash) String() string { return h.Algo + ":" + hex.EncodeToString(h.Sum) }

// Pieces are the digests of the file's pieces: piece i covers bytes
// [i*Length, min((i+1)*Length, size)). There are exactly ceil(size/Length)
// of them.
type Pieces struct {
	Algo   string
	Length int64
	Hashes [][]byte
}

// URL is one address of a file.
type URL struct {
	URL string
	// Priority runs from 1 (try first) to LowestPriority.
	Priority int
	// Location is the lower-case ISO 3166-1 country code of the server,
	// "" when not given.
	Location string
}

// MetaURL is an address of another description of the file.
type MetaURL struct {
	URL       string
	MediaType string // "torrent", say
}

// algoRank orders the hash types Decode knows, weakest first, under the
// names of the IANA registry (RFC 5854) and of Metalink 3.
var algoRank = map[string]struct {
	algo string
	rank int
	size int
}{
	"md5":     {"md5", 1, 16},
	"sha-1":   {"sha1", 2, 20},
	"sha1":    {"sha1", 2, 20},
	"sha-256": {"sha256", 3, 32},
	"sha256":  {"sha256", 3, 32},
	"sha-512": {"sha512", 4, 64},
	"sha512":  {"sha512", 4, 64},
}

// The XML shapes of both versions. Metalink 4 puts hash, pieces and url
// directly in file; Metalink 3 puts them under verification and
// resources, and its files under files.
type xmlDoc struct {
	XMLName xml.Name
	Files4  []xmlFile `xml:"file"`
	Files3  []xmlFile `xml:"files>file"`
}

type xmlFile struct {
	Name     string       `xml:"name,attr"`
	Sizes    []string     `xml:"size"`
	Hashes   []xmlHash    `xml:"hash"`
	Pieces   []xmlPieces  `xml:"pieces"`
	URLs     []xmlURL     `xml:"url"`
	MetaURLs []xmlMetaURL `xml:"metaurl"`
	VHashes  []xmlHash    `xml:"verification>hash"`
	VPieces  []xmlPieces  `xml:"verification>pieces"`
	RURLs    []xmlURL     `xml:"resources>url"`
}

type xmlHash struct {
	Type  string `xml:"type,attr"`
	Piece string `xml:"piece,attr"`
	Value string `xml:",chardata"`
}

type xmlPieces struct {
	Type   string    `xml:"type,attr"`
	Length string    `xml:"length,attr"`
	Hashes []xmlHash `xml:"hash"`
}

type xmlURL struct {
	Location   string `xml:"location,attr"`
	Priority   string `xml:"priority,attr"`   // Metalink 4: 1 first
	Preference string `xml:"preference,attr"` // Metalink 3: 100 first
	Type       string `xml:"type,attr"`       // Metalink 3: http, ftp, bittorrent, ...
	Value      string `xml:",chardata"`
}

type xmlMetaURL struct {
	MediaType string `xml:"mediatype,attr"`
	Value     string `xml:",chardata"`
}

// Decode reads a Metalink 4 or Metalink 3 document from r and checks it
// whole: at most MaxDocument bytes, no DOCTYPE or entity declaration, at
// most MaxFiles files of distinct names, each name relative and inside the
// folder, sizes from 0 to MaxSize, hashes of their type's length, piece
// lists that cover the size exactly, at most MaxURLs addresses a file.
// Every error wraps ErrInvalid except the reader's own.
func Decode(r io.Reader) (*Metalink, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDocument+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxDocument {
		return nil, invalid("the document is larger than %d bytes", MaxDocument)
	}
	if err := refuseDeclarations(data); err != nil {
		return nil, err
	}
	var doc xmlDoc
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.CharsetReader = refuseCharset
	if err := dec.Decode(&doc); err != nil {
		return nil, invalid("%v", err)
	}
	m := &Metalink{}
	switch {
	case doc.XMLName.Local != "metalink":
		return nil, invalid("the document is a <%s>, not a <metalink>", doc.XMLName.Local)
	case doc.XMLName.Space == NS4:
		m.Version = 4
	case doc.XMLName.Space == NS3:
		m.Version = 3
	default:
		return nil, invalid("unknown namespace %q (want %s or %s)", doc.XMLName.Space, NS4, NS3)
	}
	files := doc.Files4
	if m.Version == 3 {
		files = doc.Files3
	}
	switch {
	case len(files) == 0:
		return nil, invalid("it describes no file")
	case len(files) > MaxFiles:
		return nil, invalid("it describes %d files; at most %d are accepted", len(files), MaxFiles)
	}
	seen := map[string]bool{}
	for i, xf := range files {
		f, err := decodeFile(xf, m.Version)
		if err != nil {
			if f.Name != "" {
				return nil, invalid("file %d (%q): %v", i+1, f.Name, err)
			}
			return nil, invalid("file %d: %v", i+1, err)
		}
		if seen[f.Name] {
			return nil, invalid("two files are named %q", f.Name)
		}
		seen[f.Name] = true
		m.Files = append(m.Files, f)
	}
	return m, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// refuseDeclarations fails on any directive (<!DOCTYPE, <!ENTITY, ...):
// a Metalink needs none, and entity definitions are how documents grow a
// thousandfold when read. Nothing is expanded by encoding/xml anyway; this
// refuses them before anyone has to think about it.
func refuseDeclarations(data []byte) error {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.CharsetReader = refuseCharset
	for {
		tok, err := dec.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return invalid("%v", err)
		}
		if d, ok := tok.(xml.Directive); ok {
			word, _, _ := strings.Cut(strings.TrimSpace(string(d)), " ")
			return invalid("it holds a <!%s declaration; a Metalink needs none", word)
		}
	}
}

// refuseCharset refuses every encoding but UTF-8 (which encoding/xml reads
// itself; US-ASCII is a subset of it).
func refuseCharset(charset string, r io.Reader) (io.Reader, error) {
	if strings.EqualFold(charset, "us-ascii") || strings.EqualFold(charset, "ascii") {
		return r, nil
	}
	return nil, fmt.Errorf("encoding %q: only UTF-8 is read", charset)
}

func decodeFile(xf xmlFile, version int) (File, error) {
	f := File{Size: -1}
	name := strings.TrimSpace(xf.Name)
	if err := names.CheckRelative(name); err != nil {
		return f, fmt.Errorf("file name: %v", err)
	}
	f.Name = name
	if n := len(xf.Sizes); n > 1 {
		return f, fmt.Errorf("%d size elements", n)
	} else if n == 1 {
		size, err := strconv.ParseInt(strings.TrimSpace(xf.Sizes[0]), 10, 64)
		if err != nil || size < 0 || size >= MaxSize {
			return f, fmt.Errorf("size %q is not a number of bytes from 0 to 2^62", strings.TrimSpace(xf.Sizes[0]))
		}
		f.Size = size
	}
	hashes, pieces, urls := xf.Hashes, xf.Pieces, xf.URLs
	if version == 3 {
		hashes, pieces, urls = xf.VHashes, xf.VPieces, xf.RURLs
	}
	var err error
	if f.Hash, f.UnknownHashes, err = strongestHash(hashes); err != nil {
		return f, err
	}
	if f.Pieces, err = strongestPieces(pieces, f.Size); err != nil {
		return f, err
	}
	if len(urls)+len(xf.MetaURLs) > MaxURLs {
		return f, fmt.Errorf("%d addresses; at most %d are accepted", len(urls)+len(xf.MetaURLs), MaxURLs)
	}
	for _, u := range xf.MetaURLs {
		if v := strings.TrimSpace(u.Value); v != "" {
			f.MetaURLs = append(f.MetaURLs, MetaURL{URL: v, MediaType: strings.TrimSpace(u.MediaType)})
		}
	}
	for _, u := range urls {
		v := strings.TrimSpace(u.Value)
		if v == "" {
			continue
		}
		if version == 3 && strings.EqualFold(strings.TrimSpace(u.Type), "bittorrent") {
			f.MetaURLs = append(f.MetaURLs, MetaURL{URL: v, MediaType: "torrent"})
			continue
		}
		f.URLs = append(f.URLs, URL{URL: v, Priority: priority(u, version), Location: strings.ToLower(strings.TrimSpace(u.Location))})
	}
	if len(f.URLs) == 0 && len(f.MetaURLs) == 0 {
		return f, fmt.Errorf("no address")
	}
	return f, nil
}

// priority reads a url's place in the order: Metalink 4's priority (1
// first), or Metalink 3's preference (100 first) mapped onto it. An
// address with none, or one out of range, comes last.
func priority(u xmlURL, version int) int {
	if version == 3 {
		p, err := strconv.Atoi(strings.TrimSpace(u.Preference))
		if err != nil || p < 1 || p > 100 {
			return LowestPriority
		}
		return 101 - p
	}
	p, err := strconv.Atoi(strings.TrimSpace(u.Priority))
	if err != nil || p < 1 || p > LowestPriority {
		return LowestPriority
	}
	return p
}

// parseDigest reads a hex digest of a known type; ok is false for an
// unknown type.
func parseDigest(typ, value string) (algo string, sum []byte, ok bool, err error) {
	a, known := algoRank[strings.ToLower(strings.TrimSpace(typ))]
	if !known {
		return "", nil, false, nil
	}
	value = strings.TrimSpace(value)
	sum, err = hex.DecodeString(value)
	if err != nil || len(sum) != a.size {
		return "", nil, true, fmt.Errorf("%s hash %q is not %d hexadecimal digits", typ, cut(value, 80), 2*a.size)
	}
	return a.algo, sum, true, nil
}

// strongestHash picks the strongest hash of a known type; a malformed one
// of a known type is an error, one of an unknown type is listed.
func strongestHash(hashes []xmlHash) (*Hash, []string, error) {
	var best *Hash
	var unknown []string
	for _, h := range hashes {
		algo, sum, ok, err := parseDigest(h.Type, h.Value)
		switch {
		case err != nil:
			return nil, nil, err
		case !ok:
			if len(unknown) < 8 {
				unknown = append(unknown, cut(strings.TrimSpace(h.Type), 40))
			}
			continue
		}
		if best == nil || rankOf(algo) > rankOf(best.Algo) {
			best = &Hash{Algo: algo, Sum: sum}
		}
	}
	return best, unknown, nil
}

func rankOf(algo string) int { return algoRank[algo].rank }

// strongestPieces checks every pieces element of a known type and keeps
// the strongest. Pieces need the file's size, a length above zero and
// exactly ceil(size/length) hashes.
func strongestPieces(list []xmlPieces, size int64) (*Pieces, error) {
	var best *Pieces
	for _, xp := range list {
		if _, known := algoRank[strings.ToLower(strings.TrimSpace(xp.Type))]; !known {
			continue
		}
		length, err := strconv.ParseInt(strings.TrimSpace(xp.Length), 10, 64)
		if err != nil || length <= 0 || length >= MaxSize {
			return nil, fmt.Errorf("piece length %q is not a number of bytes above zero", cut(strings.TrimSpace(xp.Length), 40))
		}
		if size < 0 {
			return nil, fmt.Errorf("piece hashes without the file's size")
		}
		want := int64(0)
		if size > 0 {
			want = (size-1)/length + 1
		}
		if int64(len(xp.Hashes)) != want {
			return nil, fmt.Errorf("%d piece hashes of %d bytes for %d bytes; want %d", len(xp.Hashes), length, size, want)
		}
		p := &Pieces{Length: length, Hashes: make([][]byte, len(xp.Hashes))}
		for i, h := range xp.Hashes {
			if s := strings.TrimSpace(h.Piece); s != "" && s != strconv.Itoa(i) {
				return nil, fmt.Errorf("piece hash %d is numbered %q", i, cut(s, 40))
			}
			algo, sum, _, err := parseDigest(xp.Type, h.Value)
			if err != nil {
				return nil, fmt.Errorf("piece %d: %v", i, err)
			}
			p.Algo, p.Hashes[i] = algo, sum
		}
		if p.Algo == "" {
			p.Algo = algoRank[strings.ToLower(strings.TrimSpace(xp.Type))].algo
		}
		if best == nil || rankOf(p.Algo) > rankOf(best.Algo) {
			best = p
		}
	}
	return best, nil
}

// cut shortens s for an error message.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
