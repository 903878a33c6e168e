package deco

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/decorun/decorun/comm"
)

// start begins serving the workers of e.c: one link goroutine per worker,
// one receiver of results, one watcher of lost ranks.
func (e *engine) start(ctx context.Context, lost <-chan int) {
	ctx, e.stop = context.WithCancel(ctx)
	e.links = make([]*link, e.c.Size())
	for r := 1; r < e.c.Size(); r++ {
		l := &link{rank: r, slots: 1, out: map[uint64][]*task{}}
		e.links[r] = l
		e.wg.Add(1)
		go e.linkLoop(ctx, l)
	}
	e.wg.Add(2)
	go e.recvLoop(ctx)
	go func() {
		defer e.wg.Done()
		for {
			select {
			case r := <-lost:
				e.markLost(r)
			case <-ctx.Done():
				return
			}
		}
	}()
}

// shutdown ends Run on rank 0: links stop, every live worker is told to
// stop, and shutdown returns when deco's goroutines have exited.
func (e *engine) shutdown() {
	e.mu.Lock()
	e.stopping = true
	e.work.wake()
	e.mu.Unlock()
	if e.c == nil {
		e.wg.Wait()
		return
	}
	e.stop()
	e.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, l := range e.links {
		if l != nil && !l.lost {
			e.c.Send(ctx, l.rank, tagStop, nil) // a worker that is gone needs no stop
		}
	}
}

// markLost puts the tasks worker r held back at the head of the queue, in
// issue order, and stops using r.
func (e *engine) markLost(r int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r <= 0 || r >= len(e.links) || e.links[r].lost {
		return
	}
	l := e.links[r]
	l.lost = true
	var back []*task
	for id, ts := range l.out {
		back = append(back, ts...)
		delete(l.out, id)
	}
	if len(back) == 0 {
		return
	}
	sortTasks(back)
	for _, t := range back {
		t.claim = false
		t.retried = true
	}
	e.queue = append(back, e.queue[e.qhead:]...)
	e.qhead = 0
	if e.running < e.slots {
		e.running++
		e.wg.Add(1)
		go e.execLoop()
	}
	e.work.wake()
}

// sortTasks orders tasks of one or more blocks by issue (block, then index).
func sortTasks(ts []*task) {
	// Insertion sort: a lost worker held a few batches.
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && before2(ts[j], ts[j-1]); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

func before2(a, b *task) bool {
	if a.sc != b.sc {
		return a.sc.start.Before(b.sc.start)
	}
	return a.idx < b.idx
}

// gone reports whether err from a call naming a worker means the worker is
// no longer there (it died or closed); other errors mean deco's
// communicator itself failed.
func gone(err error) bool {
	return errors.Is(err, comm.ErrRankLost) || errors.Is(err, comm.ErrPeerClosed)
}

// linkLoop hands batches to worker l.rank while it has credit.
func (e *engine) linkLoop(ctx context.Context, l *link) {
	defer e.wg.Done()
	for {
		e.mu.Lock()
		var ts []*task
		for {
			if e.stopping || l.lost {
				e.mu.Unlock()
				return
			}
			if q := e.queued(); q > 0 {
				n, c := e.batchSize(), e.credit(l)
				// A worker with work in hand waits for a full batch; an
				// idle one takes what there is.
				if len(l.out) < c && (len(l.out) == 0 || q >= n) {
					ts = e.take(n)
					break
				}
				if len(l.out) < c {
					e.wantN = n
				}
			}
			ch := e.work.wait()
			e.mu.Unlock()
			<-ch
			e.mu.Lock()
		}
		e.nextB++
		id := e.nextB
		for _, t := range ts {
			t.claim = true
		}
		l.out[id] = ts
		e.mu.Unlock()
		if err := e.c.Send(ctx, l.rank, tagTask, encodeBatch(id, ts)); err != nil {
			if ctx.Err() != nil {
				return
			}
			// Whether the worker died or deco's communicator failed, the
			// tasks it held run elsewhere (rank 0 at least).
			e.markLost(l.rank)
			return
		}
	}
}

// recvLoop takes the workers' results.
func (e *engine) recvLoop(ctx context.Context) {
	defer e.wg.Done()
	for {
		data, st, err := e.c.Recv(ctx, comm.AnySource, tagResult)
		if err != nil {
			if ctx.Err() == nil { // the communicator failed: run everything here
				for r := 1; r < len(e.links); r++ {
					e.markLost(r)
				}
			}
			return
		}
		e.onResults(st.Source, data)
	}
}

// onResults settles one answered batch from rank src.
func (e *engine) onResults(src int, data []byte) {
	id, slots, outs, err := decodeResults(data)
	if src <= 0 || src >= len(e.links) {
		return
	}
	if err != nil {
		e.markLost(src) // a worker that speaks nonsense is as good as gone
		return
	}
	e.mu.Lock()
	l := e.links[src]
	ts, ok := l.out[id]
	if l.lost || !ok || len(ts) != len(outs) {
		e.mu.Unlock()
		return
	}
	delete(l.out, id)
	if slots > 0 {
		l.slots = slots
	}
	e.mu.Unlock()
	for i, t := range ts {
		t.fn.observe(outs[i].ns)
	}
	e.settle(ts, outs, src)
}

// serve is a worker rank's part of Run: run the batches rank 0 sends until
// it says stop.
func serve(ctx context.Context, c *comm.Comm, slots int) error {
	sem := make(chan struct{}, slots)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		data, st, err := c.Recv(ctx, 0, comm.AnyTag)
		if err != nil {
			return err
		}
		if st.Tag == tagStop {
			return nil
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out := runBatch(data, slots)
			c.Send(ctx, 0, tagResult, out) // if rank 0 is gone, the next Recv says so
		}()
	}
}

// runBatch runs an encoded batch and returns the encoded results.
func runBatch(data []byte, slots int) []byte {
	id, names, args, err := decodeBatch(data)
	if err != nil {
		return nil // rank 0 sees a malformed reply and reruns the batch elsewhere
	}
	outs := make([]outcome, len(names))
	for i, name := range names {
		fn := lookup(name)
		if fn == nil {
			outs[i] = outcome{status: stUnknown}
			continue
		}
		outs[i] = runTask(fn, args[i])
	}
	return encodeResults(id, slots, outs)
}

// Wire format (all integers uvarint, byte strings length-prefixed):
//
//	batch:   id, n, n × (function name, arguments)
//	results: id, worker slots, n, n × (status byte, ns, a, b)
//	         status OK: a = result, b = write-backs; error: a = the error's
//	         description (encodeErr); otherwise a = message.

func encodeBatch(id uint64, ts []*task) []byte {
	size := 16
	for _, t := range ts {
		size += len(t.fn.name) + len(t.args) + 8
	}
	b := make([]byte, 0, size)
	b = appendUvarint(b, id)
	b = appendUvarint(b, uint64(len(ts)))
	for _, t := range ts {
		b = appendChunk(b, []byte(t.fn.name))
		b = appendChunk(b, t.args)
	}
	return b
}

func decodeBatch(b []byte) (id uint64, names []string, args [][]byte, err error) {
	if id, b, err = uvarint(b); err != nil {
		return
	}
	var n uint64
	if n, b, err = uvarint(b); err != nil || n > uint64(len(b)) {
		return 0, nil, nil, errMalformed
	}
	names = make([]string, n)
	args = make([][]byte, n)
	for i := range names {
		var name, a []byte
		if name, b, err = chunk(b); err != nil {
			return
		}
		if a, b, err = chunk(b); err != nil {
			return
		}
		names[i], args[i] = string(name), a
	}
	return id, names, args, nil
}

func encodeResults(id uint64, slots int, outs []outcome) []byte {
	size := 16
	for _, o := range outs {
		size += len(o.res) + len(o.wb) + 16
	}
	b := make([]byte, 0, size)
	b = appendUvarint(b, id)
	b = appendUvarint(b, uint64(slots))
	b = appendUvarint(b, uint64(len(outs)))
	for _, o := range outs {
		b = append(b, o.status)
		b = appendUvarint(b, uint64(max(o.ns, 0)))
		if o.status == stOK {
			b = appendChunk(b, o.res)
			b = appendChunk(b, o.wb)
		} else if o.status == stErr {
			b = appendChunk(b, o.wire)
			b = appendChunk(b, nil)
		} else {
			var msg []byte
			if o.err != nil {
				msg = []byte(o.err.Error())
			}
			b = appendChunk(b, msg)
			b = appendChunk(b, nil)
		}
	}
	return b
}

func decodeResults(b []byte) (id uint64, slots int, outs []outcome, err error) {
	if id, b, err = uvarint(b); err != nil {
		return
	}
	var s, n uint64
	if s, b, err = uvarint(b); err != nil {
		return
	}
	if n, b, err = uvarint(b); err != nil || n > uint64(len(b)) {
		return 0, 0, nil, errMalformed
	}
	outs = make([]outcome, n)
	for i := range outs {
		if len(b) == 0 {
			return 0, 0, nil, errMalformed
		}
		o := &outs[i]
		o.status, b = b[0], b[1:]
		var ns uint64
		if ns, b, err = uvarint(b); err != nil {
			return
		}
		o.ns = int64(ns)
		var x, y []byte
		if x, b, err = chunk(b); err != nil {
			return
		}
		if y, b, err = chunk(b); err != nil {
			return
		}
		if o.status == stOK {
			o.res = x
			if len(y) > 0 {
				o.wb = y
			}
		} else if o.status == stErr {
			o.wire = x
		} else {
			o.msg = string(x)
		}
	}
	return id, int(s), outs, nil
}
