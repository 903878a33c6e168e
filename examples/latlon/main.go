// Command latlon is DECO's README example in Go: a climate-model step per
// grid cell, results[lat][lon] = processLatLon(lat, lon, data), run as
// concurrent tasks inside a synchronized block.
//
//	go run ./examples/latlon              # all local cores
//	decorun -n 4 ./examples/latlon 12 24  # a 12 × 24 grid on four ranks
//
// It prints a checksum of the grid and the warmest cell, the same however
// many ranks run it.
package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/decorun/decorun/deco"
)

// Data is the input every cell reads.
type Data struct {
	Steps int
	Base  float64
}

// processLatLon "does some work which takes a while".
func processLatLon(lat, lon int, data Data) float64 {
	t := data.Base
	for i := range data.Steps {
		t += math.Sin(float64(lat)*0.1+float64(i)*1e-3) * math.Cos(float64(lon)*0.1) * 1e-3
	}
	return t
}

var process = deco.Concurrent3(processLatLon)

// processDataSet is DECO's @synchronized function.
func processDataSet(ctx context.Context, nlat, nlon int, data Data) (map[int]map[int]float64, error) {
	results := map[int]map[int]float64{}
	err := deco.Synchronized(ctx, func(s *deco.Scope) {
		for lat := range nlat {
			results[lat] = map[int]float64{}
			for lon := range nlon {
				process.Then(s, deco.Entry(results[lat], lon), lat, lon, data)
			}
		}
	})
	return results, err
}

func main() {
	nlat, nlon := 10, 20
	if len(os.Args) == 3 {
		a, err1 := strconv.Atoi(os.Args[1])
		b, err2 := strconv.Atoi(os.Args[2])
		if err1 != nil || err2 != nil || a < 1 || b < 1 {
			fmt.Fprintln(os.Stderr, "usage: latlon [NLAT NLON]")
			os.Exit(2)
		}
		nlat, nlon = a, b
	}
	deco.Main(func(ctx context.Context) error {
		results, err := processDataSet(ctx, nlat, nlon, Data{Steps: 200_000, Base: 15})
		if err != nil {
			return err
		}
		sum, best, at := 0.0, math.Inf(-1), [2]int{}
		for lat := range nlat {
			for lon := range nlon {
				v := results[lat][lon]
				sum += v
				if v > best {
					best, at = v, [2]int{lat, lon}
				}
			}
		}
		fmt.Printf("%d cells, sum %.6f, warmest %.6f at lat %d lon %d\n", nlat*nlon, sum, best, at[0], at[1])
		return nil
	})
}
