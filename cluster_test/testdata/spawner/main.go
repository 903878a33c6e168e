// Command spawner exercises comm.Spawn for cluster_test: the ranks of the
// job spawn copies of this program (-child) and check what they can do
// with the intercommunicator, or misuse Spawn as -mode says, printing one
// line per finding for the test to compare.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

var (
	mode  = flag.String("mode", "talk", "talk, missing, badn, mismatch, fail, keepgoing, notspawned, notcomm, joinmode, nested, dieinit, split")
	n     = flag.Int("n", 2, "ranks to spawn")
	child = flag.Bool("child", false, "(set for the spawned ranks)")
	fail  = flag.Int("fail", -1, "child: the rank that exits with code 3")
)

func main() {
	flag.Parse()
	limit := 2 * time.Minute
	if *child && *mode == "dieinit" {
		// Child 0 dies while its world's start-up waits for child 1,
		// which comes late and then gives up.
		switch os.Getenv("DECORUN_RANK") {
		case "0":
			go func() {
				time.Sleep(time.Second)
				os.Exit(3)
			}()
		case "1":
			time.Sleep(3 * time.Second)
			limit = 3 * time.Second
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c, err := comm.Init(ctx)
	if err != nil {
		fmt.Println("init:", err)
		os.Exit(1)
	}
	if *child {
		err = runChild(ctx, c)
	} else {
		err = runParent(ctx, c)
	}
	if err != nil {
		fmt.Printf("rank %d: %v\n", c.Rank(), err)
		c.Close()
		os.Exit(1)
	}
	if err := c.Close(); err != nil {
		fmt.Println("close:", err)
		os.Exit(1)
	}
}

func self() string {
	p, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return p
}

func runParent(ctx context.Context, c *comm.Comm) error {
	switch *mode {
	case "notspawned":
		p := comm.Parent()
		_, err := p.Merge(ctx, false)
		fmt.Printf("rank %d: parent nil %v, Merge: %v, ErrNotInter %v\n", c.Rank(), p == nil, err, errors.Is(err, comm.ErrNotInter))
		return nil
	case "missing":
		_, err := comm.Spawn(ctx, c, "./no-such-program", nil, *n, nil)
		fmt.Printf("rank %d: ErrSpawn %v: %v\n", c.Rank(), errors.Is(err, comm.ErrSpawn), err)
		return collectives.Barrier(ctx, c) // the job goes on
	case "joinmode":
		_, err := comm.Spawn(ctx, c, "./worker", nil, *n, nil)
		fmt.Printf("rank %d: ErrNoLauncher %v: %v\n", c.Rank(), errors.Is(err, comm.ErrNoLauncher), err)
		return nil
	case "dieinit":
		_, err := comm.Spawn(ctx, c, self(), []string{"-child", "-mode", "dieinit"}, 2, nil)
		fmt.Printf("rank %d: Spawn: ErrRankLost %v: %v\n", c.Rank(), errors.Is(err, comm.ErrRankLost), err)
		return nil
	case "notcomm":
		_, err := comm.Spawn(ctx, c, "true", nil, *n, nil) // never returns: the launcher ends the job
		return err
	case "badn":
		_, err := comm.Spawn(ctx, c, self(), []string{"-child"}, 0, nil)
		fmt.Printf("rank %d: %v\n", c.Rank(), err)
		return collectives.Barrier(ctx, c)
	case "mismatch":
		args := []string{"-child"}
		if c.Rank() == 1 {
			args = append(args, "-mode", "other")
		}
		_, err := comm.Spawn(ctx, c, self(), args, *n, nil)
		var me *comm.MismatchError
		fmt.Printf("rank %d: MismatchError %v, ErrMismatch %v\n", c.Rank(), errors.As(err, &me), errors.Is(err, comm.ErrMismatch))
		_, err = comm.Spawn(ctx, c, self(), []string{"-child"}, *n+c.Rank(), nil)
		fmt.Printf("rank %d: %v\n", c.Rank(), err)
		return collectives.Barrier(ctx, c)
	}
	if *mode == "split" { // each half of the world spawns its own children, at once
		half, err := c.Split(ctx, c.Rank()%2, 0)
		if err != nil {
			return err
		}
		defer half.Close()
		c, *mode = half, "talk"
	}
	args := []string{"-child", "-mode", *mode, "-fail", fmt.Sprint(*fail)}
	ic, err := comm.Spawn(ctx, c, self(), args, *n, &comm.SpawnOptions{Root: c.Size() - 1})
	if err != nil {
		return err
	}
	defer ic.Close()
	switch *mode {
	case "nested":
		fmt.Printf("rank %d: spawned %d\n", c.Rank(), ic.RemoteSize())
		return nil
	case "fail":
		// Only the launcher ends this: a child exits 3.
		_, _, err := ic.Recv(ctx, 0, 99)
		return err
	case "keepgoing":
		// Every child hears from every parent before one of them fails,
		// so that no rank is still joining when it does.
		for r := range ic.RemoteSize() {
			if err := ic.Send(ctx, r, 98, []byte("go")); err != nil {
				return err
			}
		}
		lost := <-ic.Lost()
		_, _, err := ic.Recv(ctx, lost, 99)
		fmt.Printf("rank %d: lost remote rank %d, Recv: ErrRankLost %v\n", c.Rank(), lost, errors.Is(err, comm.ErrRankLost))
		// The other children still answer.
		for r := range ic.RemoteSize() {
			if r == lost {
				continue
			}
			if err := ic.Send(ctx, r, 1, []byte("ping")); err != nil {
				return err
			}
			if _, _, err := ic.Recv(ctx, r, 2); err != nil {
				return err
			}
		}
		fmt.Printf("rank %d: %d children answered\n", c.Rank(), ic.RemoteSize()-1)
		return nil
	}
	// talk: every parent sends every child its rank; every child answers
	// each parent with its own; receives by AnySource see remote ranks.
	fmt.Printf("rank %d: local %d of %d, remote %d\n", c.Rank(), ic.Rank(), ic.LocalSize(), ic.RemoteSize())
	for r := range ic.RemoteSize() {
		if err := comm.SendValue(ctx, ic.Remote(), r, 1, c.Rank()); err != nil {
			return err
		}
	}
	var from []int
	for range ic.RemoteSize() {
		v, st, err := comm.RecvValue[int](ctx, ic.Remote(), comm.AnySource, 2)
		if err != nil {
			return err
		}
		if v != st.Source {
			return fmt.Errorf("child %d says it is %d", st.Source, v)
		}
		from = append(from, v)
	}
	slices.Sort(from)
	fmt.Printf("rank %d: answers from children %v\n", c.Rank(), from)
	// The Remote view refuses collectives.
	err = collectives.Barrier(ctx, ic.Remote())
	fmt.Printf("rank %d: Barrier on Remote: ErrInterCollective %v\n", c.Rank(), errors.Is(err, comm.ErrInterCollective))
	return merged(ctx, ic, false, c.Rank())
}

// merged merges ic (children pass high) and checks the order and an
// Allreduce over both groups.
func merged(ctx context.Context, ic *comm.Intercomm, high bool, me int) error {
	all, err := ic.Merge(ctx, high)
	if err != nil {
		return err
	}
	defer all.Close()
	ranks, err := collectives.Allgather(ctx, all, []int{me})
	if err != nil {
		return err
	}
	sum, err := collectives.Allreduce(ctx, all, 1, collectives.Sum)
	if err != nil {
		return err
	}
	if !high {
		fmt.Printf("merged rank %d of %d: ranks in order %v, sum %d\n", all.Rank(), all.Size(), ranks, sum)
	}
	return nil
}

func runChild(ctx context.Context, c *comm.Comm) error {
	p := comm.Parent()
	if p == nil {
		return errors.New("not spawned")
	}
	fmt.Printf("child %d of %d, spawn %d, parents %d\n", c.Rank(), c.Size(), p.Spawned(), p.RemoteSize())
	if *mode == "keepgoing" {
		// The failing child waits until every parent and every other
		// child is past its start-up (see runParent).
		for r := range p.RemoteSize() {
			if _, _, err := p.Recv(ctx, r, 98); err != nil {
				return err
			}
		}
		if c.Rank() != *fail && *fail >= 0 && *fail < c.Size() {
			if err := c.Send(ctx, *fail, 97, []byte("up")); err != nil {
				return err
			}
		} else if c.Rank() == *fail {
			for r := range c.Size() {
				if r != c.Rank() {
					if _, _, err := c.Recv(ctx, r, 97); err != nil {
						return err
					}
				}
			}
		}
	}
	if c.Rank() == *fail {
		os.Exit(3)
	}
	switch *mode {
	case "nested": // spawn grandchildren, as a parent in talk mode
		*mode = "talk"
		return runParent(ctx, c)
	case "fail":
		_, _, err := p.Recv(ctx, 0, 99)
		return err
	case "keepgoing":
		for r := range p.RemoteSize() {
			if _, _, err := p.Recv(ctx, r, 1); err != nil {
				return err
			}
			if err := p.Send(ctx, r, 2, []byte("pong")); err != nil {
				return err
			}
		}
		return nil
	}
	for range p.RemoteSize() {
		v, st, err := comm.RecvValue[int](ctx, p.Remote(), comm.AnySource, 1)
		if err != nil {
			return err
		}
		if v != st.Source {
			return fmt.Errorf("parent %d says it is %d", st.Source, v)
		}
		if err := comm.SendValue(ctx, p.Remote(), st.Source, 2, c.Rank()); err != nil {
			return err
		}
	}
	// The children's own world works beside it.
	if _, err := collectives.Allreduce(ctx, c, 1, collectives.Sum); err != nil {
		return err
	}
	return merged(ctx, p, true, 100+c.Rank())
}
