package comm

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/decorun/decorun/internal/trace"
)

// Completing many requests, as MPI's MPI_Waitany, MPI_Waitsome,
// MPI_Testany and MPI_Testall do. Like MPI's, they set the entries of reqs
// whose completion they report to nil (MPI_REQUEST_NULL), so that a loop
// of Waitany calls reports each request once; nil entries are skipped.

// Waitany waits until one of reqs completes, sets reqs[i] to nil and
// returns i with the request's Status and error (the lowest such i when
// several have completed). With no request left
// (every entry nil) it returns -1 at once. If ctx ends first it returns -1
// and ctx.Err(), and the requests go on (none is cancelled).
func Waitany(ctx context.Context, reqs []*Request) (int, Status, error) {
	for {
		i, done, st, err := Testany(reqs)
		if done {
			return i, st, err
		}
		if err := waitSome(ctx, reqs); err != nil {
			return -1, Status{}, err
		}
	}
}

// Testany reports whether one of reqs has completed, without blocking: if
// one has, it sets reqs[i] to nil and returns i, true, its Status and
// error. With no request left it returns -1, true.
func Testany(reqs []*Request) (int, bool, Status, error) {
	active := false
	for i, q := range reqs {
		if q == nil {
			continue
		}
		active = true
		if done, st, err := q.Test(); done {
			reqs[i] = nil
			return i, true, st, err
		}
	}
	if !active {
		return -1, true, Status{}, nil
	}
	return -1, false, Status{}, nil
}

// Waitsome waits until at least one of reqs completes and returns the
// indexes of all that have completed by then, with their Statuses, and
// sets those entries to nil. The error is a *WaitError for those of them
// that failed (nil if none did). With no request left it returns nil at
// once; if ctx ends first it returns ctx.Err() and the requests go on.
func Waitsome(ctx context.Context, reqs []*Request) ([]int, []Status, error) {
	for {
		idx, sts, err, any := testSome(reqs)
		if any {
			return idx, sts, err
		}
		if err := waitSome(ctx, reqs); err != nil {
			return nil, nil, err
		}
	}
}

// Testall reports whether every request of reqs has completed, without
// blocking. If all have, it sets every entry to nil and returns their
// Statuses (indexed as reqs) and a *WaitError for those that failed;
// otherwise it returns false and leaves reqs as they are.
func Testall(reqs []*Request) (bool, []Status, error) {
	for _, q := range reqs {
		if q == nil {
			continue
		}
		if done, _, _ := q.Test(); !done {
			return false, nil, nil
		}
	}
	sts := make([]Status, len(reqs))
	var we WaitError
	for i, q := range reqs {
		if q == nil {
			continue
		}
		we.Total++
		var err error
		sts[i], err = q.Wait(context.Background()) // complete: returns at once
		if err != nil {
			we.add(i, err)
		}
		reqs[i] = nil
	}
	return true, sts, we.err()
}

// testSome collects the requests of reqs that have completed; any reports
// whether there were any, or no active request at all.
func testSome(reqs []*Request) (idx []int, sts []Status, err error, any bool) {
	var we WaitError
	active := false
	for i, q := range reqs {
		if q == nil {
			continue
		}
		active = true
		if done, st, err := q.Test(); done {
			we.Total++
			if err != nil {
				we.add(i, err)
			}
			idx, sts = append(idx, i), append(sts, st)
			reqs[i] = nil
		}
	}
	return idx, sts, we.err(), len(idx) > 0 || !active
}

// waitSome blocks until some request of reqs may have completed (a
// receive's completion is recorded in its Request, as Test does), or ctx
// ends.
func waitSome(ctx context.Context, reqs []*Request) error {
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
	var which []*Request
	for _, q := range reqs {
		if q == nil {
			continue
		}
		switch {
		case q.complete || q.r == nil && q.s == nil:
			return nil // complete already
		case q.r != nil:
			if !q.c.e.wantDone(q.r) { // complete already: nothing will be sent to done
				q.complete, q.st, q.err = true, q.c.status(q.r.st), q.c.wrap(q.op, q.peer, q.r.err)
				q.traceDone("Waitany", q.c.now())
				return nil
			}
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(q.r.done)})
		default:
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(q.s.done)})
		}
		which = append(which, q)
	}
	t0 := trace.Now()
	chosen, _, _ := reflect.Select(cases)
	if chosen == 0 {
		return ctx.Err()
	}
	if q := which[chosen-1]; q.r != nil {
		q.complete, q.st, q.err = true, q.c.status(q.r.st), q.c.wrap(q.op, q.peer, q.r.err) // done's value taken
		q.traceDone("Waitany", t0)
	}
	return nil
}

// WaitError is the error of WaitAll, Waitsome and Testall when some of
// the requests failed: how many of how many, and each error (errors.Is and
// errors.As look through them all).
type WaitError struct {
	Total int     // the requests completed (not nil)
	Index []int   // the indexes, in the call's arguments, of those that failed
	Errs  []error // their errors, in the same order
}

func (e *WaitError) add(i int, err error) {
	e.Index = append(e.Index, i)
	e.Errs = append(e.Errs, err)
}

func (e *WaitError) err() error {
	if len(e.Errs) == 0 {
		return nil
	}
	return e
}

// Error says how many requests failed and groups them by error text:
// "comm: 600 of 600 requests failed: context deadline exceeded (600:
// requests 0, 1, 2, ...)".
func (e *WaitError) Error() string {
	if len(e.Errs) == 1 {
		return e.Errs[0].Error()
	}
	var order []string
	groups := map[string][]int{}
	for k, err := range e.Errs {
		msg := err.Error()
		if _, ok := groups[msg]; !ok {
			order = append(order, msg)
		}
		groups[msg] = append(groups[msg], e.Index[k])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "comm: %d of %d requests failed", len(e.Errs), e.Total)
	for g, msg := range order {
		if g == 3 {
			fmt.Fprintf(&b, "; and %d other errors", len(order)-g)
			break
		}
		idx := groups[msg]
		fmt.Fprintf(&b, "; %s (%d: request", msg, len(idx))
		if len(idx) > 1 {
			b.WriteString("s")
		}
		for j, i := range idx {
			if j == 3 {
				b.WriteString(", ...")
				break
			}
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %d", i)
		}
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns every request's error.
func (e *WaitError) Unwrap() []error { return e.Errs }
