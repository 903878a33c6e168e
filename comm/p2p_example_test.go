package comm_test

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// ranks runs body as every rank of an n-rank job inside this process (under
// decorun each rank is its own process, which gets its communicator from
// comm.Init, and runs body once) and prints each rank's line, in rank
// order.
func ranks(n int, body func(ctx context.Context, c *comm.Comm) (string, error)) {
	cs, stop, err := commtest.Start(n)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	lines := make([]string, n)
	var wg sync.WaitGroup
	for r, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := body(context.Background(), c)
			if err != nil {
				out = "error: " + err.Error()
			}
			lines[r] = fmt.Sprintf("rank %d: %s", r, out)
		}()
	}
	wg.Wait()
	fmt.Println(strings.Join(lines, "\n"))
}

// Rank 0 sends bytes to every other rank, which answers; messages between
// two ranks with the same tag arrive in the order they were sent.
func ExampleComm_Send() {
	ranks(3, func(ctx context.Context, c *comm.Comm) (string, error) {
		const ask, answer = 1, 2
		if c.Rank() != 0 {
			msg, st, err := c.Recv(ctx, 0, ask)
			if err != nil {
				return "", err
			}
			reply := fmt.Sprintf("%s to you, from rank %d", msg, c.Rank())
			return fmt.Sprintf("got %q (%d bytes, tag %d)", msg, st.Size, st.Tag), c.Send(ctx, 0, answer, []byte(reply))
		}
		for dst := 1; dst < c.Size(); dst++ {
			if err := c.Send(ctx, dst, ask, []byte("hello")); err != nil {
				return "", err
			}
		}
		var got []string
		for src := 1; src < c.Size(); src++ {
			msg, _, err := c.Recv(ctx, src, answer)
			if err != nil {
				return "", err
			}
			got = append(got, string(msg))
		}
		return strings.Join(got, "; "), nil
	})
	// Output:
	// rank 0: hello to you, from rank 1; hello to you, from rank 2
	// rank 1: got "hello" (5 bytes, tag 1)
	// rank 2: got "hello" (5 bytes, tag 1)
}

// RecvValue receives a typed value; with AnySource, the Status says which
// rank sent it.
func ExampleRecvValue() {
	type result struct {
		Rank  int
		Value float64
	}
	ranks(3, func(ctx context.Context, c *comm.Comm) (string, error) {
		if c.Rank() != 0 {
			return "sent", comm.SendValue(ctx, c, 0, 0, result{c.Rank(), float64(c.Rank()) / 4})
		}
		sum := 0.0
		for range c.Size() - 1 {
			r, st, err := comm.RecvValue[result](ctx, c, comm.AnySource, 0)
			if err != nil {
				return "", err
			}
			if r.Rank != st.Source {
				return "", fmt.Errorf("rank %d sent %+v", st.Source, r)
			}
			sum += r.Value
		}
		return fmt.Sprint("sum ", sum), nil
	})
	// Output:
	// rank 0: sum 0.75
	// rank 1: sent
	// rank 2: sent
}

// Isend returns at once: every rank of a ring sends to its right neighbour
// and receives from its left one without waiting for the send first; Wait
// completes the send (its buffer may then be reused).
func ExampleComm_Isend() {
	ranks(4, func(ctx context.Context, c *comm.Comm) (string, error) {
		right, left := (c.Rank()+1)%c.Size(), (c.Rank()+c.Size()-1)%c.Size()
		q, err := c.Isend(right, 0, []byte{byte(c.Rank())})
		if err != nil {
			return "", err
		}
		msg, _, err := c.Recv(ctx, left, 0)
		if err != nil {
			return "", err
		}
		if _, err := q.Wait(ctx); err != nil {
			return "", err
		}
		return fmt.Sprint("from my left: ", msg[0]), nil
	})
	// Output:
	// rank 0: from my left: 3
	// rank 1: from my left: 0
	// rank 2: from my left: 1
	// rank 3: from my left: 2
}

// Sendrecv sends and receives at once, so that two ranks can swap data
// with the same call without deadlock.
func ExampleComm_Sendrecv() {
	ranks(4, func(ctx context.Context, c *comm.Comm) (string, error) {
		partner := c.Rank() ^ 1 // 0 <-> 1, 2 <-> 3
		got, st, err := c.Sendrecv(ctx, []byte(fmt.Sprint("data of ", c.Rank())), partner, 0, partner, 0)
		return fmt.Sprintf("%q from rank %d", got, st.Source), err
	})
	// Output:
	// rank 0: "data of 1" from rank 1
	// rank 1: "data of 0" from rank 0
	// rank 2: "data of 3" from rank 3
	// rank 3: "data of 2" from rank 2
}

// Split groups the ranks by colour into new communicators, ordered by key:
// here the rows and the columns of a 2×3 grid. Every rank of the parent
// calls Split at the same point.
func ExampleComm_Split() {
	ranks(6, func(ctx context.Context, c *comm.Comm) (string, error) {
		row, err := c.Split(ctx, c.Rank()/3, c.Rank())
		if err != nil {
			return "", err
		}
		defer row.Close()
		col, err := c.Split(ctx, c.Rank()%3, -c.Rank()) // key -rank: reversed order
		if err != nil {
			return "", err
		}
		defer col.Close()
		return fmt.Sprintf("rank %d of %d in my row, %d of %d in my column", row.Rank(), row.Size(), col.Rank(), col.Size()), nil
	})
	// Output:
	// rank 0: rank 0 of 3 in my row, 1 of 2 in my column
	// rank 1: rank 1 of 3 in my row, 1 of 2 in my column
	// rank 2: rank 2 of 3 in my row, 1 of 2 in my column
	// rank 3: rank 0 of 3 in my row, 0 of 2 in my column
	// rank 4: rank 1 of 3 in my row, 0 of 2 in my column
	// rank 5: rank 2 of 3 in my row, 0 of 2 in my column
}
