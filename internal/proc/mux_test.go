package proc

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// An open line holds the other sources back until it ends.
func TestMuxHoldsOpenLine(t *testing.T) {
	var out lockedBuffer
	m := NewMux(&out, time.Hour)
	a, b := m.Source([]byte("[0] ")), m.Source([]byte("[1] "))
	a.Write([]byte("question? "))
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Write([]byte("hello\n"))
	}()
	time.Sleep(50 * time.Millisecond) // b's line would land here if it were not held
	if got := out.String(); got != "[0] question? " {
		t.Fatalf("while the line is open: %q", got)
	}
	a.Write([]byte("yes"))
	a.Write([]byte("\n"))
	<-done
	if got, want := out.String(), "[0] question? yes\n[1] hello\n"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}

// A line left open and silent for the hold time is ended so that the
// others go on; its source's next piece starts a new, tagged line.
func TestMuxBreaksSilentLine(t *testing.T) {
	var out lockedBuffer
	m := NewMux(&out, 50*time.Millisecond)
	a, b := m.Source([]byte("[0] ")), m.Source([]byte("[1] "))
	a.Write([]byte("prompt: "))
	b.Write([]byte("x\n")) // waits for the hold time, then breaks a's line
	a.Write([]byte("answer\n"))
	if got, want := out.String(), "[0] prompt: \n[1] x\n[0] answer\n"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}

// Many sources writing lines in pieces at once: every line comes out whole
// and each source's lines in order.
func TestMuxConcurrentPieces(t *testing.T) {
	var out lockedBuffer
	m := NewMux(&out, time.Hour)
	const sources, lines = 6, 300
	var wg sync.WaitGroup
	for s := range sources {
		src := m.Source(fmt.Appendf(nil, "[%d] ", s))
		wg.Go(func() {
			for i := range lines {
				src.Write(fmt.Appendf(nil, "line %d ", i))
				src.Write([]byte(strings.Repeat(string(rune('a'+s)), 50)))
				src.Write([]byte(" end\n"))
			}
		})
	}
	wg.Wait()
	next := make([]int, sources)
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var s, i int
		var body string
		if _, err := fmt.Sscanf(l, "[%d] line %d %s end", &s, &i, &body); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if body != strings.Repeat(string(rune('a'+s)), 50) || i != next[s] {
			t.Fatalf("line %q: mixed or out of order (want line %d of source %d)", l, next[s], s)
		}
		next[s]++
	}
	for s, n := range next {
		if n != lines {
			t.Errorf("source %d: %d lines; want %d", s, n, lines)
		}
	}
}

// The start of a line left idle goes on by itself (a prompt shows while
// its writer waits); at end of input an open line is ended.
func TestCopyLinesIdle(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 8)
	done := make(chan error, 1)
	go func() {
		done <- CopyLines(writerFunc(func(p []byte) (int, error) { got <- string(p); return len(p), nil }), r, 1024, 20*time.Millisecond)
	}()
	next := func() string {
		select {
		case s := <-got:
			return s
		case <-time.After(time.Minute): // a hang guard
			t.Fatal("nothing written")
			return ""
		}
	}
	w.Write([]byte("question? "))
	if s := next(); s != "question? " {
		t.Fatalf("first piece %q; want the prompt", s)
	}
	w.Write([]byte("yes\nhalf"))
	if s := next(); s != "yes\n" {
		t.Fatalf("second piece %q", s)
	}
	if s := next(); s != "half" {
		t.Fatalf("third piece %q", s)
	}
	w.Close()
	if s := next(); s != "\n" {
		t.Fatalf("at EOF: %q; want the open line ended", s)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.Close()
}
