package shm

import (
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Asymmetric fences. A member that publishes a step (Post, Mark, Ack) then
// loads the others' sleep flags, and a member about to sleep stores its
// flag then loads the steps: each side stores, then loads what the other
// stores, so without a full fence on both sides each could miss the other
// and the sleeper would sleep through the post (until regionPark). An
// atomic store on amd64 is such a fence (XCHG), and it stalls the
// publisher until its line, which the readers' cores hold from the step
// before, is back: 19% of a Barrier's time on two ranks here. Where the
// kernel offers it, every process registers for membarrier's global
// expedited command, publishers store plainly (a release store, all x86
// needs for the readers), and a member about to sleep runs the command
// instead, which makes every registered process's running threads execute
// a full barrier: then either the publisher's load sees the sleep flag or
// the sleeper's load sees the step (the pairing membarrier(2) documents).
// The sleeper pays a system call and an interrupt of the other cores, once
// per sleep, after it has waited half a millisecond or more.

const (
	sysMembarrier                 = 324
	membarrierQuery               = 0
	membarrierGlobalExpedited     = 1 << 1
	membarrierRegisterGlobalExped = 1 << 2
)

var (
	fenceOnce sync.Once
	asym      atomic.Bool // this process publishes with release stores
)

// setupFences registers this process for membarrier's global expedited
// command, once, if the kernel has it.
func setupFences() {
	fenceOnce.Do(func() {
		mask, _, e := syscall.Syscall(sysMembarrier, membarrierQuery, 0, 0)
		if e != 0 || mask&(membarrierGlobalExpedited|membarrierRegisterGlobalExped) != membarrierGlobalExpedited|membarrierRegisterGlobalExped {
			return
		}
		if _, _, e := syscall.Syscall(sysMembarrier, membarrierRegisterGlobalExped, 0, 0); e != 0 {
			return
		}
		asym.Store(true)
	})
}

// publish stores v in w for other processes to load, and orders it before
// this goroutine's later loads of their sleep flags, either by itself (an
// atomic store) or with the sleepers' heavyFence.
func publish(w *atomic.Uint64, v uint64) {
	if asym.Load() {
		storeRelease((*uint64)(unsafe.Pointer(w)), v)
		return
	}
	w.Store(v)
}

// heavyFence is the sleeper's side: after it stores its sleep flag and
// before it loads what the publishers store.
func heavyFence() {
	if asym.Load() {
		// Cannot fail once registered; if it somehow did, the sleep
		// would end within regionPark anyway.
		syscall.Syscall(sysMembarrier, membarrierGlobalExpedited, 0, 0)
	}
}

// storeRelease is a plain 8-byte store (assembly, so the compiler keeps it
// after the stores before it): release order on x86.
//
//go:noescape
func storeRelease(p *uint64, v uint64)
