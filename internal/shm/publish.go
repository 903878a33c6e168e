package shm

import "unsafe"

// Publish copies src into dst, shared memory that another process will
// read, and returns the number of bytes copied (as copy does).
//
// A plain copy into lines that another core read last (the ring or slot a
// peer just emptied) must first fetch each line back from that core (a
// read for ownership): on the 2-core VM this was measured on, writing
// 64 KiB so cost 9.4-10 µs, where the peer read it in 2.5-3 µs (the VM's
// two cores do not always share a cache: runs at some times are 2-4 times
// slower than at others, and the plain copy's cost is what changes). From
// ntMin bytes on, Publish writes whole 64-byte lines with non-temporal
// stores instead (amd64; a plain copy elsewhere), which claim the lines
// without fetching them: 1.2-1.3 µs for the same 64 KiB, and the reader's
// copy costs no more (measured 4 KiB to 1 MiB: writer plus reader 0.47
// against 0.78 µs at 4 KiB, 4.2 against 12.6 at 64 KiB, 65 against 108 at
// 1 MiB). The stores are fenced before Publish returns, so an atomic store
// after it publishes them as it does a plain copy's. When the cores share a
// cache, a plain copy is the faster one (a two-rank Allreduce of 64 KiB
// took 6.7 µs in the build before Publish, 12.7 with it, at 19:11 UTC, and
// 38 against 12 at 19:17); Publish costs about the same either way, and keeping pieces of 256 KiB and more plain cost point
// to point 30-40% of its bandwidth at 1-4 MiB (measured 2026-12-07).
func Publish(dst, src []byte) int {
	n := min(len(dst), len(src))
	if n < ntMin || !haveNT {
		return copy(dst, src)
	}
	// Plain copy up to dst's next 64-byte boundary, non-temporal stores
	// for the whole lines, a plain copy of what is left.
	head := int(-uintptr(unsafe.Pointer(unsafe.SliceData(dst))) & 63)
	copy(dst[:head], src[:head])
	body := (n - head) &^ 63
	ntCopy(unsafe.Pointer(unsafe.SliceData(dst[head:])), unsafe.Pointer(unsafe.SliceData(src[head:])), body)
	copy(dst[head+body:n], src[head+body:n])
	return n
}

// ntMin is the smallest copy that Publish makes with non-temporal stores:
// below it a plain copy costs no more (equal at 1 KiB here), and the
// reader finds small frames in the writer's cache.
const ntMin = 4 << 10
