package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Mux is a Link that sends each destination's frames over one of two
// links: fast (shared memory, TCP) for the destinations Start names, slow
// (NATS, or another Mux) for the others. Every frame to one destination takes the same link, so
// per-destination order holds. Until Start, frames are held (copied) and
// Start sends them, in order, over the link it assigns; so a frame sent
// before the paths are known never overtakes a later one. Receiving is the
// two links' business: both deliver into the same callback.
//
// Mux is safe for concurrent use.
type Mux struct {
	slow, fast Link
	max        int

	started atomic.Bool
	mu      sync.Mutex // guards held and, until started, useFast
	held    []heldFrame
	useFast []bool // by destination; read-only once started
}

type heldFrame struct {
	dst   int
	frame []byte
}

// NewMux returns a Mux over slow and fast; MaxFrame is the smaller of
// theirs.
func NewMux(slow, fast Link) *Mux {
	return &Mux{slow: slow, fast: fast, max: min(slow.MaxFrame(), fast.MaxFrame())}
}

// Start fixes the path of every destination (fast[dst] true: the fast
// link) and sends what was held. It may be called once.
func (m *Mux) Start(fast []bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started.Load() {
		return errors.New("transport: Mux started twice")
	}
	m.useFast = fast
	var err error
	for _, h := range m.held {
		if err = m.send(h.dst, h.frame); err != nil {
			break
		}
	}
	m.held = nil
	m.started.Store(true)
	return err
}

// Links returns the two links the Mux was made with.
func (m *Mux) Links() (slow, fast Link) { return m.slow, m.fast }

// Fast reports whether frames to dst take the fast link (false before
// Start).
func (m *Mux) Fast(dst int) bool {
	return m.started.Load() && dst >= 0 && dst < len(m.useFast) && m.useFast[dst]
}

func (m *Mux) send(dst int, frame []byte) error {
	if dst >= 0 && dst < len(m.useFast) && m.useFast[dst] {
		return m.fast.Send(dst, frame)
	}
	return m.slow.Send(dst, frame)
}

// Send implements Link.
func (m *Mux) Send(dst int, frame []byte) error {
	if m.started.Load() {
		return m.send(dst, frame)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started.Load() {
		return m.send(dst, frame)
	}
	if len(frame) > m.max {
		return fmt.Errorf("transport: frame of %d bytes above the limit of %d", len(frame), m.max)
	}
	m.held = append(m.held, heldFrame{dst, append([]byte(nil), frame...)})
	return nil
}

// SendV implements VecSender for destinations whose link does (after
// Start); for the others it reports false.
func (m *Mux) SendV(dst int, head, body []byte) (bool, error) {
	if !m.started.Load() {
		return false, nil // Send holds it
	}
	l := m.slow
	if m.Fast(dst) {
		l = m.fast
	}
	if v, ok := l.(VecSender); ok {
		return v.SendV(dst, head, body)
	}
	return false, nil
}

// MaxFrame implements Link.
func (m *Mux) MaxFrame() int { return m.max }

// Flush implements Link: the fast link's queues are in their rings, then
// the slow link is flushed.
func (m *Mux) Flush(ctx context.Context) error {
	return errors.Join(m.fast.Flush(ctx), m.slow.Flush(ctx))
}

// Recycler is implemented by links that can reuse a received frame its
// callee has finished with (nothing refers to it any more). Recycle
// reports whether the link kept the frame.
type Recycler interface {
	Recycle(frame []byte) bool
}

// Recycle passes frame to whichever of the two links reuses frames.
func (m *Mux) Recycle(frame []byte) bool {
	for _, l := range []Link{m.fast, m.slow} {
		if r, ok := l.(Recycler); ok && r.Recycle(frame) {
			return true
		}
	}
	return false
}

// Close implements Link: it closes both links.
func (m *Mux) Close() error {
	return errors.Join(m.fast.Close(), m.slow.Close())
}
