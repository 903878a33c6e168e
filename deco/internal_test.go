package deco

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
	"github.com/decorun/decorun/internal/jobenv"
	"github.com/nats-io/nats.go"
)

// wb runs the write-back machinery on orig as a task would: the task gets
// a decoded copy, mutate changes it, and the differences are applied to
// orig.
func wb[T any](t *testing.T, orig T, mutate func(T)) {
	t.Helper()
	b, err := encode(orig)
	if err != nil {
		t.Fatal(err)
	}
	var task, issued T
	if err := decode(b, &task); err != nil {
		t.Fatal(err)
	}
	decode(b, &issued)
	mutate(task)
	ops, err := diffArgs([]bool{true}, []any{&issued}, []any{&task})
	if err != nil {
		t.Fatal(err)
	}
	if ops == nil {
		return
	}
	if err := applyWriteBack([]any{orig}, ops); err != nil {
		t.Fatal(err)
	}
}

type inner struct {
	N    int
	S    []int
	M    map[string]int
	P    *inner
	I    any
	Arr  [3]int
	priv int
}

func TestWriteBackRules(t *testing.T) {
	t.Run("top-level slice: elements yes, append no", func(t *testing.T) {
		xs := []int{1, 2, 3}
		wb(t, xs, func(v []int) { v[1] = 20; _ = append(v, 4) })
		if !reflect.DeepEqual(xs, []int{1, 20, 3}) {
			t.Fatal(xs)
		}
	})
	t.Run("behind a pointer: headers replaced", func(t *testing.T) {
		p := &inner{S: []int{1}, M: nil}
		wb(t, p, func(v *inner) {
			v.N = 5
			v.S = append(v.S, 2)
			v.M = map[string]int{"a": 1}
			v.P = &inner{N: 9}
			v.I = "now a string"
			v.Arr[2] = 7
			v.priv = 3
		})
		want := &inner{N: 5, S: []int{1, 2}, M: map[string]int{"a": 1}, P: &inner{N: 9}, I: "now a string", Arr: [3]int{0, 0, 7}}
		if !reflect.DeepEqual(p, want) {
			t.Fatalf("%+v, want %+v", p, want)
		}
	})
	t.Run("map of structs: one field of one entry", func(t *testing.T) {
		m := map[string]inner{"a": {N: 1, S: []int{1, 2}}, "b": {N: 2}}
		wb(t, m, func(v map[string]inner) {
			e := v["a"]
			e.N = 10
			v["a"] = e
			delete(v, "b")
			v["c"] = inner{N: 3}
		})
		if len(m) != 2 || m["a"].N != 10 || !reflect.DeepEqual(m["a"].S, []int{1, 2}) || m["c"].N != 3 {
			t.Fatalf("%+v", m)
		}
	})
	t.Run("struct by value: only what it shares", func(t *testing.T) {
		s := inner{N: 1, M: map[string]int{}, S: []int{0, 0}}
		wb(t, s, func(v inner) { v.N = 2; v.M["k"] = 1; v.S[1] = 5 })
		if s.N != 1 || s.M["k"] != 1 || s.S[1] != 5 {
			t.Fatalf("%+v", s)
		}
	})
	t.Run("nil pointer field becomes set", func(t *testing.T) {
		s := []*inner{nil, {N: 1}}
		wb(t, s, func(v []*inner) { v[0] = &inner{N: 7}; v[1] = nil })
		if s[0] == nil || s[0].N != 7 || s[1] != nil {
			t.Fatalf("%+v", s)
		}
	})
	t.Run("unchanged: no ops", func(t *testing.T) {
		m := map[int][]float64{1: {1.5, 2.5}}
		b, _ := encode(m)
		var x, y map[int][]float64
		decode(b, &x)
		decode(b, &y)
		if ops, err := diffArgs([]bool{true}, []any{&x}, []any{&y}); ops != nil || err != nil {
			t.Fatal(ops, err)
		}
	})
	t.Run("caller's slice shrank", func(t *testing.T) {
		ops, _ := diffArgs([]bool{true}, []any{&[]int{1, 2, 3}}, []any{&[]int{1, 2, 4}})
		if err := applyWriteBack([]any{[]int{1}}, ops); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Fatal(err)
		}
	})
}

// Issuing blocks while MaxPending tasks (or the byte limit) are pending.
func TestBackPressure(t *testing.T) {
	for _, tc := range []struct {
		name          string
		maxT, maxB, n int
		arg           string
		limit         int
	}{
		{"tasks", 8, 64 << 20, 200, "x", 8},
		{"bytes", 1 << 16, 1000, 50, strings.Repeat("y", 300), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(nil, 0, config{slots: 2, maxTasks: tc.maxT, maxBytes: tc.maxB})
			ctx := context.WithValue(t.Context(), engineKey{}, e)
			most := 0
			got := make([]int, tc.n)
			err := Synchronized(ctx, func(s *Scope) {
				for i := range got {
					slowLen.Assign(s, &got[i], tc.arg)
					e.mu.Lock()
					most = max(most, e.inflight)
					e.mu.Unlock()
				}
			})
			e.shutdown()
			if err != nil {
				t.Fatal(err)
			}
			if most > tc.limit || most < 2 {
				t.Errorf("%d tasks pending at most, want 2..%d", most, tc.limit)
			}
			for i, v := range got {
				if v != len(tc.arg) {
					t.Fatalf("got[%d] = %d", i, v)
				}
			}
		})
	}
}

var slowLen = Concurrent(func(s string) int { time.Sleep(100 * time.Microsecond); return len(s) })

// A rank asked to run a function it does not know fails that task with
// ErrNotRegistered.
func TestNotRegistered(t *testing.T) {
	fake := &entry{name: "example.com/elsewhere.work", format: func([]byte) string { return "1" }}
	args, _, _ := encArgs(&entry{args: []reflect.Type{reflect.TypeFor[int]()}, shares: []bool{false}}, 1)
	res := runBatch(encodeBatch(7, []*task{{fn: fake, args: args}}), 1)
	id, _, outs, err := decodeResults(res)
	if err != nil || id != 7 || len(outs) != 1 || outs[0].status != stUnknown {
		t.Fatalf("id %d, outs %+v, err %v", id, outs, err)
	}
	e := newEngine(nil, 0, defaults())
	s := &Scope{e: e, ctx: t.Context(), pending: 1}
	tk := &task{sc: s, fn: fake, args: args}
	s.recs = []rec{{}}
	e.inflight = 1
	e.settle([]*task{tk}, outs, 3)
	if !errors.Is(tk.err, ErrNotRegistered) || strings.Count(tk.err.Error(), "on rank 3") != 1 {
		t.Fatalf("error %v", tk.err)
	}
}

func TestWire(t *testing.T) {
	outs := []outcome{{status: stOK, res: []byte{1, 2}, wb: []byte{3}, ns: 12}, {status: stPanic, err: errors.New("p")}}
	id, slots, got, err := decodeResults(encodeResults(9, 4, outs))
	if err != nil || id != 9 || slots != 4 || len(got) != 2 || string(got[0].res) != "\x01\x02" ||
		string(got[0].wb) != "\x03" || got[0].ns != 12 || got[1].status != stPanic || got[1].msg != "p" {
		t.Fatalf("%d %d %+v %v", id, slots, got, err)
	}
	for _, b := range [][]byte{nil, {1}, {1, 1, 5}, {1, 1, 1, 0, 0, 9}} {
		if _, _, _, err := decodeResults(b); err == nil {
			t.Errorf("decodeResults(%v): no error", b)
		}
	}
	for _, b := range [][]byte{nil, {1}, {1, 5}, {1, 1, 3, 'a'}, {1, 1, 1, 'a', 2}} {
		if _, _, _, err := decodeBatch(b); err == nil {
			t.Errorf("decodeBatch(%v): no error", b)
		}
	}
}

var slowSquare = Concurrent(func(n int) int { time.Sleep(2 * time.Millisecond); return n * n })

// lostSquare is slowSquare for TestLostWorker, which closes lostServing when
// two calls run at once: rank 0 runs one task at a time there (Slots(1)),
// so a worker, rank 1, then runs one too: it is past Run's Dup.
var (
	lostServing     = make(chan struct{})
	lostServingOnce sync.Once
	lostRunning     atomic.Int32
	lostSquare      = Concurrent(func(n int) int {
		if lostRunning.Add(1) >= 2 {
			lostServingOnce.Do(func() { close(lostServing) })
		}
		defer lostRunning.Add(-1)
		time.Sleep(2 * time.Millisecond)
		return n * n
	})
)

// A worker that dies holding tasks (here: rank 2 takes batches and never
// answers, then the launcher's "lost" event arrives) has its tasks run
// again on the ranks that remain, and the block completes correctly.
func TestLostWorker(t *testing.T) {
	lostServing, lostServingOnce = make(chan struct{}), sync.Once{} // for -count > 1
	lostRunning.Store(0)
	url, token := commtest.Server(t)
	id := fmt.Sprintf("decolost%d", time.Now().UnixNano())
	const n = 3
	cs := make([]*comm.Comm, n)
	errs := make(chan error, n)
	for r := range n {
		go func() {
			var err error
			cs[r], err = comm.Connect(t.Context(), comm.Job{Rank: r, Size: n, URL: url, Token: token, ID: id})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	nc, err := nats.Connect(url, nats.Token(token))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	// Rank 2: swallow task batches; tell the test when the first came.
	took := make(chan struct{})
	hole, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		d, err := cs[2].Dup(hole)
		if err != nil {
			return
		}
		first := true
		for {
			if _, _, err := d.Recv(hole, 0, comm.AnyTag); err != nil {
				return
			}
			if first {
				close(took)
				first = false
			}
		}
	}()
	// Rank 2 is lost once it holds tasks and rank 1 serves: every rank is
	// then past Run's Dup, a collective call that a rank lost midway fails.
	go func() {
		select {
		case <-took:
		case <-hole.Done():
			return
		}
		select {
		case <-lostServing:
			ev := jobenv.Ctl{Op: jobenv.OpLost, Rank: 2, Msg: "killed by the test"}
			nc.Publish(jobenv.EventSubject(jobenv.DefaultPrefix(id)), ev.Encode())
		case <-hole.Done():
		}
	}()
	want := make([]int, 60)
	got := make([]int, 60)
	for i := range want {
		want[i] = i * i
	}
	res := make(chan error, 2)
	go func() {
		res <- Run(t.Context(), cs[1], nil)
	}()
	go func() {
		res <- Run(t.Context(), cs[0], func(ctx context.Context) error {
			return Synchronized(ctx, func(s *Scope) {
				for i := range got {
					lostSquare.Assign(s, &got[i], i)
				}
			})
		}, Slots(1))
	}()
	for range 2 {
		select {
		case err := <-res:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("block did not complete after a worker was lost")
		}
	}
	select {
	case <-took:
	default:
		t.Fatal("rank 2 never got a batch")
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	cancel()
	<-done
}

func TestProgressSetting(t *testing.T) {
	t.Setenv("DECO_PROGRESS", "1")
	if !progressOn(-1) || progressOn(0) {
		t.Error("DECO_PROGRESS=1 or the option ignored")
	}
	t.Setenv("DECO_PROGRESS", "0")
	if progressOn(-1) || !progressOn(1) {
		t.Error("DECO_PROGRESS=0 or the option ignored")
	}
	t.Setenv("DECO_PROGRESS", "")
	if progressOn(-1) { // go test's stderr is not a terminal
		t.Error("progress on without a terminal")
	}
	var c config
	Progress(true)(&c)
	if c.progress != 1 {
		t.Error("Progress(true)")
	}
}
