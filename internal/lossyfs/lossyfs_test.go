package lossyfs_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/convoy-dl/convoy/internal/lossyfs"
)

// write creates or replaces the file at path with data, through the mount,
// without syncing it.
func write(t *testing.T, path string, data []byte) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	return f
}

func closeFile(t *testing.T, f *os.File) {
	t.Helper()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	closeFile(t, d)
}

func cut(t *testing.T, l *lossyfs.FS) {
	t.Helper()
	if err := l.Cut(); err != nil {
		t.Fatal(err)
	}
}

// expect fails t unless path holds want; want nil means path must not exist.
func expect(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	switch {
	case want == nil && errors.Is(err, fs.ErrNotExist):
	case want == nil && err == nil:
		t.Errorf("%s survived the cut, holding %q", filepath.Base(path), got)
	case err != nil:
		t.Errorf("after the cut: %v", err)
	case !bytes.Equal(got, want):
		t.Errorf("%s holds %q after the cut, want %q", filepath.Base(path), got, want)
	}
}

// durable makes a file at path holding data, and durable with its name.
func durable(t *testing.T, l *lossyfs.FS, path string, data []byte) {
	t.Helper()
	closeFile(t, write(t, path, data))
	if err := l.SyncAll(); err != nil {
		t.Fatal(err)
	}
}

func TestUnsyncedWriteIsLost(t *testing.T) {
	l := lossyfs.MountForTest(t)
	p := filepath.Join(l.Dir(), "f")
	durable(t, l, p, []byte("old bytes"))
	f := write(t, p, []byte("new"))
	closeFile(t, f)
	cut(t, l)
	expect(t, p, []byte("old bytes"))
}

func TestSyncedWriteStays(t *testing.T) {
	for _, datasync := range []bool{false, true} {
		name := "fsync"
		if datasync {
			name = "fdatasync"
		}
		t.Run(name, func(t *testing.T) {
			l := lossyfs.MountForTest(t)
			p := filepath.Join(l.Dir(), "f")
			durable(t, l, p, []byte("old bytes"))
			f := write(t, p, []byte("new bytes, longer"))
			var err error
			if datasync {
				err = unix.Fdatasync(int(f.Fd()))
			} else {
				err = f.Sync()
			}
			if err != nil {
				t.Fatal(err)
			}
			// Written after the sync: lost.
			if _, err := f.WriteAt([]byte("NEW"), 0); err != nil {
				t.Fatal(err)
			}
			closeFile(t, f)
			cut(t, l)
			expect(t, p, []byte("new bytes, longer"))
		})
	}
}

// TestFdatasyncDoesNotMakeTheNameDurable: a new file synced in a folder
// that was not is gone; with the folder synced it is there.
func TestFdatasyncDoesNotMakeTheNameDurable(t *testing.T) {
	for _, dirSync := range []bool{false, true} {
		t.Run(map[bool]string{false: "no folder fsync", true: "folder fsync"}[dirSync], func(t *testing.T) {
			l := lossyfs.MountForTest(t)
			p := filepath.Join(l.Dir(), "new")
			f := write(t, p, []byte("data"))
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				t.Fatal(err)
			}
			closeFile(t, f)
			if dirSync {
				syncDir(t, l.Dir())
			}
			cut(t, l)
			if dirSync {
				expect(t, p, []byte("data"))
			} else {
				expect(t, p, nil)
			}
		})
	}
}

// TestDurableNameWithoutData: the folder was synced, the file never was: it
// comes back empty.
func TestDurableNameWithoutData(t *testing.T) {
	l := lossyfs.MountForTest(t)
	p := filepath.Join(l.Dir(), "new")
	closeFile(t, write(t, p, []byte("data")))
	syncDir(t, l.Dir())
	cut(t, l)
	expect(t, p, []byte{})
}

// TestRenameNeedsTheFolderSync is the atomic replacement of a manifest:
// temp file, fsync, close, rename over the old one; the rename counts only
// once the folder is synced.
func TestRenameNeedsTheFolderSync(t *testing.T) {
	for _, dirSync := range []bool{false, true} {
		t.Run(map[bool]string{false: "no folder fsync", true: "folder fsync"}[dirSync], func(t *testing.T) {
			l := lossyfs.MountForTest(t)
			p := filepath.Join(l.Dir(), "m")
			tmp := p + ".tmp"
			durable(t, l, p, []byte("version 1"))
			f := write(t, tmp, []byte("version 2"))
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			closeFile(t, f)
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
			if dirSync {
				syncDir(t, l.Dir())
			}
			cut(t, l)
			expect(t, tmp, nil)
			if dirSync {
				expect(t, p, []byte("version 2"))
			} else {
				expect(t, p, []byte("version 1"))
			}
		})
	}
}

func TestUnlinkNeedsTheFolderSync(t *testing.T) {
	l := lossyfs.MountForTest(t)
	a, b := filepath.Join(l.Dir(), "a"), filepath.Join(l.Dir(), "b")
	durable(t, l, a, []byte("a"))
	durable(t, l, b, []byte("b"))
	for _, p := range []string{a, b} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	cut(t, l)
	expect(t, a, []byte("a"))
	expect(t, b, []byte("b"))
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	syncDir(t, l.Dir())
	cut(t, l)
	expect(t, a, nil)
	expect(t, b, []byte("b"))
}

// TestSizeChangesNeedASync: truncate and fallocate are lost unless the file
// is synced.
func TestSizeChangesNeedASync(t *testing.T) {
	for _, tc := range []struct {
		name string
		size func(f *os.File) error
		want []byte
	}{
		{"truncate", func(f *os.File) error { return f.Truncate(2) }, []byte("ab")},
		{"fallocate", func(f *os.File) error { return unix.Fallocate(int(f.Fd()), 0, 0, 6) }, []byte("abcd\x00\x00")},
	} {
		for _, synced := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{false: " unsynced", true: " synced"}[synced], func(t *testing.T) {
				l := lossyfs.MountForTest(t)
				p := filepath.Join(l.Dir(), "f")
				durable(t, l, p, []byte("abcd"))
				f, err := os.OpenFile(p, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := tc.size(f); err != nil {
					t.Fatal(err)
				}
				if synced {
					if err := unix.Fdatasync(int(f.Fd())); err != nil {
						t.Fatal(err)
					}
				}
				closeFile(t, f)
				cut(t, l)
				if synced {
					expect(t, p, tc.want)
				} else {
					expect(t, p, []byte("abcd"))
				}
			})
		}
	}
}

func TestSyncFileRangeMakesNothingDurable(t *testing.T) {
	l := lossyfs.MountForTest(t)
	p := filepath.Join(l.Dir(), "f")
	durable(t, l, p, []byte("old!"))
	f := write(t, p, []byte("new!"))
	flags := unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
	if err := unix.SyncFileRange(int(f.Fd()), 0, 0, flags); err != nil {
		t.Fatal(err)
	}
	closeFile(t, f)
	cut(t, l)
	expect(t, p, []byte("old!"))
}

// TestNewFolderNeedsItsParentSynced: a file and its new folder synced, the
// folder's parent not: all gone.
func TestNewFolderNeedsItsParentSynced(t *testing.T) {
	for _, parentSync := range []bool{false, true} {
		t.Run(map[bool]string{false: "parent not synced", true: "parent synced"}[parentSync], func(t *testing.T) {
			l := lossyfs.MountForTest(t)
			dir := filepath.Join(l.Dir(), "sub")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "f")
			f := write(t, p, []byte("data"))
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			closeFile(t, f)
			syncDir(t, dir)
			if parentSync {
				syncDir(t, l.Dir())
			}
			cut(t, l)
			if parentSync {
				expect(t, p, []byte("data"))
			} else if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the new folder survived the cut: %v", err)
			}
		})
	}
}

// TestMtimeNeedsFsync: fsync makes the modification time durable,
// fdatasync does not.
func TestMtimeNeedsFsync(t *testing.T) {
	for _, datasync := range []bool{false, true} {
		t.Run(map[bool]string{false: "fsync", true: "fdatasync"}[datasync], func(t *testing.T) {
			l := lossyfs.MountForTest(t)
			p := filepath.Join(l.Dir(), "f")
			durable(t, l, p, []byte("x"))
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			was := st.ModTime()
			set := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
			if err := os.Chtimes(p, set, set); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if datasync {
				err = unix.Fdatasync(int(f.Fd()))
			} else {
				err = f.Sync()
			}
			if err != nil {
				t.Fatal(err)
			}
			closeFile(t, f)
			cut(t, l)
			if st, err = os.Stat(p); err != nil {
				t.Fatal(err)
			}
			want := set
			if datasync {
				want = was
			}
			if !st.ModTime().Equal(want) {
				t.Errorf("modification time %v after the cut, want %v", st.ModTime(), want)
			}
		})
	}
}

// TestTriggerFreezes: a trigger freezes the file system at the chosen
// operation, before or after it, and the cut then keeps exactly what was
// durable at that moment.
func TestTriggerFreezes(t *testing.T) {
	for _, when := range []lossyfs.When{lossyfs.Before, lossyfs.After} {
		t.Run(map[lossyfs.When]string{lossyfs.Before: "before", lossyfs.After: "after"}[when], func(t *testing.T) {
			l := lossyfs.MountForTest(t)
			p := filepath.Join(l.Dir(), "f")
			durable(t, l, p, []byte("one"))
			l.SetTrigger(func(op lossyfs.Op) lossyfs.When {
				if op.Kind == lossyfs.OpFsync && op.Path == "f" {
					return when
				}
				return lossyfs.Continue
			})
			f := write(t, p, []byte("two"))
			err := f.Sync()
			select {
			case <-l.Frozen():
			default:
				t.Fatal("the trigger did not freeze the file system")
			}
			if got := l.FrozenAt(); got.Kind != lossyfs.OpFsync || got.Path != "f" {
				t.Errorf("frozen at %v", got)
			}
			if when == lossyfs.Before && !errors.Is(err, syscall.EIO) {
				t.Errorf("fsync frozen before: %v, want EIO", err)
			}
			if when == lossyfs.After && err != nil {
				t.Errorf("fsync frozen after: %v", err)
			}
			if _, err := f.WriteAt([]byte("three"), 0); !errors.Is(err, syscall.EIO) {
				t.Errorf("write after the freeze: %v, want EIO", err)
			}
			if err := f.Sync(); !errors.Is(err, syscall.EIO) {
				t.Errorf("fsync after the freeze: %v, want EIO", err)
			}
			if err := os.WriteFile(filepath.Join(l.Dir(), "g"), nil, 0o644); !errors.Is(err, syscall.EIO) {
				t.Errorf("create after the freeze: %v, want EIO", err)
			}
			_ = f.Close() // the flush may fail on a frozen file system
			cut(t, l)
			if when == lossyfs.Before {
				expect(t, p, []byte("one"))
			} else {
				expect(t, p, []byte("two"))
			}
			// The cut thaws the file system.
			durable(t, l, p, []byte("four"))
		})
	}
}

// TestWhatConvoyNeeds: flock, rename without replacing, fallocate and
// statfs work on the mount, as convoy uses them.
func TestWhatConvoyNeeds(t *testing.T) {
	l := lossyfs.MountForTest(t)
	a, b := filepath.Join(l.Dir(), "a"), filepath.Join(l.Dir(), "b")
	f := write(t, a, []byte("a"))
	defer closeFile(t, f)
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("flock: %v", err)
	}
	g, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(g.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Errorf("a second flock: %v, want EWOULDBLOCK", err)
	}
	closeFile(t, g)
	if err := unix.Fallocate(int(f.Fd()), 0, 0, 1<<20); err != nil {
		t.Errorf("fallocate: %v", err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil || st.Bavail == 0 {
		t.Errorf("statfs: %v, %d blocks free", err, st.Bavail)
	}
	closeFile(t, write(t, b, []byte("b")))
	err = unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_NOREPLACE)
	if !errors.Is(err, unix.EEXIST) {
		t.Errorf("renameat2 RENAME_NOREPLACE onto a file: %v, want EEXIST", err)
	}
}
