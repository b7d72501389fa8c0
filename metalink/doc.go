// Package metalink reads the two ways a mirror network tells a client
// where a file is and what it must hash to: Metalink documents (RFC 5854,
// Metalink 4, and the older Metalink 3) and the Link header fields of
// Metalink/HTTP (RFC 6249, in the syntax of RFC 8288).
//
// Decode takes a document from a source that is not trusted: it reads at
// most MaxDocument bytes, refuses DOCTYPE and entity declarations, bounds
// the files and addresses it accepts, and checks every name, size, hash and
// piece list before returning anything. ParseLinks reads Link header
// values; Duplicates and DescribedBy pick the mirrors and the metalink out
// of them.
//
// The package knows nothing of HTTP clients, files on disk or downloads:
// it turns text into values, and the caller decides what to fetch.
package metalink
