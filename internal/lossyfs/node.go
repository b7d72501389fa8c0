package lossyfs

import (
	"context"
	"path/filepath"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a loopback node whose changes and syncs go through the FS: each
// checks the freeze and the trigger, a sync updates the durable view, and a
// creation gives the new inode an id of its own.
type node struct {
	*gofs.LoopbackNode
	l *FS
}

var (
	_ gofs.NodeWrapChilder    = (*node)(nil)
	_ gofs.NodeCreater        = (*node)(nil)
	_ gofs.NodeMknoder        = (*node)(nil)
	_ gofs.NodeMkdirer        = (*node)(nil)
	_ gofs.NodeSymlinker      = (*node)(nil)
	_ gofs.NodeLinker         = (*node)(nil)
	_ gofs.NodeRenamer        = (*node)(nil)
	_ gofs.NodeUnlinker       = (*node)(nil)
	_ gofs.NodeRmdirer        = (*node)(nil)
	_ gofs.NodeOpener         = (*node)(nil)
	_ gofs.NodeSetattrer      = (*node)(nil)
	_ gofs.NodeWriter         = (*node)(nil)
	_ gofs.NodeWritever       = (*node)(nil)
	_ gofs.NodeAllocater      = (*node)(nil)
	_ gofs.NodeFsyncer        = (*node)(nil)
	_ gofs.NodeOpendirHandler = (*node)(nil)
	_ gofs.NodeSetxattrer     = (*node)(nil)
	_ gofs.NodeRemovexattrer  = (*node)(nil)
	_ gofs.NodeCopyFileRanger = (*node)(nil)
)

// WrapChild makes every node of the tree a lossy one.
func (n *node) WrapChild(ctx context.Context, ops gofs.InodeEmbedder) gofs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*gofs.LoopbackNode), l: n.l}
}

// rel is the node's path relative to the mount's root.
func (n *node) rel() string {
	return n.Path(n.Root())
}

// child is the relative path of name inside n.
func (n *node) child(name string) string {
	return filepath.Join(n.rel(), name)
}

// upper is the working view's path of rel.
func (n *node) upper(rel string) string {
	return filepath.Join(n.l.upper, rel)
}

// relOf is the relative path of another node of the tree.
func (n *node) relOf(e gofs.InodeEmbedder) string {
	return e.EmbeddedInode().Path(n.Root())
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	op := Op{Kind: OpCreate, Path: n.child(name)}
	after, errno := n.l.begin(op)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	defer n.l.end(op, after)
	in, fh, ff, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	n.l.created(n.upper(op.Path))
	return in, &fileHandle{inner: fh}, ff, 0
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	op := Op{Kind: OpCreate, Path: n.child(name)}
	after, errno := n.l.begin(op)
	if errno != 0 {
		return nil, errno
	}
	defer n.l.end(op, after)
	in, errno := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	if errno == 0 {
		n.l.created(n.upper(op.Path))
	}
	return in, errno
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	op := Op{Kind: OpMkdir, Path: n.child(name)}
	after, errno := n.l.begin(op)
	if errno != 0 {
		return nil, errno
	}
	defer n.l.end(op, after)
	in, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if errno == 0 {
		n.l.created(n.upper(op.Path))
	}
	return in, errno
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	op := Op{Kind: OpSymlink, Path: n.child(name)}
	after, errno := n.l.begin(op)
	if errno != 0 {
		return nil, errno
	}
	defer n.l.end(op, after)
	in, errno := n.LoopbackNode.Symlink(ctx, target, name, out)
	if errno == 0 {
		n.l.created(n.upper(op.Path))
	}
	return in, errno
}

func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	op := Op{Kind: OpLink, Path: n.relOf(target), NewPath: n.child(name)}
	after, errno := n.l.begin(op)
	if errno != 0 {
		return nil, errno
	}
	defer n.l.end(op, after)
	return n.LoopbackNode.Link(ctx, target, name, out)
}

func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	op := Op{Kind: OpRename, Path: n.child(name), NewPath: filepath.Join(n.relOf(newParent), newName)}
	after, errno := n.l.begin(op)
	if errno != 0 {
		return errno
	}
	defer n.l.end(op, after)
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	op := Op{Kind: OpUnlink, Path: n.child(name)}
	after, errno := n.l.begin(op)
	if errno != 0 {
		return errno
	}
	defer n.l.end(op, after)
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	op := Op{Kind: OpRmdir, Path: n.child(name)}
	after, errno := n.l.begin(op)
	if errno != 0 {
		return errno
	}
	defer n.l.end(op, after)
	return n.LoopbackNode.Rmdir(ctx, name)
}

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		op := Op{Kind: OpTruncOpen, Path: n.rel()}
		after, errno := n.l.begin(op)
		if errno != 0 {
			return nil, 0, errno
		}
		defer n.l.end(op, after)
	}
	fh, ff, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &fileHandle{inner: fh}, ff, 0
}

func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	op := Op{Kind: OpSetattr, Path: n.rel()}
	after, errno := n.l.begin(op)
	if errno != 0 {
		return errno
	}
	defer n.l.end(op, after)
	return n.LoopbackNode.Setattr(ctx, unwrap(f), in, out)
}

func (n *node) Write(ctx context.Context, f gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	w, ok := unwrap(f).(gofs.FileWriter)
	if !ok {
		return 0, syscall.EBADF
	}
	op := Op{Kind: OpWrite, Path: n.rel()}
	after, errno := n.l.begin(op)
	if errno != 0 {
		return 0, errno
	}
	defer n.l.end(op, after)
	return w.Write(ctx, data, off)
}

func (n *node) Writev(ctx context.Context, f gofs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	w, ok := unwrap(f).(gofs.FileWritever)
	if !ok {
		return 0, syscall.EBADF
	}
	op := Op{Kind: OpWrite, Path: n.rel()}
	after, errno := n.l.begin(op)
	if errno != 0 {
		return 0, errno
	}
	defer n.l.end(op, after)
	return w.Writev(ctx, data, off)
}

func (n *node) Allocate(ctx context.Context, f gofs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	a, ok := unwrap(f).(gofs.FileAllocater)
	if !ok {
		return syscall.EBADF
	}
	op := Op{Kind: OpAllocate, Path: n.rel()}
	after, errno := n.l.begin(op)
	if errno != 0 {
		return errno
	}
	defer n.l.end(op, after)
	return a.Allocate(ctx, off, size, mode)
}

// fsyncDatasync is FUSE_FSYNC_FDATASYNC: the fsync is an fdatasync.
const fsyncDatasync = 1

// Fsync makes the file durable in the durable view (the working view is a
// scratch folder: it needs no real fsync). Folders come here too when
// their handle does not take the fsync itself.
func (n *node) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	if n.IsDir() {
		return n.l.syncDir(Op{Kind: OpFsyncDir, Path: n.rel()}, n.upper(n.rel()))
	}
	pf, ok := unwrap(f).(gofs.FilePassthroughFder)
	if !ok {
		return syscall.EBADF
	}
	fd, ok := pf.PassthroughFd()
	if !ok {
		return syscall.EBADF
	}
	datasync := flags&fsyncDatasync != 0
	return n.l.syncFile(Op{Kind: OpFsync, Path: n.rel(), Datasync: datasync}, fd, !datasync)
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	fh, ff, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{inner: fh, n: n}, ff, 0
}

// Setxattr refuses: the durability of extended attributes is not
// modelled.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.ENOTSUP
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return syscall.ENOTSUP
}

// CopyFileRange refuses, so that the kernel copies through Write.
func (n *node) CopyFileRange(ctx context.Context, fhIn gofs.FileHandle, offIn uint64, out *gofs.Inode, fhOut gofs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOTSUP
}

// dirHandle is an open folder whose fsync goes to the durable view.
type dirHandle struct {
	inner gofs.FileHandle
	n     *node
}

var (
	_ gofs.FileReaddirenter = (*dirHandle)(nil)
	_ gofs.FileSeekdirer    = (*dirHandle)(nil)
	_ gofs.FileReleasedirer = (*dirHandle)(nil)
	_ gofs.FileFsyncdirer   = (*dirHandle)(nil)
)

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	r, ok := d.inner.(gofs.FileReaddirenter)
	if !ok {
		return nil, syscall.ENOTSUP
	}
	return r.Readdirent(ctx)
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	s, ok := d.inner.(gofs.FileSeekdirer)
	if !ok {
		return syscall.ENOTSUP
	}
	return s.Seekdir(ctx, off)
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.inner.(gofs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return d.n.l.syncDir(Op{Kind: OpFsyncDir, Path: d.n.rel()}, d.n.upper(d.n.rel()))
}

// fileHandle is an open file. It hides the loopback file's descriptor from
// go-fuse: with FUSE passthrough, reads and writes would go from the kernel
// straight to the working view, unseen, and the freeze could not stop them.
type fileHandle struct {
	inner gofs.FileHandle
}

// unwrap returns the loopback file inside f (f itself if it is not a
// fileHandle).
func unwrap(f gofs.FileHandle) gofs.FileHandle {
	if h, ok := f.(*fileHandle); ok {
		return h.inner
	}
	return f
}

var (
	_ gofs.FileReader    = (*fileHandle)(nil)
	_ gofs.FileReleaser  = (*fileHandle)(nil)
	_ gofs.FileFlusher   = (*fileHandle)(nil)
	_ gofs.FileGetattrer = (*fileHandle)(nil)
	_ gofs.FileLseeker   = (*fileHandle)(nil)
)

func (h *fileHandle) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	r, ok := h.inner.(gofs.FileReader)
	if !ok {
		return nil, syscall.EBADF
	}
	return r.Read(ctx, buf, off)
}

func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	r, ok := h.inner.(gofs.FileReleaser)
	if !ok {
		return 0
	}
	return r.Release(ctx)
}

func (h *fileHandle) Flush(ctx context.Context) syscall.Errno {
	fl, ok := h.inner.(gofs.FileFlusher)
	if !ok {
		return 0
	}
	return fl.Flush(ctx)
}

func (h *fileHandle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	g, ok := h.inner.(gofs.FileGetattrer)
	if !ok {
		return syscall.EBADF
	}
	return g.Getattr(ctx, out)
}

func (h *fileHandle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	s, ok := h.inner.(gofs.FileLseeker)
	if !ok {
		return 0, syscall.ENOTSUP
	}
	return s.Lseek(ctx, off, whence)
}
