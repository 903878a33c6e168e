package transport

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// fakeLink records what it was asked to send.
type fakeLink struct {
	name string
	max  int
	log  *[]string
}

func (f *fakeLink) Send(dst int, frame []byte) error {
	*f.log = append(*f.log, fmt.Sprintf("%s %d %s", f.name, dst, frame))
	return nil
}
func (f *fakeLink) MaxFrame() int                   { return f.max }
func (f *fakeLink) Flush(ctx context.Context) error { return nil }
func (f *fakeLink) Close() error                    { return nil }

func TestMux(t *testing.T) {
	var log []string
	m := NewMux(&fakeLink{"nats", 100, &log}, &fakeLink{"shm", 50, &log})
	if m.MaxFrame() != 50 {
		t.Errorf("MaxFrame() = %d; want 50", m.MaxFrame())
	}
	buf := []byte("a")
	m.Send(1, buf)
	buf[0] = 'b' // held frames are copies
	m.Send(2, []byte("c"))
	m.Send(1, []byte("d"))
	if len(log) != 0 {
		t.Fatalf("sent before Start: %q", log)
	}
	if err := m.Send(1, make([]byte, 51)); err == nil {
		t.Error("a frame above MaxFrame was accepted")
	}
	if err := m.Start([]bool{false, true, false}); err != nil {
		t.Fatal(err)
	}
	m.Send(2, []byte("e"))
	m.Send(1, []byte("f"))
	want := []string{"shm 1 a", "nats 2 c", "shm 1 d", "nats 2 e", "shm 1 f"}
	if !slices.Equal(log, want) {
		t.Errorf("sent %q; want %q", log, want)
	}
	if !m.Fast(1) || m.Fast(2) || m.Fast(7) {
		t.Error("Fast() disagrees with Start")
	}
	if m.Start(nil) == nil {
		t.Error("a second Start succeeded")
	}
}
