package merge

import (
	"crypto/md5"  //nolint:gosec // md5 is offered only to check published md5 sums
	"crypto/sha1" //nolint:gosec // likewise for published sha1 sums
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
)

// Checksum is an expected digest of a whole file.
type Checksum struct {
	Algo string // "md5", "sha1", "sha256" or "sha512"
	Sum  []byte
}

func (c Checksum) String() string { return c.Algo + ":" + hex.EncodeToString(c.Sum) }

// ErrChecksum reports a file whose digest is not the expected one.
var ErrChecksum = errors.New("checksum mismatch")

// algos maps the names convoy accepts, in its own spelling and in the
// spelling of digest headers, to a canonical name.
var algos = map[string]string{
	"md5": "md5", "sha1": "sha1", "sha-1": "sha1",
	"sha256": "sha256", "sha-256": "sha256", "sha512": "sha512", "sha-512": "sha512",
}

// NewHash returns a fresh hash for a canonical algorithm name.
func NewHash(algo string) (hash.Hash, error) {
	switch algo {
	case "md5":
		return md5.New(), nil //nolint:gosec
	case "sha1":
		return sha1.New(), nil //nolint:gosec
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("unknown checksum algorithm %q (use md5, sha1, sha256 or sha512)", algo)
}

// ParseChecksum reads "ALGO:HEX" (sha256:9f86d0…) or the digest-header form
// "ALGO=BASE64" (sha-256=n4bQgY…). The digest must have the algorithm's
// length.
func ParseChecksum(s string) (Checksum, error) {
	s = strings.TrimSpace(s)
	if name, value, ok := strings.Cut(s, ":"); ok {
		return newChecksum(name, value, false)
	}
	if name, value, ok := strings.Cut(s, "="); ok {
		// aria2's lists write "sha-256=HEX": hex where it is hex.
		return newChecksum(name, value, true)
	}
	return Checksum{}, fmt.Errorf("checksum %q: want ALGO:HEX or ALGO=BASE64", s)
}

// newChecksum reads value as the hex digest of algorithm name, or with
// orBase64 as base64 unless it is hex of the algorithm's exact length.
func newChecksum(name, value string, orBase64 bool) (Checksum, error) {
	algo, ok := algos[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return Checksum{}, fmt.Errorf("unknown checksum algorithm %q (use md5, sha1, sha256 or sha512)", name)
	}
	h, _ := NewHash(algo)
	size := h.Size()
	value = strings.TrimSpace(value)
	if sum, err := hex.DecodeString(value); err == nil && len(sum) == size {
		return Checksum{Algo: algo, Sum: sum}, nil
	}
	if !orBase64 {
		return Checksum{}, fmt.Errorf("%s digest %q is not %d hexadecimal digits", algo, value, 2*size)
	}
	sum, err := base64.StdEncoding.DecodeString(value)
	if err != nil || len(sum) != size {
		return Checksum{}, fmt.Errorf("%s digest %q is neither %d hexadecimal digits nor the base64 of %d bytes", algo, value, 2*size, size)
	}
	return Checksum{Algo: algo, Sum: sum}, nil
}

// ParseDigestHeader reads the digests of a whole representation from a
// Repr-Digest or Content-Digest value (RFC 9530: sha-256=:BASE64:, …) or a
// Digest value (RFC 3230: SHA-256=BASE64, …). Unknown or malformed members
// are skipped: a server's digest is a bonus check, never a reason to fail.
func ParseDigestHeader(v string) []Checksum {
	var out []Checksum
	for _, member := range strings.Split(v, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(member), "=")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		if i := strings.IndexByte(value, ';'); i >= 0 { // parameters
			value = value[:i]
		}
		value = strings.TrimSuffix(strings.TrimPrefix(value, ":"), ":")
		if c, err := newBase64Checksum(name, value); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// newBase64Checksum reads value as the base64 digest of algorithm name, as
// digest headers carry it.
func newBase64Checksum(name, value string) (Checksum, error) {
	algo, ok := algos[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return Checksum{}, fmt.Errorf("unknown checksum algorithm %q", name)
	}
	h, _ := NewHash(algo)
	sum, err := base64.StdEncoding.DecodeString(value)
	if err != nil || len(sum) != h.Size() {
		return Checksum{}, fmt.Errorf("%s digest %q is not the base64 of %d bytes", algo, value, h.Size())
	}
	return Checksum{Algo: algo, Sum: sum}, nil
}

// PrefixHasher hashes a file in order as its bytes become final: Advance
// reads from the file what lies between the bytes hashed so far and a new
// end. Its state can be saved and restored, so a resumed download does not
// hash from zero. It is safe for concurrent use.
type PrefixHasher struct {
	mu   sync.Mutex
	algo string
	h    hash.Hash
	r    io.ReaderAt
	pos  int64
	buf  []byte
}

// NewPrefixHasher starts hashing r for algo at position pos with a saved
// state (nil state and pos 0 for a fresh start).
func NewPrefixHasher(algo string, r io.ReaderAt, pos int64, state []byte) (*PrefixHasher, error) {
	h, err := NewHash(algo)
	if err != nil {
		return nil, err
	}
	if state != nil {
		u, ok := h.(encoding.BinaryUnmarshaler)
		if !ok {
			return nil, fmt.Errorf("%s state cannot be restored", algo)
		}
		if err := u.UnmarshalBinary(state); err != nil {
			return nil, fmt.Errorf("restoring %s state: %w", algo, err)
		}
	} else if pos != 0 {
		return nil, fmt.Errorf("a %s state at %d needs its saved state", algo, pos)
	}
	return &PrefixHasher{algo: algo, h: h, r: r, pos: pos}, nil
}

// Advance hashes the bytes [Pos(), end) read from the file. Bytes before end
// must be final. The lock is taken a megabyte at a time, so State never
// waits long behind a large Advance.
func (p *PrefixHasher) Advance(end int64) error {
	for {
		more, err := p.step(end)
		if err != nil || !more {
			return err
		}
	}
}

// AdvanceUntil is Advance that gives up, without an error, once stop is
// closed; it checks between buffers.
func (p *PrefixHasher) AdvanceUntil(end int64, stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		more, err := p.step(end)
		if err != nil || !more {
			return err
		}
	}
}

// step hashes at most one buffer of the bytes before end and reports
// whether any are left.
func (p *PrefixHasher) step(end int64) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pos >= end {
		return false, nil
	}
	if p.buf == nil {
		p.buf = make([]byte, 1<<20)
	}
	n := int(min(int64(len(p.buf)), end-p.pos))
	m, err := p.r.ReadAt(p.buf[:n], p.pos)
	p.h.Write(p.buf[:m])
	p.pos += int64(m)
	if err != nil && !(err == io.EOF && p.pos == end) {
		return false, fmt.Errorf("reading back for the checksum at %d: %w", p.pos, err)
	}
	if m == 0 && p.pos < end {
		return false, fmt.Errorf("reading back for the checksum at %d: %w", p.pos, io.ErrUnexpectedEOF)
	}
	return p.pos < end, nil
}

// State returns the position hashed so far and the hash's saved state.
func (p *PrefixHasher) State() (pos int64, state []byte, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.h.(encoding.BinaryMarshaler)
	if !ok {
		return 0, nil, fmt.Errorf("%s state cannot be saved", p.algo)
	}
	state, err = m.MarshalBinary()
	return p.pos, state, err
}

// Sum is the digest of the bytes hashed so far.
func (p *PrefixHasher) Sum() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.h.Sum(nil)
}

// Verify compares the digest of the bytes hashed so far with want.
// A want without a Sum only names the algorithm: nothing is compared.
func (p *PrefixHasher) Verify(want Checksum) error {
	got := p.Sum()
	if want.Sum != nil && string(got) != string(want.Sum) {
		return fmt.Errorf("%w: %s expected %x, got %x", ErrChecksum, want.Algo, want.Sum, got)
	}
	return nil
}
