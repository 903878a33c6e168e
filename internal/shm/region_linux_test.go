package shm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSlot = 8 << 10

// regions creates and attaches the n members' regions of one communicator
// in dir; they are closed and unmapped at the end of the test.
func regions(t testing.TB, dir string, n int, crowded bool) []*Region {
	return regionsSlot(t, dir, n, crowded, testSlot)
}

// regionsSlot is regions with slots of the given size.
func regionsSlot(t testing.TB, dir string, n int, crowded bool, slot int) []*Region {
	t.Helper()
	key := []byte("test key")
	gs := make([]*Region, n)
	for i := range gs {
		g, err := CreateRegion(RegionConfig{Dir: dir, ID: "rt", NameKey: key, AuthKey: key, Comm: 7, Rank: 10 + i, Slot: slot})
		if err != nil {
			t.Fatal(err)
		}
		gs[i] = g
	}
	world := make([]int, n)
	for i := range world {
		world[i] = 10 + i
	}
	for i, g := range gs {
		if err := g.Attach(Members{World: world, Me: i, Crowded: crowded}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, g := range gs {
			g.Close()
			g.Unmap()
		}
	})
	return gs
}

// payload is member m's payload of step s: its length varies across the
// inline limit and up to the slot, and its bytes name m and s.
func payload(seed uint64, m int, s uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(m)<<32|s))
	var n int
	switch r.IntN(4) {
	case 0:
		n = r.IntN(regionInline + 1)
	case 1:
		n = regionInline + r.IntN(2)
	case 2:
		n = testSlot - r.IntN(2)
	default:
		n = r.IntN(testSlot + 1)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestRegionSteps is a property test of the step protocol: members post
// payloads of random sizes (inline, in the slot, at its limits) in split
// pieces; at most steps each reads every other's payload and header, at
// random speeds, and at the others it only posts, so that it runs ahead of
// slower readers and must wait for their acknowledgements before it
// reuses a slot; every byte read must be what its member posted for that
// step.
func TestRegionSteps(t *testing.T) {
	for _, tc := range []struct {
		n       int
		crowded bool
	}{{2, false}, {3, true}, {5, true}} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("n%d-seed%d", tc.n, seed), func(t *testing.T) {
				gs := regions(t, t.TempDir(), tc.n, tc.crowded)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				const steps = 300
				errs := make(chan error, tc.n)
				var wg sync.WaitGroup
				for m, g := range gs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs <- runSteps(ctx, g, m, tc.n, seed, steps)
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

// ended is a ctx that has ended.
var ended = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func runSteps(ctx context.Context, g *Region, m, n int, seed uint64, steps int) error {
	r := rand.New(rand.NewPCG(seed, uint64(m)))
	for s := uint64(1); s <= uint64(steps); s++ {
		p := payload(seed, m, s)
		cut := r.IntN(len(p) + 1)
		head := []int64{int64(m), int64(s), -int64(s)}
		pctx := ctx
		if r.IntN(2) == 0 && g.CanPost(s) {
			// CanPost says the slot is free: Post must not wait (an ended
			// ctx would fail it), and a wrong answer overwrites a payload
			// that a slower member still reads, which it finds below.
			pctx = ended
		}
		if err := g.Post(pctx, s, head, p[:cut], p[cut:]); err != nil {
			return fmt.Errorf("member %d step %d: post: %w", m, s, err)
		}
		if r.IntN(3) == 0 {
			// Post only: this member does not wait for the others, so
			// its next posts may run ahead of readers of this one, and
			// only Post's wait for their acknowledgements keeps its slot.
			g.Ack(s)
			continue
		}
		if err := g.WaitAll(ctx, s); err != nil {
			return fmt.Errorf("member %d step %d: wait: %w", m, s, err)
		}
		for q := range n {
			if h := []int64{g.Head(q, s, 0), g.Head(q, s, 1), g.Head(q, s, 2)}; h[0] != int64(q) || h[1] != int64(s) || h[2] != -int64(s) {
				return fmt.Errorf("member %d step %d: member %d's header %v", m, s, q, h)
			}
			if r.IntN(8) == 0 {
				time.Sleep(time.Duration(r.IntN(30)) * time.Microsecond)
			}
			if got, want := g.Data(q, s), payload(seed, q, s); !bytes.Equal(got, want) {
				return fmt.Errorf("member %d step %d: member %d's payload differs (%d bytes, want %d)", m, s, q, len(got), len(want))
			}
		}
		g.Ack(s)
	}
	return nil
}

// TestRegionWaitEnds: a wait for a member ends with an error naming it when
// the member closes, when Alive reports it gone, and with ctx's error when
// ctx ends, including after the waiter went to sleep.
func TestRegionWaitEnds(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		gs := regions(t, t.TempDir(), 2, false)
		go func() {
			time.Sleep(5 * time.Millisecond) // past the spin, into the yield
			gs[1].Close()
		}()
		err := gs[0].WaitAll(context.Background(), 1)
		if !errors.Is(err, ErrRegionLeft) || !strings.Contains(err.Error(), "rank 11 closed") {
			t.Fatalf("err = %v; want rank 11 closed, ErrRegionLeft", err)
		}
	})
	t.Run("dead", func(t *testing.T) {
		gs := regions(t, t.TempDir(), 2, true)
		gone := errors.New("rank 11 is gone")
		gs[0].mb.Alive = func(m int) error {
			if m == 1 {
				return gone
			}
			return nil
		}
		if err := gs[0].WaitAll(context.Background(), 1); !errors.Is(err, gone) {
			t.Fatalf("err = %v; want %v", err, gone)
		}
	})
	t.Run("ctx", func(t *testing.T) {
		gs := regions(t, t.TempDir(), 2, false)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel) // well into the sleep
		t0 := time.Now()
		err := gs[0].WaitAll(ctx, 1)
		if err != context.Canceled {
			t.Fatalf("err = %v; want context.Canceled", err)
		}
		if d := time.Since(t0); d > 10*time.Second {
			t.Fatalf("the wait ended %v after ctx", d)
		}
	})
	t.Run("sleeper woken", func(t *testing.T) {
		gs := regions(t, t.TempDir(), 2, false)
		done := make(chan error, 1)
		go func() { done <- gs[0].Wait(context.Background(), 1, 1) }()
		time.Sleep(30 * time.Millisecond) // member 0 sleeps on its bell by now
		if err := gs[1].Post(context.Background(), 1, nil, []byte("x")); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the sleeping member was not woken by the post")
		}
	})
}

// TestRegionRefusesForeignFiles: Attach maps only files that the member
// made for this communicator: not one with another key, another mode, a
// symbolic link, or one made for another communicator.
func TestRegionRefusesForeignFiles(t *testing.T) {
	key := []byte("test key")
	mk := func(dir string, authKey []byte, comm uint64, rank int) *Region {
		t.Helper()
		g, err := CreateRegion(RegionConfig{Dir: dir, ID: "rt", NameKey: key, AuthKey: authKey, Comm: comm, Rank: rank, Slot: testSlot})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close(); g.Unmap() })
		return g
	}
	name := func(dir string, rank int) string { return filepath.Join(dir, RegionName("rt", key, 7, rank)) }
	for _, tc := range []struct {
		what  string
		plant func(dir string)
		want  string
	}{
		{"another key", func(dir string) { mk(dir, []byte("other"), 7, 11) }, "not made with this job's key"},
		{"mode 0644", func(dir string) {
			mk(dir, key, 7, 11)
			os.Chmod(name(dir, 11), 0o644)
		}, "mode 0644"},
		{"symbolic link", func(dir string) {
			mk(dir, key, 8, 11)
			os.Symlink(filepath.Join(dir, RegionName("rt", key, 8, 11)), name(dir, 11))
		}, "symbolic link"},
		{"another communicator's file", func(dir string) {
			g := mk(dir, key, 8, 11)
			os.Rename(g.path, name(dir, 11))
		}, "not rank 11's file of this communicator"},
		{"missing", func(string) {}, "no such file"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			dir := t.TempDir()
			me := mk(dir, key, 7, 10)
			tc.plant(dir)
			err := me.Attach(Members{World: []int{10, 11}, Me: 0})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "rank 10 cannot map rank 11's") {
				t.Fatalf("Attach: %v; want an error saying %q", err, tc.want)
			}
		})
	}
}

// BenchmarkRegionStep is one step of the region protocol on two members,
// as a small collective takes it: post five header words and 8 bytes,
// wait for the other's post, read its header and payload, acknowledge.
// It is the floor under a small collective call through the region.
func BenchmarkRegionStep(b *testing.B) {
	gs := regions(b, b.TempDir(), 2, false)
	ctx := context.Background()
	var wg sync.WaitGroup
	b.ResetTimer()
	for m, g := range gs {
		wg.Go(func() {
			head := make([]int64, RegionHead)
			v := []byte{1, 2, 3, 4, 5, 6, 7, 8}
			var sum int64
			for s := uint64(1); s <= uint64(b.N); s++ {
				head[0] = int64(m)
				if err := g.Post(ctx, s, head, v); err != nil {
					b.Error(err)
					return
				}
				if err := g.WaitAll(ctx, s); err != nil {
					b.Error(err)
					return
				}
				for q := range 2 {
					for i := range RegionHead {
						sum += g.Head(q, s, i)
					}
					sum += int64(g.Data(q, s)[0])
				}
				g.Ack(s)
			}
			_ = sum
		})
	}
	wg.Wait()
}

// TestRegionNoLostWakeup: a member that waits goes to sleep at once (no
// spin, no yield) while the other posts, marks and acknowledges after
// random short delays; every wait must end when its step is published, not
// when the sleep times out (set to 5 s here): a post that neither
// saw the sleeper's flag nor was seen by the sleeper's last look would
// leave it asleep. (Atomic stores on both sides exclude that. The window
// in which a missing fence would lose a wake-up is a store's way to the
// other core, a few hundred ns, which this test does not hit reliably; it
// fails when posts, marks or acknowledgements stop waking sleepers.)
func TestRegionNoLostWakeup(t *testing.T) {
	spin, yield, park := regionSpin, regionYield, regionPark
	regionSpin, regionYield, regionPark = 0, 0, 5*time.Second
	defer func() { regionSpin, regionYield, regionPark = spin, yield, park }()
	gs := regions(t, t.TempDir(), 2, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const steps = 3000
	errs := make(chan error, 2)
	for m, g := range gs {
		go func() {
			r := rand.New(rand.NewPCG(uint64(m), 9))
			for s := uint64(1); s <= steps; s++ {
				if m == 1 { // the publisher: a random delay, busy
					for t0 := time.Now(); time.Since(t0) < time.Duration(r.IntN(40))*time.Microsecond; {
					}
				}
				if err := g.Post(ctx, s, []int64{int64(m)}, []byte{byte(s)}); err != nil {
					errs <- fmt.Errorf("member %d step %d: post: %w", m, s, err)
					return
				}
				t0 := time.Now()
				if err := g.WaitAll(ctx, s); err != nil {
					errs <- fmt.Errorf("member %d step %d: wait: %w", m, s, err)
					return
				}
				if d := time.Since(t0); d > 2*time.Second {
					errs <- fmt.Errorf("member %d step %d: the wait took %v: a wake-up was lost", m, s, d)
					return
				}
				g.Ack(s)
			}
			errs <- nil
		}()
	}
	for range gs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
