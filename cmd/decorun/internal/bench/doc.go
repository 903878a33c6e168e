// Package bench is the benchmark suite behind `decorun bench`: OSU-style
// point-to-point and collective micro-benchmarks, a start-up measurement,
// and a raw nats.go baseline that separates decorun's own cost from NATS's.
//
// The suite runs inside a decorun job: the bench command starts the decorun
// binary itself on every rank in a hidden rank mode, and each rank calls
// [Run] with the world communicator. Rank 0 prints one [Result] per
// measurement, as a table or as JSON lines ([Printer]). [Startup] runs in
// the bench command itself: it times whole `decorun -n N` runs of a rank
// program that only joins and closes. With --plot, the bench command draws
// the results (package benchplot beside this one); docs/bench.md is the
// user's guide.
//
// # What is measured
//
//   - latency: ping-pong between ranks 0 and 1 with blocking Send and
//     RecvInto; one-way latency is half of each round trip, reported as
//     median, p99, min and mean over the iterations.
//   - bw: rank 0 starts a window of 64 Isends, waits for them, then for a
//     4-byte ack; rank 1 posts 64 receives at once, each into a buffer
//     of its own (IrecvInto), waits for them and acks, as OSU's osu_bw
//     and osu_like.c do. MB/s = 10^6 B/s.
//   - bibw: both ranks send a window to each other at once; aggregate MB/s.
//   - barrier, bcast, reduce, allreduce, gather, scatter, alltoall: package
//     collectives; each op is timed alone with an untimed barrier between
//     ops (OSU style); the row gives the max, mean and min over ranks of each
//     rank's mean time per op. Gather, scatter and alltoall move size bytes
//     per rank (per pair for alltoall), allreduce sums size/8 float64s
//     (reduce: the same, to rank 0 with collectives.ReduceSliceInto);
//     bcast, gather and scatter use BcastInto, GatherInto and ScatterInto
//     into buffers allocated once
//     with collectives.AllreduceSliceInto into a result buffer allocated
//     once, as osu_allreduce reuses its buffers (every benchmark allocates
//     its buffers once).
//   - iallreduce: OSU's osu_iallreduce overlap, as bench_iallreduce in
//     ../shared/bench/mpi/osu_like.c defines it: pure is the time of
//     collectives.IallreduceSliceInto (size/8 float64s) and Wait alone;
//     then each iteration starts the call, computes (busy, no calls) for
//     pure µs and waits (total). pure, compute and total are the max over
//     ranks of each rank's mean; overlap% = 100·(1 − (total −
//     compute)/pure), clamped to 0..100. Default sizes 8 B, 64 KiB, 1 MiB;
//     1000, 200 and 50 iterations (osu_like's), a tenth more to warm up.
//   - tasks: no-op task calls per second through package deco: deco.Run
//     over all ranks, and on rank 0 blocks of TaskCalls (10,000) Assign
//     calls of a function that returns its argument, each block timed from
//     its first call to the end of deco.Synchronized (DECO's measurement in
//     ../shared/notes/deco.md 6b); median, min and max over the blocks, and
//     the ratio to DECO's 25,471 calls/s.
//   - startup: wall time of `decorun -n N` of a program that joins the job
//     and closes, start to exit, over several runs.
//
// Iteration counts follow OSU and the project's C reference
// (../shared/bench/mpi/osu_like.c): latency 1000 + 100 warm-up up to 8 KiB,
// 100 + 10 above; bandwidth 100 + 10, then 20 + 2; collectives 1000 + 100,
// then 100 + 10; tasks 10 blocks + 1; startup 10 runs + 1. Config.Iters
// overrides them.
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
