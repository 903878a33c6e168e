package comm

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"sync"
	"testing"
)

// mixed is rank src's i-th message in TestTCPBothWays: its number, then
// bytes that depend on src, i and the position.
func mixed(src, i, size int) []byte {
	b := make([]byte, size)
	for k := range b {
		b[k] = byte(src*7 + i + k*13)
	}
	if size >= 4 {
		binary.LittleEndian.PutUint32(b, uint32(i))
	}
	return b
}

// TestTCPBothWays: two ranks, each on a host of its own, exchange 10,000
// messages of mixed sizes (0 B to 200 KiB: eager, long and rendezvous)
// both ways at once over TCP, with receives that drive the connections
// while the same ranks send: every message arrives once, in order, with
// its content.
func TestTCPBothWays(t *testing.T) {
	defer func(w int64) { testWindow = w }(testWindow)
	testWindow = 256 << 10 // eager up to 64 KiB, rendezvous above
	cs, errs := hostWorld(t, 2, "tcp", nil)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	if cs[0].e.tdrv == nil {
		t.Fatal("rank 0's receives do not drive its TCP link")
	}
	const count = 10000
	size := func(i int) int {
		if i%25 == 24 {
			return []int{64<<10 + 1, 200 << 10, 100 << 10}[i/25%3]
		}
		return []int{0, 3, 8, 1000, 8 << 10, 20 << 10, 64 << 10}[i%7]
	}
	ctx := tctx(t)
	var wg sync.WaitGroup
	for r, c := range cs {
		wg.Go(func() { // sends, 32 in flight
			var reqs []*Request
			for i := range count {
				q, err := c.Isend(1-r, i%5, mixed(r, i, size(i)))
				if err != nil {
					t.Errorf("rank %d: Isend %d: %v", r, i, err)
					return
				}
				if reqs = append(reqs, q); len(reqs) == 32 {
					for _, q := range reqs {
						if _, err := q.Wait(ctx); err != nil {
							t.Errorf("rank %d: Isend: %v", r, err)
							return
						}
					}
					reqs = reqs[:0]
				}
			}
			for _, q := range reqs {
				if _, err := q.Wait(ctx); err != nil {
					t.Errorf("rank %d: Isend: %v", r, err)
				}
			}
		})
		wg.Go(func() { // receives, alternately into a buffer and not
			buf := make([]byte, 200<<10)
			for i := range count {
				var got []byte
				var err error
				if i%2 == 0 {
					var st Status
					st, err = c.RecvInto(ctx, buf, 1-r, AnyTag)
					got = buf[:st.Size]
				} else {
					got, _, err = c.Recv(ctx, 1-r, i%5)
				}
				if err != nil {
					t.Errorf("rank %d: receive %d: %v", r, i, err)
					return
				}
				if want := mixed(1-r, i, size(i)); !bytes.Equal(got, want) {
					n := -1
					if len(got) >= 4 {
						n = int(binary.LittleEndian.Uint32(got))
					}
					t.Errorf("rank %d: receive %d: %d bytes (message %d?); want message %d of %d bytes", r, i, len(got), n, i, len(want))
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestTCPRecvIntoRecycles: eager messages received into the caller's
// buffer over TCP leave their frames to the link for the next ones: 100
// messages of 512 KiB allocate far less than their 50 MiB.
// (Before, each was read into a fresh allocation: 53-56 MB.)
func TestTCPRecvIntoRecycles(t *testing.T) {
	cs, errs := hostWorld(t, 2, "tcp", nil)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	ctx := tctx(t)
	const n, size = 100, 512 << 10
	msg, buf := make([]byte, size), make([]byte, size)
	round := func() error {
		if err := cs[0].Send(ctx, 1, 0, msg); err != nil {
			return err
		}
		if _, err := cs[1].RecvInto(ctx, buf, 0, 0); err != nil {
			return err
		}
		if err := cs[1].Send(ctx, 0, 1, nil); err != nil {
			return err
		}
		_, err := cs[0].RecvInto(ctx, nil, 1, 1)
		return err
	}
	for range 3 { // the pools fill
		if err := round(); err != nil {
			t.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		if err := round(); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	// Under half: sync.Pool drops a quarter of what it is given under
	// the race detector; without it, this allocates under a tenth.
	if got := after.TotalAlloc - before.TotalAlloc; got > n*size/2 {
		t.Errorf("%d messages of %d bytes allocated %d bytes; want under %d", n, size, got, n*size/2)
	}
}
