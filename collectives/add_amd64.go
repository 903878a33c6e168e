package collectives

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// The element-wise sums of 4- and 8-byte numbers run 32 bytes at a time
// with AVX2 where the CPU has it: the same additions, element by element,
// as the scalar loop, so the results are bit for bit the same.
var haveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasAVX

//go:noescape
func addF64AVX2(dst, a, b unsafe.Pointer, n int)

//go:noescape
func addF32AVX2(dst, a, b unsafe.Pointer, n int)

//go:noescape
func addI64AVX2(dst, a, b unsafe.Pointer, n int)

//go:noescape
func addI32AVX2(dst, a, b unsafe.Pointer, n int)

// addVec adds the first elements of a and b into dst with AVX2 and returns
// how many it added (a multiple of 128 bytes' worth; 0 without AVX2 or for
// other types). a and b are at least as long as dst.
func addVec[N Number](dst, a, b []N) int {
	var z N
	size := int(unsafe.Sizeof(z))
	n := len(dst) &^ (128/size - 1)
	if !haveAVX2 || n == 0 {
		return 0
	}
	d, x, y := unsafe.Pointer(unsafe.SliceData(dst)), unsafe.Pointer(unsafe.SliceData(a)), unsafe.Pointer(unsafe.SliceData(b))
	switch any(z).(type) {
	case float64:
		addF64AVX2(d, x, y, n)
	case float32:
		addF32AVX2(d, x, y, n)
	case int64, int, uint64:
		addI64AVX2(d, x, y, n)
	case int32:
		addI32AVX2(d, x, y, n)
	default:
		return 0
	}
	return n
}
