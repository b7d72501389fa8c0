package convoy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/convoy-dl/convoy/internal/fsx"
	"github.com/convoy-dl/convoy/internal/names"
	"github.com/convoy-dl/convoy/internal/units"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// outputPaths decides where the file goes. A name from the server is
// sanitised to one path element inside cfg.Dir.
func (d *download) outputPaths(r segment.Remote) (files, error) {
	out := d.cfg.Output
	if out == "" {
		// Named after the first URL given, whichever answered, so that a
		// resume finds the same part file when that URL is down.
		out = RemoteName(r.ContentDisposition, d.first)
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(d.cfg.Dir, out)
	}
	dir := filepath.Dir(out)
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) && (filepath.Clean(dir) == filepath.Clean(d.cfg.Dir) || d.cfg.meta.names(d.cfg.Output)) {
		// The folder asked for (-d) is made, as wget -P and aria2c -d do,
		// and the subfolders a Metalink's file name has in it; each is
		// made durable.
		if err := fsx.MkdirAll(dir, 0o755); err != nil {
			return files{}, describeFileError(err, dir)
		}
		st, err = os.Stat(dir)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return files{}, fmt.Errorf("folder %s does not exist", dir)
	case err != nil:
		return files{}, err
	case !st.IsDir():
		return files{}, fmt.Errorf("%s is not a folder", dir)
	}
	return files{out: out, part: out + PartSuffix, manifest: out + ManifestSuffix}, nil
}

// resuming reports whether a manifest of an earlier run waits at the
// output this download will most likely use (the name a server sends in
// Content-Disposition is not known before the probe).
func (d *download) resuming() bool {
	out := d.cfg.Output
	if out == "" {
		out = RemoteName("", d.first)
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(d.cfg.Dir, out)
	}
	_, err := os.Stat(out + ManifestSuffix)
	return err == nil
}

// checkExisting handles an output that is already there: a folder is an
// error; a file left by a run that crashed after its rename is finished
// here; a file that is the server's file still (see sameAsRemote) is
// already complete; any other file needs Overwrite, and the error says what
// it is.
func (d *download) checkExisting(ctx context.Context, remote segment.Remote, f files) (done bool, res Result, err error) {
	st, err := os.Lstat(f.out) // a symbolic link, even one to nothing, is there
	if err == nil && st.Mode()&fs.ModeSymlink != 0 {
		if target, serr := os.Stat(f.out); serr == nil {
			st = target
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, Result{}, nil
	}
	if err != nil {
		return false, Result{}, err
	}
	if st.IsDir() {
		return false, Result{}, fmt.Errorf("output %s is a folder (to save into it, give it as the folder: -d %s)", f.out, f.out)
	}
	if _, perr := os.Stat(f.part); errors.Is(perr, fs.ErrNotExist) {
		if m, merr := manifest.Load(f.manifest); merr == nil && m.Complete() && m.Size == st.Size() {
			if err := manifest.Remove(f.manifest); err != nil {
				return false, Result{}, err
			}
			return true, Result{Path: f.out, Size: st.Size(), Resumed: st.Size(), AlreadyComplete: true}, nil
		}
	}
	if d.cfg.Overwrite {
		return false, Result{}, nil
	}
	if !st.Mode().IsRegular() {
		return false, Result{}, fmt.Errorf("%w: %s is not a regular file (use --overwrite to replace it)", ErrExists, f.out)
	}
	same, why, err := d.sameAsRemote(ctx, remote, f.out, st)
	switch {
	case err != nil:
		return false, Result{}, err
	case same:
		return true, Result{Path: f.out, Size: st.Size(), Resumed: st.Size(), AlreadyComplete: true}, nil
	}
	return false, Result{}, fmt.Errorf("%w: %s %s (use --overwrite to replace it)", ErrExists, f.out, why)
}

// xattrETag names the extended attribute in which a saved file keeps the
// ETag it was downloaded under, where the file system has them.
const xattrETag = "user.convoy.etag"

// labelETag records etag on the file at path, for sameAsRemote. It is a
// hint, not a record the download depends on: a file system without
// extended attributes leaves the modification time to tell.
func labelETag(path, etag string) {
	if etag == "" {
		return
	}
	_ = unix.Setxattr(path, xattrETag, []byte(etag), 0) // best effort, as said
}

// savedETag is the ETag labelETag recorded on path, or "".
func savedETag(path string) string {
	buf := make([]byte, 1024)
	n, err := unix.Getxattr(path, xattrETag, buf)
	if err != nil || n <= 0 {
		return ""
	}
	return string(buf[:n])
}

// sameAsRemote tells whether the existing file at path, described by st, is
// the server's file as it is now, and if not, why: another size; with a
// known checksum, another digest; else another ETag than the one it was
// saved under, or another modification time than the server's
// Last-Modified (which convoy gives the files it saves); or nothing to tell.
func (d *download) sameAsRemote(ctx context.Context, remote segment.Remote, path string, st fs.FileInfo) (bool, string, error) {
	if remote.Size >= 0 && st.Size() != remote.Size {
		return false, fmt.Sprintf("exists with %s; the server's file has %s, so it is another file", units.FormatExact(st.Size()), units.FormatExact(remote.Size)), nil
	}
	want, err := d.expectedChecksum(ctx, remote, path)
	if err != nil {
		return false, "", err
	}
	if want != nil && want.Sum != nil {
		ok, err := fileHasChecksum(path, *want)
		switch {
		case err != nil:
			return false, "", describeFileError(err, path)
		case !ok:
			return false, fmt.Sprintf("exists, and its %s digest is not the expected one: another version of the file", want.Algo), nil
		}
		return true, "", nil
	}
	if remote.Size < 0 {
		return false, "exists, and nothing tells whether it is the server's file (the server states no size, and no checksum is known)", nil
	}
	if saved := savedETag(path); saved != "" && remote.ETag != "" {
		if saved == remote.ETag {
			return true, "", nil
		}
		return false, fmt.Sprintf("exists, saved under ETag %s; the server now sends %s, so it is another version", saved, remote.ETag), nil
	}
	if lm, err := http.ParseTime(remote.LastModified); err == nil {
		if st.ModTime().Equal(lm) {
			return true, "", nil
		}
		return false, fmt.Sprintf("exists, modified %s; the server's file was modified %s: another version, or not a file convoy saved", st.ModTime().UTC().Format(http.TimeFormat), remote.LastModified), nil
	}
	return false, "exists, and nothing tells whether it is the server's file (no ETag or Last-Modified it was saved under, no checksum)", nil
}

// fileHasChecksum hashes the file at path and compares it with want.
func fileHasChecksum(path string, want merge.Checksum) (ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	h, err := merge.NewPrefixHasher(want.Algo, f, 0, nil)
	if err != nil {
		return false, err
	}
	if err := h.Advance(st.Size()); err != nil {
		return false, err
	}
	err = h.Verify(want)
	if errors.Is(err, merge.ErrChecksum) {
		return false, nil
	}
	return err == nil, err
}

// RemoteName picks a local file name for a download: the filename of the
// Content-Disposition header, else the last segment of the URL path. The
// result is a single, printable path element: no folder, no "..", no control
// characters, at most 240 bytes.
func RemoteName(contentDisposition, rawURL string) string {
	return names.Remote(contentDisposition, rawURL)
}

// CheckRelativeName says why name, given by a list or a document rather than
// typed as -o, cannot name a file inside the download's folder, or returns
// nil. It must be relative, without "." or ".." elements, empty elements, a
// trailing slash, control characters or device names (NUL, COM1, ...), and
// each element at most 255 bytes: subfolders are fine, a way out of the
// folder is not.
func CheckRelativeName(name string) error {
	return names.CheckRelative(name)
}
