package convoy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/convoy-dl/convoy/internal/fsx"
	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/internal/units"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/metalink"
	"github.com/convoy-dl/convoy/segment"
)

// metalinkTimeout bounds the fetch of a Metalink document over HTTP: it is
// small, so a bound on the whole fetch replaces a stall timer.
const metalinkTimeout = 2 * time.Minute

// describedByTimeout bounds the fetch of the Metalink a server names.
const describedByTimeout = 30 * time.Second

// maxDiscovered bounds the mirrors one download takes from a server's
// Link headers and the Metalink they point at.
const maxDiscovered = 16

// metaFile is what a Metalink said of the file a Config downloads.
type metaFile struct {
	source string // the document's path or URL, redacted, for messages
	name   string // the file's name in the document
	size   int64  // -1 when not given
	// pieces are the document's piece hashes, for verification by piece.
	pieces *metalink.Pieces
}

// checkSize says why r cannot be the file m describes: another size.
func (m *metaFile) checkSize(r segment.Remote) error {
	if m == nil || m.size < 0 || r.Size < 0 || r.Size == m.size {
		return nil
	}
	name := m.name
	if name == "" {
		name = "the file"
	}
	return fmt.Errorf("%s serves %s; %s says %s has %s", redact.URL(r.URL), units.FormatExact(r.Size), m.source, name, units.FormatExact(m.size))
}

// names reports whether output is the document's name of the file, whose
// subfolders the download may make.
func (m *metaFile) names(output string) bool {
	return m != nil && m.name != "" && output == m.name
}

// maxPieceCheck bounds the pieces fetched to check a mirror against a
// Metalink's piece hashes: pieces longer than this are not fetched whole
// for a check.
const maxPieceCheck = 4 << 20

// checkPieces fetches the first and the last piece of the file from r and
// checks them against the Metalink's piece hashes; it returns why r does
// not serve them, or "" (also when there is nothing to check, or the
// pieces are too long to fetch for a check).
func (d *download) checkPieces(ctx context.Context, r segment.Remote) string {
	m := d.cfg.meta
	if m == nil || m.pieces == nil || len(m.pieces.Hashes) == 0 || m.pieces.Length > maxPieceCheck || m.size != r.Size {
		return ""
	}
	p := m.pieces
	f := d.newFetcher(r)
	for _, i := range slices.Compact([]int{0, len(p.Hashes) - 1}) {
		off := int64(i) * p.Length
		got, err := f.Sample(ctx, off, min(p.Length, r.Size-off))
		if err != nil {
			return "fetching a piece to check it failed: " + redact.Text(err.Error())
		}
		h, err := merge.NewHash(p.Algo)
		if err != nil {
			return ""
		}
		h.Write(got)
		if !bytes.Equal(h.Sum(nil), p.Hashes[i]) {
			return fmt.Sprintf("its piece %d (bytes %d-%d) does not match the metalink's %s hash", i, off, off+int64(len(got))-1, p.Algo)
		}
	}
	return ""
}

// ErrSeveralFiles reports a Metalink of more than one file given where one
// file is downloaded: Metalinks returns a Config for each.
var ErrSeveralFiles = errors.New("the metalink describes several files")

func errSeveral(n int) error {
	return fmt.Errorf("%w (%d): download them as a batch", ErrSeveralFiles, n)
}

// followMetalink is returned by a probe that found a Metalink document
// where a file was expected: cfg downloads the file it describes.
type followMetalink struct{ cfg Config }

func (f *followMetalink) Error() string { return "the URL is a Metalink: following it" }

// IsMetalinkName reports whether a path or URL names a Metalink document
// by its extension (.meta4, .metalink).
func IsMetalinkName(s string) bool {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		s = u.Path
	}
	ext := strings.ToLower(path.Ext(s))
	return ext == ".meta4" || ext == ".metalink"
}

// isMetalinkType reports whether a Content-Type labels a Metalink.
func isMetalinkType(contentType string) bool {
	t, _, err := mime.ParseMediaType(contentType)
	return err == nil && (t == metalink.MediaType4 || t == metalink.MediaType3)
}

// Metalinks reads cfg.Metalink, a path or an http(s) URL, and returns a
// Config for each file it describes: cfg with the file's addresses as URL
// and Mirrors (those in cfg.MetalinkLocation first, then by priority; those
// that are not http or https are skipped, with a notice), its name as
// Output inside Dir (cfg.Output instead, for a document of one file), its
// strongest hash as Checksum unless cfg gives one, and its size, which the
// servers must serve.
func Metalinks(ctx context.Context, cfg Config) ([]Config, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	client := cfg.Client
	if client == nil {
		client = newClient(cfg)
		defer client.CloseIdleConnections()
	}
	src := cfg.Metalink
	doc, err := readMetalink(ctx, client, cfg.Header, src, src)
	if err != nil {
		return nil, err
	}
	if len(doc.Files) > 1 && (cfg.Output != "" || cfg.Writer != nil) {
		return nil, fmt.Errorf("%w: %s describes %d files: -o names one", ErrUsage, redact.URL(src), len(doc.Files))
	}
	if len(doc.Files) > 1 && cfg.Checksum != "" {
		return nil, fmt.Errorf("%w: %s describes %d files: --checksum is the digest of one (the metalink gives each file's)", ErrUsage, redact.URL(src), len(doc.Files))
	}
	if len(doc.Files) > 1 && len(cfg.Mirrors) > 0 {
		return nil, fmt.Errorf("%w: %s describes %d files: mirrors given besides are mirrors of one (the metalink gives each file's)", ErrUsage, redact.URL(src), len(doc.Files))
	}
	base := cfg
	base.Metalink = ""
	out := make([]Config, 0, len(doc.Files))
	for _, f := range doc.Files {
		c, err := base.forMetalinkFile(f, redact.URL(src), logf, src)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// readMetalink reads and decodes the Metalink at src, a path or an http(s)
// URL, at most metalink.MaxDocument bytes of it. The headers meant for the
// host of original go to src only if it is that host.
func readMetalink(ctx context.Context, client *http.Client, header http.Header, original, src string) (*metalink.Metalink, error) {
	var r io.Reader
	if strings.Contains(src, "://") {
		if err := CheckURL(src); err != nil {
			return nil, fmt.Errorf("%w: metalink %w", ErrUsage, err)
		}
		ctx, cancel := context.WithTimeout(ctx, metalinkTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: metalink %s: %v", ErrUsage, redact.URL(src), err)
		}
		for k, vs := range headersFor(header, original, src) {
			req.Header[k] = vs
		}
		req.Header.Set("Accept", metalink.MediaType4+", "+metalink.MediaType3+";q=0.9, */*;q=0.1")
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetching the metalink: %s", redact.Text(err.Error()))
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, &segment.StatusError{Code: resp.StatusCode, Status: resp.Status, URL: redact.URL(src)}
		}
		r = resp.Body
	} else {
		f, err := os.Open(src)
		if err != nil {
			return nil, fmt.Errorf("%w: metalink: %v", ErrUsage, fsx.Plain(err))
		}
		defer f.Close() // read only
		r = f
	}
	doc, err := metalink.Decode(r)
	if err != nil {
		err = fmt.Errorf("%s: %w", redact.URL(src), err)
		if errors.Is(err, metalink.ErrInvalid) {
			err = fmt.Errorf("%w: %w", ErrUsage, err)
		}
		return nil, err
	}
	return doc, nil
}

// forMetalinkFile is c set up to download f, which the document at source
// (self, unredacted) describes.
func (c Config) forMetalinkFile(f metalink.File, source string, logf func(string, ...any), self string) (Config, error) {
	if len(f.MetaURLs) > 0 {
		logf("%s: ignoring %d metaurl address(es) of %s (torrents and other descriptions are not used)", source, len(f.MetaURLs), f.Name)
	}
	if f.Hash == nil && len(f.UnknownHashes) > 0 && c.Checksum == "" {
		// The document means the file to be verified, and nothing here can.
		return c, fmt.Errorf("%w: %s: %s has only hashes of types convoy does not know (%s), so it cannot be verified; give its digest with --checksum ALGO:HEX (md5, sha1, sha256, sha512)",
			ErrUsage, source, f.Name, strings.Join(f.UnknownHashes, ", "))
	}
	var urls []string
	for _, u := range metalink.Order(f.URLs, c.MetalinkLocation) {
		if err := CheckURL(u.URL); err != nil {
			logf("%s: skipping an address of %s: %v", source, f.Name, err)
			continue
		}
		if u.URL == self {
			logf("%s: skipping %s as an address of %s: it is the metalink itself", source, redact.URL(u.URL), f.Name)
			continue
		}
		if !slices.Contains(urls, u.URL) {
			urls = append(urls, u.URL)
		}
	}
	if len(urls) == 0 {
		return c, fmt.Errorf("%w: %s gives no http or https address for %s", ErrUsage, source, f.Name)
	}
	c.URL = urls[0]
	mirrors := urls[1:]
	for _, m := range c.Mirrors {
		if !slices.Contains(urls, m) {
			mirrors = append(mirrors, m)
		}
	}
	c.Mirrors = mirrors
	if c.Output == "" && c.Writer == nil {
		c.Output = f.Name
	}
	if c.Checksum == "" && c.ChecksumFile == "" && f.Hash != nil {
		c.Checksum = f.Hash.String()
	}
	c.meta = &metaFile{source: source, name: f.Name, size: f.Size, pieces: f.Pieces}
	return c, nil
}

// discover uses what the probe of the primary learned of its mirror
// network, when Config.Discover asks: a Metalink document served where the
// file was expected becomes the download (a followMetalink error); the
// Metalink a Link header points at (rel=describedby) is fetched, once, for
// its hash and addresses; the mirrors Link headers name (rel=duplicate)
// join the mirrors. Each mirror found is said in a notice and a
// mirror-found event; a Metalink that cannot be used is said and ignored.
// A download described by a Metalink follows no other.
func (d *download) discover(ctx context.Context, remote segment.Remote) error {
	if !d.cfg.Discover {
		return nil
	}
	if d.cfg.meta == nil && isMetalinkType(remote.ContentType) {
		return d.follow(ctx, remote)
	}
	links := metalink.ParseLinks(remote.Links)
	var found []metalink.URL
	if d.cfg.meta == nil {
		for _, l := range metalink.DescribedBy(links) {
			u, ok := d.resolveLink(remote, l.URL)
			if !ok {
				continue
			}
			urls, err := d.describedBy(ctx, remote, u)
			if err != nil {
				d.cfg.Logf("not using the metalink %s: %s", redact.URL(u), redact.Text(err.Error()))
			}
			found = append(found, urls...)
			break // one metalink at most
		}
	}
	for _, l := range metalink.Duplicates(links) {
		if u, ok := d.resolveLink(remote, l.URL); ok {
			found = append(found, metalink.URL{URL: u, Priority: l.Pri, Location: l.Geo})
		}
	}
	known := append([]string{d.cfg.URL, remote.URL, remote.FinalURL}, d.cfg.Mirrors...)
	added := 0
	for _, u := range metalink.Order(found, d.cfg.MetalinkLocation) {
		if slices.Contains(known, u.URL) {
			continue
		}
		if len(headersFor(d.cfg.Header, d.first, u.URL)) < len(d.cfg.Header) {
			// Mirrors receive the request headers: those the user gave
			// for one host must not go where a server points.
			d.cfg.Logf("not using mirror %s that the server names: the headers given with -H would go to another host", redact.URL(u.URL))
			continue
		}
		if added == maxDiscovered {
			d.cfg.Logf("the server names more mirrors; using the first %d", maxDiscovered)
			break
		}
		known = append(known, u.URL)
		d.cfg.Mirrors = append(slices.Clip(d.cfg.Mirrors), u.URL)
		added++
		where := ""
		if u.Location != "" {
			where = " (" + u.Location + ")"
		}
		d.cfg.Logf("found mirror %s%s", redact.URL(u.URL), where)
		d.emit(Event{Type: "mirror-found", Mirror: redact.URL(u.URL)})
	}
	return nil
}

// resolveLink resolves a Link target against the URL whose answers
// carried it; ok is false, with a notice, for one that cannot be fetched.
func (d *download) resolveLink(remote segment.Remote, ref string) (string, bool) {
	base, err := url.Parse(remote.URL)
	var u *url.URL
	if err == nil {
		u, err = base.Parse(ref)
	}
	if err == nil {
		err = CheckURL(u.String())
	}
	if err != nil {
		d.cfg.Logf("ignoring a link of the server: %s", redact.Text(err.Error()))
		return "", false
	}
	return u.String(), true
}

// describedBy fetches the Metalink at u that the server's Link header
// points at, and returns the addresses of the file it describes; its
// hash becomes the expected checksum unless one is given. The document
// must describe the file the probe found: the one file, or the file of
// the download's name, of the probed size.
func (d *download) describedBy(ctx context.Context, remote segment.Remote, u string) ([]metalink.URL, error) {
	if u == remote.URL || u == remote.FinalURL || u == d.first {
		return nil, errors.New("it is the file itself")
	}
	// The download waits for it: a server that is slow to send it is not
	// waited for as long as for a document the user named.
	ctx, cancel := context.WithTimeout(ctx, describedByTimeout)
	defer cancel()
	doc, err := readMetalink(ctx, d.client, d.cfg.Header, d.first, u)
	if err != nil {
		return nil, err
	}
	f, err := pickFile(doc, RemoteName(remote.ContentDisposition, d.first), RemoteName("", remote.FinalURL))
	if err != nil {
		return nil, err
	}
	meta := &metaFile{source: redact.URL(u), name: f.Name, size: f.Size, pieces: f.Pieces}
	if err := meta.checkSize(remote); err != nil {
		return nil, err
	}
	if d.cfg.Checksum == "" && d.cfg.ChecksumFile == "" && f.Hash != nil {
		d.cfg.Checksum = f.Hash.String()
		d.cfg.Logf("verifying with the %s hash of the metalink %s", f.Hash.Algo, redact.URL(u))
	}
	meta.name = "" // the output keeps the name it had
	d.cfg.meta = meta
	return f.URLs, nil
}

// pickFile finds the file a download is for in a document: its only file,
// or the one whose base name is one of names.
func pickFile(doc *metalink.Metalink, names ...string) (metalink.File, error) {
	if len(doc.Files) == 1 {
		return doc.Files[0], nil
	}
	for _, f := range doc.Files {
		if slices.Contains(names, path.Base(f.Name)) {
			return f, nil
		}
	}
	return metalink.File{}, fmt.Errorf("it describes %d files, none named %s", len(doc.Files), names[0])
}

// follow handles a URL whose answer is a Metalink document: a document of
// one file becomes the download (a followMetalink error for Download);
// one of several fails with ErrSeveralFiles, for the caller to run as a
// batch.
func (d *download) follow(ctx context.Context, remote segment.Remote) error {
	cfg := d.cfg
	cfg.Metalink = remote.URL
	d.cfg.Logf("%s is a Metalink: downloading the file it describes", redact.URL(remote.URL))
	cfgs, err := Metalinks(ctx, cfg)
	if err != nil {
		return err
	}
	if len(cfgs) != 1 {
		return fmt.Errorf("%s: %w", redact.URL(remote.URL), errSeveral(len(cfgs)))
	}
	return &followMetalink{cfg: cfgs[0]}
}
