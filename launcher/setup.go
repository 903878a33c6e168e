package launcher

import (
	"context"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// setupWatch stops the set-up of a job (building the program, starting or
// reaching the server), before any rank exists, when the launcher receives
// SIGINT or SIGTERM: it watches Config.Signals and cancels its context.
// Other signals are dropped: there is no rank to forward them to yet.
type setupWatch struct {
	ctx    context.Context // ends with the parent or at a stopping signal
	cancel context.CancelFunc
	quit   chan struct{} // closed by stop
	wg     sync.WaitGroup
	sig    os.Signal // the stopping signal received; read after wg.Wait
	once   sync.Once
	err    error // what stop returns
}

func watchSetup(ctx context.Context, sigs <-chan os.Signal) *setupWatch {
	w := &setupWatch{quit: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(ctx)
	if sigs == nil {
		return w
	}
	w.wg.Go(func() {
		for {
			select {
			case s := <-sigs:
				if isStop(s) {
					w.sig = s
					w.cancel()
					return
				}
			case <-w.quit:
				return
			}
		}
	})
	return w
}

// stop ends the watch, after which the job's loop reads Config.Signals. It
// returns why the set-up must not go on: [interrupted] for a stopping
// signal, the parent's ctx.Err(), or nil. It may be called more than once.
func (w *setupWatch) stop(parent context.Context) error {
	w.once.Do(func() {
		close(w.quit)
		w.wg.Wait()
		w.cancel()
		switch {
		case w.sig != nil:
			w.err = interrupted(w.sig)
		case parent.Err() != nil:
			w.err = parent.Err()
		}
	})
	return w.err
}

// isStop reports whether s is a signal that stops the job (SIGINT, SIGTERM).
func isStop(s os.Signal) bool { return s == syscall.SIGINT || s == syscall.SIGTERM }

// ctxDialer dials for nats.Connect (nats.SetCustomDialer) under a context:
// a connection dialed is closed when the context ends, until release is
// called, so that Connect returns at once when the set-up is stopped.
type ctxDialer struct {
	ctx     context.Context
	timeout time.Duration // per dial

	mu    sync.Mutex    // guards stops
	stops []func() bool // of the context.AfterFunc of each connection
}

func (d *ctxDialer) Dial(network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	c, err := nd.DialContext(d.ctx, network, addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(d.ctx, func() { c.Close() })
	d.mu.Lock()
	d.stops = append(d.stops, stop)
	d.mu.Unlock()
	return c, nil
}

// release stops closing the connections when the context ends.
func (d *ctxDialer) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, stop := range d.stops {
		stop()
	}
	d.stops = nil
}
