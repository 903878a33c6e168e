package comm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/decorun/decorun/internal/jobenv"
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
	const n, size = 100, 512 << 10
	// Under half: sync.Pool drops a quarter of what it is given under
	// the race detector; without it, this allocates under a tenth.
	if got := tcpRoundTripAllocs(t, n, 3, size, false); got > n*size/2 {
		t.Errorf("%d messages of %d bytes allocated %d bytes; want under %d", n, size, got, n*size/2)
	}
}

// tcpRoundTripAllocs runs warm round trips, then n more, between two
// ranks over TCP: a message of size bytes from rank 0, received into a
// buffer by rank 1, which answers with it (echo) or with an empty message,
// received into a buffer by rank 0. It returns the bytes allocated by the
// n round trips.
func tcpRoundTripAllocs(t *testing.T, n, warm, size int, echo bool) uint64 {
	t.Helper()
	cs, errs := hostWorld(t, 2, "tcp", nil)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	ctx := tctx(t)
	msg, buf := make([]byte, size), make([]byte, size)
	reply, into := []byte(nil), []byte(nil)
	if echo {
		reply, into = buf, msg
	}
	round := func() error {
		if err := cs[0].Send(ctx, 1, 0, msg); err != nil {
			return err
		}
		if _, err := cs[1].RecvInto(ctx, buf, 0, 0); err != nil {
			return err
		}
		if err := cs[1].Send(ctx, 0, 1, reply); err != nil {
			return err
		}
		_, err := cs[0].RecvInto(ctx, into, 1, 1)
		return err
	}
	for range warm { // the pools fill
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
	return after.TotalAlloc - before.TotalAlloc
}

// TestRecvIntoLentNotRecycled: on a rank with both shared-memory peers
// (whose frames are lent views into a ring) and TCP peers (whose link
// reuses frames given back), a shared-memory message received into the
// caller's buffer must not be given to the TCP link for reuse: the ring's
// memory would become a TCP frame, and both streams would be corrupted.
// (In one process this has not shown the corruption; cluster_test's
// TestBenchAcrossHosts, with real processes on namespace hosts, did.)
// Ranks 0 and 1 share a pretend host, rank 2 is on another; rank 1
// streams to 0 through shared memory while rank 2 streams to it over TCP,
// and every byte is checked.
func TestRecvIntoLentNotRecycled(t *testing.T) {
	const n = 3
	cs, errs := placedWorld(t, n, "auto", func(r int, job *jobenv.Job) {
		job.LocalRank, job.LocalSize, job.HostRanks = r, 2, []int{0, 1}
		if r == 2 {
			job.LocalRank, job.LocalSize, job.HostRanks = 0, 1, []int{2}
		}
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	if p := cs[0].Path(1); p != "shm" {
		t.Skipf("ranks 0 and 1 talk over %s, not shared memory", p)
	}
	if p := cs[0].Path(2); p != "tcp" {
		t.Skipf("ranks 0 and 2 talk over %s, not TCP", p)
	}
	ctx := tctx(t)
	const rounds = 1000
	fill := func(b []byte, k int) {
		for i := range b {
			b[i] = byte(k*7 + i*13)
		}
	}
	check := func(b []byte, k int, what string) error {
		for i := range b {
			if b[i] != byte(k*7+i*13) {
				return fmt.Errorf("%s %d: byte %d = %d, want %d", what, k, i, b[i], byte(k*7+i*13))
			}
		}
		return nil
	}
	par(t, cs, func(c *Comm) error {
		switch c.Rank() {
		case 0:
			small, large := make([]byte, 48<<10), make([]byte, 200<<10)
			for k := range rounds {
				// Posted before rank 1 sends: its frame finds the
				// receive and is copied straight out of the ring.
				q, err := c.IrecvInto(small, 1, 1)
				if err != nil {
					return err
				}
				if err := c.Send(ctx, 1, 9, nil); err != nil {
					return err
				}
				if _, err := q.Wait(ctx); err != nil {
					return err
				}
				if err := check(small, k, "from rank 1"); err != nil {
					return err
				}
				if _, err := c.RecvInto(ctx, large, 2, 2); err != nil {
					return err
				}
				if err := check(large, k, "from rank 2"); err != nil {
					return err
				}
			}
		case 1:
			small := make([]byte, 48<<10)
			for k := range rounds {
				if _, _, err := c.Recv(ctx, 0, 9); err != nil {
					return err
				}
				fill(small, k)
				if err := c.Send(ctx, 0, 1, small); err != nil {
					return err
				}
			}
		case 2:
			large := make([]byte, 200<<10)
			for k := range rounds {
				fill(large, k)
				if err := c.Send(ctx, 0, 2, large); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
