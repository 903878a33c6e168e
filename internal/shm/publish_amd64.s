#include "textflag.h"

// func ntCopy(dst, src unsafe.Pointer, n int)
// n is a multiple of 64 and dst is 64-byte aligned; src may be unaligned.
// SSE2 only (every amd64 CPU): unaligned loads, non-temporal aligned stores
// of whole cache lines, and a store fence so that the stores are visible
// before any later store (the caller's atomic publication).
TEXT ·ntCopy(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $6, CX
	JZ   done
loop:
	MOVOU 0(SI), X0
	MOVOU 16(SI), X1
	MOVOU 32(SI), X2
	MOVOU 48(SI), X3
	MOVNTO X0, 0(DI)
	MOVNTO X1, 16(DI)
	MOVNTO X2, 32(DI)
	MOVNTO X3, 48(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  loop
done:
	SFENCE
	RET
