package shm

import "unsafe"

// haveNT: amd64 always has SSE2's MOVNTDQ.
const haveNT = true

// ntCopy copies n bytes (a multiple of 64) from src to dst (64-byte
// aligned) with non-temporal stores, then SFENCE.
//
//go:noescape
func ntCopy(dst, src unsafe.Pointer, n int)
