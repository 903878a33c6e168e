package proc

import (
	"io"
	"sync"
	"time"
)

// Mux writes the output of several sources (the ranks of a job) to one
// destination so that their lines never mix. Each source writes pieces of
// its output as [CopyLines] cuts them: whole lines (ending in a newline or
// a carriage return) and, now and then, the start of a line not ended yet
// (a prompt, a line longer than the copier's limit, a line left idle).
//
// A piece that leaves its line open gives its source the destination until
// the source ends the line: the other sources' pieces wait. A source that
// leaves its line open and silent for the Mux's hold time loses the
// destination: the Mux ends that line on the destination (writes a newline)
// and lets the others go on; the source's next piece then starts a new
// line. So a line written in pieces comes out whole and unmixed however
// slowly it is written, as long as no pause in it lasts the hold time, and
// a rank that prints a prompt and waits holds the others back for at most
// the hold time.
//
// Each line starts with its source's prefix (a rank tag, or nothing),
// except the newline of a CRLF whose carriage return went on alone.
type Mux struct {
	mu      sync.Mutex
	w       io.Writer
	hold    time.Duration
	owner   *MuxSource    // the source whose line is open on w
	ownedAt time.Time     // when owner last wrote
	free    chan struct{} // closed when owner lets go
	buf     []byte
}

// NewMux returns a Mux writing to w that lets a silent open line hold the
// destination for at most hold.
func NewMux(w io.Writer, hold time.Duration) *Mux {
	return &Mux{w: w, hold: hold}
}

// MuxSource is one source of a [Mux]: an io.Writer for the pieces of one
// rank's stdout or stderr. A MuxSource is not safe for concurrent use (one
// copier writes to it); different sources of one Mux are.
type MuxSource struct {
	m       *Mux
	prefix  []byte
	open    bool // a line of this source is started on w and not ended
	afterCR bool // the last piece ended with a carriage return
}

// Source returns a new source whose lines start with prefix.
func (m *Mux) Source(prefix []byte) *MuxSource {
	return &MuxSource{m: m, prefix: prefix}
}

// Write writes one piece p of the source's output. It waits while another
// source holds the destination (see [Mux]). It returns the destination's
// error, if any.
func (s *MuxSource) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.owner != nil && m.owner != s {
		wait := m.hold - time.Since(m.ownedAt)
		if wait <= 0 {
			m.breakLine()
			break
		}
		free := m.free
		t := time.NewTimer(wait)
		m.mu.Unlock()
		select {
		case <-free:
		case <-t.C:
		}
		t.Stop()
		m.mu.Lock()
	}
	out := p
	if !s.open && !(s.afterCR && len(p) == 1 && p[0] == '\n') && len(s.prefix) > 0 {
		m.buf = append(append(m.buf[:0], s.prefix...), p...)
		out = m.buf
	}
	_, err := m.w.Write(out)
	if cap(m.buf) > 64<<10 {
		m.buf = nil
	}
	last := p[len(p)-1]
	s.afterCR = last == '\r'
	s.open = last != '\n' && last != '\r'
	switch {
	case s.open:
		if m.owner != s {
			m.owner, m.free = s, make(chan struct{})
		}
		m.ownedAt = time.Now()
	case m.owner == s:
		m.release()
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// breakLine ends the owner's open line on the destination and lets it go.
func (m *Mux) breakLine() {
	m.w.Write([]byte{'\n'})
	m.owner.open = false
	m.release()
}

func (m *Mux) release() {
	m.owner = nil
	close(m.free)
}
