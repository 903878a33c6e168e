package conformance

import (
	"context"
	"fmt"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

// The checks of TestCollectivesMatrix. Each takes the communicator, the
// number m of elements per rank and the check's number s.

// scalarOps are the checks of one value per rank, run at 8 B only.
var scalarOps = []mop{
	{"Barrier", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		return collectives.Barrier(ctx, cm)
	}},
	{"Reduce(Sum)", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r, p, root := cm.Rank(), cm.Size(), mroot(cm.Size(), s)
		got, err := collectives.Reduce(ctx, cm, iv(r, 0, s), collectives.Sum, root)
		if err != nil || r != root {
			return err
		}
		return eq("Reduce", []int64{got}, sumIvs(0, p, 0, 1, s))
	}},
	{"Reduce(concat)", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r, p, root := cm.Rank(), cm.Size(), mroot(cm.Size(), s)
		got, err := collectives.Reduce(ctx, cm, word(r), concat, root)
		if err != nil || r != root {
			return err
		}
		return same("Reduce", got, words(0, p))
	}},
	{"Allreduce(compose)", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		got, err := collectives.Allreduce(ctx, cm, av(cm.Rank(), 0, s), compose)
		if err != nil {
			return err
		}
		return eq("Allreduce", []affine{got}, foldAvs(0, cm.Size(), 0, 1, s))
	}},
	{"Allreduce(concat)", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		got, err := collectives.Allreduce(ctx, cm, word(cm.Rank()), concat)
		if err != nil {
			return err
		}
		return same("Allreduce", got, words(0, cm.Size()))
	}},
	{"Scan(concat)", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		got, err := collectives.Scan(ctx, cm, word(cm.Rank()), concat)
		if err != nil {
			return err
		}
		return same("Scan", got, words(0, cm.Rank()+1))
	}},
	{"Exscan(compose)", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r := cm.Rank()
		got, err := collectives.Exscan(ctx, cm, av(r, 0, s), compose)
		if err != nil || r == 0 { // undefined on rank 0
			return err
		}
		return eq("Exscan", []affine{got}, foldAvs(0, r, 0, 1, s))
	}},
}

// matrixOps are the checks of m elements per rank.
var matrixOps = []mop{
	{"Bcast", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		root := mroot(cm.Size(), s)
		var in []int64 // ignored on the other ranks
		if cm.Rank() == root {
			in = ivs(root, 0, m, s)
		}
		got, err := collectives.Bcast(ctx, cm, in, root)
		if err != nil {
			return err
		}
		return eq("Bcast", got, ivs(root, 0, m, s))
	}},
	{"Scatter", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r, p, root := cm.Rank(), cm.Size(), mroot(cm.Size(), s)
		var in []int64
		if r == root {
			in = ivs(root, 0, p*m, s)
		}
		got, err := collectives.Scatter(ctx, cm, in, root)
		if err != nil {
			return err
		}
		return eq("Scatter", got, ivs(root, r*m, m, s))
	}},
	{"Scatterv", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r, p, root := cm.Rank(), cm.Size(), mroot(cm.Size(), s)
		var parts [][]int64
		if r == root {
			for d := range p {
				parts = append(parts, ivs(root, d*m, m-d%2, s)) // some empty at 8 B
			}
		}
		got, err := collectives.Scatterv(ctx, cm, parts, root)
		if err != nil {
			return err
		}
		return eq("Scatterv", got, ivs(root, r*m, m-r%2, s))
	}},
	{"Gather", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r, p, root := cm.Rank(), cm.Size(), mroot(cm.Size(), s)
		got, err := collectives.Gather(ctx, cm, ivs(r, 0, m, s), root)
		if err != nil {
			return err
		}
		if r != root {
			return eq("Gather on a non-root", got, nil)
		}
		for q := range p {
			if err := eq(fmt.Sprintf("Gather, rank %d's part", q), got[q*m:(q+1)*m], ivs(q, 0, m, s)); err != nil {
				return err
			}
		}
		return eq("Gather", got[p*m:], nil)
	}},
	{"Gatherv", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r, p, root := cm.Rank(), cm.Size(), mroot(cm.Size(), s)
		got, err := collectives.Gatherv(ctx, cm, ivs(r, 0, m-r%2, s), root)
		if err != nil {
			return err
		}
		if r != root {
			if got != nil {
				return fmt.Errorf("Gatherv returned %d parts on a non-root", len(got))
			}
			return nil
		}
		if len(got) != p {
			return fmt.Errorf("Gatherv returned %d parts; want %d", len(got), p)
		}
		for q := range p {
			if err := eq(fmt.Sprintf("Gatherv, rank %d's part", q), got[q], ivs(q, 0, m-q%2, s)); err != nil {
				return err
			}
		}
		return nil
	}},
	{"Allgather", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		p := cm.Size()
		got, err := collectives.Allgather(ctx, cm, ivs(cm.Rank(), 0, m, s))
		if err != nil {
			return err
		}
		var want []int64
		for q := range p {
			want = append(want, ivs(q, 0, m, s)...)
		}
		return eq("Allgather", got, want)
	}},
	{"Allgatherv", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r, p := cm.Rank(), cm.Size()
		got, err := collectives.Allgatherv(ctx, cm, ivs(r, 0, m-r%2, s))
		if err != nil {
			return err
		}
		if len(got) != p {
			return fmt.Errorf("Allgatherv returned %d parts; want %d", len(got), p)
		}
		for q := range p {
			if err := eq(fmt.Sprintf("Allgatherv, rank %d's part", q), got[q], ivs(q, 0, m-q%2, s)); err != nil {
				return err
			}
		}
		return nil
	}},
	{"Alltoall", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r, p := cm.Rank(), cm.Size()
		b := block(m, p)
		got, err := collectives.Alltoall(ctx, cm, ivs(r, 0, p*b, s))
		if err != nil {
			return err
		}
		var want []int64
		for q := range p {
			want = append(want, ivs(q, r*b, b, s)...)
		}
		return eq("Alltoall", got, want)
	}},
	{"Alltoallv", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r, p := cm.Rank(), cm.Size()
		b := block(m, p)
		parts := make([][]int64, p)
		for d := range p {
			parts[d] = ivs(r, d*b, b-(r+d)%2, s)
		}
		got, err := collectives.Alltoallv(ctx, cm, parts)
		if err != nil {
			return err
		}
		if len(got) != p {
			return fmt.Errorf("Alltoallv returned %d parts; want %d", len(got), p)
		}
		for q := range p {
			if err := eq(fmt.Sprintf("Alltoallv, from rank %d", q), got[q], ivs(q, r*b, b-(q+r)%2, s)); err != nil {
				return err
			}
		}
		return nil
	}},
	{"ReduceSlice", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r, p, root := cm.Rank(), cm.Size(), mroot(cm.Size(), s)
		got, err := collectives.ReduceSlice(ctx, cm, avs(r, 0, m, s), compose, root)
		if err != nil {
			return err
		}
		if r != root {
			return eq("ReduceSlice on a non-root", got, nil)
		}
		return eq("ReduceSlice", got, foldAvs(0, p, 0, m, s))
	}},
	{"ReduceSliceInto in place", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r, p, root := cm.Rank(), cm.Size(), mroot(cm.Size(), s)
		v := avs(r, 0, m, s)
		if err := collectives.ReduceSliceInto(ctx, cm, v, v, compose, root); err != nil {
			return err
		}
		if r != root {
			return eq("ReduceSliceInto left in", v, avs(r, 0, m, s))
		}
		return eq("ReduceSliceInto", v, foldAvs(0, p, 0, m, s))
	}},
	{"AllreduceSlice", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		got, err := collectives.AllreduceSlice(ctx, cm, ivs(cm.Rank(), 0, m, s), collectives.Sum)
		if err != nil {
			return err
		}
		return eq("AllreduceSlice", got, sumIvs(0, cm.Size(), 0, m, s))
	}},
	{"AllreduceSliceInto in place", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		v := avs(cm.Rank(), 0, m, s)
		if err := collectives.AllreduceSliceInto(ctx, cm, v, v, compose); err != nil {
			return err
		}
		return eq("AllreduceSliceInto", v, foldAvs(0, cm.Size(), 0, m, s))
	}},
	{"AllreduceSliceInto", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		out := make([]int64, m)
		if err := collectives.AllreduceSliceInto(ctx, cm, ivs(cm.Rank(), 0, m, s), out, collectives.Sum); err != nil {
			return err
		}
		return eq("AllreduceSliceInto", out, sumIvs(0, cm.Size(), 0, m, s))
	}},
	{"ReduceScatter", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r, p := cm.Rank(), cm.Size()
		b := block(m, p)
		got, err := collectives.ReduceScatter(ctx, cm, avs(r, 0, p*b, s), compose)
		if err != nil {
			return err
		}
		return eq("ReduceScatter", got, foldAvs(0, p, r*b, b, s))
	}},
	{"ScanSlice", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r := cm.Rank()
		got, err := collectives.ScanSlice(ctx, cm, avs(r, 0, m, s), compose)
		if err != nil {
			return err
		}
		return eq("ScanSlice", got, foldAvs(0, r+1, 0, m, s))
	}},
	{"ExscanSlice", func(ctx context.Context, cm *comm.Comm, m, s int) error {
		r := cm.Rank()
		got, err := collectives.ExscanSlice(ctx, cm, ivs(r, 0, m, s), collectives.Sum)
		if err != nil || r == 0 { // undefined on rank 0
			return err
		}
		return eq("ExscanSlice", got, sumIvs(0, r, 0, m, s))
	}},
}
