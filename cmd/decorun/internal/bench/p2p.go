package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/decorun/decorun/comm"
)

// Tags of the point-to-point tests.
const (
	tagPing = 1
	tagData = 100
	tagAck  = 101
)

// p2p runs latency, bw or bibw between ranks 0 and 1 over every size; the
// other ranks only take part in the barriers between sizes.
func (r *runner) p2p(ctx context.Context, b string) error {
	if r.c.Size() < 2 {
		return fmt.Errorf("needs at least 2 ranks (decorun bench -n 2)")
	}
	sizes := r.cfg.sizes(b)
	if len(sizes) == 0 {
		return nil
	}
	maxN := slices.Max(sizes)
	sbuf, rbuf := make([]byte, maxN), make([]byte, maxN)
	for i := range sbuf {
		sbuf[i] = 'a'
	}
	active := r.c.Rank() < 2
	for _, n := range sizes {
		warm, iters := r.cfg.Iterations(b, n)
		res := Result{Bench: b, Size: ptr(n), Iters: iters, Warmup: warm}
		if b != Latency {
			res.Window = Window
		}
		if err := r.barrier(ctx); err != nil {
			return err
		}
		var times []float64
		var mbps float64
		var err error
		if active {
			switch b {
			case Latency:
				times, err = r.pingPong(ctx, sbuf[:n], rbuf, warm, iters)
			case BW:
				mbps, err = r.stream(ctx, sbuf[:n], rbuf, warm, iters)
			case BiBW:
				mbps, err = r.bistream(ctx, sbuf[:n], rbuf, warm, iters)
			}
			if err != nil {
				return fmt.Errorf("size %d: %w", n, err)
			}
		}
		if b == Latency {
			s := Summarize(times)
			res.MedianUS, res.P99US, res.MinUS, res.AvgUS = s.Median, s.P99, s.Min, s.Avg
		} else {
			res.MBps = mbps
		}
		if r.raw != nil {
			if err := r.barrier(ctx); err != nil {
				return err
			}
			if active {
				switch b {
				case Latency:
					times, err = r.raw.pingPong(ctx, r.c.Rank(), sbuf[:n], rbuf, warm, iters)
				case BW:
					mbps, err = r.raw.stream(ctx, r.c.Rank(), sbuf[:n], warm, iters)
				case BiBW:
					mbps, err = r.raw.bistream(ctx, r.c.Rank(), sbuf[:n], warm, iters)
				}
				if err != nil {
					return fmt.Errorf("raw NATS baseline, size %d: %w", n, err)
				}
			}
			res.RawMsgs = r.raw.msgs(n)
			if b == Latency {
				s := Summarize(times)
				res.RawMedianUS, res.RawP99US = s.Median, s.P99
				if s.Median > 0 {
					res.Ratio = res.MedianUS / s.Median
				}
			} else {
				res.RawMBps = mbps
				if mbps > 0 {
					res.Ratio = res.MBps / mbps
				}
			}
		}
		if err := r.print(res); err != nil {
			return err
		}
	}
	return nil
}

// pingPong returns the one-way latency of each timed round trip, in µs, at
// rank 0 (nil at rank 1).
func (r *runner) pingPong(ctx context.Context, sbuf, rbuf []byte, warm, iters int) ([]float64, error) {
	c, n := r.c, len(sbuf)
	if c.Rank() == 1 {
		for range warm + iters {
			if _, err := c.RecvInto(ctx, rbuf, 0, tagPing); err != nil {
				return nil, err
			}
			if err := c.Send(ctx, 0, tagPing, rbuf[:n]); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	times := make([]float64, 0, iters)
	for i := range warm + iters {
		t0 := nanotime()
		if err := c.Send(ctx, 1, tagPing, sbuf); err != nil {
			return nil, err
		}
		if _, err := c.RecvInto(ctx, rbuf, 1, tagPing); err != nil {
			return nil, err
		}
		if i >= warm {
			times = append(times, float64(since(t0).Nanoseconds())/2e3)
		}
	}
	return times, nil
}

// stream is osu_bw: rank 0 sends windows of Isends, rank 1 receives each
// window (see recvWindow) and acks it. It returns MB/s at rank 0.
func (r *runner) stream(ctx context.Context, sbuf, rbuf []byte, warm, iters int) (float64, error) {
	c := r.c
	reqs := make([]*comm.Request, Window)
	ack := make([]byte, 4)
	var rbufs [][]byte
	if c.Rank() == 1 {
		rbufs = windowBufs(rbuf[:len(sbuf)])
	}
	var t0 time.Time
	for i := range warm + iters {
		if i == warm {
			t0 = time.Now()
		}
		if c.Rank() == 0 {
			if err := isends(c, reqs, 1, sbuf); err != nil {
				return 0, err
			}
			if err := comm.WaitAll(ctx, reqs...); err != nil {
				return 0, err
			}
			if _, err := c.RecvInto(ctx, ack, 1, tagAck); err != nil {
				return 0, err
			}
		} else {
			if err := recvWindow(ctx, c, rbufs, reqs, 0); err != nil {
				return 0, err
			}
			if err := c.Send(ctx, 0, tagAck, ack); err != nil {
				return 0, err
			}
		}
	}
	return mbps(len(sbuf)*Window*iters, time.Since(t0)), nil
}

// bistream is osu_bibw: both ranks send a window to each other at once and
// wait for both directions. It returns the aggregate MB/s at rank 0.
func (r *runner) bistream(ctx context.Context, sbuf, rbuf []byte, warm, iters int) (float64, error) {
	c := r.c
	peer := 1 - c.Rank()
	reqs := make([]*comm.Request, Window)
	rreqs := make([]*comm.Request, Window)
	rbufs := windowBufs(rbuf[:len(sbuf)])
	var t0 time.Time
	for i := range warm + iters {
		if i == warm {
			t0 = time.Now()
		}
		if err := isends(c, reqs, peer, sbuf); err != nil {
			return 0, err
		}
		if err := recvWindow(ctx, c, rbufs, rreqs, peer); err != nil {
			return 0, err
		}
		if err := comm.WaitAll(ctx, reqs...); err != nil {
			return 0, err
		}
	}
	return mbps(2*len(sbuf)*Window*iters, time.Since(t0)), nil
}

func isends(c *comm.Comm, reqs []*comm.Request, dst int, buf []byte) error {
	for w := range reqs {
		var err error
		if reqs[w], err = c.Isend(dst, tagData, buf); err != nil {
			return err
		}
	}
	return nil
}

// recvWindow receives a window of messages from src as OSU (and
// osu_like.c) does: a window of receives posted at once, each into a
// buffer of its own (IrecvInto), then waited for. bufs and reqs hold a
// buffer and a request per slot.
func recvWindow(ctx context.Context, c *comm.Comm, bufs [][]byte, reqs []*comm.Request, src int) error {
	for w, b := range bufs {
		var err error
		if reqs[w], err = c.IrecvInto(b, src, tagData); err != nil {
			return err
		}
	}
	return comm.WaitAll(ctx, reqs...)
}

// windowBufs returns Window buffers of len(rbuf) bytes, rbuf the first.
func windowBufs(rbuf []byte) [][]byte {
	bufs := [][]byte{rbuf}
	for range Window - 1 {
		bufs = append(bufs, make([]byte, len(rbuf)))
	}
	return bufs
}

func mbps(bytes int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / d.Seconds() / 1e6
}
