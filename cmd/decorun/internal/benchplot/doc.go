// Package benchplot draws the results of `decorun bench --plot FILE` with
// gonum.org/v1/plot, beside reference series read from files
// (`--plot-ref`).
//
// [Write] tiles one panel per benchmark of the run that has message sizes,
// two panels wide, into one SVG or PNG file (chosen by the extension):
//
//   - latency: one-way median µs against size;
//   - bw and bibw: MB/s (10^6 B/s) against size;
//   - bcast, reduce, allreduce, gather, scatter, alltoall: the mean over
//     ranks of each rank's mean µs per op, one line per series and rank
//     count.
//
// Both axes are logarithmic; size 0 is drawn left of 1 and labelled 0.
// Barrier, iallreduce, tasks and startup are not drawn (barrier and the
// last two have no size; iallreduce's figure is an overlap, in the table).
// Each series keeps its colour in every panel; when the run measured a
// raw nats.go baseline (--baseline), it is drawn dashed beside decorun's.
//
// [ReadRef] reads a reference series: the text output of osu_like
// (shared/bench/mpi/osu_like.c, under any MPI) or the output of
// `decorun bench --json`, so that two decorun runs can be compared.
package benchplot
