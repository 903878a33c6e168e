package shm

import "unsafe"

func unsafeBytes(u []uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&u[0])), 8*len(u))
}
