// Package convoy downloads one file over many HTTP connections at once and
// survives anything that can happen on the way: a reset connection, a stalled
// server, a killed process, a power cut, a file that changed on the server.
//
// Download is the whole flow, top to bottom: probe the remote (package
// segment), lock and load the manifest (package manifest), open the part
// file (package merge), plan and fetch the ranges that are left, checkpoint
// progress on a timer, and commit the finished file. The three parts never
// import each other; this package is where they meet.
//
// The one invariant: the manifest never claims a byte that is not on disk.
// A checkpoint snapshots the progress, fdatasyncs the part file, and only then
// replaces the manifest.
package convoy
