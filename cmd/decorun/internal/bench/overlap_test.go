package bench

import (
	"slices"
	"testing"
)

// TestIallreduceConfig: the overlap measurement runs osu_like's sizes and
// iteration counts by default, and the sizes given otherwise (at least one
// float64).
func TestIallreduceConfig(t *testing.T) {
	if got := (&Config{}).sizes(Iallreduce); !slices.Equal(got, []int{8, 64 << 10, 1 << 20}) {
		t.Errorf("default sizes %v; want 8, 64K, 1M", got)
	}
	if got := (&Config{Sizes: []int{0, 4, 8, 16}}).sizes(Iallreduce); !slices.Equal(got, []int{8, 16}) {
		t.Errorf("sizes from 0, 4, 8, 16: %v; want 8, 16", got)
	}
	for _, tc := range []struct {
		cfg         Config
		n           int
		warm, iters int
	}{
		{Config{}, 8, 100, 1000},
		{Config{}, 8192, 100, 1000},
		{Config{}, 64 << 10, 20, 200},
		{Config{}, 1 << 20, 5, 50},
		{Config{Iters: 30}, 8, 3, 30},
	} {
		if w, i := tc.cfg.Iterations(Iallreduce, tc.n); w != tc.warm || i != tc.iters {
			t.Errorf("Iterations(iallreduce, %d) = %d, %d; want %d, %d", tc.n, w, i, tc.warm, tc.iters)
		}
	}
	if !slices.Contains(Names, Iallreduce) {
		t.Errorf("Names lacks %q", Iallreduce)
	}
}
