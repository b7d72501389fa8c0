package manifest

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrLocked reports that another process holds the lock.
var ErrLocked = errors.New("another convoy is already downloading to this file")

// Lock is an exclusive advisory lock (flock) on a file whose inode stays put
// for the whole download: the part file, which the final rename keeps. The
// manifest, replaced at every checkpoint, cannot serve.
type Lock struct {
	f *os.File
}

// Acquire creates path if needed and locks it without waiting: a second
// process fails at once with ErrLocked. It checks after locking that path
// still names the locked file, so a lock won on a file that was renamed
// away meanwhile is never taken for the new one.
func Acquire(path string) (*Lock, error) {
	for range 5 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			cerr := f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, errors.Join(fmt.Errorf("%w (%s is locked)", ErrLocked, path), cerr)
			}
			return nil, errors.Join(fmt.Errorf("locking %s: %w", path, err), cerr)
		}
		same, err := sameFile(f, path)
		if err != nil || same {
			if err != nil {
				return nil, errors.Join(err, f.Close())
			}
			return &Lock{f: f}, nil
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w (%s keeps changing under the lock)", ErrLocked, path)
}

func sameFile(f *os.File, path string) (bool, error) {
	held, err := f.Stat()
	if err != nil {
		return false, err
	}
	now, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(held, now), nil
}

// Release drops the lock.
func (l *Lock) Release() error {
	return l.f.Close()
}
