package convoy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/convoy-dl/convoy/manifest"
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
// here; any other file needs Overwrite.
func (d *download) checkExisting(f files) (done bool, res Result, err error) {
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
		return false, Result{}, fmt.Errorf("output %s is a folder", f.out)
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
	return false, Result{}, fmt.Errorf("%w: %s (use --overwrite to replace it)", ErrExists, f.out)
}
