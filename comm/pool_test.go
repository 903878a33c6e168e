package comm

import (
	"bytes"
	"fmt"
	"testing"
	"unsafe"
)

func TestBufPool(t *testing.T) {
	var p bufPool
	same := func(a, b []byte) bool { return unsafe.SliceData(a) == unsafe.SliceData(b) }
	small, pooled := p.copyOf(make([]byte, minPooled-1))
	if pooled || len(small) != minPooled-1 {
		t.Errorf("%d bytes: pooled %v, len %d; want a fresh copy", minPooled-1, pooled, len(small))
	}
	src := bytes.Repeat([]byte{7}, 5000)
	a, pa := p.copyOf(src)
	b, pb := p.copyOf(src)
	if !pa || !pb || same(a, b) || !bytes.Equal(a, src) || !bytes.Equal(b, src) || cap(a) != 8192 {
		t.Fatalf("two buffers taken without a put: pooled %v %v, same %v, cap %d", pa, pb, same(a, b), cap(a))
	}
	p.put(a)
	c, _ := p.copyOf(src[:4097]) // same class: gets a back
	if !same(a, c) || len(c) != 4097 {
		t.Errorf("a buffer put back was not reused for its class")
	}
	d, _ := p.copyOf(src) // the class is empty again: a new one
	if same(d, c) || same(d, b) {
		t.Errorf("a buffer in use was handed out again")
	}
	p.put(make([]byte, 5000)) // not the pool's shape: ignored
	if p.bytes != 0 {
		t.Errorf("a buffer of capacity 5000 was pooled")
	}
	for range maxPoolFree/(1<<maxPooledLog) + 2 {
		big, _ := p.copyOf(make([]byte, 1<<maxPooledLog))
		defer p.put(big)
	}
	for i := range 4 {
		e, _ := p.copyOf(make([]byte, 1<<maxPooledLog))
		p.put(e)
		if p.bytes > maxPoolFree {
			t.Fatalf("round %d: %d bytes free, above the bound of %d", i, p.bytes, maxPoolFree)
		}
	}
}

// TestUnexpectedBuffersOneOwner receives unexpected messages (over shared
// memory their payloads are copied into the engine's pool) both with Recv,
// which hands the buffer over, and RecvInto, which gives it back; a second
// round of unexpected messages then reuses the pool. A buffer handed to a
// caller that also went back to the pool (two owners) would be
// overwritten by the second round.
func TestUnexpectedBuffersOneOwner(t *testing.T) {
	cs := world(t, 2)
	ctx := tctx(t)
	sizes := []int{5000, 70 << 10, 900 << 10, 2 << 20, 4096, 100}
	payload := func(round, i int) []byte {
		b := make([]byte, sizes[i%len(sizes)])
		for k := range b {
			b[k] = byte(round*31 + i*7 + k*13 + k>>9)
		}
		return b
	}
	const n, goTag, doneTag = 12, 1000, 1001
	par(t, cs, func(c *Comm) error {
		if c.Rank() == 0 {
			for round := range 2 {
				if _, _, err := c.Recv(ctx, 1, goTag); err != nil {
					return err
				}
				for i := range n {
					if err := c.Send(ctx, 1, i, payload(round, i)); err != nil {
						return err
					}
				}
				if err := c.Send(ctx, 1, doneTag, nil); err != nil {
					return err
				}
			}
			return nil
		}
		kept := map[[2]int][]byte{}
		buf := make([]byte, 2<<20)
		for round := range 2 {
			if err := c.Send(ctx, 0, goTag, nil); err != nil {
				return err
			}
			if _, _, err := c.Recv(ctx, 0, doneTag); err != nil { // every message waits, unexpected
				return err
			}
			for i := range n {
				var got []byte
				if i%2 == 0 {
					d, _, err := c.Recv(ctx, 0, i)
					if err != nil {
						return err
					}
					kept[[2]int{round, i}] = d
					got = d
				} else {
					st, err := c.RecvInto(ctx, buf, 0, i)
					if err != nil {
						return err
					}
					got = buf[:st.Size]
				}
				if !bytes.Equal(got, payload(round, i)) {
					return fmt.Errorf("round %d, message %d: %d bytes differ from the %d sent", round, i, len(got), sizes[i%len(sizes)])
				}
			}
		}
		for k, d := range kept {
			if !bytes.Equal(d, payload(k[0], k[1])) {
				return fmt.Errorf("round %d, message %d: the buffer Recv returned changed afterwards", k[0], k[1])
			}
		}
		return nil
	})
}
