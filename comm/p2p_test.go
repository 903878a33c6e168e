package comm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"
)

func TestRing(t *testing.T) {
	for _, n := range []int{2, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := world(t, n)
			ctx := tctx(t)
			var got string
			par(t, cs, func(c *Comm) error {
				me, size := c.Rank(), c.Size()
				if me == 0 {
					if err := c.Send(ctx, 1, 0, []byte("P0")); err != nil {
						return err
					}
					b, st, err := c.Recv(ctx, size-1, 0)
					if err != nil {
						return err
					}
					if st.Source != size-1 || st.Tag != 0 || st.Size != len(b) {
						return fmt.Errorf("status %+v", st)
					}
					got = string(b)
					return nil
				}
				b, _, err := c.Recv(ctx, me-1, 0)
				if err != nil {
					return err
				}
				return c.Send(ctx, (me+1)%size, 0, append(b, fmt.Sprintf("P%d", me)...))
			})
			want := ""
			for i := 0; i < n; i++ {
				want += fmt.Sprintf("P%d", i)
			}
			if got != want {
				t.Fatalf("ring got %q, want %q", got, want)
			}
		})
	}
}

// TestOrderMixedSizes streams eager and rendezvous messages on several tags
// and receives them with specific and wildcard receives: per tag, order is
// the order sent, and every byte arrives.
func TestOrderMixedSizes(t *testing.T) {
	cs := world(t, 3)
	ctx := tctx(t)
	const per = 60
	sizes := []int{0, 1, 100, 70 << 10, 3 << 20}
	payload := func(src, tag, i int) []byte {
		n := sizes[(i+tag)%len(sizes)]
		b := make([]byte, n)
		rng := rand.New(rand.NewSource(int64(src*1000000 + tag*10000 + i)))
		rng.Read(b)
		if n >= 8 {
			copy(b, fmt.Sprintf("%08d", i))
		}
		return b
	}
	par(t, cs, func(c *Comm) error {
		if c.Rank() != 0 {
			for i := 0; i < per; i++ {
				for tag := 0; tag < 2; tag++ {
					if err := c.Send(ctx, 0, tag, payload(c.Rank(), tag, i)); err != nil {
						return err
					}
				}
			}
			return nil
		}
		next := map[[2]int]int{}
		for k := 0; k < 2*2*per; k++ {
			// A receive whose pattern some pending message satisfies:
			// probe, then receive with the probed source, tag or both.
			src, tag := AnySource, AnyTag
			if k%4 != 0 {
				pst, err := c.Probe(ctx, AnySource, AnyTag)
				if err != nil {
					return err
				}
				if k%4 != 2 {
					src = pst.Source
				}
				if k%4 != 1 {
					tag = pst.Tag
				}
			}
			b, st, err := c.Recv(ctx, src, tag)
			if err != nil {
				return err
			}
			key := [2]int{st.Source, st.Tag}
			i := next[key]
			next[key]++
			if want := payload(st.Source, st.Tag, i); !bytes.Equal(b, want) {
				return fmt.Errorf("message %d from rank %d tag %d: %d bytes differ from the %d sent", i, st.Source, st.Tag, len(b), len(want))
			}
		}
		return nil
	})
}

// TestCreditBlocksAndResumes: a sender far exceeds its credit window before
// the receiver posts anything; nothing is lost.
func TestCreditBlocksAndResumes(t *testing.T) {
	cs := world(t, 2)
	ctx := tctx(t)
	const n = 3000
	msg := make([]byte, 10<<10) // 30 MB total, more than the 8 MiB window
	reqs := make([]*Request, 0, n)
	for i := 0; i < n; i++ {
		msg[0], msg[1] = byte(i), byte(i>>8)
		q, err := cs[0].Isend(1, 7, bytes.Clone(msg))
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, q)
	}
	if done, _, _ := reqs[n-1].Test(); done {
		t.Fatalf("last Isend completed with %d bytes outstanding and no receive posted; credit window not enforced", n*len(msg))
	}
	time.Sleep(50 * time.Millisecond)
	for i := 0; i < n; i++ {
		b, _, err := cs[1].Recv(ctx, 0, 7)
		if err != nil {
			t.Fatal(err)
		}
		if int(b[0])|int(b[1])<<8 != i&0xffff {
			t.Fatalf("message %d out of order: got %d", i, int(b[0])|int(b[1])<<8)
		}
	}
	if err := WaitAll(ctx, reqs...); err != nil {
		t.Fatal(err)
	}
}

func TestLargeMessage(t *testing.T) {
	cs := world(t, 2)
	ctx := tctx(t)
	big := make([]byte, 100<<20+17)
	rand.New(rand.NewSource(5)).Read(big)
	sum := sha256.Sum256(big)
	par(t, cs, func(c *Comm) error {
		if c.Rank() == 0 {
			if err := c.Send(ctx, 1, 1, big); err != nil {
				return err
			}
			if err := c.Send(ctx, 1, 2, big[:5<<20]); err != nil {
				return err
			}
			return c.Send(ctx, 1, 3, []byte("after"))
		}
		b, st, err := c.Recv(ctx, 0, 1)
		if err != nil {
			return err
		}
		if st.Size != len(big) || sha256.Sum256(b) != sum {
			return fmt.Errorf("large message corrupted (%d bytes)", len(b))
		}
		small := make([]byte, 1<<20)
		_, err = c.RecvInto(ctx, small, 0, 2)
		if !errors.Is(err, ErrTruncate) || !strings.Contains(err.Error(), "5242880 bytes") {
			return fmt.Errorf("RecvInto of 5 MiB into 1 MiB: got %v", err)
		}
		st, err = c.RecvInto(ctx, small, 0, 3)
		if err != nil || string(small[:st.Size]) != "after" {
			return fmt.Errorf("message after a truncated one: %v %q", err, small[:st.Size])
		}
		return nil
	})
}

func TestCancelRecvAndSend(t *testing.T) {
	cs := world(t, 2)
	ctx := tctx(t)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, _, err := cs[1].Recv(short, 0, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv with expired ctx: %v", err)
	}
	// A large Send with nobody receiving: cancelled, then revoked.
	short2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if err := cs[0].Send(short2, 1, 0, make([]byte, 20<<20)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("large Send with no receiver: %v", err)
	}
	if err := cs[0].Send(ctx, 1, 0, []byte("next")); err != nil {
		t.Fatal(err)
	}
	b, _, err := cs[1].Recv(ctx, 0, 0)
	if err != nil || string(b) != "next" {
		t.Fatalf("after cancellations got %q, %v; the revoked message must not be received", b, err)
	}
}

// TestRevokeKeepsOtherUnexpected revokes a large unexpected message while
// other unexpected messages wait around it in the queue: they must all
// still be received, in order. (Freeing the revoked message before it was
// unlinked once emptied the queue.)
func TestRevokeKeepsOtherUnexpected(t *testing.T) {
	cs := world(t, 3)
	ctx := tctx(t)
	for i := range 3 {
		if err := cs[0].Send(ctx, 2, 6, []byte{'A', byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cs[0].Send(ctx, 1, 7, nil); err != nil { // after the A's, in NATS's order
		t.Fatal(err)
	}
	if _, _, err := cs[1].Recv(ctx, 0, 7); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := cs[1].Send(short, 2, 5, make([]byte, 20<<20)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("large Send with no receiver: %v", err)
	}
	if err := cs[1].Send(ctx, 2, 8, nil); err != nil { // after the Revoke
		t.Fatal(err)
	}
	if _, _, err := cs[2].Recv(ctx, 1, 8); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := cs[0].Send(ctx, 2, 6, []byte{'B', byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	short2, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	for _, want := range []string{"A0", "A1", "A2", "B0", "B1", "B2"} {
		b, _, err := cs[2].Recv(short2, 0, 6)
		if err != nil || string(b) != want {
			t.Fatalf("got %q, %v; want %q", b, err, want)
		}
	}
	if _, ok, _ := cs[2].Iprobe(AnySource, AnyTag); ok {
		t.Fatal("the revoked message is still receivable")
	}
}

func TestProbe(t *testing.T) {
	cs := world(t, 2)
	ctx := tctx(t)
	if _, ok, err := cs[1].Iprobe(AnySource, AnyTag); ok || err != nil {
		t.Fatalf("Iprobe on empty: %v %v", ok, err)
	}
	go cs[0].Send(ctx, 1, 9, []byte("12345"))
	st, err := cs[1].Probe(ctx, 0, AnyTag)
	if err != nil || st.Source != 0 || st.Tag != 9 || st.Size != 5 {
		t.Fatalf("Probe: %+v %v", st, err)
	}
	st2, ok, err := cs[1].Iprobe(0, 9)
	if !ok || err != nil || st2 != st {
		t.Fatalf("Iprobe after Probe: %+v %v %v", st2, ok, err)
	}
	buf := make([]byte, st.Size)
	if _, err := cs[1].RecvInto(ctx, buf, st.Source, st.Tag); err != nil || string(buf) != "12345" {
		t.Fatalf("RecvInto: %q %v", buf, err)
	}
}

func TestSendrecvAndNonblocking(t *testing.T) {
	cs := world(t, 4)
	ctx := tctx(t)
	par(t, cs, func(c *Comm) error {
		me, n := c.Rank(), c.Size()
		b, st, err := c.Sendrecv(ctx, []byte{byte(me)}, (me+1)%n, 4, (me+n-1)%n, 4)
		if err != nil {
			return err
		}
		if st.Source != (me+n-1)%n || b[0] != byte((me+n-1)%n) {
			return fmt.Errorf("Sendrecv got %v from %d", b, st.Source)
		}
		var reqs []*Request
		for p := 0; p < n; p++ {
			q, err := c.Irecv(p, 5)
			if err != nil {
				return err
			}
			reqs = append(reqs, q)
		}
		for p := 0; p < n; p++ {
			q, err := c.Isend(p, 5, []byte{byte(me), byte(p)})
			if err != nil {
				return err
			}
			reqs = append(reqs, q)
		}
		if err := WaitAll(ctx, reqs...); err != nil {
			return err
		}
		for p := 0; p < n; p++ {
			if d := reqs[p].Data(); len(d) != 2 || d[0] != byte(p) || d[1] != byte(me) {
				return fmt.Errorf("Irecv from %d got %v", p, d)
			}
		}
		return nil
	})
}

// TestIrecvInto posts receives into buffers before the messages are sent:
// each lands in its own buffer in order, a large one too, and one too large
// for its buffer completes with ErrTruncate.
func TestIrecvInto(t *testing.T) {
	cs := world(t, 2)
	ctx := tctx(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	par(t, cs, func(c *Comm) error {
		if c.Rank() == 1 {
			for _, m := range [][]byte{[]byte("first"), []byte("second"), big, []byte("too long")} {
				if err := c.Send(ctx, 0, 7, m); err != nil {
					return err
				}
			}
			return nil
		}
		bufs := [][]byte{make([]byte, 8), make([]byte, 8), make([]byte, len(big)), make([]byte, 3)}
		var reqs []*Request
		for _, b := range bufs {
			q, err := c.IrecvInto(b, 1, 7)
			if err != nil {
				return err
			}
			reqs = append(reqs, q)
		}
		for i, want := range [][]byte{[]byte("first"), []byte("second"), big} {
			st, err := reqs[i].Wait(ctx)
			if err != nil {
				return err
			}
			if !bytes.Equal(bufs[i][:st.Size], want) || !bytes.Equal(reqs[i].Data(), want) {
				return fmt.Errorf("IrecvInto %d got %d bytes, wrong content", i, st.Size)
			}
		}
		if _, err := reqs[3].Wait(ctx); !errors.Is(err, ErrTruncate) {
			return fmt.Errorf("IrecvInto of 8 bytes into 3: %v; want ErrTruncate", err)
		}
		return nil
	})
}

type point struct {
	X, Y float64
	Name string
}

func TestTyped(t *testing.T) {
	cs := world(t, 2)
	ctx := tctx(t)
	par(t, cs, func(c *Comm) error {
		if c.Rank() == 0 {
			if err := SendValue(ctx, c, 1, 0, []float64{1.5, -2, 3e300}); err != nil {
				return err
			}
			if err := SendValue(ctx, c, 1, 0, point{1, 2, "p"}); err != nil {
				return err
			}
			if err := SendValue(ctx, c, 1, 0, map[string][]int{"a": {1, 2}}); err != nil {
				return err
			}
			if err := SendValue(ctx, c, 1, 0, 42); err != nil {
				return err
			}
			return SendValue(ctx, c, 1, 0, []int{7})
		}
		f, _, err := RecvValue[[]float64](ctx, c, 0, 0)
		if err != nil || len(f) != 3 || f[2] != 3e300 {
			return fmt.Errorf("[]float64: %v %v", f, err)
		}
		p, _, err := RecvValue[point](ctx, c, 0, 0)
		if err != nil || p != (point{1, 2, "p"}) {
			return fmt.Errorf("struct: %v %v", p, err)
		}
		m, _, err := RecvValue[map[string][]int](ctx, c, 0, 0)
		if err != nil || len(m["a"]) != 2 || m["a"][1] != 2 {
			return fmt.Errorf("map: %v %v", m, err)
		}
		i, _, err := RecvValue[int](ctx, c, 0, 0)
		if err != nil || i != 42 {
			return fmt.Errorf("int: %v %v", i, err)
		}
		_, _, err = RecvValue[[]float64](ctx, c, 0, 0)
		if !errors.Is(err, ErrType) || !strings.Contains(err.Error(), "holds []int but the receive expects []float64") {
			return fmt.Errorf("wrong type: %v", err)
		}
		return nil
	})
	if err := SendValue(ctx, cs[0], 1, 0, make(chan int)); err == nil || !strings.Contains(err.Error(), "chan int") {
		t.Fatalf("SendValue of a channel: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	cs := world(t, 2)
	ctx := tctx(t)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{cs[0].Send(ctx, 2, 0, nil), "rank 2 out of range [0, 2)"},
		{cs[0].Send(ctx, -1, 0, nil), "rank -1 out of range"},
		{cs[0].Send(ctx, 1, -4, nil), "tag -4 out of range"},
		{func() error { _, _, err := cs[0].Recv(ctx, 5, 0); return err }(), "Recv: rank 5 out of range"},
		{func() error { _, err := cs[0].Probe(ctx, 0, -2); return err }(), "tag -2 out of range"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", tc.err, tc.want)
		}
	}
}

func TestCloseWakesBlocked(t *testing.T) {
	cs := world(t, 2)
	ctx := tctx(t)
	errc := make(chan error, 1)
	go func() {
		_, _, err := cs[1].Recv(ctx, 0, 0)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := cs[1].Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv blocked across Close: %v", err)
	}
	if err := cs[1].Send(ctx, 0, 0, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if err := cs[1].Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestSingleton(t *testing.T) {
	c, err := connect(context.Background(), jobSingleton())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := tctx(t)
	if c.Rank() != 0 || c.Size() != 1 {
		t.Fatalf("singleton is rank %d of %d", c.Rank(), c.Size())
	}
	if err := c.Send(ctx, 0, 3, []byte("self")); err != nil {
		t.Fatal(err)
	}
	if err := SendValue(ctx, c, 0, 4, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	v, _, err := RecvValue[[]int](ctx, c, 0, 4)
	if err != nil || len(v) != 2 {
		t.Fatalf("%v %v", v, err)
	}
	b, st, err := c.Recv(ctx, AnySource, AnyTag)
	if err != nil || string(b) != "self" || st.Tag != 3 {
		t.Fatalf("%q %+v %v", b, st, err)
	}
}
