package bench

import (
	"time"
	_ "unsafe" // for go:linkname
)

// nanotime is the runtime's monotonic clock, one clock_gettime: time.Now
// reads the wall clock as well, and on a VM each read costs 40-50 ns
// (measured here), which a per-call timing of a sub-microsecond call
// would add to what it reports. osu_like's MPI_Wtime reads one clock.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// since is the time passed since t0, a nanotime reading.
func since(t0 int64) time.Duration { return time.Duration(nanotime() - t0) }
