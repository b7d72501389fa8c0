package convoy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/convoy-dl/convoy/internal/fsx"
	"github.com/convoy-dl/convoy/internal/redact"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
	"github.com/convoy-dl/convoy/segment"
)

// expectedChecksum is what the file called name must hash to: the user's
// --checksum, else its line in --checksum-file, else the strongest digest
// the server sent, else nothing.
func (d *download) expectedChecksum(ctx context.Context, r segment.Remote, name string) (*merge.Checksum, error) {
	// A list names the server's files; -o may have renamed this one.
	names := []string{name, RemoteName(r.ContentDisposition, d.first), RemoteName("", r.FinalURL)}
	if d.cfg.Checksum != "" {
		c, err := merge.ParseChecksum(d.cfg.Checksum)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUsage, err)
		}
		return &c, nil
	}
	if d.cfg.ChecksumFile != "" {
		c, err := d.checksumFromList(ctx, names...)
		if err != nil {
			return nil, err
		}
		return &c, nil
	}
	best := d.serverDigest(r)
	if best == nil && d.cfg.Digest != "" {
		if _, err := merge.NewHash(d.cfg.Digest); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUsage, err)
		}
		return &merge.Checksum{Algo: d.cfg.Digest}, nil // computed, not compared
	}
	return best, nil
}

// serverDigest is the strongest whole-file digest the server sent, or nil.
func (d *download) serverDigest(r segment.Remote) *merge.Checksum {
	var best *merge.Checksum
	rank := map[string]int{"md5": 1, "sha1": 2, "sha256": 3, "sha512": 4}
	for _, v := range r.Digests {
		for _, c := range merge.ParseDigestHeader(v) {
			if best == nil || rank[c.Algo] > rank[best.Algo] {
				best = &c
			}
		}
	}
	return best
}

// maxSumsFile and sumsFileTimeout bound a checksum list fetched over HTTP.
const (
	maxSumsFile     = 4 << 20
	sumsFileTimeout = 2 * time.Minute
)

// checksumFromList finds the digest of the first of names that
// cfg.ChecksumFile lists; the list is a local path or an http(s) URL.
func (d *download) checksumFromList(ctx context.Context, names ...string) (merge.Checksum, error) {
	src := d.cfg.ChecksumFile
	var r io.Reader
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		// A list is small: a bound on the whole fetch replaces a stall timer.
		ctx, cancel := context.WithTimeout(ctx, sumsFileTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return merge.Checksum{}, fmt.Errorf("%w: checksum list %s: %v", ErrUsage, redact.URL(src), err)
		}
		for k, vs := range headersFor(d.cfg.Header, d.cfg.URL, src) {
			req.Header[k] = vs
		}
		resp, err := d.client.Do(req)
		if err != nil {
			return merge.Checksum{}, fmt.Errorf("fetching the checksum list: %s", redact.Text(err.Error()))
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return merge.Checksum{}, fmt.Errorf("fetching the checksum list: HTTP %s from %s", resp.Status, redact.URL(src))
		}
		r = io.LimitReader(resp.Body, maxSumsFile)
	} else {
		data, err := os.ReadFile(src)
		if err != nil {
			return merge.Checksum{}, fmt.Errorf("%w: checksum list: %v", ErrUsage, fsx.Plain(err))
		}
		r = bytes.NewReader(data)
	}
	c, err := merge.FindInSums(r, names...)
	if err != nil {
		return merge.Checksum{}, fmt.Errorf("%s: %w", redact.URL(src), err)
	}
	return c, nil
}

// follower hashes the part file's contiguous written prefix in the
// background, as the download extends it, so that verifying a finished file
// reads back only what arrived last. It may run ahead of what checkpoints
// have made durable, so it keeps the hash state at a few positions: a
// checkpoint saves the last one the manifest's durable prefix covers.
type follower struct {
	h      *merge.PrefixHasher
	want   merge.Checksum
	prefix func() int64 // the contiguous written prefix, now
	stop   chan struct{}
	once   sync.Once
	done   chan struct{}
	err    error // set by the goroutine before done closes

	// check is the state an earlier run saved, which the bytes on disk must
	// still give when the hash reaches check.pos; nil once passed.
	check *hashMark

	mu    sync.Mutex
	marks []hashMark // ascending by pos
}

// ErrPartChanged reports that bytes of the part file are no longer those an
// earlier run downloaded and hashed: something else wrote to the file.
var ErrPartChanged = errors.New("the part file changed on disk since its bytes were downloaded")

// hashMark is the hash state after the first pos bytes.
type hashMark struct {
	pos   int64
	state []byte
}

// Marks are taken every markEvery bytes; at most maxMarks are kept.
const (
	markEvery  = 8 << 20
	maxMarks   = 256
	followTick = 50 * time.Millisecond
)

// newFollower hashes the part file from byte zero. When the manifest saved
// a hash state for the same algorithm within the prefix already written
// (written bytes from the start), the bytes on disk must hash to it again:
// an earlier run's state is never trusted for bytes it cannot vouch for
// now, so a file verified at the end is the file on disk. Until they do,
// checkpoints keep saving that state.
func newFollower(part *merge.PartFile, want merge.Checksum, m *manifest.Manifest, written int64, prefix func() int64) (*follower, error) {
	h, err := merge.NewPrefixHasher(want.Algo, part, 0, nil)
	if err != nil {
		return nil, err
	}
	f := &follower{h: h, want: want, prefix: prefix, stop: make(chan struct{}), done: make(chan struct{})}
	if m != nil && m.HashAlgo == want.Algo && m.HashPos > 0 && m.HashPos <= written {
		if _, err := merge.NewPrefixHasher(want.Algo, nil, m.HashPos, m.HashState); err == nil {
			f.check = &hashMark{pos: m.HashPos, state: m.HashState}
			f.marks = []hashMark{*f.check}
		}
	}
	if f.check == nil {
		if err := f.mark(); err != nil {
			return nil, err
		}
	}
	go f.run()
	return f, nil
}

func (f *follower) run() {
	defer close(f.done)
	tick := time.NewTicker(followTick)
	defer tick.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
		target := f.prefix()
		for {
			pos, _, err := f.h.State()
			if err == nil && pos >= target {
				break
			}
			if err == nil {
				next := min(pos-pos%markEvery+markEvery, target)
				if f.check != nil {
					next = min(next, f.check.pos)
				}
				err = f.h.AdvanceUntil(next, f.stop)
			}
			if err == nil {
				err = f.checkOrMark()
			}
			if err != nil {
				f.err = err
				return
			}
			select {
			case <-f.stop:
				return
			default:
			}
		}
	}
}

// checkOrMark compares the hash with the earlier run's state once it gets
// there, and records states only after that: the marks before it would
// vouch for bytes that may have changed.
func (f *follower) checkOrMark() error {
	if f.check == nil {
		return f.mark()
	}
	pos, _, err := f.h.State()
	if err != nil || pos < f.check.pos {
		return err
	}
	saved, err := merge.NewPrefixHasher(f.want.Algo, nil, f.check.pos, f.check.state)
	if err != nil {
		return err
	}
	if !bytes.Equal(saved.Sum(), f.h.Sum()) {
		return fmt.Errorf("%w: its first %d bytes no longer hash as they did", ErrPartChanged, f.check.pos)
	}
	f.check = nil
	return f.mark()
}

// failed returns the error that stopped the background hashing, if it has.
func (f *follower) failed() error {
	select {
	case <-f.done:
		return f.err
	default:
		return nil
	}
}

// mark records the hash state at the current position.
func (f *follower) mark() error {
	pos, state, err := f.h.State()
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.marks); n > 0 && f.marks[n-1].pos == pos {
		return nil
	}
	f.marks = append(f.marks, hashMark{pos: pos, state: state})
	if len(f.marks) > maxMarks {
		f.marks = f.marks[len(f.marks)-maxMarks:]
	}
	return nil
}

// stateAt returns the last saved hash state within the first durable
// bytes, for a checkpoint; ok is false when none is.
func (f *follower) stateAt(durable int64) (algo string, pos int64, state []byte, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.marks) - 1; i >= 0; i-- {
		if m := f.marks[i]; m.pos <= durable {
			f.marks = f.marks[i:] // older marks are of no more use
			return f.want.Algo, m.pos, m.state, true
		}
	}
	return "", 0, nil, false
}

// close stops the background hashing; it may be called more than once.
func (f *follower) close() error {
	f.once.Do(func() { close(f.stop) })
	<-f.done
	return f.err
}

// finish stops the background hashing, hashes what is left up to size,
// compares the digest with the expected one and returns it as "ALGO:HEX".
func (f *follower) finish(size int64) (string, error) {
	if err := f.close(); err != nil {
		return "", err
	}
	if f.check != nil {
		if err := f.h.Advance(f.check.pos); err != nil {
			return "", err
		}
		if err := f.checkOrMark(); err != nil {
			return "", err
		}
	}
	if err := f.h.Advance(size); err != nil {
		return "", err
	}
	if err := f.h.Verify(f.want); err != nil {
		return "", err
	}
	return merge.Checksum{Algo: f.want.Algo, Sum: f.h.Sum()}.String(), nil
}

// contiguousPrefix is the length of the contiguous run of written bytes from
// the start of the file.
func contiguousPrefix(segs []segment.Segment) int64 {
	var n int64
	for _, s := range segs {
		n = s.Start + s.Written
		if s.Remaining() > 0 {
			break
		}
	}
	return n
}

// VerifyFile hashes the file at path and compares it with checksum
// ("ALGO:HEX" or "ALGO=BASE64"). It returns the checksum on success.
// progress, if set, is called as the hash advances.
func VerifyFile(path, checksum string, progress func(done, size int64)) (string, error) {
	want, err := merge.ParseChecksum(checksum)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUsage, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fsx.Plain(err) // it names the path
	}
	st, err := f.Stat()
	if err == nil && st.IsDir() {
		err = errors.New("a folder, not a file")
	}
	if err == nil {
		var h *merge.PrefixHasher
		if h, err = merge.NewPrefixHasher(want.Algo, f, 0, nil); err == nil {
			const step = 16 << 20
			for at := int64(0); err == nil && at < st.Size(); {
				at = min(at+step, st.Size())
				if err = h.Advance(at); err == nil && progress != nil {
					progress(at, st.Size())
				}
			}
			if err == nil {
				err = h.Verify(want)
			}
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return want.String(), nil
}
