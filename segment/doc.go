// Package segment is the network side of a download: it probes a remote file,
// plans the byte ranges that are left, and fetches one range at a time into an
// io.WriterAt with retries.
//
// It knows nothing of files or manifests: progress leaves through callbacks and
// bytes through the io.WriterAt it is given.
package segment
