package segment

// DefaultBufferSize is the largest copy buffer of one connection.
const DefaultBufferSize = 256 << 10

// BufferBudget bounds the copy buffers of one source's connections
// together: with more than BufferBudget / DefaultBufferSize connections,
// each buffer grows to an equal share of it at most. When the source's
// count adapts, the share is for the connections the count allows, and a
// buffer over it comes down at the connection's next answer.
const BufferBudget = 2 << 20

// Copy buffers start at startBuffer and never shrink below minBuffer.
const (
	startBuffer = 64 << 10
	minBuffer   = 32 << 10
)

// bufferShare is the largest copy buffer of each of conns connections of
// one source: an equal share of BufferBudget in whole pages, between
// minBuffer and DefaultBufferSize.
func bufferShare(conns int) int {
	const page = 4 << 10
	return min(max(BufferBudget/max(conns, 1)&^(page-1), minBuffer), DefaultBufferSize)
}

// BuffersHeld is the most memory the copy buffers of conns connections of
// one source hold together, when Fetcher.BufferSize is not set.
func BuffersHeld(conns int) int64 {
	return int64(max(conns, 0)) * int64(bufferShare(conns))
}

// bufferLimit is the largest copy buffer of each of conns connections:
// f.BufferSize if set, else their share of BufferBudget.
func (f *Fetcher) bufferLimit(conns int) int {
	if f.BufferSize > 0 {
		return f.BufferSize
	}
	return bufferShare(conns)
}

// firstBuffer is the size of a connection's first copy buffer, for a
// buffer that may grow to limit.
func (f *Fetcher) firstBuffer(limit int) int {
	if f.BufferSize > 0 {
		return f.BufferSize
	}
	return min(startBuffer, limit)
}

// bufferMax is the largest copy buffer c may hold now: when its source's
// count adapts, its share for the connections the count allows, else its
// share for all of the source's connections.
func (f *Fetcher) bufferMax(c *conn) int {
	if c.pool != nil {
		return f.bufferLimit(c.pool.size())
	}
	if c.bufMax > 0 {
		return c.bufMax
	}
	return f.bufferLimit(1)
}

// nextBuffer is the size a copy buffer of size bytes, at most limit,
// takes after a read of n bytes into room bytes of it. A read into the
// whole empty buffer that fills it shows bytes waiting beyond what it
// holds, and the buffer doubles; a connection whose reads come short, as
// a throttled one's do, keeps its buffer.
func nextBuffer(size, limit, room, n int) int {
	if room == size && n == size {
		return min(2*size, max(limit, size))
	}
	return size
}
