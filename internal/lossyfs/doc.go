// Package lossyfs is a FUSE file system for tests that forgets, on command,
// everything that was not made durable: the power cut.
//
// It serves a real folder (the working view) and keeps beside it, in
// memory, what a disk would still hold after the power went out (the
// durable view). The durable view changes only as Linux promises in its
// manual pages, and no further:
//
//   - fsync or fdatasync of a file copies that file's bytes and size into
//     the durable view (fsync its mode and modification time as well); it
//     does not make the file's name durable;
//   - fsync of a folder copies the folder's entries (which names lead to
//     which files) into the durable view: creations, renames, links and
//     removals in it count only from then on;
//   - nothing else is durable: write, truncate, fallocate, close, rename and
//     sync_file_range (which FUSE never even sees) change the working view
//     only.
//
// A file whose name was made durable but whose bytes never were comes back
// empty; a file fdatasync'ed in a folder never fsync'ed comes back nowhere.
//
// Cut unmounts the file system, replaces the working view with the durable
// one and mounts it again, as a machine that lost power and booted. A
// trigger (SetTrigger) freezes the file system at a chosen operation, before
// or after it takes effect: from then on every change and every sync fails
// with EIO and changes nothing, so that a test can kill the process and cut
// at exactly that moment.
//
// Extended attributes cannot be set (ENOTSUP): their durability is not
// modelled.
package lossyfs
