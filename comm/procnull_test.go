package comm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestProcNull: every point-to-point call with ProcNull as its peer
// completes at once: sends send nothing (the next message the receiver
// gets is the real one after it), receives give Status{ProcNull, AnyTag,
// 0} and leave the buffer untouched, and a 1-D halo exchange with ProcNull
// past the edges needs no special case; on every data path.
func TestProcNull(t *testing.T) {
	for _, tr := range []string{"auto", "nats", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			const n = 4
			cs := worldOn(t, n, tr)
			ctx := tctx(t)
			par(t, cs, func(c *Comm) error {
				r := c.Rank()
				isNull := func(what string, st Status) error {
					if st.Source != ProcNull || st.Tag != AnyTag || st.Size != 0 {
						return fmt.Errorf("%s: %v; want Status{Source: ProcNull, Tag: AnyTag, Size: 0}", what, st)
					}
					return nil
				}
				// Sends to ProcNull: nothing arrives.
				if err := c.Send(ctx, ProcNull, 1, []byte("lost")); err != nil {
					return fmt.Errorf("Send: %w", err)
				}
				if err := SendValue(ctx, c, ProcNull, 1, 3.5); err != nil {
					return fmt.Errorf("SendValue: %w", err)
				}
				q, err := c.Isend(ProcNull, 1, []byte("lost"))
				if err != nil {
					return fmt.Errorf("Isend: %w", err)
				}
				if done, _, err := q.Test(); !done || err != nil {
					return fmt.Errorf("Isend's Test = %v, %v; want done", done, err)
				}
				// Receives from ProcNull.
				data, st, err := c.Recv(ctx, ProcNull, 5)
				if err != nil || data != nil {
					return fmt.Errorf("Recv = %q, %v", data, err)
				}
				if err := isNull("Recv", st); err != nil {
					return err
				}
				buf := []byte("untouched")
				if st, err := c.RecvInto(ctx, buf, ProcNull, AnyTag); err != nil || string(buf) != "untouched" {
					return fmt.Errorf("RecvInto = %v, %q", err, buf)
				} else if err := isNull("RecvInto", st); err != nil {
					return err
				}
				x, st, err := RecvValue[float64](ctx, c, ProcNull, 2)
				if err != nil || x != 0 {
					return fmt.Errorf("RecvValue = %v, %v; want 0", x, err)
				}
				if err := isNull("RecvValue", st); err != nil {
					return err
				}
				rq, err := c.Irecv(ProcNull, 3)
				if err != nil {
					return err
				}
				if done, st, err := rq.Test(); !done || err != nil {
					return fmt.Errorf("Irecv's Test = %v, %v", done, err)
				} else if err := isNull("Irecv", st); err != nil {
					return err
				}
				vq, err := IrecvValue[[]int](c, ProcNull, 3)
				if err != nil {
					return err
				}
				if v, st, err := vq.Wait(ctx); err != nil || v != nil {
					return fmt.Errorf("IrecvValue = %v, %v", v, err)
				} else if err := isNull("IrecvValue", st); err != nil {
					return err
				}
				if st, err := c.Probe(ctx, ProcNull, AnyTag); err != nil {
					return err
				} else if err := isNull("Probe", st); err != nil {
					return err
				}
				if st, ok, err := c.Iprobe(ProcNull, 9); !ok || err != nil {
					return fmt.Errorf("Iprobe = %v, %v", ok, err)
				} else if err := isNull("Iprobe", st); err != nil {
					return err
				}
				// A bad tag is still an error.
				if err := c.Send(ctx, ProcNull, -5, nil); err == nil || !strings.Contains(err.Error(), "tag -5") {
					return fmt.Errorf("Send to ProcNull with tag -5: %v; want an error naming the tag", err)
				}
				// A 1-D halo exchange: each rank sends its rank right and
				// receives its left neighbour's, ProcNull past the edges.
				left, right := r-1, r+1
				if r == 0 {
					left = ProcNull
				}
				if r == n-1 {
					right = ProcNull
				}
				got, st, err := c.Sendrecv(ctx, []byte{byte(r)}, right, 7, left, 7)
				if err != nil {
					return fmt.Errorf("Sendrecv: %w", err)
				}
				if r == 0 {
					if err := isNull("Sendrecv at the edge", st); err != nil || got != nil {
						return fmt.Errorf("%v (data %v)", err, got)
					}
				} else if !bytes.Equal(got, []byte{byte(r - 1)}) || st.Source != left {
					return fmt.Errorf("Sendrecv = %v, %v; want [%d] from %d", got, st, r-1, left)
				}
				v, st, err := SendrecvValue[int](ctx, c, 10*r, left, 8, right, 8)
				if err != nil {
					return fmt.Errorf("SendrecvValue: %w", err)
				}
				if want := 10 * (r + 1); r == n-1 && (v != 0 || st.Source != ProcNull) || r < n-1 && v != want {
					return fmt.Errorf("SendrecvValue = %d, %v", v, st)
				}
				in := make([]byte, 8)
				st, err = c.SendrecvInto(ctx, []byte{byte(r), 1}, right, 9, in, left, 9)
				if err != nil {
					return fmt.Errorf("SendrecvInto: %w", err)
				}
				if r > 0 && (st.Size != 2 || in[0] != byte(r-1)) {
					return fmt.Errorf("SendrecvInto = %v, %v", in[:st.Size], st)
				}
				// Nothing that went to ProcNull arrives: the next message
				// on tag 1 from any rank is the real one.
				if err := c.Send(ctx, (r+1)%n, 1, []byte(fmt.Sprint("real from ", r))); err != nil {
					return err
				}
				data, st, err = c.Recv(ctx, AnySource, 1)
				if want := fmt.Sprint("real from ", (r+n-1)%n); err != nil || string(data) != want {
					return fmt.Errorf("Recv after the null sends = %q, %v, %v; want %q", data, st, err, want)
				}
				return nil
			})
		})
	}
}

// TestSplitRejectsWildcardColors: Undefined is distinct from AnySource,
// AnyTag and ProcNull, so passing one of them as a color is an error on
// every rank (naming the rank), not a quiet "no communicator".
func TestSplitRejectsWildcardColors(t *testing.T) {
	if Undefined == AnySource || Undefined == AnyTag || Undefined == ProcNull || ProcNull == AnySource {
		t.Fatalf("Undefined %d, AnySource %d, AnyTag %d, ProcNull %d are not all distinct", Undefined, AnySource, AnyTag, ProcNull)
	}
	cs := world(t, 3)
	ctx := tctx(t)
	par(t, cs, func(c *Comm) error {
		color := 0
		if c.Rank() == 1 {
			color = AnySource
		}
		nc, err := c.Split(ctx, color, 0)
		if err == nil || nc != nil || !strings.Contains(err.Error(), "rank 1 passed color -1") {
			return fmt.Errorf("Split with rank 1's color AnySource = %v, %v; want an error naming rank 1", nc, err)
		}
		u, err := c.Split(ctx, Undefined, 0)
		if u != nil || err != nil {
			return fmt.Errorf("Split(Undefined) = %v, %v", u, err)
		}
		return nil
	})
}

// TestStatusFormat: %v and %+v print a Status by its exported fields.
func TestStatusFormat(t *testing.T) {
	for _, tc := range []struct {
		st   Status
		want string
	}{
		{Status{Source: 3, Tag: 7, Size: 64}, "Status{Source: 3, Tag: 7, Size: 64}"},
		{Status{Source: 1, Tag: 2, Size: 8, typ: "float64"}, "Status{Source: 1, Tag: 2, Size: 8, Type: float64}"},
		{nullStatus, "Status{Source: ProcNull, Tag: AnyTag, Size: 0}"},
	} {
		for _, verb := range []string{"%v", "%+v", "%s"} {
			if got := fmt.Sprintf(verb, tc.st); got != tc.want {
				t.Errorf("Sprintf(%q) = %q; want %q", verb, got, tc.want)
			}
		}
	}
}

// TestWaitanyAndFriends: Waitany reports each request once (setting its
// entry to nil) in the order they complete, then -1; Testany, Waitsome and
// Testall likewise; a ctx that ends leaves the requests going.
func TestWaitanyAndFriends(t *testing.T) {
	const n = 3
	cs := world(t, n)
	ctx := tctx(t)
	par(t, cs, func(c *Comm) error {
		r := c.Rank()
		if r != 0 {
			// Rank 1 sends after rank 0 tells it to, rank 2 at once.
			if r == 1 {
				if _, _, err := c.Recv(ctx, 0, 99); err != nil {
					return err
				}
			}
			for k := range 3 {
				if err := SendValue(ctx, c, 0, r*10+k, r*100+k); err != nil {
					return err
				}
			}
			return nil
		}
		reqs := make([]*Request, 0, 6)
		for _, src := range []int{1, 2} {
			for k := range 3 {
				q, err := c.Irecv(src, src*10+k)
				if err != nil {
					return err
				}
				reqs = append(reqs, q)
			}
		}
		// Rank 2's three come first.
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		seen := map[int]bool{}
		for range 3 {
			i, st, err := Waitany(ctx, reqs)
			if err != nil || i < 3 || st.Source != 2 || reqs[i] != nil || seen[i] {
				cancel()
				return fmt.Errorf("Waitany = %d, %v, %v; want a new one of rank 2's (3..5)", i, st, err)
			}
			seen[i] = true
		}
		if i, _, err := Waitany(short, reqs); i != -1 || !errors.Is(err, context.DeadlineExceeded) {
			cancel()
			return fmt.Errorf("Waitany with nothing arriving = %d, %v; want -1 and the deadline", i, err)
		}
		cancel()
		if i, done, _, _ := Testany(reqs); done {
			return fmt.Errorf("Testany = %d, done before rank 1 sent", i)
		}
		if done, _, _ := Testall(reqs); done {
			return errors.New("Testall done before rank 1 sent")
		}
		if err := c.Send(ctx, 1, 99, nil); err != nil {
			return err
		}
		var got []int
		for len(got) < 3 {
			idx, sts, err := Waitsome(ctx, reqs)
			if err != nil || len(idx) == 0 {
				return fmt.Errorf("Waitsome = %v, %v", idx, err)
			}
			for k, i := range idx {
				if sts[k].Source != 1 || reqs[i] != nil {
					return fmt.Errorf("Waitsome reported %d with %v", i, sts[k])
				}
			}
			got = append(got, idx...)
		}
		if i, done, _, _ := Testany(reqs); i != -1 || !done {
			return fmt.Errorf("Testany with no request left = %d, %v; want -1, true", i, done)
		}
		if i, _, err := Waitany(ctx, reqs); i != -1 || err != nil {
			return fmt.Errorf("Waitany with no request left = %d, %v", i, err)
		}
		return nil
	})
}

// TestWaitAllError: when a deadline ends 600 receives, WaitAll's error is
// one line that says how many failed and how, and errors.Is finds the
// deadline through it.
func TestWaitAllError(t *testing.T) {
	cs := world(t, 2)
	ctx, cancel := context.WithTimeout(tctx(t), 50*time.Millisecond)
	defer cancel()
	var reqs []*Request
	for k := range 600 {
		q, err := cs[0].Irecv(1, k)
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, q)
	}
	err := WaitAll(ctx, reqs...)
	var we *WaitError
	if !errors.As(err, &we) || len(we.Errs) != 600 || we.Total != 600 {
		t.Fatalf("WaitAll = %v; want a *WaitError of 600 failures", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(WaitAll's error, DeadlineExceeded) is false: %v", err)
	}
	msg := err.Error()
	if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "comm: 600 of 600 requests failed; context deadline exceeded (600: requests 0, 1, 2, ...)") {
		t.Errorf("WaitAll's error = %q", msg)
	}
}
