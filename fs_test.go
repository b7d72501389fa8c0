package convoy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/convoy-dl/convoy"
	"github.com/convoy-dl/convoy/internal/testserver"
	"github.com/convoy-dl/convoy/manifest"
	"github.com/convoy-dl/convoy/merge"
)

// inCI reports whether the tests run under continuous integration (CI set,
// as every CI service sets it), where a fault test may not skip.
func inCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "0" && v != "false"
}

// cannotSetUp ends a test whose fault could not be set up. Under CI it
// fails with the reason: a disk-fault test that skips there checks nothing,
// and nobody looks at skips. Elsewhere it skips, saying what was not tested.
func cannotSetUp(t *testing.T, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatalf("cannot set up the fault, and CI is set, so this test may not skip: %s", why)
	}
	t.Skipf("NOT TESTED: cannot set up the fault here (%s); under CI this is a failure", why)
}

// tryMountTmpfs mounts a tmpfs of size bytes on a new folder, read-only
// with ro, and unmounts it at cleanup.
func tryMountTmpfs(t *testing.T, size string, ro bool) (string, error) {
	t.Helper()
	dir := t.TempDir()
	var flags uintptr
	if ro {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, "size="+size); err != nil {
		return "", fmt.Errorf("mount -t tmpfs on %s: %w", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("umount %s: %v", dir, err)
		}
	})
	return dir, nil
}

// mountTmpfs is tryMountTmpfs for a test that needs the tmpfs: where
// mounting is not allowed (not root, no CAP_SYS_ADMIN) the test skips, or
// under CI fails.
func mountTmpfs(t *testing.T, size string, ro bool) string {
	t.Helper()
	dir, err := tryMountTmpfs(t, size, ro)
	if err != nil {
		cannotSetUp(t, "%v", err)
	}
	return dir
}

// fsImmutable is FS_IMMUTABLE_FL of linux/fs.h: nobody, root included, may
// create, remove or rename anything in a folder that has it.
const fsImmutable = 0x10

// setImmutable sets or clears the immutable attribute of path (chattr +i).
func setImmutable(path string, on bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetInt(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return fmt.Errorf("reading the attributes of %s: %w", path, err)
	}
	if on {
		flags |= fsImmutable
	} else {
		flags &^= fsImmutable
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, flags); err != nil {
		return fmt.Errorf("chattr %s %s: %w", map[bool]string{true: "+i", false: "-i"}[on], path, err)
	}
	return nil
}

// unwritableFolder returns a folder in which nothing can be created: by
// its permissions for a user, by the immutable attribute for root, who
// ignores permissions. The attribute is tried on the temporary folder's
// file system, then on a tmpfs (overlayfs has none).
func unwritableFolder(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	immutable := func(parent string) (string, error) {
		dir := filepath.Join(parent, "locked")
		if err := os.Mkdir(dir, 0o755); err != nil {
			return "", err
		}
		if err := setImmutable(dir, true); err != nil {
			return "", err
		}
		t.Cleanup(func() {
			if err := setImmutable(dir, false); err != nil {
				t.Error(err)
			}
		})
		return dir, nil
	}
	dir, err := immutable(t.TempDir())
	if err != nil {
		tmp, merr := tryMountTmpfs(t, "1m", false)
		if merr != nil {
			cannotSetUp(t, "running as root, so only the immutable attribute stops writes: %v; %v", err, merr)
		}
		if dir, err = immutable(tmp); err != nil {
			cannotSetUp(t, "running as root, so only the immutable attribute stops writes: %v", err)
		}
	}
	// Whatever stops writes must stop them for this process.
	if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
		f.Close()
		cannotSetUp(t, "%s is still writable by uid %d", dir, os.Geteuid())
	}
	return dir
}

// A disk that fills up while convoy runs stops the download with a clear
// error; what is on disk stays consistent, and the same call finishes once
// space is freed.
func TestDiskFullMidDownload(t *testing.T) {
	const size = 6 << 20
	dir := mountTmpfs(t, "12m", false)
	srv := testserver.New(t, testserver.Size(size), testserver.Rate(1<<20))
	cfg := fastConfig(srv.URL, dir)
	cfg.ProgressInterval = 10 * time.Millisecond
	filler := filepath.Join(dir, "filler")
	filled := false
	cfg.OnProgress = func(p convoy.Progress) {
		if !filled && p.Done > size/4 {
			filled = true
			// Take every free block: the part file is preallocated, so the
			// next manifest save is what meets the full disk.
			f, err := os.Create(filler)
			if err != nil {
				t.Error(err)
				return
			}
			chunk := make([]byte, 64<<10)
			for range 1000 {
				if _, err := f.Write(chunk); err != nil {
					break
				}
			}
			if err := f.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
				t.Error(err)
			}
		}
	}
	_, err := convoy.Download(context.Background(), cfg)
	if !errors.Is(err, merge.ErrNoSpace) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("error %v, want a disk-full error", err)
	}
	// Whatever the manifest claims is in the part file.
	m, err := manifest.Load(filepath.Join(dir, "out.bin.convoy"))
	if err != nil {
		t.Fatal(err)
	}
	part, err := os.ReadFile(filepath.Join(dir, "out.bin.part"))
	if err != nil {
		t.Fatal(err)
	}
	want := srv.Content()
	for _, s := range m.Segments {
		if string(part[s.Start:s.Start+s.Written]) != string(want[s.Start:s.Start+s.Written]) {
			t.Fatalf("manifest claims [%d,%d), the part file differs", s.Start, s.Start+s.Written)
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	cfg.OnProgress = nil
	srv.SetOption(testserver.Rate(0))
	res, err := convoy.Download(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed == 0 {
		t.Error("nothing was resumed after the disk was freed")
	}
	srv.Verify(t, filepath.Join(dir, "out.bin"))
}

func TestReadOnlyFolder(t *testing.T) {
	dir := mountTmpfs(t, "1m", true)
	srv := testserver.New(t, testserver.Size(1000))
	_, err := convoy.Download(context.Background(), fastConfig(srv.URL, dir))
	if !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), filepath.Join(dir, "out.bin")) {
		t.Fatalf("error %v, want a read-only error naming the file", err)
	}
}

// A folder nothing can be created in stops the download with a permission
// error. Root ignores permissions, so for root the folder is immutable.
func TestUnwritableFolder(t *testing.T) {
	dir := unwritableFolder(t)
	srv := testserver.New(t, testserver.Size(1000))
	_, err := convoy.Download(context.Background(), fastConfig(srv.URL, dir))
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), filepath.Join(dir, "out.bin")) {
		t.Fatalf("error %v, want permission denied naming the file", err)
	}
	onlyOutput(t, dir)
}

// A file that fits the disk but leaves no room for its manifest is refused
// before a byte is fetched, not at the end with its progress unrecorded; one
// that leaves the room downloads.
func TestFileThatJustFitsTheDisk(t *testing.T) {
	const disk = 8 << 20
	dir := mountTmpfs(t, "8m", false)
	for _, tt := range []struct {
		size int64
		fits bool
	}{
		{disk - 4<<10, false},
		{disk - 256<<10, true},
	} {
		srv := testserver.New(t, testserver.Size(tt.size))
		cfg := fastConfig(srv.URL, dir)
		res, err := convoy.Download(context.Background(), cfg)
		if !tt.fits {
			if !errors.Is(err, merge.ErrNoSpace) || !strings.Contains(err.Error(), "free") {
				t.Fatalf("%d bytes on an 8 MiB disk: error %v, want ErrNoSpace saying how much is free", tt.size, err)
			}
			if res.Fetched != 0 {
				t.Errorf("%d bytes fetched before the refusal", res.Fetched)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%d bytes on an 8 MiB disk: %v", tt.size, err)
		}
		srv.Verify(t, filepath.Join(dir, "out.bin"))
	}
}

// A resume whose part file is fully allocated needs room for its manifest
// only, sized from the download: a disk left with a few hundred KiB free is
// enough to finish, and a checksum download keeps room for its hash state.
func TestResumeOnANearlyFullDisk(t *testing.T) {
	const size = 6 << 20
	for _, checksum := range []bool{false, true} {
		dir := mountTmpfs(t, "8m", false)
		srv := testserver.New(t, testserver.Size(size), testserver.Rate(8<<20))
		cfg := fastConfig(srv.URL, dir)
		if checksum {
			cfg.Checksum = "sha256:" + sums(srv.Content())["sha256"]
		}
		if err := interruptAfter(t, cfg, size/2); !errors.Is(err, convoy.ErrInterrupted) {
			t.Fatalf("first run: %v, want it interrupted", err)
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		const left = 300 << 10
		filler := filepath.Join(dir, "filler")
		if err := os.WriteFile(filler, make([]byte, int64(st.Bavail)*st.Bsize-left), 0o644); err != nil {
			t.Fatal(err)
		}
		srv.SetOption(testserver.Rate(0))
		res, err := convoy.Download(context.Background(), cfg)
		if err != nil {
			t.Fatalf("resume with %d KiB free (checksum %v): %v", left>>10, checksum, err)
		}
		if res.Resumed == 0 {
			t.Error("nothing was resumed")
		}
		srv.Verify(t, filepath.Join(dir, "out.bin"))
	}
}

// A file that appears at the output path during the download is not
// replaced without Overwrite: the bytes stay in the part file, and a run
// with Overwrite then commits them without fetching again. A symbolic link
// to nothing at the output path counts as a file there.
func TestOutputAppearingDuringDownload(t *testing.T) {
	const size = 1 << 20
	for _, tt := range []struct {
		name string
		opts []testserver.Option
	}{
		{"ranges", nil},
		{"NoRanges", []testserver.Option{testserver.NoRanges()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.New(t, append([]testserver.Option{testserver.Size(size), testserver.Rate(4 << 20)}, tt.opts...)...)
			dir := t.TempDir()
			out := filepath.Join(dir, "out.bin")
			cfg := fastConfig(srv.URL, dir)
			cfg.ProgressInterval = 10 * time.Millisecond
			made := false
			cfg.OnProgress = func(p convoy.Progress) {
				if !made && p.Done > 0 {
					made = true
					if err := os.WriteFile(out, []byte("the user's own file"), 0o644); err != nil {
						t.Error(err)
					}
				}
			}
			_, err := convoy.Download(context.Background(), cfg)
			if !errors.Is(err, convoy.ErrExists) || !strings.Contains(err.Error(), "out.bin.part") {
				t.Fatalf("error %v, want ErrExists naming the kept part file", err)
			}
			if got, _ := os.ReadFile(out); string(got) != "the user's own file" {
				t.Fatalf("the file that appeared holds %q", got)
			}
			// The error promises the bytes in the part file: they are there,
			// complete.
			srv.Verify(t, out+".part")
			cfg.OnProgress, cfg.Overwrite = nil, true
			res, err := convoy.Download(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tt.opts == nil && res.Fetched != 0 {
				t.Errorf("fetched %d bytes again to commit a complete part file", res.Fetched)
			}
			srv.Verify(t, out)
		})
	}

	srv := testserver.New(t, testserver.Size(size))
	dir := t.TempDir()
	link := filepath.Join(dir, "link.bin")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), link); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig(srv.URL, dir)
	cfg.Output = "link.bin"
	if _, err := convoy.Download(context.Background(), cfg); !errors.Is(err, convoy.ErrExists) {
		t.Fatalf("a dangling link at the output: error %v, want ErrExists", err)
	}
}

// A part file without a manifest (another tool's) is overwritten, and a
// notice says so: nothing vouches for its bytes.
func TestUnclaimedPartFileIsNamed(t *testing.T) {
	for _, opts := range [][]testserver.Option{nil, {testserver.NoRanges()}} {
		srv := testserver.New(t, append([]testserver.Option{testserver.Size(256 << 10)}, opts...)...)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "out.bin.part"), []byte("another tool's partial download"), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := fastConfig(srv.URL, dir)
		var n notices
		cfg.Logf = n.logf
		if _, err := convoy.Download(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		srv.Verify(t, filepath.Join(dir, "out.bin"))
		if !n.has("without a manifest") {
			t.Errorf("ranges=%v: no notice named the overwritten part file: %q", opts == nil, n.lines)
		}
	}
}
