package comm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// interWorld connects p+n ranks of one job in this process over tr and
// makes each an Intercomm as Spawn and Parent do: ranks 0..p-1 are the
// spawning group, p..p+n-1 the spawned.
func interWorld(t *testing.T, p, n int, tr string) []*Intercomm {
	t.Helper()
	cs := worldOn(t, p+n, tr)
	ics := make([]*Intercomm, p+n)
	for r, c := range cs {
		if r < p {
			ics[r] = newIntercomm(c, 0, p, p, n, 1)
		} else {
			ics[r] = newIntercomm(c, p, n, 0, p, 1)
		}
	}
	return ics
}

var interTransports = []string{"auto", "nats", "tcp"}

// interPar runs f on every rank's Intercomm at once.
func interPar(t *testing.T, ics []*Intercomm, f func(ic *Intercomm) error) {
	t.Helper()
	cs := make([]*Comm, len(ics))
	for i, ic := range ics {
		cs[i] = ic.w
	}
	par(t, cs, func(c *Comm) error { return f(ics[slices.Index(cs, c)]) })
}

// TestIntercommPointToPoint: ranks name the remote group: every parent
// sends every child its own rank with Send and with a typed SendValue on
// Remote, and every child answers with Isend; receives by AnySource match
// remote ranks only and report remote ranks as Source; sizes and ranks
// are those of each group.
func TestIntercommPointToPoint(t *testing.T) {
	for _, tr := range interTransports {
		t.Run(tr, func(t *testing.T) {
			const p, n = 2, 3
			ics := interWorld(t, p, n, tr)
			ctx := tctx(t)
			interPar(t, ics, func(ic *Intercomm) error {
				parent := ic.local == 0
				if want := map[bool][2]int{true: {p, n}, false: {n, p}}[parent]; ic.LocalSize() != want[0] || ic.RemoteSize() != want[1] {
					return fmt.Errorf("sizes %d, %d; want %v", ic.LocalSize(), ic.RemoteSize(), want)
				}
				me := ic.Rank()
				if parent {
					for r := range n {
						if err := ic.Send(ctx, r, 1, []byte{byte(me)}); err != nil {
							return err
						}
						if err := SendValue(ctx, ic.Remote(), r, 2, fmt.Sprint("parent ", me)); err != nil {
							return err
						}
					}
					var got []string
					for range n {
						data, st, err := ic.Recv(ctx, AnySource, 3)
						if err != nil {
							return err
						}
						if want := fmt.Sprintf("child %d to %d", st.Source, me); string(data) != want {
							return fmt.Errorf("from remote %d: %q, want %q", st.Source, data, want)
						}
						got = append(got, string(data))
					}
					return nil
				}
				for range p {
					data, st, err := ic.Recv(ctx, AnySource, 1)
					if err != nil {
						return err
					}
					if st.Source < 0 || st.Source >= p || data[0] != byte(st.Source) {
						return fmt.Errorf("got %v from remote rank %d", data, st.Source)
					}
					v, st2, err := RecvValue[string](ctx, ic.Remote(), st.Source, 2)
					if err != nil {
						return err
					}
					if want := fmt.Sprint("parent ", st.Source); v != want || st2.Source != st.Source {
						return fmt.Errorf("typed: %q from %d, want %q", v, st2.Source, want)
					}
					q, err := ic.Isend(st.Source, 3, fmt.Appendf(nil, "child %d to %d", me, st.Source))
					if err != nil {
						return err
					}
					if _, err := q.Wait(ctx); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

// TestIntercommMerge: Merge orders the group that passed high=false
// first, the spawning group when both pass the same; the merged
// communicator carries messages between any two ranks and is closed on
// its own.
func TestIntercommMerge(t *testing.T) {
	for _, tr := range interTransports {
		t.Run(tr, func(t *testing.T) {
			const p, n = 2, 2
			ics := interWorld(t, p, n, tr)
			ctx := tctx(t)
			for _, tc := range []struct{ parentHigh, childHigh, childrenFirst bool }{
				{false, false, false}, {false, true, false}, {true, false, true}, {true, true, false},
			} {
				interPar(t, ics, func(ic *Intercomm) error {
					parent := ic.local == 0
					high := tc.childHigh
					if parent {
						high = tc.parentHigh
					}
					m, err := ic.Merge(ctx, high)
					if err != nil {
						return err
					}
					defer m.Close()
					want := ic.Rank()
					if parent == tc.childrenFirst {
						want += map[bool]int{true: n, false: p}[parent]
					}
					if m.Rank() != want || m.Size() != p+n {
						return fmt.Errorf("%+v: merged rank %d of %d, want %d of %d", tc, m.Rank(), m.Size(), want, p+n)
					}
					// A ring over the merged ranks.
					next, prev := (m.Rank()+1)%m.Size(), (m.Rank()+m.Size()-1)%m.Size()
					got, _, err := SendrecvValue[int](ctx, m, m.Rank(), next, 5, prev, 5)
					if err != nil {
						return err
					}
					if got != prev {
						return fmt.Errorf("%+v: merged rank %d got %d from its left, want %d", tc, m.Rank(), got, prev)
					}
					return nil
				})
			}
		})
	}
}

// TestIntercommRemoteNoCollectives: collective calls on the Remote view
// fail at once with ErrInterCollective on every rank, and the view's
// point-to-point traffic goes on.
func TestIntercommRemoteNoCollectives(t *testing.T) {
	ics := interWorld(t, 1, 2, testTransport)
	ctx := tctx(t)
	interPar(t, ics, func(ic *Intercomm) error {
		if _, err := ic.Remote().Dup(ctx); !errors.Is(err, ErrInterCollective) {
			return fmt.Errorf("Dup on Remote: %v, want ErrInterCollective", err)
		}
		if _, err := ic.Remote().Split(ctx, 0, 0); !errors.Is(err, ErrInterCollective) {
			return fmt.Errorf("Split on Remote: %v, want ErrInterCollective", err)
		}
		if ic.Remote().HostGroups() != nil {
			return errors.New("Remote has host groups")
		}
		if ic.local == 0 {
			return ic.Send(ctx, 1, 0, []byte("still"))
		}
		if ic.Rank() == 1 {
			_, _, err := ic.Recv(ctx, 0, 0)
			return err
		}
		return nil
	})
}

// TestIntercommLost: a rank lost in the intercommunicator's job shows up
// in Lost as its rank in the remote group, on the other group only, and
// calls naming it fail with ErrRankLost.
func TestIntercommLost(t *testing.T) {
	const p, n = 2, 3
	ics := interWorld(t, p, n, testTransport)
	ctx := tctx(t)
	const dead = p + 1 // child 1
	merged := make([]*Comm, p+n)
	interPar(t, ics, func(ic *Intercomm) (err error) {
		merged[ic.w.rank], err = ic.Merge(ctx, ic.local != 0) // children high: parents first
		return err
	})
	lost := make([]<-chan int, p+n)
	for r, ic := range ics {
		lost[r] = ic.Lost()
		if r != dead {
			ic.w.e.peerLost(dead, "exited with code 3")
		}
	}
	for r := range p {
		select {
		case got := <-lost[r]:
			if got != 1 {
				t.Errorf("parent %d: Lost gave %d, want remote rank 1", r, got)
			}
		default:
			t.Errorf("parent %d: Lost gave nothing", r)
		}
		_, _, err := ics[r].Recv(ctx, 1, 0)
		if !errors.Is(err, ErrRankLost) || !strings.Contains(err.Error(), "exited with code 3") {
			t.Errorf("parent %d: Recv from the lost child: %v", r, err)
		}
	}
	for r := p; r < p+n; r++ {
		select {
		case got := <-lost[r]:
			t.Errorf("child %d: Lost gave %d for a rank of its own group", r-p, got)
		default:
		}
	}
	// The merged communicator: every survivor's Lost names it by its
	// merged rank, and a send to it fails.
	for r, m := range merged {
		if r == dead {
			continue
		}
		select {
		case got := <-m.Lost():
			if got != dead {
				t.Errorf("merged rank %d: Lost gave %d, want %d", r, got, dead)
			}
		default:
			t.Errorf("merged rank %d: Lost gave nothing", r)
		}
		if err := m.Send(ctx, dead, 0, []byte("x")); !errors.Is(err, ErrRankLost) {
			t.Errorf("merged rank %d: Send to the lost rank: %v", r, err)
		}
	}
}

// TestIntercommNil: every method of a nil *Intercomm (Parent in a
// program that was not spawned) fails with ErrNotInter naming the call;
// the accessors give zero values.
func TestIntercommNil(t *testing.T) {
	ctx := tctx(t)
	ic := Parent()
	if ic != nil {
		t.Fatalf("Parent() = %v in a test process", ic)
	}
	errs := map[string]error{}
	_, errs["Merge"] = ic.Merge(ctx, false)
	errs["Send"] = ic.Send(ctx, 0, 0, nil)
	_, _, errs["Recv"] = ic.Recv(ctx, 0, 0)
	_, errs["Irecv"] = ic.Irecv(0, 0)
	_, errs["Isend"] = ic.Isend(0, 0, nil)
	_, errs["Probe"] = ic.Probe(ctx, 0, 0)
	errs["Close"] = ic.Close()
	for op, err := range errs {
		if !errors.Is(err, ErrNotInter) || !strings.Contains(err.Error(), op+" on a nil *Intercomm") {
			t.Errorf("%s: %v", op, err)
		}
	}
	if ic.Rank() != -1 || ic.LocalSize() != 0 || ic.RemoteSize() != 0 || ic.Remote() != nil || ic.Lost() != nil {
		t.Errorf("accessors of nil: %d %d %d %v", ic.Rank(), ic.LocalSize(), ic.RemoteSize(), ic.Remote())
	}
	var zero Intercomm
	if _, err := zero.Merge(ctx, true); !errors.Is(err, ErrNotInter) {
		t.Errorf("Merge on a zero Intercomm: %v", err)
	}
}

// TestSpawnWithoutLauncher: in a job that no decorun launcher runs
// (Connect, a singleton) Spawn fails with ErrNoLauncher on every rank;
// its arguments are checked first, on every rank alike (n < 1, ranks
// that pass different n or programs: MismatchError), and the world goes
// on.
func TestSpawnWithoutLauncher(t *testing.T) {
	cs := world(t, 3)
	ctx := tctx(t)
	check := func(what string, f func(c *Comm) error) {
		t.Helper()
		par(t, cs, func(c *Comm) error {
			if err := f(c); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return nil
		})
	}
	check("no launcher", func(c *Comm) error {
		_, err := Spawn(ctx, c, "worker", nil, 2, nil)
		if !errors.Is(err, ErrNoLauncher) || !strings.Contains(err.Error(), `Spawn of "worker" (this job was started by something other than decorun)`) {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
	check("n=0", func(c *Comm) error {
		_, err := Spawn(ctx, c, "worker", nil, 0, nil)
		if err == nil || !strings.Contains(err.Error(), "n must be at least 1, got 0") {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
	check("n differs", func(c *Comm) error {
		_, err := Spawn(ctx, c, "worker", nil, 2+c.Rank()/2, nil)
		var me *MismatchError
		if !errors.As(err, &me) || me.Error() != "comm: Spawn: rank 0 called Spawn with n=2 but rank 2 called Spawn with n=3" {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
	check("args differ", func(c *Comm) error {
		_, err := Spawn(ctx, c, "worker", []string{fmt.Sprint(c.Rank() == 1)}, 2, nil)
		if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "called Spawn with program and arguments #") {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
	check("root differs", func(c *Comm) error {
		_, err := Spawn(ctx, c, "worker", nil, 2, &SpawnOptions{Root: c.Rank() % 2})
		if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "rank 0 called Spawn with root 0 but rank 1 called Spawn with root 1") {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
	check("Split after", func(c *Comm) error { // the collective sequence is intact
		_, err := c.Split(ctx, 0, 0)
		return err
	})
	one, err := connect(context.Background(), jobSingleton())
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if _, err := Spawn(ctx, one, "worker", nil, 1, nil); !errors.Is(err, ErrNoLauncher) || !strings.Contains(err.Error(), "started by no one: a singleton, run without decorun") {
		t.Errorf("singleton: %v", err)
	}
}
