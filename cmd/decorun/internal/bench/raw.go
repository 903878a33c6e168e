package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/transport"
	"github.com/nats-io/nats.go"
)

// raw is one rank's bare nats.go connection for the baseline: its own
// subject, a subscription whose callback hands each payload to the waiting
// goroutine (as comm's receive path does), and the peers' subjects.
type raw struct {
	nc   *nats.Conn
	in   chan []byte   // payloads
	acks chan struct{} // acks, on a subject of their own
	errc chan error
	subj []string // subject of every rank
	max  int      // max_payload: larger payloads are split

	mu      sync.Mutex
	closing bool // close was called: the connection's end is no error
}

// RawAckBytes bounds what the raw stream has in flight: the receiver acks
// every RawAckBytes of a window (or the whole window when smaller). Bare
// NATS has no flow control, and a window of 64 x 4 MiB (256 MiB) sent
// without one overflows the server's 64 MiB per-client buffer: the server
// drops the receiving connection as a slow consumer (seen with bibw). At
// about 500 MB/s the extra acks cost about 1% of the raw figure.
const RawAckBytes = 16 << 20

// dialRaw connects this rank's baseline connection with the job's
// credentials and subscribes its subject. The caller must pass a barrier
// before any rank uses it.
func dialRaw(ctx context.Context) (*raw, error) {
	job, ok, err := jobenv.FromEnv()
	if err != nil {
		return nil, err
	}
	if !ok || job.URL == "" {
		return nil, errors.New("the raw NATS baseline needs a job started by decorun")
	}
	r := &raw{in: make(chan []byte, 1024), acks: make(chan struct{}, 64), errc: make(chan error, 1), subj: make([]string, job.Size)}
	for i := range r.subj {
		r.subj[i] = job.Prefix + ".bench.raw." + strconv.Itoa(i)
	}
	fail := func(err error) {
		select {
		case r.errc <- err:
		default:
		}
	}
	opts, err := transport.Auth(job)
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.Name("decorun bench baseline rank "+strconv.Itoa(job.Rank)),
		nats.NoReconnect(), nats.ReconnectBufSize(-1),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { fail(fmt.Errorf("NATS: %w", err)) }),
		nats.ClosedHandler(func(nc *nats.Conn) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if !r.closing {
				fail(fmt.Errorf("NATS connection closed (%v)", nc.LastError()))
			}
		}))
	if r.nc, err = nats.Connect(transport.URLFor(job.URL, job.Rank), opts...); err != nil {
		return nil, fmt.Errorf("raw NATS baseline: %w", err)
	}
	r.max = int(r.nc.MaxPayload())
	sub, err := r.nc.Subscribe(r.subj[job.Rank], func(m *nats.Msg) { r.in <- m.Data })
	if err == nil {
		err = sub.SetPendingLimits(-1, -1)
	}
	if err == nil {
		_, err = r.nc.Subscribe(r.subj[job.Rank]+".ack", func(*nats.Msg) { r.acks <- struct{}{} })
	}
	if err == nil {
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = r.nc.FlushWithContext(fctx)
		cancel()
	}
	if err != nil {
		r.nc.Close()
		return nil, fmt.Errorf("raw NATS baseline: %w", err)
	}
	return r, nil
}

func (r *raw) close() {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	r.nc.Close()
}

// batch is the number of payloads of n bytes sent between acks.
func batch(n int) int {
	return min(Window, max(1, RawAckBytes/max(n, 1)))
}

// ack tells rank dst that a batch arrived.
func (r *raw) ack(dst int) error {
	return r.nc.Publish(r.subj[dst]+".ack", nil)
}

// waitAck waits for the peer's ack.
func (r *raw) waitAck(ctx context.Context) error {
	select {
	case <-r.acks:
		return nil
	case err := <-r.errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// msgs is the number of NATS messages a payload of n bytes takes.
func (r *raw) msgs(n int) int {
	return max(1, (n+r.max-1)/r.max)
}

// send publishes buf to rank dst, split into max_payload pieces.
func (r *raw) send(dst int, buf []byte) error {
	for off := 0; ; {
		k := min(r.max, len(buf)-off)
		if err := r.nc.Publish(r.subj[dst], buf[off:off+k]); err != nil {
			return err
		}
		if off += k; off >= len(buf) {
			return nil
		}
	}
}

// recv waits for k messages.
func (r *raw) recv(ctx context.Context, k int) error {
	for range k {
		select {
		case <-r.in:
		case err := <-r.errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// pingPong is runner.pingPong over bare NATS.
func (r *raw) pingPong(ctx context.Context, rank int, sbuf, rbuf []byte, warm, iters int) ([]float64, error) {
	n := len(sbuf)
	k := r.msgs(n)
	if rank == 1 {
		for range warm + iters {
			if err := r.recv(ctx, k); err != nil {
				return nil, err
			}
			if err := r.send(0, rbuf[:n]); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	times := make([]float64, 0, iters)
	for i := range warm + iters {
		t0 := nanotime()
		if err := r.send(1, sbuf); err != nil {
			return nil, err
		}
		if err := r.recv(ctx, k); err != nil {
			return nil, err
		}
		if i >= warm {
			times = append(times, float64(since(t0).Nanoseconds())/2e3)
		}
	}
	return times, nil
}

// stream is runner.stream over bare NATS: rank 0 publishes a window of
// payloads, rank 1 acks every batch of them (the whole window up to
// RawAckBytes).
func (r *raw) stream(ctx context.Context, rank int, sbuf []byte, warm, iters int) (float64, error) {
	k, b := r.msgs(len(sbuf)), batch(len(sbuf))
	var t0 time.Time
	for i := range warm + iters {
		if i == warm {
			t0 = time.Now()
		}
		for w := 0; w < Window; w += b {
			nb := min(b, Window-w)
			if rank == 0 {
				for range nb {
					if err := r.send(1, sbuf); err != nil {
						return 0, err
					}
				}
				if err := r.waitAck(ctx); err != nil {
					return 0, err
				}
			} else {
				if err := r.recv(ctx, nb*k); err != nil {
					return 0, err
				}
				if err := r.ack(0); err != nil {
					return 0, err
				}
			}
		}
	}
	return mbps(len(sbuf)*Window*iters, time.Since(t0)), nil
}

// bistream is runner.bistream over bare NATS, acked like stream in both
// directions.
func (r *raw) bistream(ctx context.Context, rank int, sbuf []byte, warm, iters int) (float64, error) {
	k, b := r.msgs(len(sbuf)), batch(len(sbuf))
	peer := 1 - rank
	var t0 time.Time
	for i := range warm + iters {
		if i == warm {
			t0 = time.Now()
		}
		for w := 0; w < Window; w += b {
			nb := min(b, Window-w)
			for range nb {
				if err := r.send(peer, sbuf); err != nil {
					return 0, err
				}
			}
			if err := r.recv(ctx, nb*k); err != nil {
				return 0, err
			}
			if err := r.ack(peer); err != nil {
				return 0, err
			}
			if err := r.waitAck(ctx); err != nil {
				return 0, err
			}
		}
	}
	return mbps(2*len(sbuf)*Window*iters, time.Since(t0)), nil
}
