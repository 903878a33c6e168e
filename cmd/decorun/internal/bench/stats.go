package bench

import (
	"math"
	"slices"
)

// Summary describes a sample of measurements.
type Summary struct {
	N                          int
	Min, Median, P99, Max, Avg float64
}

// Summarize returns the summary of xs (which it does not modify). The
// median of an even number of samples is the mean of the two middle ones;
// percentiles use the nearest-rank method. An empty sample gives a zero
// Summary.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Summary{N: n, Min: s[0], Median: med, P99: Percentile(s, 99), Max: s[n-1], Avg: sum / float64(n)}
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value such that at least p percent of
// the sample is at or below it. sorted must be sorted and non-empty.
func Percentile(sorted []float64, p float64) float64 {
	k := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(k, 1), len(sorted))-1]
}
