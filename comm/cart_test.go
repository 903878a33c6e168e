package comm

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestDimsCreate(t *testing.T) {
	for _, tc := range []struct {
		n    int
		dims []int
		want []int
		err  string
	}{
		{8, []int{0, 0}, []int{4, 2}, ""},
		{12, []int{0, 0, 0}, []int{3, 2, 2}, ""},
		{16, []int{0, 0}, []int{4, 4}, ""},
		{6, []int{0, 3}, []int{2, 3}, ""},
		{1, []int{0}, []int{1}, ""},
		{7, []int{0, 0}, []int{7, 1}, ""},
		{60, []int{0, 0, 0}, []int{5, 4, 3}, ""},
		{7, []int{0, 2}, nil, "do not divide 7 nodes"},
		{6, []int{2, 2}, nil, "do not divide 6 nodes"},
		{8, []int{2, 2}, nil, "multiply to 4, not 8"},
		{6, []int{-1, 0}, nil, "dims[0] = -1 is negative"},
	} {
		got, err := DimsCreate(tc.n, tc.dims)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("DimsCreate(%d, %v) = %v, %v; want an error containing %q", tc.n, tc.dims, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("DimsCreate(%d, %v) = %v, %v; want %v", tc.n, tc.dims, got, err, tc.want)
		}
	}
}

// TestCartCreate: a 2×3 grid on 7 ranks (rank 6 is left out), periodic in
// the second dimension: coordinates, ranks, shifts with ProcNull at the
// non-periodic edges, a halo exchange along each dimension, Dup keeping
// the grid, CartSub's rows and columns, and the errors.
func TestCartCreate(t *testing.T) {
	const n = 7
	cs := world(t, n)
	ctx := tctx(t)
	par(t, cs, func(c *Comm) error {
		if _, _, err := c.Shift(0, 1); err == nil || !strings.Contains(err.Error(), "no Cartesian topology") {
			return fmt.Errorf("Shift on the world: %v", err)
		}
		g, err := CartCreate(ctx, c, []int{2, 3}, []bool{false, true}, false)
		if err != nil {
			return err
		}
		if c.Rank() == 6 {
			if g != nil {
				return fmt.Errorf("rank 6 got a place in a grid of 6")
			}
			// The rest of the test's collective calls on c.
			if _, err := CartCreate(ctx, c, []int{3, 3}, []bool{false, false}, false); err == nil {
				return fmt.Errorf("CartCreate of 9 on 7 ranks did not fail")
			}
			_, err := CartCreate(ctx, c, []int{6}, []bool{false}, false)
			return expectErr("CartCreate with rank 6's different dims", err, "ranks 0 and 6 passed different dims or periods")
		}
		defer g.Close()
		r := g.Rank()
		co, err := g.Coords(r)
		if err != nil || !slices.Equal(co, []int{r / 3, r % 3}) {
			return fmt.Errorf("Coords(%d) = %v, %v", r, co, err)
		}
		if back, err := g.RankOf(co); err != nil || back != r {
			return fmt.Errorf("RankOf(%v) = %d, %v", co, back, err)
		}
		if x, err := g.RankOf([]int{co[0], co[1] + 3}); err != nil || x != r {
			return fmt.Errorf("RankOf past the periodic edge = %d, %v; want %d", x, err, r)
		}
		if _, err := g.RankOf([]int{2, 0}); err == nil {
			return fmt.Errorf("RankOf past the non-periodic edge did not fail")
		}
		up, down, err := g.Shift(0, 1)
		if err != nil {
			return err
		}
		wantUp, wantDown := r-3, r+3
		if co[0] == 0 {
			wantUp = ProcNull
		}
		if co[0] == 1 {
			wantDown = ProcNull
		}
		if up != wantUp || down != wantDown {
			return fmt.Errorf("Shift(0, 1) = %d, %d; want %d, %d", up, down, wantUp, wantDown)
		}
		left, right, _ := g.Shift(1, 1)
		if left != co[0]*3+(co[1]+2)%3 || right != co[0]*3+(co[1]+1)%3 {
			return fmt.Errorf("Shift(1, 1) = %d, %d", left, right)
		}
		nb, err := g.Neighbors()
		if err != nil || !slices.Equal(nb, []int{up, down, left, right}) {
			return fmt.Errorf("Neighbors = %v, %v", nb, err)
		}
		// Halo exchanges: send down, receive from up; send right, receive from left.
		got, st, err := SendrecvValue[int](ctx, g, r, down, 1, up, 1)
		if err != nil || up == ProcNull && st.Source != ProcNull || up != ProcNull && got != up {
			return fmt.Errorf("halo along 0 = %d, %v, %v; want %d", got, st, err, up)
		}
		got, _, err = SendrecvValue[int](ctx, g, r, right, 2, left, 2)
		if err != nil || got != left {
			return fmt.Errorf("halo along 1 = %d, %v; want %d", got, err, left)
		}
		d, err := g.Dup(ctx)
		if err != nil {
			return err
		}
		defer d.Close()
		if dims, periods, err := d.Dims(); err != nil || !slices.Equal(dims, []int{2, 3}) || !slices.Equal(periods, []bool{false, true}) {
			return fmt.Errorf("Dup's Dims = %v, %v, %v", dims, periods, err)
		}
		row, err := g.CartSub(ctx, []bool{false, true})
		if err != nil {
			return err
		}
		defer row.Close()
		if row.Size() != 3 || row.Rank() != co[1] {
			return fmt.Errorf("row: rank %d of %d; want %d of 3", row.Rank(), row.Size(), co[1])
		}
		if dims, periods, _ := row.Dims(); !slices.Equal(dims, []int{3}) || !slices.Equal(periods, []bool{true}) {
			return fmt.Errorf("row's Dims = %v, %v", dims, periods)
		}
		if v, _, err := SendrecvValue[int](ctx, row, co[0], (co[1]+1)%3, 3, (co[1]+2)%3, 3); err != nil || v != co[0] {
			return fmt.Errorf("exchange in the row = %d, %v; want %d (ranks of another row answered)", v, err, co[0])
		}
		// Errors: too many ranks (every rank), different dims (rank 6).
		_, err = CartCreate(ctx, c, []int{3, 3}, []bool{false, false}, false)
		if err := expectErr("CartCreate of 9 on 7 ranks", err, "more than the communicator's 7 ranks"); err != nil {
			return err
		}
		_, err = CartCreate(ctx, c, []int{2, 3}, []bool{false, false}, false)
		return expectErr("CartCreate with rank 6's different dims", err, "ranks 0 and 6 passed different dims or periods")
	})
}

func expectErr(what string, err error, want string) error {
	if err == nil || !strings.Contains(err.Error(), want) {
		return fmt.Errorf("%s: %v; want an error containing %q", what, err, want)
	}
	return nil
}
