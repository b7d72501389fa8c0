package manifest

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func mustAcquire(t *testing.T, path string) *Lock {
	t.Helper()
	l, err := Acquire(path)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", path, err)
	}
	return l
}

func mustRelease(t *testing.T, l *Lock) {
	t.Helper()
	if err := l.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func TestAcquireTwiceInOneProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.part")
	l := mustAcquire(t, path)
	l2, err := Acquire(path)
	if !errors.Is(err, ErrLocked) {
		if l2 != nil {
			_ = l2.Release()
		}
		t.Fatalf("second Acquire = %v, want ErrLocked", err)
	}
	if l2 != nil {
		t.Fatalf("second Acquire returned a lock with its error")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	mustRelease(t, l)
	l3 := mustAcquire(t, path)
	mustRelease(t, l3)
}

func TestAcquireCreatesAndKeepsContent(t *testing.T) {
	dir := t.TempDir()
	t.Run("missing-file-is-created", func(t *testing.T) {
		path := filepath.Join(dir, "new.part")
		l := mustAcquire(t, path)
		defer mustRelease(t, l)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatalf("Acquire did not create %s: %v", path, err)
		}
		if st.Size() != 0 {
			t.Fatalf("new lock file holds %d bytes", st.Size())
		}
	})
	t.Run("existing-content-kept", func(t *testing.T) {
		// The lock file is the part file: locking must not truncate it.
		path := filepath.Join(dir, "old.part")
		want := []byte("bytes already downloaded")
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		l := mustAcquire(t, path)
		mustRelease(t, l)
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("content after Acquire/Release = %q, want %q", got, want)
		}
	})
}

func TestAcquireMissingFolder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "missing", "f.part")
	l, err := Acquire(path)
	if err == nil {
		_ = l.Release()
		t.Fatal("Acquire in a missing folder succeeded")
	}
	if errors.Is(err, ErrLocked) {
		t.Fatalf("a missing folder is reported as locked: %v", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v does not satisfy fs.ErrNotExist", err)
	}
}

func TestAcquirePathIsFolder(t *testing.T) {
	path := t.TempDir()
	l, err := Acquire(path)
	if err == nil {
		_ = l.Release()
		t.Fatal("Acquire on a folder succeeded")
	}
	if errors.Is(err, ErrLocked) {
		t.Fatalf("a folder is reported as locked: %v", err)
	}
}

// lockHolder is a child process holding the lock on a path until its stdin
// closes.
type lockHolder struct {
	stdin io.WriteCloser
	wait  func() error
	kill  func() error
}

func startLockHolder(t *testing.T, path string) *lockHolder {
	t.Helper()
	cmd := helperCmd(t, "lock", path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &lockHolder{stdin: stdin, wait: cmd.Wait, kill: cmd.Process.Kill}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		_ = h.kill()
		_ = h.wait()
		t.Fatalf("helper said %q, %v; want \"locked\"", line, err)
	}
	return h
}

func TestAcquireHeldByChildProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.part")
	h := startLockHolder(t, path)

	l, err := Acquire(path)
	if !errors.Is(err, ErrLocked) {
		if l != nil {
			_ = l.Release()
		}
		_ = h.kill()
		_ = h.wait()
		t.Fatalf("Acquire while a child holds the lock = %v, want ErrLocked", err)
	}

	if err := h.stdin.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	l = mustAcquire(t, path)
	mustRelease(t, l)
}

// TestAcquireAfterChildKilled: a process that dies holding the lock (crash,
// kill -9) never blocks the next run.
func TestAcquireAfterChildKilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.part")
	h := startLockHolder(t, path)
	if l, err := Acquire(path); !errors.Is(err, ErrLocked) {
		if l != nil {
			_ = l.Release()
		}
		t.Fatalf("Acquire = %v, want ErrLocked", err)
	}
	if err := h.kill(); err != nil {
		t.Fatal(err)
	}
	_ = h.wait() // killed: the error is expected
	l := mustAcquire(t, path)
	mustRelease(t, l)
}

// TestChildBlockedByThisProcess checks the other direction: the child cannot
// take a lock this process holds.
func TestChildBlockedByThisProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.part")
	l := mustAcquire(t, path)
	defer mustRelease(t, l)
	cmd := helperCmd(t, "lock", path)
	cmd.Stdin = strings.NewReader("")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("child Acquire while this process holds the lock: err %v, stdout %q; want exit 2", err, out)
	}
	if !strings.Contains(stderr.String(), ErrLocked.Error()) {
		t.Fatalf("child failed for another reason: %s", stderr.String())
	}
}

// TestAcquireAfterRename documents the inode behaviour: the lock belongs to
// the file, not the name. Once the locked file is renamed away, the old
// name is free and a new Acquire creates and locks a fresh file, while the
// renamed file stays locked.
func TestAcquireAfterRename(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.part")
	q := filepath.Join(dir, "f")
	l := mustAcquire(t, p)
	defer mustRelease(t, l)
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p, q); err != nil {
		t.Fatal(err)
	}

	l2, err := Acquire(p)
	if err != nil {
		t.Fatalf("Acquire(%s) after the locked file moved away: %v", p, err)
	}
	defer mustRelease(t, l2)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatalf("Acquire did not create a new %s: %v", p, err)
	}
	if st.Size() != 0 {
		t.Fatalf("new %s holds %d bytes, want a fresh empty file", p, st.Size())
	}
	stq, err := os.Stat(q)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(st, stq) {
		t.Fatalf("%s and %s are the same file", p, q)
	}

	if l3, err := Acquire(q); !errors.Is(err, ErrLocked) {
		if l3 != nil {
			_ = l3.Release()
		}
		t.Fatalf("Acquire(%s) = %v: the renamed file should still be locked", q, err)
	}
}

// Holder names the process that holds a download's lock, and finds none
// once it is released; it never takes the lock itself.
func TestHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.part")
	if _, locked, err := Holder(path); err != nil || locked {
		t.Fatalf("Holder of a missing file: locked %v, %v", locked, err)
	}
	l, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, locked, err := Holder(path)
	if err != nil || !locked || pid != os.Getpid() {
		t.Fatalf("Holder = %d, %v, %v; want this process (%d)", pid, locked, err, os.Getpid())
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, locked, err := Holder(path); err != nil || locked {
		t.Fatalf("Holder after release: locked %v, %v", locked, err)
	}
	// Holder took nothing: the lock is still there to take.
	l, err = Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
}

func TestFlockHolderParses(t *testing.T) {
	const locks = "1: POSIX  ADVISORY  WRITE 11 fd:01:77 0 EOF\n" +
		"2: FLOCK  ADVISORY  WRITE 4321 fd:01:99 0 EOF\n" +
		"2: -> FLOCK  ADVISORY  WRITE 5555 fd:01:99 0 EOF\n" +
		"3: FLOCK  ADVISORY  WRITE 1234 08:01:77 0 EOF\n" +
		"garbage\n"
	dev := unix.Mkdev(8, 1)
	if pid, locked, _ := flockHolder(locks, dev, 77); !locked || pid != 1234 {
		t.Errorf("flockHolder = %d, %v; want 1234 (the flock on 08:01, not the POSIX lock on fd:01)", pid, locked)
	}
	if pid, locked, _ := flockHolder(locks, unix.Mkdev(0xfd, 1), 99); !locked || pid != 4321 {
		t.Errorf("flockHolder = %d, %v; want 4321, the holder, not its waiter", pid, locked)
	}
	if _, locked, _ := flockHolder(locks, dev, 78); locked {
		t.Error("found a lock on another inode")
	}
}
