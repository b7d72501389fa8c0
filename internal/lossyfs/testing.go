package lossyfs

import (
	"os"
	"strings"
	"testing"
)

// MountForTest mounts a lossy file system over a new empty folder for the
// test t and unmounts it when t ends. Where FUSE cannot be mounted (no
// /dev/fuse, not root, no CAP_SYS_ADMIN) the test is skipped with a notice
// that says NOT TESTED, or fails when CI is set: a test that skips there
// checks nothing, and nobody looks at skips.
func MountForTest(t testing.TB) *FS {
	t.Helper()
	upper, mnt := t.TempDir(), t.TempDir()
	l, err := New(upper, mnt)
	if err == nil {
		if _, serr := os.Stat("/dev/fuse"); serr != nil {
			err = serr
		} else {
			err = l.Mount()
		}
	}
	if err != nil {
		if inCI() {
			t.Fatalf("cannot mount the lossy file system, and CI is set, so this test may not skip: %v", err)
		}
		t.Skipf("NOT TESTED: cannot mount the lossy file system here (%v); under CI this is a failure", err)
	}
	t.Cleanup(func() {
		if err := l.Unmount(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return l
}

// inCI reports whether the tests run under continuous integration (CI set,
// as every CI service sets it).
func inCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "0" && v != "false"
}
