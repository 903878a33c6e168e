#include "textflag.h"

// Element-wise sums with AVX2, 128 bytes per iteration: dst[i] = a[i] + b[i]
// for the first n&^(128/size-1) elements (the caller adds the rest). a is
// the first operand of each add, as in the scalar a[i] + b[i]. dst may be
// a or b (same indices), never a shifted view of them.

#define ADDLOOP(OP, SHIFT) \
	MOVQ dst+0(FP), DI \
	MOVQ a+8(FP), SI \
	MOVQ b+16(FP), DX \
	MOVQ n+24(FP), CX \
	SHRQ $SHIFT, CX \
	JZ   done \
loop: \
	VMOVDQU 0(SI), Y0 \
	VMOVDQU 32(SI), Y1 \
	VMOVDQU 64(SI), Y2 \
	VMOVDQU 96(SI), Y3 \
	OP 0(DX), Y0, Y0 \
	OP 32(DX), Y1, Y1 \
	OP 64(DX), Y2, Y2 \
	OP 96(DX), Y3, Y3 \
	VMOVDQU Y0, 0(DI) \
	VMOVDQU Y1, 32(DI) \
	VMOVDQU Y2, 64(DI) \
	VMOVDQU Y3, 96(DI) \
	ADDQ $128, SI \
	ADDQ $128, DX \
	ADDQ $128, DI \
	DECQ CX \
	JNZ  loop \
	VZEROUPPER \
done: \
	RET

// func addF64AVX2(dst, a, b unsafe.Pointer, n int)
TEXT ·addF64AVX2(SB), NOSPLIT, $0-32
	ADDLOOP(VADDPD, 4)

// func addF32AVX2(dst, a, b unsafe.Pointer, n int)
TEXT ·addF32AVX2(SB), NOSPLIT, $0-32
	ADDLOOP(VADDPS, 5)

// func addI64AVX2(dst, a, b unsafe.Pointer, n int)
TEXT ·addI64AVX2(SB), NOSPLIT, $0-32
	ADDLOOP(VPADDQ, 4)

// func addI32AVX2(dst, a, b unsafe.Pointer, n int)
TEXT ·addI32AVX2(SB), NOSPLIT, $0-32
	ADDLOOP(VPADDD, 5)
