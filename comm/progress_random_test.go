package comm

// Random valid programs checked against MPI's progress and ordering rules.

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
)

var (
	progressSeeds = flag.Int("progress.seeds", 0, "seeds TestProgressRandom runs per transport (0: its default, fewer with -short)")
	progressSeed  = flag.Uint64("progress.seed", 0, "run TestProgressRandom with this seed only (reproduces a failure)")
)

// progressTransports are the data paths the progress tests run on: auto
// (shared memory between these in-process ranks), NATS and direct TCP.
var progressTransports = []string{"auto", "nats", "tcp"}

// TestProgressRandom runs random valid programs: random sizes (0 B to
// twice the credit window), tags and communicators (the world and two
// Dups), sent with Isend or Send, received in random orders that MPI
// allows (a random prefix of each stream's receives posted before any
// send, the rest received after all sends were issued, streams
// interleaved at random, each receive blocking or nonblocking). A
// blocking Send is used only where the program is safe without buffering
// (its receive is posted first). Every message must arrive whole, in its
// stream's order. The ranks' eager window is 256 KiB, so that a program of
// a few MiB fills it many times; TestProgressRandomFullWindow runs the
// real one. A failure names its seed: -progress.seed=S reproduces it,
// -progress.seeds=N runs more.
func TestProgressRandom(t *testing.T) {
	defer func(w int64) { testWindow = w }(testWindow)
	testWindow = 256 << 10
	seeds := *progressSeeds
	if seeds == 0 {
		seeds = 16
		if testing.Short() {
			seeds = 4
		}
	}
	progressSeedsOn(t, seeds, int(testWindow))
}

// TestProgressRandomFullWindow is TestProgressRandom with the window the
// ranks really have (16 MiB at 2 and 3 ranks, 10.7 MiB at 4), where large
// eager messages travel in several frames.
func TestProgressRandomFullWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("hundreds of MiB per program")
	}
	progressSeedsOn(t, 1, 0)
}

// progressSeedsOn runs seeds 1..seeds on every transport with eager
// window w (0: the real one).
func progressSeedsOn(t *testing.T, seeds, w int) {
	for _, tr := range progressTransports {
		t.Run(tr, func(t *testing.T) {
			if *progressSeed != 0 {
				runProgressSeed(t, tr, *progressSeed, w)
				return
			}
			for i := range seeds {
				seed := uint64(i + 1)
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runProgressSeed(t, tr, seed, w) })
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

// pattern is random bytes that messages are cut from: enough for the
// largest (a quarter and a whole 16 MiB window) at any of 4096 offsets.
var pattern = sync.OnceValue(func() []byte {
	b := make([]byte, 20<<20+4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b
})

// content is message m's bytes: a slice of pattern at an offset drawn
// from its identity, its first 8 bytes that identity, so that a message
// delivered to the wrong receive or out of order is caught.
func (m *pmsg) content(b []byte) {
	off := (m.src*7 + m.dst*13 + m.comm*29 + m.tag*31 + m.idx*37) % 4096
	copy(b, pattern()[off:off+m.size])
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

// randSize draws a message size for eager window w: empty and tiny ones,
// eager ones, and some for rendezvous.
func randSize(rng *rand.Rand, w int) int {
	switch p := rng.IntN(100); {
	case p < 25:
		return rng.IntN(65) // 0..64 B
	case p < 30:
		return rng.IntN(2) // 0 or 1 byte
	case p < 70:
		return 1<<10 + rng.IntN(w/16)
	case p < 95:
		return w/16 + rng.IntN(w/4-w/16) // up to the eager limit
	default:
		return w/4 + rng.IntN(w) // rendezvous
	}
}

// progressProgram draws a random program for n ranks whose eager window is
// w.
func progressProgram(seed uint64, w int) (n int, msgs [][]*pmsg) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n = 2 + rng.IntN(3)
	if w == 0 { // the window newEngine gives n ranks
		w = min(max(windowBudget/(n-1), minWindow), maxWindow)
	}
	msgs = make([][]*pmsg, n) // by sender, in send order
	streams := map[[4]int]int{}
	// Three windows per ordered pair on average, so that most pairs fill
	// theirs with messages no receive has matched yet.
	budget := w * 3 * n * (n - 1)
	for range 4000 {
		m := &pmsg{src: rng.IntN(n), comm: rng.IntN(3), tag: rng.IntN(3), size: randSize(rng, w)}
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

func runProgressSeed(t *testing.T, tr string, seed uint64, w int) {
	n, msgs := progressProgram(seed, w)
	cs := worldOn(t, n, tr)
	comms := make([][]*Comm, n)                                             // comms[rank][i]: world, Dup, Dup of the Dup
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // hang guard
	defer cancel()
	par(t, cs, func(c *Comm) error {
		d1, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		d2, err := d1.Dup(ctx)
		comms[c.Rank()] = []*Comm{c, d1, d2}
		return err
	})
	if t.Failed() {
		return
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
	var mu sync.Mutex
	var pending []string // what each rank still waits for when the guard fires
	par(t, cs, func(c *Comm) error {
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

func runProgressRank(ctx context.Context, cs []*Comm, sends, recvs []*pmsg) error {
	type posted struct {
		m *pmsg
		q *Request
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
	var sreqs []*Request
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
	if err := WaitAll(ctx, sreqs...); err != nil {
		return fmt.Errorf("Isends: %w", err)
	}
	return nil
}
