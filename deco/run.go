package deco

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/internal/jobenv"
)

// Option changes how Run (or Main) runs tasks.
type Option func(*config)

// Slots sets how many tasks this rank runs at once (default: NumCPU divided
// by the number of the job's ranks on this host, at least 1; without
// decorun, GOMAXPROCS).
func Slots(n int) Option { return func(c *config) { c.slots = max(n, 1) } }

// Progress turns rank 0's progress bar on or off (default: on when stderr
// is a terminal; DECO_PROGRESS=0 or 1 overrides the default).
func Progress(on bool) Option {
	return func(c *config) {
		c.progress = 0
		if on {
			c.progress = 1
		}
	}
}

// MaxPending bounds the tasks issued and not yet finished (default 65,536);
// an issuing call beyond it blocks until tasks finish.
func MaxPending(tasks int) Option { return func(c *config) { c.maxTasks = max(tasks, 1) } }

func defaults() config {
	return config{maxTasks: 1 << 16, maxBytes: 64 << 20, progress: -1}
}

// Run runs body on rank 0 of c while the other ranks run the tasks that
// body's synchronized blocks issue; it returns body's error on rank 0, and
// on the other ranks nil once rank 0's Run has finished. Every rank of c
// must call Run at the same point (it makes a private communicator with
// c.Dup). Rank 0's Run takes over c.Lost(): a worker that dies while the
// job goes on (decorun --keep-going) has its tasks run again elsewhere.
// With a world of one rank, tasks run on a pool of Slots goroutines
// (default GOMAXPROCS).
func Run(ctx context.Context, c *comm.Comm, body func(ctx context.Context) error, opts ...Option) error {
	cfg := defaults()
	if c.Size() == 1 {
		cfg.slots = runtime.GOMAXPROCS(0)
	} else if os.Getenv(jobenv.EnvCPUs) != "" {
		cfg.slots = runtime.NumCPU() // bound by decorun: these CPUs are this rank's own
	} else {
		cfg.slots = max(runtime.NumCPU()/max(c.LocalSize(), 1), 1)
	}
	for _, o := range opts {
		o(&cfg)
	}
	if c.Size() == 1 {
		e := newEngine(nil, 0, cfg)
		err := body(context.WithValue(ctx, engineKey{}, e))
		e.shutdown()
		return err
	}
	d, err := c.Dup(ctx)
	if err != nil {
		return fmt.Errorf("deco: %w", err)
	}
	defer d.Close()
	if c.Rank() != 0 {
		if err := serve(ctx, d, cfg.slots); err != nil {
			return fmt.Errorf("deco: rank %d serving tasks: %w", c.Rank(), err)
		}
		return nil
	}
	e := newEngine(d, 0, cfg)
	e.start(ctx, c.Lost())
	err = body(context.WithValue(ctx, engineKey{}, e))
	e.shutdown()
	return err
}

// Main is the whole main function of a deco program: it joins the job
// (comm.Init; a world of one rank without decorun), runs body on rank 0
// with the other ranks serving tasks (see Run), closes the communicator,
// and on an error prints it to stderr and exits with status 1.
func Main(body func(ctx context.Context) error, opts ...Option) {
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	err = Run(ctx, c, body, opts...)
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// ErrNoRun: Synchronized was called in a job of several ranks with a
// context that did not come from Main or Run.
var ErrNoRun = errors.New("deco: Synchronized without deco.Main or deco.Run in a job of several ranks")

// checkNoRun is called when Synchronized finds no Run in its context: in a
// job of several ranks every rank would run the whole program, each with
// its own goroutine pool, and print everything once per rank.
func checkNoRun() error {
	j, ok, err := jobenv.FromEnv()
	if !ok || err != nil || j.Size <= 1 {
		return nil
	}
	return fmt.Errorf("%w (rank %d of %d): every rank would run the whole program; "+
		"put main's body in deco.Main(func(ctx context.Context) error { ... }) (or call deco.Run after comm.Init) "+
		"and pass the ctx it gives to Synchronized", ErrNoRun, j.Rank, j.Size)
}
