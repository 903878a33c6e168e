package comm_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/decorun/decorun/comm"
)

// Without decorun, Init gives a world of one rank, in which a rank can send
// to itself.
func ExampleInit() {
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Println("rank", c.Rank(), "of", c.Size())
	if err := c.Send(ctx, 0, 7, []byte("to myself")); err != nil {
		fmt.Println(err)
		return
	}
	msg, st, err := c.Recv(ctx, comm.AnySource, comm.AnyTag)
	fmt.Printf("%q from rank %d, tag %d, %d bytes, err %v\n", msg, st.Source, st.Tag, st.Size, err)
	// Output:
	// rank 0 of 1
	// "to myself" from rank 0, tag 7, 9 bytes, err <nil>
}

// Typed values: numbers and slices of numbers travel as raw memory, other
// types as CBOR; a receive of the wrong type is an error naming both types.
func ExampleSendValue() {
	ctx := context.Background()
	c, _ := comm.Connect(ctx, comm.Job{Rank: 0, Size: 1})
	defer c.Close()
	type point struct{ X, Y int }
	comm.SendValue(ctx, c, 0, 0, []point{{1, 2}, {3, 4}})
	comm.SendValue(ctx, c, 0, 1, []float64{0.5, 1.5})
	ps, _, err := comm.RecvValue[[]point](ctx, c, 0, 0)
	fmt.Println(ps, err)
	_, _, err = comm.RecvValue[[]int](ctx, c, 0, 1)
	fmt.Println(err)
	// Output:
	// [{1 2} {3 4}] <nil>
	// comm: message from rank 0 (tag 1) holds []float64 but the receive expects []int: comm: type mismatch
}

// A halo exchange on a line of ranks: the ends use ProcNull for the
// neighbour they do not have, and need no special case. (A world of one
// rank has both ends at once.)
func Example_procNull() {
	ctx := context.Background()
	c, _ := comm.Connect(ctx, comm.Job{Rank: 0, Size: 1})
	defer c.Close()
	left, right := c.Rank()-1, c.Rank()+1
	if left < 0 {
		left = comm.ProcNull
	}
	if right >= c.Size() {
		right = comm.ProcNull
	}
	halo, st, err := comm.SendrecvValue[[]float64](ctx, c, []float64{1, 2}, right, 0, left, 0)
	fmt.Println(halo, st, err)
	// Output:
	// [] Status{Source: ProcNull, Tag: AnyTag, Size: 0} <nil>
}

// Waitany reports the requests in the order they complete (the lowest
// index first among those complete at once), each once, setting its entry
// to nil; then -1.
func ExampleWaitany() {
	ctx := context.Background()
	c, _ := comm.Connect(ctx, comm.Job{Rank: 0, Size: 1})
	defer c.Close()
	var reqs []*comm.Request
	for tag := range 3 {
		q, _ := comm.IrecvValue[string](c, 0, tag)
		reqs = append(reqs, q.Request())
	}
	comm.SendValue(ctx, c, 0, 2, "two")
	for {
		i, st, err := comm.Waitany(ctx, reqs)
		if i < 0 || err != nil {
			break
		}
		fmt.Println("request", i, "tag", st.Tag)
		switch i {
		case 2:
			comm.SendValue(ctx, c, 0, 0, "zero")
		case 0:
			comm.SendValue(ctx, c, 0, 1, "one")
		}
	}
	// Output:
	// request 2 tag 2
	// request 0 tag 0
	// request 1 tag 1
}

// DimsCreate picks a balanced grid shape for a number of ranks; fixed
// entries are kept.
func ExampleDimsCreate() {
	for _, tc := range []struct {
		n    int
		dims []int
	}{{8, []int{0, 0}}, {12, []int{0, 0, 0}}, {12, []int{0, 2}}} {
		d, err := comm.DimsCreate(tc.n, tc.dims)
		fmt.Println(tc.n, tc.dims, "→", d, err)
	}
	// Output:
	// 8 [0 0] → [4 2] <nil>
	// 12 [0 0 0] → [3 2 2] <nil>
	// 12 [0 2] → [6 2] <nil>
}

// A Cartesian grid: coordinates, and neighbours along each dimension,
// ProcNull past a non-periodic edge. (A world of one rank is a 1×1 grid.)
func ExampleCartCreate() {
	ctx := context.Background()
	c, _ := comm.Connect(ctx, comm.Job{Rank: 0, Size: 1})
	defer c.Close()
	g, err := comm.CartCreate(ctx, c, []int{1, 1}, []bool{false, true}, false)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	co, _ := g.Coords(g.Rank())
	up, down, _ := g.Shift(0, 1)
	left, right, _ := g.Shift(1, 1)
	fmt.Println("coords", co, "up", up == comm.ProcNull, "down", down == comm.ProcNull, "left", left, "right", right)
	// Output:
	// coords [0 0] up true down true left 0 right 0
}

// A program that farms work out to copies of itself: under decorun the
// job's ranks spawn 4 workers, rank 0 sends each a number and collects
// the squares; the workers find their parents with Parent. Run without
// decorun (as this example is), Spawn says that it needs the launcher.
func ExampleSpawn() {
	ctx := context.Background()
	c, _ := comm.Connect(ctx, comm.Job{Rank: 0, Size: 1})
	defer c.Close()
	if p := comm.Parent(); p != nil { // a worker: its parents are p's remote group
		x, _, _ := comm.RecvValue[int](ctx, p.Remote(), 0, 0)
		comm.SendValue(ctx, p.Remote(), 0, 1, x*x)
		return
	}
	self, _ := os.Executable()
	ic, err := comm.Spawn(ctx, c, self, nil, 4, nil)
	if err != nil {
		fmt.Println(errors.Is(err, comm.ErrNoLauncher))
		return
	}
	defer ic.Close()
	if c.Rank() == 0 {
		for w := range ic.RemoteSize() {
			comm.SendValue(ctx, ic.Remote(), w, 0, w+1)
		}
		for range ic.RemoteSize() {
			sq, st, _ := comm.RecvValue[int](ctx, ic.Remote(), comm.AnySource, 1)
			fmt.Println("worker", st.Source, "sent", sq)
		}
	}
	// Output:
	// true
}
