package lossyfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// OpKind names an operation the file system sees.
type OpKind int

// The operations a trigger sees.
const (
	OpCreate    OpKind = iota + 1 // a file, device or fifo is created (Path)
	OpMkdir                       // a folder is created (Path)
	OpSymlink                     // a symbolic link is created (Path)
	OpLink                        // a hard link is made (Path, to NewPath)
	OpRename                      // Path is renamed to NewPath
	OpUnlink                      // Path is removed
	OpRmdir                       // the folder Path is removed
	OpWrite                       // bytes are written into Path
	OpSetattr                     // Path is truncated, or its mode or times set
	OpAllocate                    // space is allocated for Path (fallocate)
	OpTruncOpen                   // Path is opened with O_TRUNC
	OpFsync                       // the file Path is fsync'ed (Datasync: fdatasync)
	OpFsyncDir                    // the folder Path is fsync'ed
)

var opNames = map[OpKind]string{
	OpCreate: "create", OpMkdir: "mkdir", OpSymlink: "symlink", OpLink: "link",
	OpRename: "rename", OpUnlink: "unlink", OpRmdir: "rmdir", OpWrite: "write",
	OpSetattr: "setattr", OpAllocate: "fallocate", OpTruncOpen: "open O_TRUNC",
	OpFsync: "fsync", OpFsyncDir: "fsync folder",
}

func (k OpKind) String() string {
	if s, ok := opNames[k]; ok {
		return s
	}
	return fmt.Sprintf("op(%d)", int(k))
}

// Op is one operation, with paths relative to the mount's root.
type Op struct {
	Kind     OpKind
	Path     string
	NewPath  string // for OpRename and OpLink
	Datasync bool   // for OpFsync: fdatasync rather than fsync
}

func (o Op) String() string {
	s := o.Kind.String()
	if o.Kind == OpFsync && o.Datasync {
		s = "fdatasync"
	}
	s += " " + o.Path
	if o.NewPath != "" {
		s += " -> " + o.NewPath
	}
	return s
}

// When says when a trigger freezes the file system.
type When int

const (
	// Continue lets the operation happen and the file system go on.
	Continue When = iota
	// Before freezes the file system instead of the operation: it fails
	// with EIO and changes nothing.
	Before
	// After lets the operation take effect, then freezes the file system.
	After
)

// node kinds in the durable view.
const (
	kindFile = iota
	kindDir
	kindSymlink
)

// record is what the durable view holds of one inode.
type record struct {
	kind    int
	mode    uint32 // permission bits
	mtime   *time.Time
	data    []byte            // a file's bytes
	target  string            // a symbolic link's
	entries map[string]uint64 // a folder's: name -> inode id
}

// FS is a lossy file system over a folder. Its methods may be called from
// any goroutine.
type FS struct {
	upper string // the working view, a real folder
	mnt   string

	mu      sync.Mutex
	server  *fuse.Server
	ids     map[uint64]uint64 // the working view's st_ino -> inode id
	records map[uint64]*record
	rootID  uint64
	nextID  uint64
	trigger func(Op) When
	frozen  bool
	froze   chan struct{}
	frozeAt Op
}

// New returns a lossy file system that serves upper, an existing folder, at
// mnt once mounted. Whatever upper holds now counts as durable.
func New(upper, mnt string) (*FS, error) {
	l := &FS{upper: upper, mnt: mnt, froze: make(chan struct{})}
	if err := l.SyncAll(); err != nil {
		return nil, err
	}
	return l, nil
}

// Dir is where the file system is mounted.
func (l *FS) Dir() string { return l.mnt }

// Mount mounts the file system at its mount point.
func (l *FS) Mount() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mountLocked()
}

func (l *FS) mountLocked() error {
	if l.server != nil {
		return errors.New("lossyfs: already mounted")
	}
	root, err := gofs.NewLoopbackRoot(l.upper)
	if err != nil {
		return err
	}
	lb, ok := root.(*gofs.LoopbackNode)
	if !ok {
		return fmt.Errorf("lossyfs: loopback root is a %T", root)
	}
	// No caching in the kernel: after a cut, nothing it remembers of the
	// working view may show through.
	var zero time.Duration
	srv, err := gofs.Mount(l.mnt, &node{LoopbackNode: lb, l: l}, &gofs.Options{
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			DirectMount: true, // as root, no fusermount needed
			FsName:      "lossyfs",
			Name:        "lossyfs",
		},
	})
	if err != nil {
		return fmt.Errorf("mounting lossyfs at %s: %w", l.mnt, err)
	}
	l.server = srv
	return nil
}

// Unmount unmounts the file system; the working view stays as it is.
func (l *FS) Unmount() error {
	l.mu.Lock()
	srv := l.server
	l.server = nil
	l.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Unmount(); err != nil {
		return fmt.Errorf("unmounting lossyfs at %s: %w", l.mnt, err)
	}
	srv.Wait()
	return nil
}

// Cut is the power cut: it unmounts the file system, throws away everything
// that was not made durable, and mounts what is left, unfrozen and without
// a trigger. No process may hold a file open in it.
func (l *FS) Cut() error {
	if err := l.Unmount(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.restore(); err != nil {
		return fmt.Errorf("lossyfs: restoring the durable view: %w", err)
	}
	l.trigger = nil
	if l.frozen {
		l.frozen = false
		l.froze = make(chan struct{})
	}
	return l.mountLocked()
}

// SetTrigger sets f to be called before every operation that changes the
// file system or syncs it (reads are not seen); its answer may freeze the
// file system at that operation. f is called with the file system's lock
// held, one call at a time, and must not call FS methods. nil removes the
// trigger.
func (l *FS) SetTrigger(f func(Op) When) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trigger = f
}

// Frozen is closed when a trigger froze the file system.
func (l *FS) Frozen() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.froze
}

// FrozenAt returns the operation at which the file system froze.
func (l *FS) FrozenAt() Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.frozeAt
}

// SyncAll makes everything in the working view durable, as sync(2) would
// on a file system that kept its promises.
func (l *FS) SyncAll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids = map[uint64]uint64{}
	l.records = map[uint64]*record{}
	id, err := l.snapshotTree(l.upper)
	if err != nil {
		return err
	}
	l.rootID = id
	return nil
}

// snapshotTree records path and everything under it as durable and
// returns its inode id.
func (l *FS) snapshotTree(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return 0, err
	}
	id := l.idOf(st.Ino)
	if _, done := l.records[id]; done {
		return id, nil // a hard link to a file already recorded
	}
	r := &record{mode: st.Mode & 0o7777}
	mtime := time.Unix(st.Mtim.Unix())
	r.mtime = &mtime
	l.records[id] = r
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		r.kind = kindDir
		r.entries = map[string]uint64{}
		names, err := readNames(path)
		if err != nil {
			return 0, err
		}
		for _, name := range names {
			cid, err := l.snapshotTree(filepath.Join(path, name))
			if err != nil {
				return 0, err
			}
			r.entries[name] = cid
		}
	case unix.S_IFLNK:
		r.kind = kindSymlink
		t, err := os.Readlink(path)
		if err != nil {
			return 0, err
		}
		r.target = t
	default:
		r.kind = kindFile
		data, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		r.data = data
	}
	return id, nil
}

// idOf returns the inode id of the working view's inode ino, giving it one
// if it has none.
func (l *FS) idOf(ino uint64) uint64 {
	if id, ok := l.ids[ino]; ok {
		return id
	}
	return l.newID(ino)
}

// newID gives the working view's inode ino a new id: it was just created,
// and whatever had its number before is another inode.
func (l *FS) newID(ino uint64) uint64 {
	l.nextID++
	l.ids[ino] = l.nextID
	return l.nextID
}

// created notes that path was just created in the working view.
func (l *FS) created(path string) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return // removed meanwhile: nothing to note
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.newID(st.Ino)
}

// begin is called before op: it fails with EIO when the file system is
// frozen, or freezes it when the trigger says Before; after reports that
// the trigger asked to freeze once op is done.
func (l *FS) begin(op Op) (after bool, errno syscall.Errno) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.beginLocked(op)
}

func (l *FS) beginLocked(op Op) (after bool, errno syscall.Errno) {
	if l.frozen {
		return false, syscall.EIO
	}
	if l.trigger == nil {
		return false, 0
	}
	switch l.trigger(op) {
	case Before:
		l.freezeLocked(op)
		return false, syscall.EIO
	case After:
		return true, 0
	}
	return false, 0
}

// end freezes the file system if begin said so.
func (l *FS) end(op Op, after bool) {
	if !after {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.frozen {
		l.freezeLocked(op)
	}
}

func (l *FS) freezeLocked(op Op) {
	l.frozen = true
	l.frozeAt = op
	close(l.froze)
}

// syncFile makes the file open at fd durable: its bytes and size, and with
// full (fsync, not fdatasync) its mode and modification time.
func (l *FS) syncFile(op Op, fd int, full bool) syscall.Errno {
	l.mu.Lock()
	defer l.mu.Unlock()
	after, errno := l.beginLocked(op)
	if errno != 0 {
		return errno
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return gofs.ToErrno(err)
	}
	data := make([]byte, st.Size)
	for off := 0; off < len(data); {
		n, err := unix.Pread(fd, data[off:], int64(off))
		if err != nil {
			return gofs.ToErrno(err)
		}
		if n == 0 {
			data = data[:off] // shrunk meanwhile
			break
		}
		off += n
	}
	id := l.idOf(st.Ino)
	r := l.records[id]
	if r == nil {
		r = &record{kind: kindFile, mode: st.Mode & 0o7777}
		l.records[id] = r
	}
	r.data = data
	if full {
		r.mode = st.Mode & 0o7777
		mtime := time.Unix(st.Mtim.Unix())
		r.mtime = &mtime
	}
	if after {
		l.freezeLocked(op)
	}
	return 0
}

// syncDir makes the entries of the folder at path durable: each name leads
// to the inode it leads to now, with whatever of that inode is durable
// (nothing yet, for one never synced).
func (l *FS) syncDir(op Op, path string) syscall.Errno {
	l.mu.Lock()
	defer l.mu.Unlock()
	after, errno := l.beginLocked(op)
	if errno != 0 {
		return errno
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return gofs.ToErrno(err)
	}
	names, err := readNames(path)
	if err != nil {
		return gofs.ToErrno(err)
	}
	entries := make(map[string]uint64, len(names))
	for _, name := range names {
		var cst unix.Stat_t
		if err := unix.Lstat(filepath.Join(path, name), &cst); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed meanwhile
			}
			return gofs.ToErrno(err)
		}
		cid := l.idOf(cst.Ino)
		if l.records[cid] == nil {
			r := &record{mode: cst.Mode & 0o7777}
			switch cst.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				r.kind = kindDir
				r.entries = map[string]uint64{}
			case unix.S_IFLNK:
				r.kind = kindSymlink
				t, err := os.Readlink(filepath.Join(path, name))
				if err != nil {
					return gofs.ToErrno(err)
				}
				r.target = t
			default:
				r.kind = kindFile
			}
			l.records[cid] = r
		}
		entries[name] = cid
	}
	id := l.idOf(st.Ino)
	r := l.records[id]
	if r == nil {
		r = &record{kind: kindDir, mode: st.Mode & 0o7777}
		l.records[id] = r
	}
	r.entries = entries
	if after {
		l.freezeLocked(op)
	}
	return 0
}

// restore replaces the working view with the durable one and forgets the
// inodes no durable name leads to.
func (l *FS) restore() error {
	names, err := readNames(l.upper)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := os.RemoveAll(filepath.Join(l.upper, name)); err != nil {
			return err
		}
	}
	l.ids = map[uint64]uint64{}
	made := map[uint64]string{}
	var st unix.Stat_t
	if err := unix.Lstat(l.upper, &st); err != nil {
		return err
	}
	l.ids[st.Ino] = l.rootID
	made[l.rootID] = l.upper
	if err := l.build(l.rootID, l.upper, made); err != nil {
		return err
	}
	for id := range l.records {
		if _, ok := made[id]; !ok {
			delete(l.records, id)
		}
	}
	return nil
}

// build makes the durable entries of folder id inside dir.
func (l *FS) build(id uint64, dir string, made map[uint64]string) error {
	entries := l.records[id].entries
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		cid := entries[name]
		c := l.records[cid]
		p := filepath.Join(dir, name)
		if prev, ok := made[cid]; ok {
			if c.kind == kindDir {
				// A folder reachable by two durable names (moved between
				// folders synced at different times) appears once.
				continue
			}
			if err := os.Link(prev, p); err != nil {
				return err
			}
			continue
		}
		switch c.kind {
		case kindDir:
			if err := os.Mkdir(p, fs.FileMode(c.mode)&fs.ModePerm); err != nil {
				return err
			}
		case kindSymlink:
			if err := os.Symlink(c.target, p); err != nil {
				return err
			}
		default:
			if err := os.WriteFile(p, c.data, 0o600); err != nil {
				return err
			}
		}
		if c.kind != kindSymlink {
			if err := unix.Chmod(p, c.mode); err != nil {
				return err
			}
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		l.ids[st.Ino] = cid
		made[cid] = p
		if c.kind == kindDir {
			if err := l.build(cid, p, made); err != nil {
				return err
			}
		}
		if c.mtime != nil && c.kind != kindSymlink {
			if err := os.Chtimes(p, *c.mtime, *c.mtime); err != nil {
				return err
			}
		}
	}
	return nil
}

// readNames lists the names in the folder at path.
func readNames(path string) (names []string, err error) {
	d, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := d.Close(); err == nil {
			err = cerr
		}
	}()
	names, err = d.Readdirnames(-1)
	if err == io.EOF {
		err = nil
	}
	return names, err
}
