// Command hier runs the collectives that go hierarchically across hosts
// and prints every result, for cluster_test to compare a job across
// namespace hosts with the same job run flat (DECORUN_COLL_HIER=off).
//
//	hier
//
// Every rank prints "job R ID", "R hier=BOOL" (whether the world spans hosts in a way
// that runs hierarchically), then "R NAME = VALUE" lines, then "R done".
package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"log"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

// aff is an affine map x -> a·x + b mod 2^32 packed as a<<32 | b; compose
// is associative and not commutative, so results show the fold's order.
func aff(r, i int) uint64 { return uint64(2*r+3+i)<<32 | uint64(7*r+i+1) }

func compose(f, g uint64) uint64 {
	a1, b1 := uint32(f>>32), uint32(f)
	a2, b2 := uint32(g>>32), uint32(g)
	return uint64(a2*a1)<<32 | uint64(a2*b1+b2)
}

func digest[E any](v []E) string {
	h := fnv.New64a()
	fmt.Fprint(h, v)
	return fmt.Sprintf("len %d fnv %x", len(v), h.Sum64())
}

func main() {
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	r, p := c.Rank(), c.Size()
	fmt.Printf("job %d %s\n%d hier=%t\n", r, c.JobID(), r, c.HostGroups() != nil)
	say := func(name string, v any, err error) {
		if err != nil {
			log.Fatalf("rank %d: %s: %v", r, name, err)
		}
		fmt.Printf("%d %s = %v\n", r, name, v)
	}
	say("Barrier", "ok", collectives.Barrier(ctx, c))
	for _, root := range []int{0, p / 2, p - 1} {
		v, err := collectives.Bcast(ctx, c, fmt.Sprintf("from %d", r), root)
		say(fmt.Sprintf("Bcast root %d", root), v, err)
		big := make([]int64, 1<<17)
		for i := range big {
			big[i] = int64(i*r + root)
		}
		w, err := collectives.Bcast(ctx, c, big, root)
		say(fmt.Sprintf("Bcast 1MiB root %d", root), digest(w), err)
		for i := range big {
			big[i] = int64(i*r - root)
		}
		err = collectives.BcastInto(ctx, c, big, root)
		say(fmt.Sprintf("BcastInto 1MiB root %d", root), digest(big), err)
	}
	s, err := collectives.Allreduce(ctx, c, int64(r+1), collectives.Sum)
	say("Allreduce Sum", s, err)
	f, err := collectives.Allreduce(ctx, c, aff(r, 0), compose)
	say("Allreduce compose", f, err)
	str, err := collectives.Allreduce(ctx, c, fmt.Sprint(r), func(a, b string) string { return a + b })
	say("Allreduce concat", str, err)
	f, err = collectives.Reduce(ctx, c, aff(r, 1), compose, p-2)
	say("Reduce compose", f, err)
	for _, n := range []int{1, 1000, 1 << 17} {
		v := make([]uint64, n)
		for i := range v {
			v[i] = aff(r, i)
		}
		a, err := collectives.AllreduceSlice(ctx, c, v, compose)
		say(fmt.Sprintf("AllreduceSlice %d", n), digest(a), err)
		b, err := collectives.ReduceSlice(ctx, c, v, compose, 1)
		say(fmt.Sprintf("ReduceSlice %d", n), digest(b), err)
		err = collectives.AllreduceSliceInto(ctx, c, v, v, compose)
		say(fmt.Sprintf("AllreduceSliceInto %d", n), digest(v), err)
	}
	x := make([]int64, 1<<17)
	for i := range x {
		x[i] = int64(i ^ r)
	}
	y, err := collectives.AllreduceSlice(ctx, c, x, collectives.Sum)
	say("AllreduceSlice Sum 1MiB", digest(y), err)
	g, err := collectives.Gather(ctx, c, []int{r, r * r}, 0)
	say("Gather", g, err)
	q := collectives.Iallreduce(ctx, c, aff(r, 5), compose)
	err = collectives.Barrier(ctx, c)
	say("Barrier beside Iallreduce", "ok", err)
	f, err = q.Wait(ctx)
	say("Iallreduce", f, err)
	fmt.Printf("%d done\n", r)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
}
