package jobenv

// TraceSubject is where ranks send their trace recordings to the launcher
// (decorun --trace or --report), in chunks, each a request the launcher
// answers once it has stored it.
func TraceSubject(prefix string) string { return prefix + ".trace" }

// ClockSubject is where a tracing rank asks the launcher for its clock
// (the answer: its wall clock, Unix ns, 8 bytes little-endian), to align
// the clocks of different hosts.
func ClockSubject(prefix string) string { return prefix + ".clock" }
