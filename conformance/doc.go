// Package conformance checks decorun's comm and collectives against the
// rules of MPI that programs rely on, in the spirit of the test suites MPI
// implementers run (MPICH's test/mpi pt2pt, coll and comm directories;
// mpi4py's test_p2p_*, test_cco_* and test_comm). It has no API: it is its
// tests, one per rule, each named after the rule it checks
// (TestNonOvertakingSameTag, TestProbeDoesNotConsume,
// TestCollectivesEverySizeEveryRoot, ...).
//
// The ranks of each test run in the test process, over a real embedded
// nats-server (package comm/commtest), on the data path that
// DECORUN_TRANSPORT names (auto when unset):
//
//	go test -race ./conformance                         # auto: shared memory
//	DECORUN_TRANSPORT=nats go test -race ./conformance  # NATS only
//	DECORUN_TRANSPORT=tcp go test -race ./conformance   # direct TCP
//
// -short runs the collectives at fewer sizes (1, 2, 3, 5, 8 ranks instead
// of 1 to 9).
package conformance
