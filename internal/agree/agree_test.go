package agree

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestNextTagCountsEachCommunicator: each communicator has its own count,
// starting at 1.
func TestNextTagCountsEachCommunicator(t *testing.T) {
	type comm struct{ x int }
	a, b := new(comm), new(comm)
	got := []int{NextTag(a), NextTag(a), NextTag(b), NextTag(a)}
	if fmt.Sprint(got) != "[1 2 1 3]" {
		t.Fatalf("tags %v; want [1 2 1 3]", got)
	}
}

// TestRunSummarisesEveryRank: after Run every rank holds the same summary:
// each field's least and greatest value with the lowest rank that passed
// it, at sizes that are and are not powers of two.
func TestRunSummarisesEveryRank(t *testing.T) {
	for _, p := range []int{1, 2, 3, 5, 8} {
		// Channels stand in for the messages: box[src][dst].
		box := make([][]chan []byte, p)
		for i := range box {
			box[i] = make([]chan []byte, p)
			for j := range box[i] {
				box[i][j] = make(chan []byte, 8)
			}
		}
		sums := make([]Summary, p)
		var wg sync.WaitGroup
		for r := range p {
			wg.Go(func() {
				h := Header{FOp: int64(Barrier), FLen: int64(10 + r%3)}
				if r == p-1 && p > 1 {
					h[FOp] = int64(Split)
				}
				ex := func(ctx context.Context, dst int, out []byte, src int, in []byte) error {
					box[r][dst] <- out
					copy(in, <-box[src][r])
					return nil
				}
				sums[r], _ = Run(context.Background(), p, r, h, ex)
			})
		}
		wg.Wait()
		for r, s := range sums {
			if s != sums[0] {
				t.Fatalf("p=%d: rank %d's summary %v differs from rank 0's %v", p, r, s, sums[0])
			}
		}
		s := sums[0]
		wantMax := Barrier
		if p > 1 {
			wantMax = Split
		}
		if s[FOp].Min != int64(Barrier) || s[FOp].MinRank != 0 || s[FOp].Max != int64(wantMax) || s[FOp].MaxRank != int64(max(p-1, 0)) {
			t.Errorf("p=%d: op field %+v", p, s[FOp])
		}
		if s.Mismatch(FOp) != (p > 1) {
			t.Errorf("p=%d: Mismatch(FOp) = %v", p, s.Mismatch(FOp))
		}
		if wantLen := min(p, 3) - 1; s[FLen].Min != 10 || s[FLen].Max != int64(10+wantLen) || s[FLen].MaxRank != int64(wantLen) {
			t.Errorf("p=%d: length field %+v", p, s[FLen])
		}
	}
}

// TestOpNames: every op has its name; an unknown one says its number.
func TestOpNames(t *testing.T) {
	for op, want := range map[Op]string{Barrier: "Barrier", AllreduceSliceInto: "AllreduceSliceInto",
		Split: "Split", Dup: "Dup", 99: "collective 99"} {
		if got := op.String(); got != want {
			t.Errorf("Op(%d).String() = %q; want %q", int64(op), got, want)
		}
	}
}
