package comm

import "math/bits"

// bufPool holds receive buffers for the payloads of unexpected messages
// that a link lends (shared memory: the frame is a view into the ring,
// valid only during the delivery callback, so the engine must copy what it
// keeps). Copying them into fresh allocations cost a bw profile at 1-4 MiB
// most of the receiver's time in page faults, zeroing, madvise and
// collections, five times what the same copy into a reused buffer costs;
// a buffer from the pool is reused memory.
//
// Buffers come in power-of-two classes from minPooled bytes up; a payload
// smaller than minPooled, or larger than the largest class, is copied into
// a fresh slice as before. A buffer has one owner at a time: the inMsg
// whose data (or part) it is, marked pooled, until the engine copies it
// into the receive's buffer and puts it back, or hands it over as the
// result of a receive that has no buffer of its own (it is then the
// caller's and never returns to the pool). Free buffers are kept up to
// maxPoolFree bytes in all; beyond that a put buffer is left to the
// collector. Guarded by engine.mu.
type bufPool struct {
	free  [poolClasses][][]byte
	bytes int // in free
}

const (
	minPooledLog = 12 // 4 KiB
	maxPooledLog = 24 // 16 MiB
	poolClasses  = maxPooledLog - minPooledLog + 1
	minPooled    = 1 << minPooledLog
	maxPoolFree  = 32 << 20
)

// class is the class of a buffer for n bytes, or -1 if n is not pooled.
func poolClass(n int) int {
	if n < minPooled || n > 1<<maxPooledLog {
		return -1
	}
	return bits.Len(uint(n-1)) - minPooledLog
}

// copyOf returns a copy of b in a pooled buffer (pooled true) or, for a
// size that is not pooled, in a fresh slice.
func (p *bufPool) copyOf(b []byte) (c []byte, pooled bool) {
	k := poolClass(len(b))
	if k < 0 {
		return append([]byte(nil), b...), false
	}
	if n := len(p.free[k]); n > 0 {
		c = p.free[k][n-1]
		p.free[k][n-1] = nil
		p.free[k] = p.free[k][:n-1]
		p.bytes -= cap(c)
	} else {
		// The class's full size, so that put finds its class again.
		return append(make([]byte, 0, 1<<(k+minPooledLog)), b...), true
	}
	return append(c[:0], b...), true
}

// put returns a buffer that copyOf made, and that nobody else refers to.
func (p *bufPool) put(b []byte) {
	k := poolClass(cap(b))
	if k < 0 || cap(b) != 1<<(k+minPooledLog) || p.bytes+cap(b) > maxPoolFree {
		return
	}
	p.free[k] = append(p.free[k], b[:0])
	p.bytes += cap(b)
}
