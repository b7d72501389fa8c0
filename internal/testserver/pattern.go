// Package testserver provides a fault-injecting HTTP/1.1 server for tests of
// a segmented downloader. It serves one file whose content is a deterministic,
// position dependent byte pattern (see Pattern), so a misplaced range shows
// as a pattern break and no fixture is needed on disk.
package testserver

import "encoding/binary"

// Pattern fills p with the content bytes at offsets [off, off+len(p)) of the
// file identified by seed. Content byte i is byte i%8 (little endian) of a
// splitmix64 mix of the block index i/8 and seed, so the result depends only
// on seed and the absolute offset: Pattern(seed, off+k, p[k:]) always equals
// the tail of Pattern(seed, off, p). Pattern is defined for every offset,
// including those past the end of a file. It panics if off is negative.
func Pattern(seed uint64, off int64, p []byte) {
	if off < 0 {
		panic("testserver: Pattern: negative offset")
	}
	key := mix64(seed ^ 0x6a09e667f3bcc909) // decorrelates seed from block index
	blk := uint64(off) / 8
	var tmp [8]byte
	if r := uint64(off) % 8; r != 0 { // leading partial block
		binary.LittleEndian.PutUint64(tmp[:], block(key, blk))
		p = p[copy(p, tmp[r:]):]
		blk++
	}
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, block(key, blk))
		p = p[8:]
		blk++
	}
	if len(p) > 0 { // trailing partial block
		binary.LittleEndian.PutUint64(tmp[:], block(key, blk))
		copy(p, tmp[:])
	}
}

// block returns the 8 content bytes of block i for the mixed seed key.
func block(key, i uint64) uint64 {
	return mix64(key + i*0x9e3779b97f4a7c15)
}

// mix64 is the splitmix64 finalizer: a bijective, well-avalanching mix.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
