package match

import (
	"math/rand"
	"testing"
)

type q = Queue[int, string]

func msg(comm uint64, src, tag, v int) *Msg[int] {
	return &Msg[int]{Env: Envelope{comm, src, tag}, Val: v}
}
func recv(comm uint64, src, tag int, name string) *Recv[string] {
	return &Recv[string]{Env: Envelope{comm, src, tag}, Val: name}
}

func TestUnexpectedInOrder(t *testing.T) {
	var x q
	for i := 0; i < 5; i++ {
		if x.Arrive(msg(0, 1, 7, i)) != nil {
			t.Fatal("matched with no receive posted")
		}
	}
	for i := 0; i < 5; i++ {
		m := x.Post(recv(0, 1, 7, ""))
		if m == nil || m.Val != i {
			t.Fatalf("receive %d matched %v", i, m)
		}
	}
	if p, u := x.Len(); p != 0 || u != 0 {
		t.Fatalf("left %d posted, %d unexpected", p, u)
	}
}

func TestPostedInOrder(t *testing.T) {
	var x q
	a, b := recv(0, AnySource, AnyTag, "a"), recv(0, AnySource, AnyTag, "b")
	x.Post(a)
	x.Post(b)
	if r := x.Arrive(msg(0, 3, 1, 0)); r != a {
		t.Fatalf("first message matched %v, want a", r)
	}
	if r := x.Arrive(msg(0, 2, 9, 1)); r != b {
		t.Fatalf("second message matched %v, want b", r)
	}
}

func TestWildcardsAndSelectivity(t *testing.T) {
	var x q
	x.Arrive(msg(0, 1, 5, 10))
	x.Arrive(msg(0, 2, 6, 20))
	x.Arrive(msg(1, 2, 6, 30)) // other communicator
	if m := x.Post(recv(0, 2, AnyTag, "")); m == nil || m.Val != 20 {
		t.Fatalf("src 2 any tag got %v", m)
	}
	if m := x.Post(recv(0, AnySource, 6, "")); m != nil {
		t.Fatalf("tag 6 on comm 0 matched %v from another communicator", m.Val)
	}
	if m := x.Post(recv(1, AnySource, AnyTag, "")); m == nil || m.Val != 30 {
		t.Fatalf("comm 1 got %v", m)
	}
	if m := x.Post(recv(0, AnySource, AnyTag, "")); m == nil || m.Val != 10 {
		t.Fatalf("any/any got %v", m)
	}
	// The receive for tag 6 on comm 0 is still posted and takes the next one.
	if r := x.Arrive(msg(0, 4, 6, 40)); r == nil {
		t.Fatal("posted receive for tag 6 did not match")
	}
}

func TestProbeTakeCancel(t *testing.T) {
	var x q
	if x.Probe(Envelope{0, AnySource, AnyTag}) != nil {
		t.Fatal("probe of empty queue found a message")
	}
	x.Arrive(msg(0, 1, 1, 1))
	x.Arrive(msg(0, 1, 2, 2))
	m := x.Probe(Envelope{0, 1, 2})
	if m == nil || m.Val != 2 {
		t.Fatalf("probe got %v", m)
	}
	if x.Probe(Envelope{0, 1, 2}) != m {
		t.Fatal("probe removed the message")
	}
	if !x.Take(m) || x.Take(m) {
		t.Fatal("take of probed message")
	}
	r := recv(0, 5, 5, "r")
	x.Post(r)
	if !r.Posted() || !x.Cancel(r) || x.Cancel(r) || r.Posted() {
		t.Fatal("cancel of a posted receive")
	}
	if x.Arrive(msg(0, 5, 5, 9)) != nil {
		t.Fatal("cancelled receive matched")
	}
	if len(x.Drain()) != 0 {
		t.Fatal("drain returned receives")
	}
	n := 0
	x.EachMsg(func(m *Msg[int]) bool { n++; return m.Val == 1 })
	if n != 2 {
		t.Fatalf("EachMsg visited %d", n)
	}
	if _, u := x.Len(); u != 1 {
		t.Fatalf("EachMsg left %d", u)
	}
}

// TestNonOvertakingRandom feeds random interleavings of arrivals and receives
// (with wildcards) and checks that, per (source, tag), messages are received
// in the order sent, and that nothing is lost or duplicated.
func TestNonOvertakingRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for iter := 0; iter < 200; iter++ {
		var x q
		const srcs, tags, per = 3, 3, 20
		next := map[[2]int]int{} // next sequence number to send per (src,tag)
		seen := map[[2]int]int{} // next sequence expected per (src,tag)
		got := 0
		total := srcs * tags * per
		check := func(m *Msg[int]) {
			k := [2]int{m.Env.Src, m.Env.Tag}
			if m.Val != seen[k] {
				t.Fatalf("iter %d: (src %d, tag %d) got #%d, want #%d", iter, k[0], k[1], m.Val, seen[k])
			}
			seen[k]++
			got++
		}
		var posted []*Recv[string]
		pending := map[*Recv[string]]bool{}
		sent := 0
		for got < total {
			if sent < total && rng.Intn(2) == 0 {
				s, tg := rng.Intn(srcs), rng.Intn(tags)
				k := [2]int{s, tg}
				if next[k] == per {
					continue
				}
				m := msg(0, s, tg, next[k])
				next[k]++
				sent++
				if r := x.Arrive(m); r != nil {
					delete(pending, r)
					check(m)
				}
				continue
			}
			src, tag := rng.Intn(srcs+1)-1, rng.Intn(tags+1)-1
			if len(pending) > 0 && sent < total && rng.Intn(4) == 0 {
				continue
			}
			r := recv(0, src, tag, "")
			if m := x.Post(r); m != nil {
				check(m)
			} else {
				pending[r] = true
				posted = append(posted, r)
			}
			if sent == total && len(pending) > 0 {
				// Everything sent; cancel specific receives that can no longer match.
				for _, r := range posted {
					if r.Posted() {
						x.Cancel(r)
						delete(pending, r)
					}
				}
			}
		}
		// Matched-at-arrival messages were checked; make sure totals agree.
		for k, v := range seen {
			if v != per {
				t.Fatalf("iter %d: (src %d, tag %d) received %d of %d", iter, k[0], k[1], v, per)
			}
		}
	}
}

func BenchmarkArrivePost(b *testing.B) {
	var x q
	m := msg(0, 1, 1, 0)
	r := recv(0, 1, 1, "")
	for i := 0; i < b.N; i++ {
		x.Arrive(m)
		x.Post(r)
	}
}
