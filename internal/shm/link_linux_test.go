package shm

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type got struct {
	mu sync.Mutex
	by map[int][][]byte // by sender
	n  int
	ch chan struct{} // a frame arrived
}

func (g *got) onFrame(f []byte) {
	g.mu.Lock()
	src := int(binary.LittleEndian.Uint32(f))
	g.by[src] = append(g.by[src], f)
	g.n++
	g.mu.Unlock()
	select {
	case g.ch <- struct{}{}:
	default:
	}
}

// world opens n links in dir and connects them.
func world(t *testing.T, dir string, n, ringSize int) ([]*Link, []*got) {
	t.Helper()
	ls, gs := make([]*Link, n), make([]*got, n)
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	id := fmt.Sprintf("test%d", rand.Int64())
	for r := range n {
		gs[r] = &got{by: map[int][][]byte{}, ch: make(chan struct{}, 1)}
		l, err := Open(Config{Dir: dir, ID: id, NameKey: []byte(id + "name"), AuthKey: []byte(id + "auth"), Rank: r, Size: n, Peers: all, RingSize: ringSize,
			MaxFrame: 1 << 20, Spin: 20 * time.Microsecond}, gs[r].onFrame, func(err error) { t.Errorf("rank %d: %v", r, err) })
		if err != nil {
			t.Fatal(err)
		}
		ls[r] = l
		t.Cleanup(func() { l.Close() })
	}
	nonces := map[int]string{}
	for r, l := range ls {
		nonces[r] = l.Nonce()
	}
	for r, l := range ls {
		reach, why := l.Connect(nonces)
		for p := range n {
			if p != r && !reach[p] {
				t.Fatalf("rank %d cannot reach rank %d: %v", r, p, why[p])
			}
		}
	}
	return ls, gs
}

func frame(src, seq, size int) []byte {
	f := make([]byte, max(size, 8))
	binary.LittleEndian.PutUint32(f, uint32(src))
	binary.LittleEndian.PutUint32(f[4:], uint32(seq))
	for i := 8; i < len(f); i++ {
		f[i] = byte(src + seq + i)
	}
	return f
}

// TestLinkAllToAll: three ranks send each other frames of up to four times
// the ring's size at once; each receiver gets every sender's frames whole
// and in order.
func TestLinkAllToAll(t *testing.T) {
	const n, per, ring = 3, 300, 4096
	ls, gs := world(t, t.TempDir(), n, ring)
	want := map[[2]int][][]byte{}
	var wg sync.WaitGroup
	for src := range n {
		rng := rand.New(rand.NewPCG(uint64(src), 7))
		for i := range per {
			for dst := range n {
				if dst != src {
					want[[2]int{src, dst}] = append(want[[2]int{src, dst}], frame(src, i, rng.IntN(4*ring)))
				}
			}
		}
	}
	for src := range n {
		wg.Go(func() {
			for i := range per {
				for dst := range n {
					if dst != src {
						if err := ls[src].Send(dst, want[[2]int{src, dst}][i]); err != nil {
							t.Error(err)
						}
					}
				}
			}
			if err := ls[src].Flush(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	deadline := time.After(time.Minute) // a guard against a hang, not a timing assertion
	for dst := range n {
		for {
			gs[dst].mu.Lock()
			k := gs[dst].n
			gs[dst].mu.Unlock()
			if k == (n-1)*per {
				break
			}
			select {
			case <-gs[dst].ch:
			case <-deadline:
				t.Fatalf("rank %d got %d frames; want %d", dst, k, (n-1)*per)
			}
		}
		for src := range n {
			if src == dst {
				continue
			}
			w, g := want[[2]int{src, dst}], gs[dst].by[src]
			for i := range w {
				if !bytes.Equal(g[i], w[i]) {
					t.Fatalf("%d->%d frame %d: got %d bytes, want %d (or contents differ)", src, dst, i, len(g[i]), len(w[i]))
				}
			}
		}
	}
}

// TestLinkUnlinks: once every peer has mapped a segment its name is gone,
// and Close of a link whose pump sleeps returns.
func TestLinkUnlinks(t *testing.T) {
	dir := t.TempDir()
	ls, _ := world(t, dir, 2, 4096)
	for {
		ents, _ := os.ReadDir(dir)
		if len(ents) == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for _, l := range ls {
		l.Close()
		l.Close() // idempotent
	}
	if err := ls[0].Send(1, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v; want ErrClosed", err)
	}
}

func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("cannot run true:", err)
	}
	return cmd.Process.Pid
}

// TestSendToStoppedAndDeadPeer: a peer that does not read makes Send queue
// (never block) and Flush wait until ctx ends; once the peer's process is
// gone the queue is dropped and Flush returns.
func TestSendToStoppedAndDeadPeer(t *testing.T) {
	dir := t.TempDir()
	id, key := "stopped", []byte("k")
	// Rank 1's segment, made by hand: nobody reads it.
	nonce := make([]byte, nonceLen)
	seg, err := create(filepath.Join(dir, Name(id, key, 1)), key, nonce, 1, 2, []int{0}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.unmap()
	l, err := Open(Config{Dir: dir, ID: id, NameKey: key, AuthKey: key, Rank: 0, Size: 2, Peers: []int{1}, RingSize: 4096},
		func([]byte) {}, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if reach, why := l.Connect(map[int]string{1: hex.EncodeToString(nonce)}); !reach[1] {
		t.Fatal(why[1])
	}
	for i := range 10 {
		if err := l.Send(1, frame(0, i, 3000)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush to a peer that reads nothing = %v; want context.Canceled", err)
	}
	binary.LittleEndian.PutUint64(seg.mem[hdrPid:], uint64(deadPID(t))) // the peer "dies"
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Send(1, frame(0, 99, 3000)); err != nil {
		t.Errorf("Send to a dead peer = %v; want nil (dropped)", err)
	}
}

// TestCorruptRing: a length above MaxFrame is reported through onFatal.
func TestCorruptRing(t *testing.T) {
	dir := t.TempDir()
	fatal := make(chan error, 1)
	l, err := Open(Config{Dir: dir, ID: "c", NameKey: []byte("k"), AuthKey: []byte("k"), Rank: 0, Size: 2, Peers: []int{1}, RingSize: 4096, MaxFrame: 100},
		func([]byte) {}, func(err error) { fatal <- err })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	seg, err := open(l.Path(), []byte("k"), l.nonce, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.unmap()
	r, _ := seg.ring(1)
	r.Write([]byte{0xff, 0xff, 0xff, 0x7f})
	seg.wake()
	if err := <-fatal; !errors.Is(err, ErrCorrupt) {
		t.Errorf("onFatal(%v); want ErrCorrupt", err)
	}
}

func TestConnectOtherJob(t *testing.T) {
	dir := t.TempDir()
	one, two := []byte("one"), []byte("two")
	a, err := Open(Config{Dir: dir, ID: "j", NameKey: one, AuthKey: one, Rank: 0, Size: 2, Peers: []int{1}, RingSize: 4096}, func([]byte) {}, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// Same id, another key: another file name; and a file planted under
	// the right name with the wrong key is refused, even with the nonce
	// that was announced.
	path := filepath.Join(dir, Name("j", two, 1))
	nonce := make([]byte, nonceLen)
	seg, err := create(path, []byte("other"), nonce, 1, 2, []int{0}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	seg.unmap()
	b, err := Open(Config{Dir: dir, ID: "j", NameKey: two, AuthKey: two, Rank: 0, Size: 2, Peers: []int{1}, RingSize: 4096}, func([]byte) {}, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	nonces := map[int]string{1: hex.EncodeToString(nonce)}
	if reach, why := b.Connect(nonces); reach[1] || why[1] == nil || !strings.Contains(why[1].Error(), "not made with this job's key") {
		t.Errorf("Connect to another job's segment: reach %v, why %v; want refused", reach, why)
	}
	if reach, why := a.Connect(nonces); reach[1] || why[1] == nil {
		t.Errorf("Connect to a missing segment: reach %v, why %v; want refused", reach, why)
	}
}

func TestSweepAndRemove(t *testing.T) {
	dir := t.TempDir()
	mk := func(id string, rank, pid int) string {
		p := filepath.Join(dir, Name(id, []byte("k"), rank))
		s, err := create(p, []byte("k"), make([]byte, nonceLen), rank, 2, []int{1 - rank}, 4096)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint64(s.mem[hdrPid:], uint64(pid))
		s.unmap()
		return p
	}
	dead := mk("a", 0, deadPID(t))
	live := mk("a", 1, os.Getpid())
	other := filepath.Join(dir, "decorun-not-a-segment")
	os.WriteFile(other, nil, 0o600)
	if n := SweepStale(dir); n != 1 {
		t.Errorf("SweepStale removed %d; want 1", n)
	}
	for p, want := range map[string]bool{dead: false, live: true, other: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists: %v; want %v", p, err == nil, want)
		}
	}
	mk("b", 0, os.Getpid())
	RemoveJob(dir, "a")
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 { // b's and the stranger
		t.Errorf("after RemoveJob(a): %d files; want 2", len(ents))
	}
	if got := Name("a/../b c", []byte("k"), 3); filepath.Base(got) != got || !segName.MatchString(got) {
		t.Errorf("Name of an odd id = %q", got)
	}
}

// TestSendToClosedPeer: frames for a peer whose link is closed are dropped
// instead of queued, and Flush does not wait for it.
func TestSendToClosedPeer(t *testing.T) {
	ls, _ := world(t, t.TempDir(), 2, 4096)
	ls[1].Close()
	for i := range 20 {
		if err := ls[0].Send(1, frame(0, i, 3000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ls[0].Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestDrivePingPong: two ranks bounce frames, each waiting for the next
// one by driving its link for a varying while (none, a little, longer
// than it takes) before it sleeps on its callback, as comm does; frames
// larger than the ring queue, and pumps stand aside and take over as the
// drivers come and go. No frame may be stranded (the test would stop at
// a 10 s wait) and each arrives whole, in order.
func TestDrivePingPong(t *testing.T) {
	ls, gs := world(t, t.TempDir(), 2, 4096)
	const rounds = 3000
	waits := []time.Duration{0, time.Microsecond, 20 * time.Microsecond, time.Millisecond}
	count := func(g *got) int { g.mu.Lock(); defer g.mu.Unlock(); return g.n }
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, g := ls[r], gs[r]
			for i := range rounds {
				if (i+r)%2 == 0 { // my turn to send
					if err := l.Send(1-r, frame(r, i, []int{8, 100, 3000, 9000}[i%4])); err != nil {
						t.Errorf("rank %d: send %d: %v", r, i, err)
						return
					}
					continue
				}
				want := i/2 + 1 // the other's frames so far
				done := func() bool { return count(g) >= want }
				if l.Drive(done, waits[(i/2)%len(waits)]) {
					continue
				}
				for !done() {
					select {
					case <-g.ch:
					case <-time.After(10 * time.Second):
						t.Errorf("rank %d: round %d: frame %d never delivered (have %d)", r, i, want, count(g))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	for r := range 2 {
		fs := gs[r].by[1-r]
		for k, f := range fs {
			if seq := int(binary.LittleEndian.Uint32(f[4:])); seq%2 != (1-r)%2 || k > 0 && seq != int(binary.LittleEndian.Uint32(fs[k-1][4:]))+2 {
				t.Fatalf("rank %d: frame %d from rank %d has seq %d", r, k, 1-r, seq)
			}
		}
	}
}

// TestDriveClose closes a link while callers drive it: they return false
// once it is closed, not after their full minute, and Close waits for them.
func TestDriveClose(t *testing.T) {
	ls, _ := world(t, t.TempDir(), 2, 4096)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ls[0].Drive(func() bool { return false }, time.Minute) {
				t.Error("Drive reported done for a condition that never holds")
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	ls[0].Close()
	out := make(chan struct{})
	go func() { wg.Wait(); close(out) }()
	select {
	case <-out:
	case <-time.After(30 * time.Second):
		t.Fatal("drivers still spinning 30 s after Close")
	}
	if ls[0].Drive(func() bool { return false }, time.Minute) {
		t.Error("Drive on a closed link reported done")
	}
	if !ls[0].Drive(func() bool { return true }, time.Minute) {
		t.Error("Drive on a closed link with its condition met reported not done")
	}
}
