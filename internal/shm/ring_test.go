package shm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"runtime"
	"testing"
)

func newTestRing(t testing.TB, size int) *Ring {
	t.Helper()
	mem := make([]uint64, (RingHeader+size)/8) // 8-byte aligned
	b := unsafeBytes(mem)
	r, err := NewRing(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNewRingRejects(t *testing.T) {
	for _, n := range []int{0, RingHeader, RingHeader + 3, RingHeader + 100} {
		if _, err := NewRing(make([]byte, n)); err == nil {
			t.Errorf("NewRing(%d bytes) = nil error; want one", n)
		}
	}
}

func TestRingWrapsAround(t *testing.T) {
	r := newTestRing(t, 16)
	out := make([]byte, 16)
	for i := range 100 {
		in := []byte{byte(i), byte(i + 1), byte(i + 2), byte(i + 3), byte(i + 4), byte(i + 5), byte(i + 6)}
		if n := r.Write(in); n != len(in) {
			t.Fatalf("Write = %d; want %d", n, len(in))
		}
		if n := r.Read(out); n != len(in) || !bytes.Equal(out[:n], in) {
			t.Fatalf("Read = %d %v; want %v", n, out[:n], in)
		}
	}
	if n := r.Write(make([]byte, 20)); n != 16 {
		t.Errorf("Write of 20 into an empty 16-byte ring = %d; want 16", n)
	}
	if r.WriteV([]byte{1}, nil) {
		t.Error("WriteV into a full ring succeeded")
	}
}

// frames returns n frames of random sizes up to max, each filled with a
// pattern that names it.
func frames(rng *rand.Rand, n, max int) [][]byte {
	fs := make([][]byte, n)
	for i := range fs {
		f := make([]byte, rng.IntN(max+1))
		for j := range f {
			f[j] = byte(i*7 + j)
		}
		fs[i] = f
	}
	return fs
}

// TestRingConcurrent streams frames up to three times the ring's size from
// one goroutine to another; every frame must arrive whole and in order.
// Under -race this also checks the ring's memory ordering.
func TestRingConcurrent(t *testing.T) {
	for _, size := range []int{64, 4096, 4097} { // 4097: a 4096-byte ring that skips back to its start
		r := newTestRing(t, size&^1)
		if size&1 != 0 {
			size--
			r.rewindAt, r.rewindRoom = 100, 1
		}
		rng := rand.New(rand.NewPCG(1, uint64(size)))
		want := frames(rng, 2000, 3*size)
		go func() {
			w := Writer{R: r}
			for _, f := range want {
				w.Write(f)
				for w.Queued() > 0 {
					if !w.Drain() {
						runtime.Gosched()
					}
				}
			}
		}()
		rd := Reader{R: r, Max: 3 * size}
		for i := 0; i < len(want); {
			f, err := rd.Next()
			if err != nil {
				t.Fatal(err)
			}
			if f == nil {
				runtime.Gosched()
				continue
			}
			if !bytes.Equal(f, want[i]) {
				t.Fatalf("ring %d: frame %d: got %d bytes, want %d (or contents differ)", size, i, len(f), len(want[i]))
			}
			i++
		}
		if r.Avail() != 0 || rd.Partial() {
			t.Errorf("ring %d: %d bytes left after the last frame", size, r.Avail())
		}
	}
}

func TestReaderRejectsLongFrame(t *testing.T) {
	r := newTestRing(t, 64)
	var l [4]byte
	binary.LittleEndian.PutUint32(l[:], 1000)
	r.Write(l[:])
	rd := Reader{R: r, Max: 999}
	if _, err := rd.Next(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Next() error = %v; want ErrCorrupt", err)
	}
}

// FuzzRing drives a Writer and a Reader over a small ring with an
// interleaving taken from the input: every frame must come out whole and in
// order, whatever the frame sizes and the order of the steps, and a Reader
// fed arbitrary bytes must return frames or an error, never panic.
func FuzzRing(f *testing.F) {
	f.Add([]byte{5, 200, 0, 1, 64, 255, 3, 17})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(fuzzRing)
}

func fuzzRing(t *testing.T, steps []byte) {
	r := newTestRing(t, 32)
	if len(steps) > 0 {
		r.rewindAt, r.rewindRoom = int(steps[0]%40), 1 // 32 and above: never
	}
	w := Writer{R: r}
	rd := Reader{R: r, Max: 300}
	var want, got [][]byte
	for i, s := range steps {
		switch s % 3 {
		case 0, 1: // write a frame of s bytes (up to 255 > ring)
			fr := bytes.Repeat([]byte{byte(i)}, int(s))
			if len(fr) > 1 { // so a frame's start and end are told apart
				fr[0] = byte(i >> 8)
				fr[len(fr)-1] = ^byte(i)
			}
			want = append(want, fr)
			if i%2 == 0 {
				w.Write(fr)
			} else { // in two parts, split anywhere
				cut := int(s) % (len(fr) + 1)
				w.Write2(fr[:cut], fr[cut:])
			}
		case 2:
			w.Drain()
		}
		for k := 0; k < int(s%4); k++ {
			got = next(t, &rd, got, (i+k)%2 == 0)
		}
	}
	for tries := 0; len(got) < len(want); tries++ {
		if tries > 10*len(want)+100 {
			t.Fatalf("%d of %d frames after %d tries", len(got), len(want), tries)
		}
		w.Drain()
		got = next(t, &rd, got, tries%2 == 0)
	}
	if len(got) != len(want) {
		t.Fatalf("%d frames read, %d written", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d: got %v, want %v", i, got[i], want[i])
		}
	}
	// Garbage in a ring: an error or frames, no panic.
	g := newTestRing(t, 32)
	g.Write(steps)
	grd := Reader{R: g, Max: 16}
	for range 40 {
		if fr, err := grd.Next(); err != nil || fr == nil {
			break
		}
	}
}

// next reads one frame, with NextView (copying a view before Release) or
// Next, and appends it to got.
func next(t *testing.T, rd *Reader, got [][]byte, view bool) [][]byte {
	t.Helper()
	var fr []byte
	var err error
	lent := false
	if view {
		fr, lent, err = rd.NextView()
	} else {
		fr, err = rd.Next()
	}
	if err != nil {
		t.Fatal(err)
	}
	if fr == nil {
		return got
	}
	if lent {
		fr = append([]byte(nil), fr...)
		rd.Release()
	}
	return append(got, fr)
}

// TestNextViewLends checks that a frame lying whole and contiguous in the
// ring comes as a view that keeps its room until Release, and a frame that
// wraps around the end comes as a copy.
func TestNextViewLends(t *testing.T) {
	r := newTestRing(t, 64)
	r.noExpress = true // frames in the data (express frames: TestExpress)
	w := Writer{R: r}
	rd := Reader{R: r, Max: 64}
	if !w.Write2([]byte("head"), []byte("-body")) {
		t.Fatal("a 13-byte frame does not fit an empty 64-byte ring")
	}
	f, view, err := rd.NextView()
	if err != nil || !view || string(f) != "head-body" {
		t.Fatalf("NextView = %q, %v, %v; want a view of \"head-body\"", f, view, err)
	}
	if free := r.Free(); free != 64-4-9 {
		t.Fatalf("room while lent: %d bytes free, want %d", free, 64-4-9)
	}
	rd.Release()
	if free := r.Free(); free != 64 {
		t.Fatalf("after Release: %d bytes free, want 64", free)
	}
	// 13 bytes used so far; a 50-byte frame (54 with its length) wraps.
	big := bytes.Repeat([]byte{7}, 50)
	if !w.Write(big) {
		t.Fatal("a 50-byte frame does not fit an empty 64-byte ring")
	}
	f, view, err = rd.NextView()
	if err != nil || view || !bytes.Equal(f, big) {
		t.Fatalf("NextView of a wrapped frame = %d bytes, view %v, %v; want a 50-byte copy", len(f), view, err)
	}
	rd.Release() // nothing lent: no effect
	if free := r.Free(); free != 64 {
		t.Fatalf("after a copy: %d bytes free, want 64", free)
	}
	// With Scratch, a wrapped frame is lent from it, its room free at once.
	var scratch []byte
	rd.Scratch = &scratch
	w.Write(make([]byte, 30)) // at 3: 3..37, whole
	if f, view, _ = rd.NextView(); !view || len(f) != 30 {
		t.Fatalf("a contiguous frame: view %v, %d bytes", view, len(f))
	}
	rd.Release()
	big2 := bytes.Repeat([]byte{9}, 40) // at 37 and 27: both wrap
	for i, b := range [][]byte{big, big2} {
		if !w.Write(b) {
			t.Fatalf("frame %d does not fit an empty 64-byte ring", i)
		}
		f, view, err = rd.NextView()
		if err != nil || !view || !bytes.Equal(f, b) || &f[0] != &scratch[0] {
			t.Fatalf("NextView of wrapped frame %d with Scratch = %d bytes, view %v, %v; want %d bytes lent from Scratch", i, len(f), view, err, len(b))
		}
		if free := r.Free(); free != 64 {
			t.Fatalf("frame %d lent from Scratch: %d bytes free, want 64", i, free)
		}
		rd.Release()
	}
}

// TestRewind checks that a producer that finds the ring empty far enough
// into it skips back to its start, so that a ping-pong stays in the ring's
// first bytes, and that the skip is invisible to the Reader: every frame
// whole, in order, and the whole ring free after each.
func TestRewind(t *testing.T) {
	r := newTestRing(t, 4096)
	r.rewindAt, r.rewindRoom = 256, 1
	r.noExpress = true // frames in the data, whose index is checked
	w := Writer{R: r}
	rd := Reader{R: r, Max: 4096}
	skips := 0
	for i := range 500 {
		fr := bytes.Repeat([]byte{byte(i)}, 1+i%300)
		before := r.head.Load()
		if !w.Write2(fr[:1], fr[1:]) {
			t.Fatalf("frame %d (%d bytes) does not fit an empty ring", i, len(fr))
		}
		if r.head.Load()-before > uint64(lenSize+len(fr)) {
			skips++
		}
		got, err := next1(&rd, i%2 == 0)
		if err != nil || !bytes.Equal(got, fr) {
			t.Fatalf("frame %d: got %d bytes, %v; want %d bytes", i, len(got), err, len(fr))
		}
		// A frame that does not fit before the producer's index is
		// written where it is, so the index may pass rewindAt by two
		// frames.
		if at, most := int(r.tail.Load()&r.mask), 256+2*(lenSize+300); at >= most {
			t.Fatalf("frame %d: consumer at index %d; skips should have kept it below %d", i, at, most)
		}
		if r.Free() != 4096 || rd.Partial() {
			t.Fatalf("frame %d: %d bytes free after reading it, partial %v", i, r.Free(), rd.Partial())
		}
	}
	if skips == 0 {
		t.Fatal("no skip back to the ring's start in 500 frames")
	}
	// Never while the ring holds bytes: the consumer's data would be skipped.
	w.Write(make([]byte, 300))
	before := r.head.Load()
	w.Write(make([]byte, 10))
	if d := r.head.Load() - before; d != lenSize+10 {
		t.Fatalf("a 10-byte frame written after unread bytes took %d bytes of the ring, want %d", d, lenSize+10)
	}
}

// next1 reads one frame with NextView (copying and releasing a view) or
// Next.
func next1(rd *Reader, view bool) ([]byte, error) {
	if !view {
		return rd.Next()
	}
	f, lent, err := rd.NextView()
	if lent {
		f = append([]byte(nil), f...)
		rd.Release()
	}
	return f, err
}

// TestRewindLeavesRoom checks that a skip leaves room for rewindFrames
// frames of the size being written: a frame skips back only once the
// producer is 16 times its size into the ring.
func TestRewindLeavesRoom(t *testing.T) {
	r := newTestRing(t, 1<<20)
	w := Writer{R: r}
	rd := Reader{R: r, Max: 1 << 20}
	fr := make([]byte, 60<<10)
	skips := 0
	for i := range 40 {
		before := r.head.Load()
		if !w.Write(fr) {
			t.Fatalf("frame %d does not fit an empty ring", i)
		}
		skipped := r.head.Load()-before > uint64(lenSize+len(fr))
		if want := int(before&r.mask) >= rewindFrames*(lenSize+len(fr)); skipped != want {
			t.Fatalf("frame %d at index %d: skipped %v, want %v", i, before&r.mask, skipped, want)
		}
		if skipped {
			skips++
		}
		if _, err := next1(&rd, true); err != nil {
			t.Fatal(err)
		}
	}
	if skips == 0 {
		t.Fatal("no skip in 40 frames of 60 KiB through a 1 MiB ring")
	}
}

// TestExpress: a frame of up to expressMax bytes written into an empty
// ring travels in the head's line (head has expressBit, the data is not
// written), and one written before the consumer has read it is copied into
// the data first, so that both arrive whole and in order by Next and by
// NextView.
func TestExpress(t *testing.T) {
	r := newTestRing(t, 256)
	w := Writer{R: r}
	rd := Reader{R: r, Max: 256}
	zero := make([]byte, 256)
	small := bytes.Repeat([]byte{'x'}, expressMax)
	if !w.Write2(small[:8], small[8:]) {
		t.Fatal("a 56-byte frame does not fit an empty ring")
	}
	if hv := r.head.Load(); hv&expressBit == 0 || hv&^expressBit != lenSize+expressMax || !bytes.Equal(r.data, zero) {
		t.Fatalf("a %d-byte frame into an empty ring: head %#x, data written %v; want express", expressMax, hv, !bytes.Equal(r.data, zero))
	}
	f, view, err := rd.NextView()
	if err != nil || !view || !bytes.Equal(f, small) || &f[0] != &r.express[0] {
		t.Fatalf("NextView = %d bytes, view %v, %v; want the frame lent from the head's line", len(f), view, err)
	}
	if r.Free() != 256-lenSize-expressMax {
		t.Fatalf("room while lent: %d", r.Free())
	}
	rd.Release()
	if f, _ := rd.Next(); f != nil || r.Free() != 256 {
		t.Fatalf("after Release: Next = %q, %d free; want nothing, 256", f, r.Free())
	}
	// Two frames before the consumer reads: the first is settled into
	// the data when the second is written (not express: the ring holds
	// the first).
	a, b := []byte("first frame"), bytes.Repeat([]byte{'b'}, expressMax+1)
	w.Write(a)
	if r.head.Load()&expressBit == 0 {
		t.Fatal("the first frame did not go express")
	}
	w.Write(b) // too long for the line, and the ring is not empty
	if r.head.Load()&expressBit != 0 {
		t.Fatal("head kept expressBit after a frame in the data")
	}
	at := int((r.head.Load() - uint64(2*lenSize+len(a)+len(b))) & r.mask)
	if l := binary.LittleEndian.Uint32(r.data[at:]); l != uint32(len(a)) || !bytes.Equal(r.data[at+lenSize:at+lenSize+len(a)], a) {
		t.Fatalf("the settled express frame in the data: length %d, bytes %q", l, r.data[at+lenSize:at+lenSize+len(a)])
	}
	for i, want := range [][]byte{a, b} {
		if f, err := next1(&rd, i == 0); err != nil || !bytes.Equal(f, want) {
			t.Fatalf("frame %d: %q, %v; want %q", i, f, err, want)
		}
	}
	// A frame of expressMax+1 bytes goes into the data.
	w.Write(b)
	if r.head.Load()&expressBit != 0 {
		t.Fatalf("a %d-byte frame went express", len(b))
	}
	rd.Next()
	// An express frame longer than the line is ErrCorrupt.
	r.head.Store(r.tail.Load() + lenSize + expressMax + 1 | expressBit)
	if _, err := rd.Next(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Next of a %d-byte express frame: %v; want ErrCorrupt", expressMax+1, err)
	}
}

// TestRingConcurrentExpress streams frames around expressMax in size from
// one goroutine to another, in bursts, so that frames go express, are
// settled into the data behind the consumer's back, and are read by Next
// and NextView, concurrently, while a third goroutine refreshes the
// producer's view of the tail (SeeTail): every frame arrives whole and in
// order. Under -race this checks the express frames' memory ordering.
func TestRingConcurrentExpress(t *testing.T) {
	r := newTestRing(t, 512)
	rng := rand.New(rand.NewPCG(3, 4))
	want := frames(rng, 20000, expressMax+8)
	var went, settled int
	done := make(chan struct{})
	stopSee := make(chan struct{})
	seeing := make(chan struct{})
	go func() { // the producer's process polling what the consumer read (Link's poll)
		defer close(seeing)
		for {
			select {
			case <-stopSee:
				return
			default:
			}
			r.SeeTail()
			if seen, tail := r.seen.Load(), r.tail.Load(); seen > tail {
				t.Errorf("seen %d is past the consumer's tail %d", seen, tail)
				return
			}
			runtime.Gosched()
		}
	}()
	defer func() { close(stopSee); <-seeing }()
	go func() {
		defer close(done)
		w := Writer{R: r}
		for i, f := range want {
			before := r.head.Load()
			w.Write(f)
			for w.Queued() > 0 {
				if !w.Drain() {
					runtime.Gosched()
				}
			}
			if r.head.Load()&expressBit != 0 {
				went++
			} else if before&expressBit != 0 && r.xEnd == 0 {
				settled++
			}
			if i%7 == 0 {
				runtime.Gosched() // let the consumer catch up: the ring empties
			}
		}
	}()
	rd := Reader{R: r, Max: 512}
	for i := 0; i < len(want); {
		var f []byte
		var err error
		if i%3 != 0 {
			var lent bool
			if f, lent, err = rd.NextView(); lent {
				f = append([]byte{}, f...)
				rd.Release()
			}
		} else {
			f, err = rd.Next()
		}
		if err != nil {
			t.Fatal(err)
		}
		if f == nil {
			runtime.Gosched()
			continue
		}
		if !bytes.Equal(f, want[i]) {
			t.Fatalf("frame %d: got %q, want %q", i, f, want[i])
		}
		i++
	}
	<-done
	if went == 0 || settled == 0 {
		t.Errorf("%d frames went express, %d were settled into the data; want some of each", went, settled)
	}
}

// TestSeeTail checks that the producer's side learns what the consumer
// read from SeeTail, and that its next send uses it rather than loading
// the shared tail again: with the tail word made to lag (as a load would
// see it), a frame still goes express once SeeTail saw the ring empty.
func TestSeeTail(t *testing.T) {
	r := newTestRing(t, 256)
	w := Writer{R: r}
	rd := Reader{R: r, Max: 256}
	if !r.SeeTail() {
		t.Fatal("SeeTail of a fresh ring: false, want true (nothing published)")
	}
	a := []byte("ping")
	w.Write(a)
	if r.SeeTail() {
		t.Fatal("SeeTail with a frame unread: true")
	}
	if f, err := next1(&rd, true); err != nil || !bytes.Equal(f, a) {
		t.Fatalf("read %q, %v", f, err)
	}
	h := r.head.Load() &^ expressBit
	if !r.SeeTail() || r.seen.Load() != h {
		t.Fatalf("after the read: SeeTail false or seen %d, want true and %d", r.seen.Load(), h)
	}
	r.tail.Store(h - 1) // what a stale load would return
	w.Write(a)
	r.tail.Store(h)
	if hv := r.head.Load(); hv&expressBit == 0 {
		t.Fatal("the producer loaded the tail although SeeTail had seen the ring empty: the frame did not go express")
	}
	if f, err := next1(&rd, true); err != nil || !bytes.Equal(f, a) {
		t.Fatalf("read %q, %v", f, err)
	}
}
