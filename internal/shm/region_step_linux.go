package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"
)

// Member states (the state word of a member's file).
const (
	stateClosed = 1 // the member closed its communicator
	stateFailed = 2 // the member could not attach to the region
)

// ErrRegionLeft is wrapped by the error of a wait for a member that closed
// its communicator or could not attach to the region.
var ErrRegionLeft = errors.New("shm: a member left the collectives region")

// Line layout within a post line.
const (
	lnPost = 0
	lnLen  = 8
	lnHead = 16
	lnMark = rgLineSize - 8
	// A streamed post (Post of more than streamMin bytes) publishes its
	// header first, with the stream step, then how many bytes of its
	// payload are in the slot after each piece (Avail).
	lnStream   = rgLineSize - 24
	lnStreamed = rgLineSize - 16
	// RegionHead is the number of header words a post carries.
	RegionHead = (rgInlineOff - lnHead) / 8
)

// Waiting: a member that waits for another polls for regionSpin without a
// system call (when it has a core of its own), then yields its core for
// regionYield (sched_yield, so that ranks that outnumber the cores run),
// then sleeps on its bell, waking at least every regionPark to check ctx
// and its peers' liveness.
var (
	regionSpin  = 50 * time.Microsecond
	regionYield = 500 * time.Microsecond
	regionPark  = 20 * time.Millisecond
)

// Members is the number of members; Me is this member's index.
func (g *Region) Members() int { return len(g.mems) }

// Crowded reports whether this member's host has more ranks than cores
// (Members.Crowded).
func (g *Region) Crowded() bool { return g.mb.Crowded }

// Me is this member's index.
func (g *Region) Me() int { return g.mb.Me }

// Slot is the largest payload of one post.
func (g *Region) Slot() int { return g.cfg.Slot }

func (g *Region) line(m int, s uint64) []byte {
	off := rgLines + int(s&1)*rgLineSize
	return g.mems[m].mem[off : off+rgLineSize]
}

func (g *Region) u64(b []byte, off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&b[off]))
}

// Post publishes step s of this member: the header words head (at most
// RegionHead) and the concatenation of data (at most Slot bytes). It first
// waits until every other member has finished reading step s-2, whose
// slot and line step s reuses. A member acknowledges step s-1 before it
// posts step s (the protocol's rule, which lets Post skip that wait after
// a WaitAll of step s-1).
func (g *Region) Post(ctx context.Context, s uint64, head []int64, data ...[]byte) error {
	if len(head) > RegionHead {
		return fmt.Errorf("shm: %d header words, at most %d", len(head), RegionHead)
	}
	n := 0
	for _, d := range data {
		n += len(d)
	}
	if n > g.cfg.Slot {
		return fmt.Errorf("shm: post of %d bytes, slot of %d", n, g.cfg.Slot)
	}
	// A member posts step s+1 only after acknowledging step s (its calls
	// take their steps one at a time), so once this member has seen every
	// post of step s-1 every member has acknowledged s-2: no need to look.
	if !g.CanPost(s) {
		if err := g.await(ctx, func() bool { return g.CanPost(s) }); err != nil {
			return err
		}
	}
	ln := g.line(g.mb.Me, s)
	if n > streamMin {
		g.stream(ln, s, head, n, data)
		return nil
	}
	var dst []byte
	if n <= regionInline {
		dst = ln[rgInlineOff:]
	} else {
		off := rgData + int(s&1)*g.cfg.Slot
		dst = g.me.mem[off : off+g.cfg.Slot]
	}
	k := 0
	for _, d := range data {
		k += Publish(dst[k:], d)
	}
	// Plain stores, published by the atomic store of the step: a reader
	// that loads s sees them (x86's order; on others the store releases).
	// Atomic stores here would each fetch the line back from a reader
	// polling it. The step's store is atomic (a full fence on x86): a
	// member that stores its sleep flag and then loads the steps, and this
	// one, which stores the step and then loads the sleep flags, must not
	// both miss the other.
	for i, h := range head {
		binary.LittleEndian.PutUint64(ln[lnHead+8*i:], uint64(h))
	}
	binary.LittleEndian.PutUint64(ln[lnLen:], uint64(n))
	g.u64(ln, lnPost).Store(s) // last: a reader that sees s sees the rest
	g.wakeOthers()
	return nil
}

// Streaming: a post of more than streamMin bytes publishes its header and
// length first (the stream step, lnStream), then its payload in pieces of
// streamPiece bytes or a sixteenth of it, whichever is larger, storing
// after each how many bytes are in the slot (lnStreamed), and the post
// step last, as any post. A reader that needs only a part of the payload
// (Avail) or reads it in order can start on the first piece while the
// rest is copied: a two-rank Reduce's root folds while the other rank
// still writes.
const (
	streamMin   = 16 << 10
	streamPiece = 16 << 10
)

// stream is Post's copy of a large payload (n bytes, more than regionInline)
// in pieces, each published in lnStreamed.
func (g *Region) stream(ln []byte, s uint64, head []int64, n int, data [][]byte) {
	for i, h := range head {
		binary.LittleEndian.PutUint64(ln[lnHead+8*i:], uint64(h))
	}
	binary.LittleEndian.PutUint64(ln[lnLen:], uint64(n))
	streamed := g.u64(ln, lnStreamed)
	streamed.Store(0)
	g.u64(ln, lnStream).Store(s) // after the header and the length: Heads
	g.wakeOthers()
	piece := max(streamPiece, (n/16+4095)&^4095)
	off := rgData + int(s&1)*g.cfg.Slot
	dst := g.me.mem[off : off+n]
	k, next := 0, min(piece, n)
	for _, d := range data {
		for len(d) > 0 {
			m := min(len(d), next-k)
			k += Publish(dst[k:k+m], d[:m])
			d = d[m:]
			if k == next {
				streamed.Store(uint64(k)) // Publish fenced its stores
				g.wakeOthers()
				next = min(next+piece, n)
			}
		}
	}
	g.u64(ln, lnPost).Store(s)
	g.wakeOthers()
}

// Heads reports whether member m's header of step s can be read (Head,
// and Data's length): it posted the step, or streams its payload.
func (g *Region) Heads(m int, s uint64) bool {
	ln := g.line(m, s)
	return g.u64(ln, lnPost).Load() == s || g.u64(ln, lnStream).Load() == s
}

// HeadsAll reports whether every member's header of step s can be read.
func (g *Region) HeadsAll(s uint64) bool {
	for m := range g.mems {
		if !g.Heads(m, s) {
			return false
		}
	}
	return true
}

// WaitHeads waits until every member's header of step s can be read.
func (g *Region) WaitHeads(ctx context.Context, s uint64) error {
	if g.HeadsAll(s) {
		return nil
	}
	return g.await(ctx, func() bool { return g.HeadsAll(s) })
}

// Avail is how many bytes of member m's payload of step s can be read,
// from its start: all of it once m posted the step, what it has streamed
// so far, or 0 before its header (Heads).
func (g *Region) Avail(m int, s uint64) int {
	ln := g.line(m, s)
	if g.u64(ln, lnPost).Load() == s {
		return int(binary.LittleEndian.Uint64(ln[lnLen:]))
	}
	if g.u64(ln, lnStream).Load() == s {
		return int(g.u64(ln, lnStreamed).Load())
	}
	return 0
}

// WaitAvail waits until n bytes of member m's payload of step s can be
// read (n at most its length).
func (g *Region) WaitAvail(ctx context.Context, m int, s uint64, n int) error {
	if g.Avail(m, s) >= n {
		return nil
	}
	return g.await(ctx, func() bool { return g.Avail(m, s) >= n })
}

// CanPost reports whether Post of step s would not wait: every other
// member has finished reading step s-2.
func (g *Region) CanPost(s uint64) bool {
	if s <= 2 || g.seen.Load() == s-1 {
		return true
	}
	for i, m := range g.mems {
		if i == g.mb.Me || m.acked.Load() >= s-2 {
			continue
		}
		// A rooted call's root posts without waiting for the others, so
		// its next post must ask how far they read; a load of each ack
		// tells it about this step and the next (see member.acked).
		a := m.ack.Load()
		if a > m.acked.Load() {
			m.acked.Store(a)
		}
		if a < s-2 {
			return false
		}
	}
	return true
}

// Posted reports whether member m has posted step s.
func (g *Region) Posted(m int, s uint64) bool { return g.u64(g.line(m, s), lnPost).Load() == s }

// WaitAll waits until every member has posted step s.
func (g *Region) WaitAll(ctx context.Context, s uint64) error {
	err := g.await(ctx, func() bool {
		for m := range g.mems {
			if !g.Posted(m, s) {
				return false
			}
		}
		return true
	})
	if err == nil {
		g.seen.Store(s)
	}
	return err
}

// Await waits until ready() holds, as the region's own waits do (polling,
// then yielding, then asleep until another member posts, marks or
// acknowledges a step), or until ctx ends or a member has left or died.
func (g *Region) Await(ctx context.Context, ready func() bool) error { return g.await(ctx, ready) }

// Wait waits until member m has posted step s.
func (g *Region) Wait(ctx context.Context, m int, s uint64) error {
	return g.await(ctx, func() bool { return g.Posted(m, s) })
}

// Head returns header word i of member m's post of step s (which it must
// have posted).
func (g *Region) Head(m int, s uint64, i int) int64 {
	return int64(binary.LittleEndian.Uint64(g.line(m, s)[lnHead+8*i:]))
}

// Data returns member m's payload of step s (which it must have posted):
// a view into its file, valid until this member acknowledges step s.
func (g *Region) Data(m int, s uint64) []byte {
	ln := g.line(m, s)
	n := int(binary.LittleEndian.Uint64(ln[lnLen:]))
	if n <= regionInline {
		return ln[rgInlineOff : rgInlineOff+n : rgInlineOff+n]
	}
	off := rgData + int(s&1)*g.cfg.Slot
	return g.mems[m].mem[off : off+n : off+n]
}

// Own is this member's slot of step s, which it may write while other
// members read only the parts it has not written to since its post (a
// member that publishes a result in its own slot, then calls Mark).
func (g *Region) Own(s uint64) []byte {
	off := rgData + int(s&1)*g.cfg.Slot
	return g.me.mem[off : off+g.cfg.Slot : off+g.cfg.Slot]
}

// Slot returns member m's whole slot of step s (a view).
func (g *Region) SlotOf(m int, s uint64) []byte {
	off := rgData + int(s&1)*g.cfg.Slot
	return g.mems[m].mem[off : off+g.cfg.Slot : off+g.cfg.Slot]
}

// Mark publishes that this member has done the second part of step s
// (it has written what it owes into its own slot). The mark is s, or s
// with bit 63 set (a flag of the caller's).
func (g *Region) Mark(mark uint64) {
	g.u64(g.line(g.mb.Me, mark), lnMark).Store(mark)
	g.wakeOthers()
}

// MarkOf is member m's mark in step s's line.
func (g *Region) MarkOf(m int, s uint64) uint64 { return g.u64(g.line(m, s), lnMark).Load() }

// Marked reports whether member m has marked step s.
func (g *Region) Marked(m int, s uint64) bool { return g.MarkOf(m, s)&^(1<<63) == s }

// WaitMarks waits until every member in ms (every member when nil) has
// marked step s.
func (g *Region) WaitMarks(ctx context.Context, s uint64, ms []int) error {
	return g.await(ctx, func() bool {
		if ms == nil {
			for m := range g.mems {
				if !g.Marked(m, s) {
					return false
				}
			}
			return true
		}
		for _, m := range ms {
			if !g.Marked(m, s) {
				return false
			}
		}
		return true
	})
}

// Ack says that this member has finished reading step s (and every step
// before it): their slots may be reused.
func (g *Region) Ack(s uint64) {
	if g.me.ack.Load() < s {
		g.me.ack.Store(s)
		g.wakeOthers()
	}
}

// wakeOthers rings the bell of every member that sleeps.
func (g *Region) wakeOthers() {
	for i, m := range g.mems {
		if i != g.mb.Me && m.sleep.Load() != 0 {
			m.bell.Add(1)
			futexWakeAll(m.bell)
		}
	}
}

type backgroundKey struct{}

// Background marks ctx so that waits in a region under it neither spin
// nor yield: they sleep at once until another member posts, marks or
// acknowledges a step, for a nonblocking collective's progress goroutine,
// which must not take a core from the ranks that compute while it waits,
// and, once woken, runs before them.
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// await returns once ready() holds, or with an error when ctx ends, when
// this member's region is closed, or when a member has left or died.
func (g *Region) await(ctx context.Context, ready func() bool) error {
	if ready() {
		return nil
	}
	done := ctx.Done()
	if ctx.Value(backgroundKey{}) != nil {
		return g.sleep(ctx, ready)
	}
	b := backoff{spin: regionSpin, yield: regionYield, relax: true,
		clockFrom: 256, clockEvery: 256, goschedEvery: 16384, yieldEvery: 1}
	if g.mb.Crowded {
		b.spin, b.clockFrom, b.clockEvery = 0, 8, 8
	}
	var last time.Time // the last check of the members
	for {
		if ready() {
			return nil
		}
		more, tick := b.next()
		if !more {
			break
		}
		if !tick {
			continue
		}
		if !b.yielding {
			select {
			case <-done:
				return ctx.Err()
			default:
			}
			continue
		}
		if last.IsZero() {
			last = b.now
		} else if b.now.Sub(last) > time.Millisecond {
			last = b.now
			if err := g.check(ctx); err != nil {
				return err
			}
		}
	}
	return g.sleep(ctx, ready)
}

// sleep is await's last phase: asleep on this member's bell.
func (g *Region) sleep(ctx context.Context, ready func() bool) error {
	me := g.me
	stop := context.AfterFunc(ctx, func() {
		me.bell.Add(1)
		futexWakeAll(me.bell)
	})
	defer stop()
	for {
		// sleep counts this member's sleepers (a nonblocking call's
		// progress goroutine may sleep beside the caller).
		me.sleep.Add(1)
		b := me.bell.Load()
		if ready() {
			me.sleep.Add(^uint32(0))
			return nil
		}
		futexWait(me.bell, b, regionPark)
		me.sleep.Add(^uint32(0))
		if ready() {
			return nil
		}
		if err := g.check(ctx); err != nil {
			return err
		}
	}
}

// check reports why a wait must end: ctx ended, this member closed, or a
// member left the region or died.
func (g *Region) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, m := range g.mems {
		w := g.mb.World[i]
		switch m.state.Load() {
		case stateClosed:
			if i == g.mb.Me {
				return fmt.Errorf("rank %d closed the communicator: %w", w, ErrRegionLeft)
			}
			return fmt.Errorf("rank %d closed the communicator: %w", w, ErrRegionLeft)
		case stateFailed:
			return fmt.Errorf("rank %d could not map the communicator's shared memory: %w", w, ErrRegionLeft)
		}
		if i != g.mb.Me && g.mb.Alive != nil {
			if err := g.mb.Alive(i); err != nil {
				return err
			}
		}
	}
	return nil
}
