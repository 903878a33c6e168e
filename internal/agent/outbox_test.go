package agent

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// TestOutboxPausesThenDelivers: through a real pipe that nobody reads,
// output lines stop being accepted once the budget is queued (the writer
// waits), control messages are still accepted, and once the pipe is read
// every message arrives, in order.
func TestOutboxPausesThenDelivers(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ob := newOutbox(w, 4<<10)
	go ob.run()
	blocked := make(chan int)
	go func() {
		for i := 0; i < 1000; i++ {
			ob.put(Msg{Op: "out", Rank: 1, Data: make([]byte, 200), Code: i}, true)
		}
		blocked <- -1
	}()
	select {
	case <-blocked:
		t.Fatal("1000 lines of 200 bytes were accepted with a 4 KiB budget and nobody reading")
	case <-time.After(300 * time.Millisecond):
	}
	if err := ob.put(Msg{Op: "exit", Rank: 2}, false); err != nil {
		t.Fatalf("a control message while output waits: %v", err)
	}
	dec := json.NewDecoder(bufio.NewReader(r))
	next, exits := 0, 0
	for next < 1000 {
		var m Msg
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("after %d lines: %v", next, err)
		}
		switch {
		case m.Op == "exit" && m.Rank == 2:
			exits++
		case m.Op == "out" && m.Code == next && len(m.Data) == 200:
			next++
		default:
			t.Fatalf("message %+v, want line %d", m, next)
		}
	}
	<-blocked
	ob.close()
	<-ob.done
	w.Close()
	if exits != 1 {
		t.Fatalf("%d exit messages, want 1", exits)
	}
	if err := dec.Decode(new(Msg)); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last message: %v, want EOF", err)
	}
}

// TestOutboxAbort: abort wakes a put waiting for room, which fails, and
// later puts fail at once, while the writer stays blocked on a pipe nobody
// reads.
func TestOutboxAbort(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close() // ends the blocked writer (EPIPE once r is closed)
	ob := newOutbox(w, 1<<10)
	go ob.run()
	res := make(chan error)
	go func() {
		for {
			if err := ob.put(Msg{Op: "out", Data: make([]byte, 500)}, true); err != nil {
				res <- err
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	ob.abort()
	select {
	case err := <-res:
		if !errors.Is(err, errAborted) {
			t.Fatalf("waiting put: %v, want errAborted", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a put waiting for room was not woken by abort")
	}
	if err := ob.put(Msg{Op: "exit"}, false); !errors.Is(err, errAborted) {
		t.Fatalf("put after abort: %v, want errAborted", err)
	}
}
