package shm

// cpuRelax tells the CPU that the caller spins (x86 PAUSE): the loop's loads
// of a line that another core is about to write are not all in flight when
// it does, so leaving the loop costs no pipeline flush.
func cpuRelax()
