// Package merge is the disk side of a download: the preallocated part file
// that parallel connections write into with WriteAt, its durability, and the
// commit that turns it into the final file.
package merge
