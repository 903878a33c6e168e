package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

// Run runs the benchmarks of cfg other than startup on every rank of c (all
// ranks call it with the same cfg); rank 0 writes the results to w. It
// returns when every benchmark is done or one failed.
func Run(ctx context.Context, c *comm.Comm, cfg Config, w io.Writer) (err error) {
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile + ".rank" + strconv.Itoa(c.Rank()))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.MemProfile != "" {
		defer func() {
			if e := writeHeap(cfg.MemProfile + ".rank" + strconv.Itoa(c.Rank())); err == nil {
				err = e
			}
		}()
	}
	r := &runner{c: c, cfg: cfg, p: &Printer{W: w, JSON: cfg.JSON, Baseline: cfg.Baseline}}
	if cfg.Baseline && c.Size() >= 2 && (slices.Contains(cfg.Benchmarks, Latency) ||
		slices.Contains(cfg.Benchmarks, BW) || slices.Contains(cfg.Benchmarks, BiBW)) {
		if r.raw, err = dialRaw(ctx); err != nil {
			return err
		}
		defer r.raw.close()
		if err := r.barrier(ctx); err != nil {
			return err
		}
	}
	for _, b := range cfg.Benchmarks {
		switch b {
		case Latency, BW, BiBW:
			err = r.p2p(ctx, b)
		case Barrier, Bcast, Reduce, Allreduce, Gather, Scatter, Alltoall:
			err = r.collective(ctx, b)
		case Iallreduce:
			err = r.overlap(ctx)
		case Tasks:
			err = r.tasks(ctx)
		case StartupB: // measured by the bench command, outside the job
		default:
			err = fmt.Errorf("bench: unknown benchmark %q", b)
		}
		if err != nil {
			return fmt.Errorf("bench %s: %w", b, err)
		}
	}
	return nil
}

func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

// runner holds one rank's state while it runs the suite.
type runner struct {
	c   *comm.Comm
	cfg Config
	p   *Printer
	raw *raw // nil without a baseline
}

// print writes r at rank 0.
func (r *runner) print(res Result) error {
	if r.c.Rank() != 0 {
		return nil
	}
	res.Ranks, res.Transport, res.TCPPlain = r.c.Size(), r.cfg.Transport, r.cfg.TCPPlain
	return r.p.Print(res)
}

func (r *runner) barrier(ctx context.Context) error {
	return collectives.Barrier(ctx, r.c)
}

func ptr(n int) *int { return &n }
