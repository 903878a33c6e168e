package collectives

import (
	"context"

	"github.com/decorun/decorun/comm"
)

// The nonblocking forms of the collectives. Each takes the same arguments
// as its blocking form, takes its place among the collective calls on c at
// once, and returns a Request whose Wait and Test give what the blocking
// form returns, errors included. Slices passed in, and out of the *Into
// forms, belong to the call until it is complete: do not modify them
// before then (MPI's rule for the buffers of a nonblocking call). See the
// package doc, "Nonblocking collectives".

// Ibarrier is the nonblocking form of Barrier (MPI_Ibarrier): it completes
// once every rank of c has called it.
func Ibarrier(ctx context.Context, c *comm.Comm) *Request[struct{}] {
	return startErr(ctx, c, opBarrier, func(ctx context.Context) error { return Barrier(ctx, c) })
}

// Ibcast is the nonblocking form of Bcast (MPI_Ibcast).
func Ibcast[T any](ctx context.Context, c *comm.Comm, v T, root int) *Request[T] {
	return start(ctx, c, opBcast, func(ctx context.Context) (T, error) { return Bcast(ctx, c, v, root) })
}

// Ireduce is the nonblocking form of Reduce (MPI_Ireduce).
func Ireduce[T any](ctx context.Context, c *comm.Comm, v T, op func(a, b T) T, root int) *Request[T] {
	return start(ctx, c, opReduce, func(ctx context.Context) (T, error) { return Reduce(ctx, c, v, op, root) })
}

// Iallreduce is the nonblocking form of Allreduce (MPI_Iallreduce).
func Iallreduce[T any](ctx context.Context, c *comm.Comm, v T, op func(a, b T) T) *Request[T] {
	return start(ctx, c, opAllreduce, func(ctx context.Context) (T, error) { return Allreduce(ctx, c, v, op) })
}

// IreduceSlice is the nonblocking form of ReduceSlice.
func IreduceSlice[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E, root int) *Request[[]E] {
	return start(ctx, c, opReduceSlice, func(ctx context.Context) ([]E, error) { return ReduceSlice(ctx, c, v, op, root) })
}

// IreduceSliceInto is the nonblocking form of ReduceSliceInto: out holds
// the result at root once the request is complete.
func IreduceSliceInto[E any](ctx context.Context, c *comm.Comm, in, out []E, op func(a, b E) E, root int) *Request[struct{}] {
	return startErr(ctx, c, opReduceSliceInto, func(ctx context.Context) error {
		return ReduceSliceInto(ctx, c, in, out, op, root)
	})
}

// IallreduceSlice is the nonblocking form of AllreduceSlice.
func IallreduceSlice[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E) *Request[[]E] {
	return start(ctx, c, opAllreduceSlice, func(ctx context.Context) ([]E, error) { return AllreduceSlice(ctx, c, v, op) })
}

// IallreduceSliceInto is the nonblocking form of AllreduceSliceInto: out
// holds the result once the request is complete.
func IallreduceSliceInto[E any](ctx context.Context, c *comm.Comm, in, out []E, op func(a, b E) E) *Request[struct{}] {
	return startErr(ctx, c, opAllreduceSliceInto, func(ctx context.Context) error {
		return AllreduceSliceInto(ctx, c, in, out, op)
	})
}

// Igather is the nonblocking form of Gather (MPI_Igather).
func Igather[T any](ctx context.Context, c *comm.Comm, part []T, root int) *Request[[]T] {
	return start(ctx, c, opGather, func(ctx context.Context) ([]T, error) { return Gather(ctx, c, part, root) })
}

// Igatherv is the nonblocking form of Gatherv (MPI_Igatherv).
func Igatherv[T any](ctx context.Context, c *comm.Comm, part []T, root int) *Request[[][]T] {
	return start(ctx, c, opGatherv, func(ctx context.Context) ([][]T, error) { return Gatherv(ctx, c, part, root) })
}

// Iscatter is the nonblocking form of Scatter (MPI_Iscatter).
func Iscatter[T any](ctx context.Context, c *comm.Comm, data []T, root int) *Request[[]T] {
	return start(ctx, c, opScatter, func(ctx context.Context) ([]T, error) { return Scatter(ctx, c, data, root) })
}

// Iscatterv is the nonblocking form of Scatterv (MPI_Iscatterv).
func Iscatterv[T any](ctx context.Context, c *comm.Comm, parts [][]T, root int) *Request[[]T] {
	return start(ctx, c, opScatterv, func(ctx context.Context) ([]T, error) { return Scatterv(ctx, c, parts, root) })
}

// Iallgather is the nonblocking form of Allgather (MPI_Iallgather).
func Iallgather[T any](ctx context.Context, c *comm.Comm, part []T) *Request[[]T] {
	return start(ctx, c, opAllgather, func(ctx context.Context) ([]T, error) { return Allgather(ctx, c, part) })
}

// Iallgatherv is the nonblocking form of Allgatherv (MPI_Iallgatherv).
func Iallgatherv[T any](ctx context.Context, c *comm.Comm, part []T) *Request[[][]T] {
	return start(ctx, c, opAllgatherv, func(ctx context.Context) ([][]T, error) { return Allgatherv(ctx, c, part) })
}

// Ialltoall is the nonblocking form of Alltoall (MPI_Ialltoall).
func Ialltoall[T any](ctx context.Context, c *comm.Comm, data []T) *Request[[]T] {
	return start(ctx, c, opAlltoall, func(ctx context.Context) ([]T, error) { return Alltoall(ctx, c, data) })
}

// Ialltoallv is the nonblocking form of Alltoallv (MPI_Ialltoallv).
func Ialltoallv[T any](ctx context.Context, c *comm.Comm, parts [][]T) *Request[[][]T] {
	return start(ctx, c, opAlltoallv, func(ctx context.Context) ([][]T, error) { return Alltoallv(ctx, c, parts) })
}

// IreduceScatter is the nonblocking form of ReduceScatter
// (MPI_Ireduce_scatter_block).
func IreduceScatter[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E) *Request[[]E] {
	return start(ctx, c, opReduceScatter, func(ctx context.Context) ([]E, error) { return ReduceScatter(ctx, c, v, op) })
}

// Iscan is the nonblocking form of Scan (MPI_Iscan).
func Iscan[T any](ctx context.Context, c *comm.Comm, v T, op func(a, b T) T) *Request[T] {
	return start(ctx, c, opScan, func(ctx context.Context) (T, error) { return Scan(ctx, c, v, op) })
}

// Iexscan is the nonblocking form of Exscan (MPI_Iexscan).
func Iexscan[T any](ctx context.Context, c *comm.Comm, v T, op func(a, b T) T) *Request[T] {
	return start(ctx, c, opExscan, func(ctx context.Context) (T, error) { return Exscan(ctx, c, v, op) })
}

// IscanSlice is the nonblocking form of ScanSlice.
func IscanSlice[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E) *Request[[]E] {
	return start(ctx, c, opScanSlice, func(ctx context.Context) ([]E, error) { return ScanSlice(ctx, c, v, op) })
}

// IexscanSlice is the nonblocking form of ExscanSlice.
func IexscanSlice[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E) *Request[[]E] {
	return start(ctx, c, opExscanSlice, func(ctx context.Context) ([]E, error) { return ExscanSlice(ctx, c, v, op) })
}

// IbcastInto is the nonblocking form of BcastInto (MPI_Ibcast).
func IbcastInto[E Number](ctx context.Context, c *comm.Comm, buf []E, root int) *Request[struct{}] {
	return startErr(ctx, c, opBcastInto, func(ctx context.Context) error { return BcastInto(ctx, c, buf, root) })
}

// IgatherInto is the nonblocking form of GatherInto (MPI_Igather).
func IgatherInto[E Number](ctx context.Context, c *comm.Comm, part, out []E, root int) *Request[struct{}] {
	return startErr(ctx, c, opGatherInto, func(ctx context.Context) error { return GatherInto(ctx, c, part, out, root) })
}

// IscatterInto is the nonblocking form of ScatterInto (MPI_Iscatter).
func IscatterInto[E Number](ctx context.Context, c *comm.Comm, data, out []E, root int) *Request[struct{}] {
	return startErr(ctx, c, opScatterInto, func(ctx context.Context) error { return ScatterInto(ctx, c, data, out, root) })
}

// IgathervInto is the nonblocking form of GathervInto: out holds the parts
// at root once the request is complete.
func IgathervInto[E Number](ctx context.Context, c *comm.Comm, part, out []E, counts, displs []int, root int) *Request[struct{}] {
	return startErr(ctx, c, opGathervInto, func(ctx context.Context) error {
		return GathervInto(ctx, c, part, out, counts, displs, root)
	})
}

// IallgathervInto is the nonblocking form of AllgathervInto.
func IallgathervInto[E Number](ctx context.Context, c *comm.Comm, part, out []E, counts, displs []int) *Request[struct{}] {
	return startErr(ctx, c, opAllgathervInto, func(ctx context.Context) error {
		return AllgathervInto(ctx, c, part, out, counts, displs)
	})
}
