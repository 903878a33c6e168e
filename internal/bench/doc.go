// Package bench is the benchmark suite behind `decorun bench`: OSU-style
// point-to-point and collective micro-benchmarks, a start-up measurement,
// and a raw nats.go baseline that separates decorun's own cost from NATS's.
//
// The suite runs inside a decorun job: the bench command starts the decorun
// binary itself on every rank in a hidden rank mode, and each rank calls
// [Run] with the world communicator. Rank 0 prints one [Result] per
// measurement, as a table or as JSON lines ([Printer]). [Startup] runs in
// the bench command itself: it times whole `decorun -n N` runs of a rank
// program that only joins and closes.
//
// # What is measured
//
//   - latency: ping-pong between ranks 0 and 1 with blocking Send and
//     RecvInto; one-way latency is half of each round trip, reported as
//     median, p99, min and mean over the iterations.
//   - bw: rank 0 starts a window of 64 Isends, waits for them, then for a
//     4-byte ack; rank 1 posts 64 Irecvs, waits, and acks. MB/s = 10^6 B/s.
//   - bibw: both ranks send a window to each other at once; aggregate MB/s.
//   - barrier, bcast, allreduce, gather, scatter, alltoall: package
//     collectives; each op is timed alone with an untimed barrier between
//     ops (OSU style); the row gives the max, mean and min over ranks of each
//     rank's mean time per op. Gather, scatter and alltoall move size bytes
//     per rank (per pair for alltoall), allreduce sums size/8 float64s.
//   - startup: wall time of `decorun -n N` of a program that joins the job
//     and closes, start to exit, over several runs.
//
// Iteration counts follow OSU and the project's C reference
// (../shared/bench/mpi/osu_like.c): latency 1000 + 100 warm-up up to 8 KiB,
// 100 + 10 above; bandwidth 100 + 10, then 20 + 2; collectives 1000 + 100,
// then 100 + 10. Config.Iters overrides them.
//
// # Baseline
//
// With Config.Baseline, each point-to-point size is measured a second time
// between the same two processes through the same server with bare nats.go
// connections (one per rank, opened with the job's credentials): a ping-pong
// where each side's subscription callback hands the message to the waiting
// goroutine, which publishes the reply, and a stream of 64 messages answered
// by an ack. Payloads above the server's max_payload (1 MiB by default) are
// split into max_payload messages in the baseline too; such rows say how
// many NATS messages one payload took. The ratio is decorun's figure over
// the raw one.
package bench
