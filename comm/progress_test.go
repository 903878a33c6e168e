package comm_test

// Tests of MPI's progress rule: a send and the receive that matches it
// complete, whatever other messages the sender has outstanding to the same
// receiver that no receive has matched yet.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

var (
	progressSeeds = flag.Int("progress.seeds", 0, "seeds TestProgressRandom runs per transport (0: its default, fewer with -short)")
	progressSeed  = flag.Uint64("progress.seed", 0, "run TestProgressRandom with this seed only (reproduces a failure)")
)

// progressTransports are the data paths the progress tests run on: auto
// (shared memory between these in-process ranks), NATS and direct TCP.
var progressTransports = []string{"auto", "nats", "tcp"}

// floodCount is how many 64 KiB messages each sender leaves unmatched at
// rank 0: more than the credit window of an n-rank job.
func floodCount(n int) int {
	w := 32 << 20 / (n - 1)
	w = min(max(w, 64<<10), 16<<20)
	return w/(64<<10) + 44
}

// TestProgressPastUnmatchedEager is the textbook case: every rank but 0
// posts more Isends of 64 KiB to rank 0 than its credit window holds, then
// sends one message on another tag and one on a Dup, and joins a Barrier
// and an Allreduce. Rank 0 takes those first and the flood last, which MPI
// requires to complete (the flood's sends go by rendezvous once the window
// is full, and nothing else waits behind them).
func TestProgressPastUnmatchedEager(t *testing.T) {
	for _, tr := range progressTransports {
		for _, n := range []int{2, 8} {
			t.Run(fmt.Sprintf("%s/n=%d", tr, n), func(t *testing.T) {
				cs := commtest.WorldOn(t, n, tr)
				dups := make([]*comm.Comm, n)
				for r, c := range cs {
					d, err := c.Dup()
					if err != nil {
						t.Fatal(err)
					}
					dups[r] = d
				}
				k := floodCount(n)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // hang guard
				defer cancel()
				commtest.Run(t, cs, func(c *comm.Comm) error {
					return floodThenOthers(ctx, c, dups[c.Rank()], k)
				})
			})
		}
	}
}

func floodThenOthers(ctx context.Context, c, dup *comm.Comm, k int) error {
	const size = 64 << 10
	me, n := c.Rank(), c.Size()
	if me != 0 {
		reqs := make([]*comm.Request, k)
		for i := range k {
			b := make([]byte, size)
			binary.LittleEndian.PutUint64(b, uint64(me<<32|i))
			b[size-1] = byte(i)
			q, err := c.Isend(0, 1, b)
			if err != nil {
				return fmt.Errorf("Isend %d: %w", i, err)
			}
			reqs[i] = q
		}
		if err := c.Send(ctx, 0, 2, []byte{byte(me)}); err != nil {
			return fmt.Errorf("Send on tag 2 behind the flood: %w", err)
		}
		if err := dup.Send(ctx, 0, 1, []byte{byte(me), 'd'}); err != nil {
			return fmt.Errorf("Send on the Dup behind the flood: %w", err)
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return fmt.Errorf("Barrier behind the flood: %w", err)
		}
		sum, err := collectives.Allreduce(ctx, c, me, collectives.Sum[int])
		if err != nil {
			return fmt.Errorf("Allreduce behind the flood: %w", err)
		}
		if want := n * (n - 1) / 2; sum != want {
			return fmt.Errorf("Allreduce = %d, want %d", sum, want)
		}
		if err := comm.WaitAll(ctx, reqs...); err != nil {
			return fmt.Errorf("the flood's Isends: %w", err)
		}
		return nil
	}
	for src := 1; src < n; src++ {
		b, _, err := c.Recv(ctx, src, 2)
		if err != nil || len(b) != 1 || int(b[0]) != src {
			return fmt.Errorf("Recv tag 2 from %d before the flood: %q, %v", src, b, err)
		}
		b, _, err = dup.Recv(ctx, src, 1)
		if err != nil || len(b) != 2 || int(b[0]) != src || b[1] != 'd' {
			return fmt.Errorf("Recv on the Dup from %d before the flood: %q, %v", src, b, err)
		}
	}
	if err := collectives.Barrier(ctx, c); err != nil {
		return fmt.Errorf("Barrier before the flood: %w", err)
	}
	sum, err := collectives.Allreduce(ctx, c, 0, collectives.Sum[int])
	if err != nil {
		return fmt.Errorf("Allreduce before the flood: %w", err)
	}
	if want := n * (n - 1) / 2; sum != want {
		return fmt.Errorf("Allreduce = %d, want %d", sum, want)
	}
	for src := 1; src < n; src++ {
		for i := range k {
			b, st, err := c.Recv(ctx, src, 1)
			if err != nil {
				return fmt.Errorf("flood message %d from %d: %w", i, src, err)
			}
			if len(b) != size || binary.LittleEndian.Uint64(b) != uint64(src<<32|i) || b[size-1] != byte(i) || st.Size != size {
				return fmt.Errorf("flood message %d from %d: got %d bytes starting %x (out of order or corrupt)", i, src, len(b), b[:min(8, len(b))])
			}
		}
	}
	return nil
}

// TestProgressRandom runs random valid programs: random sizes (0 B to
// 4 MiB), tags and communicators (the world and two Dups), sent with Isend
// or Send, received in random orders that MPI allows (a random prefix of
// each stream's receives posted before any send, the rest received after
// all sends were issued, streams interleaved at random, each receive
// blocking or nonblocking). A blocking Send is used only where the
// program is safe without buffering (its receive is posted first). Every
// message must arrive whole, in its stream's order. A failure names its
// seed: -progress.seed=S reproduces it, -progress.seeds=N runs more.
func TestProgressRandom(t *testing.T) {
	seeds := *progressSeeds
	if seeds == 0 {
		seeds = 4
		if testing.Short() {
			seeds = 2
		}
	}
	for _, tr := range progressTransports {
		t.Run(tr, func(t *testing.T) {
			if *progressSeed != 0 {
				runProgressSeed(t, tr, *progressSeed)
				return
			}
			for i := range seeds {
				seed := uint64(i + 1)
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runProgressSeed(t, tr, seed) })
			}
		})
	}
}

// pmsg is one message of a random program.
type pmsg struct {
	src, dst, comm, tag int
	idx                 int // its place in its stream (src, dst, comm, tag)
	size                int
	blocking            bool // sent with Send (only if its receive is pre-posted)
	preposted           bool // its receive is posted before the sends
	irecv               bool // received with Irecv+Wait rather than Recv
}

// pattern is random bytes that messages are cut from.
var pattern = func() []byte {
	b := make([]byte, 8<<20+4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}()

// content is message m's bytes: a slice of pattern at an offset drawn
// from its identity, its first 8 bytes that identity, so that a message
// delivered to the wrong receive or out of order is caught.
func (m *pmsg) content(b []byte) {
	off := (m.src*7 + m.dst*13 + m.comm*29 + m.tag*31 + m.idx*37) % 4096
	copy(b, pattern[off:off+m.size])
	if len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, m.id())
	}
}

func (m *pmsg) id() uint64 {
	return uint64(m.src)<<48 | uint64(m.comm)<<40 | uint64(m.tag)<<32 | uint64(m.idx)
}

func (m *pmsg) check(b []byte) error {
	if len(b) != m.size {
		return fmt.Errorf("message %d of stream (src %d, comm %d, tag %d): got %d bytes, want %d", m.idx, m.src, m.comm, m.tag, len(b), m.size)
	}
	want := make([]byte, m.size)
	m.content(want)
	if !bytes.Equal(b, want) {
		if len(b) >= 8 && binary.LittleEndian.Uint64(b) != m.id() {
			return fmt.Errorf("message %d of stream (src %d, comm %d, tag %d): got message %#x (out of order?)", m.idx, m.src, m.comm, m.tag, binary.LittleEndian.Uint64(b))
		}
		return fmt.Errorf("message %d of stream (src %d, comm %d, tag %d): %d bytes, content differs", m.idx, m.src, m.comm, m.tag, m.size)
	}
	return nil
}

func randSize(rng *rand.Rand) int {
	switch p := rng.IntN(100); {
	case p < 25:
		return rng.IntN(65) // 0..64 B
	case p < 30:
		return rng.IntN(2) // 0 or 1 byte
	case p < 70:
		return 4<<10 + rng.IntN(252<<10)
	case p < 95:
		return 256<<10 + rng.IntN(2<<20-256<<10)
	default:
		return 2<<20 + rng.IntN(4<<20) // beyond every eager limit at 4 ranks
	}
}

// progressProgram draws a random program for n ranks.
func progressProgram(seed uint64) (n int, msgs [][]*pmsg) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n = 2 + rng.IntN(3)
	msgs = make([][]*pmsg, n) // by sender, in send order
	streams := map[[4]int]int{}
	// 24 MiB per ordered pair on average: more than a credit window, so
	// that some pairs fill it with messages no receive has matched yet.
	budget := 24 << 20 * n * (n - 1)
	for range 4000 {
		m := &pmsg{src: rng.IntN(n), comm: rng.IntN(3), tag: rng.IntN(3), size: randSize(rng)}
		m.dst = rng.IntN(n - 1)
		if m.dst >= m.src {
			m.dst++
		}
		if budget -= m.size; budget < 0 {
			break
		}
		key := [4]int{m.src, m.dst, m.comm, m.tag}
		m.idx = streams[key]
		streams[key]++
		m.irecv = rng.IntN(2) == 0
		msgs[m.src] = append(msgs[m.src], m)
	}
	// A random prefix of each stream is pre-posted; of those, some are
	// sent with a blocking Send.
	prefix := map[[4]int]int{}
	for k, cnt := range streams {
		prefix[k] = rng.IntN(cnt + 1)
	}
	for _, ms := range msgs {
		for _, m := range ms {
			if m.idx < prefix[[4]int{m.src, m.dst, m.comm, m.tag}] {
				m.preposted = true
				m.blocking = rng.IntN(2) == 0
			}
		}
	}
	return n, msgs
}

func runProgressSeed(t *testing.T, tr string, seed uint64) {
	n, msgs := progressProgram(seed)
	cs := commtest.WorldOn(t, n, tr)
	comms := make([][]*comm.Comm, n) // comms[rank][i]: world, Dup, Dup of the Dup
	for r, c := range cs {
		d1, err := c.Dup()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := d1.Dup()
		if err != nil {
			t.Fatal(err)
		}
		comms[r] = []*comm.Comm{c, d1, d2}
	}
	// Each rank's receives, streams interleaved at random but each
	// stream in order.
	recvs := make([][]*pmsg, n)
	rng := rand.New(rand.NewPCG(seed, 1))
	for r := range n {
		var byStream [][]*pmsg
		idx := map[[4]int]int{}
		for _, ms := range msgs {
			for _, m := range ms {
				if m.dst != r {
					continue
				}
				k := [4]int{m.src, m.dst, m.comm, m.tag}
				i, ok := idx[k]
				if !ok {
					i = len(byStream)
					idx[k] = i
					byStream = append(byStream, nil)
				}
				byStream[i] = append(byStream[i], m)
			}
		}
		for len(byStream) > 0 {
			i := rng.IntN(len(byStream))
			recvs[r] = append(recvs[r], byStream[i][0])
			if byStream[i] = byStream[i][1:]; len(byStream[i]) == 0 {
				byStream = append(byStream[:i], byStream[i+1:]...)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // hang guard
	defer cancel()
	var mu sync.Mutex
	var pending []string // what each rank still waits for when the guard fires
	commtest.Run(t, cs, func(c *comm.Comm) error {
		err := runProgressRank(ctx, comms[c.Rank()], msgs[c.Rank()], recvs[c.Rank()])
		if err != nil && errors.Is(err, context.DeadlineExceeded) {
			mu.Lock()
			pending = append(pending, fmt.Sprintf("rank %d: %v", c.Rank(), err))
			mu.Unlock()
		}
		return err
	})
	if t.Failed() {
		t.Logf("seed %d (n=%d, transport %s) failed; rerun with -run 'TestProgressRandom/%s' -progress.seed=%d", seed, n, tr, tr, seed)
	}
}

func runProgressRank(ctx context.Context, cs []*comm.Comm, sends, recvs []*pmsg) error {
	type posted struct {
		m *pmsg
		q *comm.Request
	}
	var early []posted
	for _, m := range recvs {
		if !m.preposted {
			continue
		}
		q, err := cs[m.comm].Irecv(m.src, m.tag)
		if err != nil {
			return fmt.Errorf("Irecv: %w", err)
		}
		early = append(early, posted{m, q})
	}
	var sreqs []*comm.Request
	for _, m := range sends {
		b := make([]byte, m.size)
		m.content(b)
		if m.blocking {
			if err := cs[m.comm].Send(ctx, m.dst, m.tag, b); err != nil {
				return fmt.Errorf("Send of message %d to %d (comm %d, tag %d, %d B): %w", m.idx, m.dst, m.comm, m.tag, m.size, err)
			}
			continue
		}
		q, err := cs[m.comm].Isend(m.dst, m.tag, b)
		if err != nil {
			return fmt.Errorf("Isend: %w", err)
		}
		sreqs = append(sreqs, q)
	}
	var late []posted
	for _, m := range recvs {
		if m.preposted {
			continue
		}
		if m.irecv {
			q, err := cs[m.comm].Irecv(m.src, m.tag)
			if err != nil {
				return fmt.Errorf("Irecv: %w", err)
			}
			late = append(late, posted{m, q})
			continue
		}
		b, _, err := cs[m.comm].Recv(ctx, m.src, m.tag)
		if err != nil {
			return fmt.Errorf("Recv of message %d from %d (comm %d, tag %d, %d B): %w", m.idx, m.src, m.comm, m.tag, m.size, err)
		}
		if err := m.check(b); err != nil {
			return err
		}
	}
	for _, p := range append(early, late...) {
		if _, err := p.q.Wait(ctx); err != nil {
			return fmt.Errorf("receive of message %d from %d (comm %d, tag %d, %d B): %w", p.m.idx, p.m.src, p.m.comm, p.m.tag, p.m.size, err)
		}
		if err := p.m.check(p.q.Data()); err != nil {
			return err
		}
	}
	if err := comm.WaitAll(ctx, sreqs...); err != nil {
		return fmt.Errorf("Isends: %w", err)
	}
	return nil
}
