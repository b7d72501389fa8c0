package manifest

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

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

// Holder tells whether a process holds the lock on path now and, where the
// system says (Linux's /proc/locks), which one (pid 0 when unknown). It
// never takes the lock itself, so it cannot make a starting download fail.
func Holder(path string) (pid int, locked bool, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, false, nil
		}
		return 0, false, err
	}
	data, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0, false, err
	}
	return flockHolder(string(data), uint64(st.Dev), st.Ino)
}

// flockHolder finds the flock on inode ino of device dev in the text of
// /proc/locks: "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF", the
// device as hexadecimal major:minor.
func flockHolder(locks string, dev, ino uint64) (pid int, locked bool, err error) {
	for _, line := range strings.Split(locks, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "FLOCK" {
			continue
		}
		if f[2] == "->" { // a waiter, not a holder: "1: -> FLOCK ..."
			continue
		}
		parts := strings.Split(f[5], ":")
		if len(parts) != 3 {
			continue
		}
		major, err1 := strconv.ParseUint(parts[0], 16, 32)
		minor, err2 := strconv.ParseUint(parts[1], 16, 32)
		inode, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		if unix.Mkdev(uint32(major), uint32(minor)) != dev || inode != ino {
			continue
		}
		p, err := strconv.Atoi(f[4])
		if err != nil || p < 0 {
			p = 0
		}
		return p, true, nil
	}
	return 0, false, nil
}
