package comm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/shm"
	"github.com/decorun/decorun/internal/transport"
)

// pathTests exercise ordering, credit, rendezvous, cancellation and
// departed peers; TestSHM and TestNATS run them on each data path (the
// other tests run on DECORUN_TRANSPORT, by default auto).
var pathTests = []struct {
	name string
	f    func(*testing.T)
}{
	{"Ring", TestRing},
	{"OrderMixedSizes", TestOrderMixedSizes},
	{"CreditBlocksAndResumes", TestCreditBlocksAndResumes},
	{"LargeMessage", TestLargeMessage},
	{"CancelRecvAndSend", TestCancelRecvAndSend},
	{"RevokeKeepsOtherUnexpected", TestRevokeKeepsOtherUnexpected},
	{"SendrecvAndNonblocking", TestSendrecvAndNonblocking},
	{"CloseWakesBlocked", TestCloseWakesBlocked},
	{"PeerLost", TestPeerLost},
	{"PeerClosed", TestPeerClosed},
	{"SplitAndIsolation", TestSplitAndIsolation},
	{"PostedAndUnexpected", TestPostedAndUnexpected},
	{"UnexpectedBuffersOneOwner", TestUnexpectedBuffersOneOwner},
}

func onPath(t *testing.T, tr string) {
	old := testTransport
	t.Cleanup(func() { testTransport = old })
	for _, tt := range pathTests {
		t.Run(tt.name, func(t *testing.T) {
			testTransport = tr
			tt.f(t)
		})
	}
}

// TestNATS runs pathTests with every frame through the NATS server.
func TestNATS(t *testing.T) {
	onPath(t, "nats")
	t.Run("Paths", func(t *testing.T) {
		testTransport = "nats"
		for _, c := range world(t, 2) {
			if _, ok := c.link.(*transport.NATS); !ok {
				t.Errorf("rank %d: link is %T; want NATS only", c.Rank(), c.link)
			}
		}
	})
}

// TestSHM runs pathTests over shared memory (ranks in one process reach
// each other through /dev/shm segments like ranks on one host); "shm" makes
// a rank that cannot be reached that way an error.
func TestSHM(t *testing.T) {
	if _, err := os.Stat(shm.DefaultDir); err != nil {
		t.Skip("no", shm.DefaultDir)
	}
	onPath(t, "shm")
	t.Run("PathsAndNames", func(t *testing.T) {
		testTransport = "shm"
		cs := world(t, 3)
		for _, c := range cs {
			m, ok := c.link.(*transport.Mux)
			if !ok {
				t.Fatalf("rank %d: link is %T; want a Mux", c.Rank(), c.link)
			}
			for p := range 3 {
				if p != c.Rank() && !m.Fast(p) {
					t.Errorf("rank %d: frames to rank %d do not take shared memory", c.Rank(), p)
				}
			}
		}
		// Every peer has mapped every segment: no name is left in /dev/shm.
		for deadline := time.Now().Add(30 * time.Second); ; {
			names, _ := filepath.Glob(filepath.Join(shm.DefaultDir, "decorun-t-*"))
			if len(names) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("segments still named in %s after 30 s: %v", shm.DefaultDir, names)
			}
			waitBriefly()
		}
	})
}

func waitBriefly() { time.Sleep(time.Millisecond) }

// TestPostedAndUnexpected sends messages of every size class (empty, eager,
// long eager) to receives posted before they arrive (Irecv), to blocking
// receives (RecvInto) that may be posted before or after, and into the
// unexpected queue (all sent before the receiver asks); each must arrive
// whole. Over shared memory, frames are lent from the ring during delivery,
// so this checks that whatever outlives delivery was copied.
func TestPostedAndUnexpected(t *testing.T) {
	cs := world(t, 2)
	ctx := tctx(t)
	sizes := []int{0, 5, 4000, 70 << 10, 900 << 10, 2 << 20}
	payload := func(i int) []byte {
		b := make([]byte, sizes[i%len(sizes)])
		for k := range b {
			b[k] = byte(i*7 + k*13 + k>>8)
		}
		return b
	}
	const block = 20
	const goTag, doneTag = 1000, 1001
	par(t, cs, func(c *Comm) error {
		if c.Rank() == 0 {
			if _, _, err := c.Recv(ctx, 1, goTag); err != nil {
				return err
			}
			for i := range 2 * block {
				if err := c.Send(ctx, 1, i, payload(i)); err != nil {
					return err
				}
			}
			// Rank 1 receives these only after doneTag: Isend, since
			// a Send need not return before its receive is posted.
			var reqs []*Request
			for i := 2 * block; i < 3*block; i++ {
				q, err := c.Isend(1, i, payload(i))
				if err != nil {
					return err
				}
				reqs = append(reqs, q)
			}
			if err := c.Send(ctx, 1, doneTag, nil); err != nil {
				return err
			}
			return WaitAll(ctx, reqs...)
		}
		check := func(i int, got []byte) error {
			if want := payload(i); !bytes.Equal(got, want) {
				return fmt.Errorf("message %d: %d bytes differ from the %d sent", i, len(got), len(want))
			}
			return nil
		}
		var posted []*Request
		for i := range block {
			r, err := c.Irecv(0, i)
			if err != nil {
				return err
			}
			posted = append(posted, r)
		}
		if err := c.Send(ctx, 0, goTag, nil); err != nil {
			return err
		}
		buf := make([]byte, 2<<20)
		for i := block; i < 2*block; i++ {
			st, err := c.RecvInto(ctx, buf, 0, i)
			if err != nil {
				return err
			}
			if err := check(i, buf[:st.Size]); err != nil {
				return err
			}
		}
		if _, _, err := c.Recv(ctx, 0, doneTag); err != nil { // messages 40..59 wait, unexpected
			return err
		}
		for i := 2 * block; i < 3*block; i++ {
			var got []byte
			if i%2 == 0 {
				st, err := c.RecvInto(ctx, buf, 0, i)
				if err != nil {
					return err
				}
				got = buf[:st.Size]
			} else {
				b, _, err := c.Recv(ctx, 0, i)
				if err != nil {
					return err
				}
				got = b
			}
			if err := check(i, got); err != nil {
				return err
			}
		}
		for i, r := range posted {
			if _, err := r.Wait(ctx); err != nil {
				return err
			}
			if err := check(i, r.Data()); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestTransportMismatch starts a job whose ranks ask for different data
// paths (join mode with DECORUN_TRANSPORT set differently per rank): every
// rank fails at start-up naming the ranks that differ, where they used to
// wait for each other's direct-path records for ever.
func TestTransportMismatch(t *testing.T) {
	url, secret := startServer(t)
	trs := []string{"nats", "auto", "nats", "tcp"}
	n := len(trs)
	errs := make([]error, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := jobenv.Job{Rank: r, Size: n, LocalRank: r, LocalSize: n, ID: "mismatch", URL: url, Secret: secret, JobKey: secret,
				Prefix: "test.mismatch", Transport: trs[r]}
			c, err := connect(ctx, job)
			if err == nil {
				c.Close()
			}
			errs[r] = err
		}()
	}
	wg.Wait()
	for r, err := range errs {
		switch {
		case err == nil:
			t.Errorf("rank %d: started; want a mismatch error", r)
		case ctx.Err() != nil:
			t.Errorf("rank %d: %v (it waited until the test's deadline)", r, err)
		case !strings.Contains(err.Error(), "rank 0 asked for --transport=nats, rank 1 asked for auto, rank 3 asked for tcp"):
			t.Errorf("rank %d: error %q does not name the ranks that differ", r, err)
		}
	}
	// Rank 1 (auto) made a shared-memory segment; giving up before
	// Connect, it removed the name (no launcher here would).
	if names, _ := filepath.Glob(filepath.Join(shm.DefaultDir, "decorun-mismatch-*")); len(names) > 0 {
		t.Errorf("segments left behind: %v", names)
		for _, n := range names {
			os.Remove(n)
		}
	}
}

// TestSegmentNameTaken: rank 1 of 3 cannot create its segment: a segment
// of this user's from another run (another key, another nonce, the same
// name) holds the name. With auto rank 1 says why once, every pair with
// rank 1 takes NATS both ways while ranks 0 and 2 keep shared memory,
// messages arrive intact, and no frame reaches the other run's segment.
// With shm every rank fails, naming rank 1 and the path.
func TestSegmentNameTaken(t *testing.T) {
	if _, err := os.Stat(shm.DefaultDir); err != nil {
		t.Skip("no", shm.DefaultDir)
	}
	var warned strings.Builder
	var warnMu sync.Mutex
	old := warnings
	warnings = writerFunc(func(b []byte) (int, error) {
		warnMu.Lock()
		defer warnMu.Unlock()
		return warned.Write(b)
	})
	t.Cleanup(func() { warnings = old })
	for _, tr := range []string{"auto", "shm"} {
		t.Run(tr, func(t *testing.T) {
			warned.Reset()
			url, secret := startServer(t)
			const n = 3
			jobs := make([]jobenv.Job, n)
			for r := range jobs {
				jobs[r] = jobenv.Job{Rank: r, Size: n, LocalRank: r, LocalSize: n, ID: "taken" + tr, URL: url, Secret: secret,
					JobKey: secret, Prefix: "test.taken." + tr, Transport: tr, HostRanks: []int{0, 1, 2}}
			}
			nameKey, _ := jobs[0].SHMKeys()
			path := filepath.Join(shm.DefaultDir, shm.Name(jobs[0].ID, nameKey, 1))
			var strayFrames atomic.Int64
			stray, err := shm.Open(shm.Config{ID: jobs[0].ID, NameKey: nameKey, AuthKey: []byte("another run"), Rank: 1, Size: n,
				Peers: []int{0, 2}, RingSize: 4096}, func([]byte) { strayFrames.Add(1) }, func(error) {})
			if err != nil {
				t.Fatal(err)
			}
			defer stray.Close()
			if stray.Path() != path {
				t.Fatalf("the stray segment is %s, not %s", stray.Path(), path)
			}
			ctx := tctx(t)
			cs := make([]*Comm, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for r := range n {
				wg.Go(func() { cs[r], errs[r] = connect(ctx, jobs[r]) })
			}
			wg.Wait()
			defer func() {
				for _, c := range cs {
					if c != nil {
						c.Close()
					}
				}
			}()
			if tr == "shm" {
				for r, err := range errs {
					if err == nil || !strings.Contains(err.Error(), "--transport=shm") ||
						!strings.Contains(err.Error(), "rank 1 cannot create its segment "+path+": the name is taken by a file, this user's, mode 0600") {
						t.Errorf("rank %d: %v; want an error naming rank 1 and %s", r, err, path)
					}
				}
				return
			}
			for r, err := range errs {
				if err != nil {
					t.Fatalf("rank %d: %v", r, err)
				}
			}
			want := "comm: rank 1: shared memory off, its peers on this host reach it through NATS: shm: rank 1 cannot create its segment " + path
			if got := warned.String(); strings.Count(got, "shared memory off") != 1 || !strings.Contains(got, want) {
				t.Errorf("warnings %q; want once %q", got, want)
			}
			for r, c := range cs {
				for p := range n {
					want := "shm"
					switch {
					case p == r:
						want = "self"
					case p == 1 || r == 1:
						want = "nats"
					}
					if got := c.Path(p); got != want {
						t.Errorf("rank %d: Path(%d) = %s; want %s", r, p, got, want)
					}
				}
			}
			par(t, cs, func(c *Comm) error {
				msg := func(from, to int) []byte { return bytes.Repeat([]byte{byte(10*from + to)}, 100<<10) }
				var reqs []*Request
				for p := range n {
					if p != c.Rank() {
						r, err := c.Isend(p, 7, msg(c.Rank(), p))
						if err != nil {
							return err
						}
						reqs = append(reqs, r)
					}
				}
				for p := range n {
					if p == c.Rank() {
						continue
					}
					b, _, err := c.Recv(ctx, p, 7)
					if err != nil {
						return err
					}
					if !bytes.Equal(b, msg(p, c.Rank())) {
						return fmt.Errorf("the message from rank %d differs", p)
					}
				}
				return WaitAll(ctx, reqs...)
			})
			if got := strayFrames.Load(); got != 0 {
				t.Errorf("%d frames reached the other run's segment", got)
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
