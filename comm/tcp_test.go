package comm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/tcp"
	"github.com/decorun/decorun/internal/transport"
)

// TestTCP runs pathTests with every frame between ranks over direct TCP
// connections on loopback (--transport=tcp).
func TestTCP(t *testing.T) {
	onPath(t, "tcp")
	t.Run("Paths", func(t *testing.T) {
		testTransport = "tcp"
		cs := world(t, 3)
		for _, c := range cs {
			for p := range 3 {
				want := "tcp"
				if p == c.Rank() {
					want = "self"
				}
				if got := c.Path(p); got != want {
					t.Errorf("rank %d: Path(%d) = %q; want %q", c.Rank(), p, got, want)
				}
			}
		}
	})
}

// hostWorld connects n ranks in this process as if each had a host of
// its own (DECORUN_HOST_RANKS names only itself), with transport tr;
// tcpAddr[r], if set, is rank r's DECORUN_TCP_ADDR. It returns each rank's
// communicator or error.
func hostWorld(t *testing.T, n int, tr string, tcpAddr map[int]string) ([]*Comm, []error) {
	t.Helper()
	return placedWorld(t, n, tr, func(r int, job *jobenv.Job) {
		job.LocalRank, job.LocalSize, job.HostRanks, job.TCPAddr = 0, 1, []int{r}, tcpAddr[r]
	})
}

// placedWorld starts n ranks over tr, place setting each rank's host
// (LocalRank, LocalSize, HostRanks, ...), and closes them at the end of
// the test; errs holds each rank's error of joining.
func placedWorld(t *testing.T, n int, tr string, place func(r int, job *jobenv.Job)) ([]*Comm, []error) {
	t.Helper()
	url, secret := startServer(t)
	cs := make([]*Comm, n)
	errs := make([]error, n)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for r := range n {
		job := jobenv.Job{Rank: r, Size: n, ID: "t", URL: url, Secret: secret, JobKey: secret,
			Prefix: "test." + sanitize(t.Name()), Transport: tr}
		place(r, &job)
		wg.Go(func() { cs[r], errs[r] = connect(ctx, job) })
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	})
	return cs, errs
}

// ringOK passes a message around the ranks and checks what comes back.
func ringOK(t *testing.T, cs []*Comm) {
	t.Helper()
	n := len(cs)
	var wg sync.WaitGroup
	got := make([]string, n)
	for r, c := range cs {
		wg.Go(func() {
			ctx := t.Context()
			if r == 0 {
				c.Send(ctx, 1, 7, []byte("P0"))
				b, _, err := c.Recv(ctx, n-1, 7)
				got[0] = string(b)
				if err != nil {
					got[0] = err.Error()
				}
				return
			}
			b, _, err := c.Recv(ctx, r-1, 7)
			if err != nil {
				got[r] = err.Error()
				return
			}
			c.Send(ctx, (r+1)%n, 7, append(b, fmt.Sprintf("P%d", r)...))
		})
	}
	wg.Wait()
	if want := "P0P1P2"; got[0] != want {
		t.Errorf("ring: rank 0 got %q; want %q (others: %q)", got[0], want, got[1:])
	}
}

// TestAutoAcrossHosts: with auto, ranks on different hosts reach each
// other over TCP; a rank that cannot listen is reached through NATS (and
// reaches the others through NATS), and the job works all the same.
func TestAutoAcrossHosts(t *testing.T) {
	cs, errs := hostWorld(t, 3, "auto", nil)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	for _, c := range cs {
		for p := range 3 {
			if want := "tcp"; p != c.Rank() && c.Path(p) != want {
				t.Errorf("rank %d: Path(%d) = %q; want %q", c.Rank(), p, c.Path(p), want)
			}
		}
	}
	ringOK(t, cs)

	t.Run("Fallback", func(t *testing.T) {
		cs, errs := hostWorld(t, 3, "auto", map[int]string{0: "192.0.2.1"}) // not an address of this host
		for r, err := range errs {
			if err != nil {
				t.Fatalf("rank %d: %v", r, err)
			}
		}
		for _, pp := range []struct {
			r, p int
			want string
		}{
			{0, 1, "nats"}, {0, 2, "nats"}, {1, 0, "nats"}, {2, 0, "nats"}, {1, 2, "tcp"}, {2, 1, "tcp"},
		} {
			if got := cs[pp.r].Path(pp.p); got != pp.want {
				t.Errorf("rank %d: Path(%d) = %q; want %q", pp.r, pp.p, got, pp.want)
			}
		}
		ringOK(t, cs)
	})
}

// TestTCPUnreachable: with --transport=tcp a rank that cannot listen fails
// saying why, and its peers fail naming it.
func TestTCPUnreachable(t *testing.T) {
	_, errs := hostWorld(t, 3, "tcp", map[int]string{1: "192.0.2.1"})
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "rank 1: --transport=tcp: tcp: rank 1:") ||
		!strings.Contains(errs[1].Error(), "192.0.2.1") {
		t.Errorf("rank 1: %v; want an error naming its TCP address", errs[1])
	}
	for _, r := range []int{0, 2} {
		if errs[r] == nil || !strings.Contains(errs[r].Error(), "--transport=tcp: rank 1 cannot be reached over TCP: it has no listener") {
			t.Errorf("rank %d: %v; want an error naming rank 1", r, errs[r])
		}
	}
}

// TestTCPBrokenConnection: a TCP connection that breaks mid-job while the
// peer is neither closed nor lost fails the rank with an error naming the
// peer; the end of a connection from a peer that closed its communicator
// does not.
func TestTCPBrokenConnection(t *testing.T) {
	old := tcpGrace
	tcpGrace = 20 * time.Millisecond
	defer func() { tcpGrace = old }()
	cs, errs := hostWorld(t, 3, "tcp", nil)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	ctx := t.Context()
	// Rank 2 closes properly: ranks 0 and 1 see its connections end, and
	// go on.
	if err := cs[2].Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * tcpGrace) // let the reports of rank 2's connections come and go
	if err := cs[1].Send(ctx, 0, 1, []byte("still here")); err != nil {
		t.Fatalf("rank 1 after rank 2 closed: %v", err)
	}
	if b, _, err := cs[0].Recv(ctx, 1, 1); err != nil || string(b) != "still here" {
		t.Fatalf("rank 0 after rank 2 closed: %q, %v", b, err)
	}
	// Rank 1's TCP link breaks under it (as if its network failed) while
	// its communicator is open.
	_, fast := cs[1].link.(*transport.Mux).Links()
	fast.(*tcp.Link).Close()
	_, _, err := cs[0].Recv(ctx, 1, 1)
	if err == nil || !strings.Contains(err.Error(), "comm: rank 0: tcp: connection with rank 1 broke") {
		t.Errorf("rank 0: Recv from rank 1 after its connection broke: %v; want an error naming rank 1", err)
	}
	var pe *tcp.PeerError
	if !errors.As(err, &pe) || pe.Rank != 1 {
		t.Errorf("rank 0: %v is not a PeerError for rank 1", err)
	}
}

// TestTCPQuickClose: ranks that close as soon as they have joined (as a
// short program does) all succeed: Close waits until every peer has
// finished dialing. (In one process the ranks keep pace with each other;
// cluster_test's TestTCPOneHost runs the same race between processes.)
func TestTCPQuickClose(t *testing.T) {
	const n = 6
	url, secret := startServer(t)
	for round := range 3 {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for r := range n {
			wg.Go(func() {
				job := jobenv.Job{Rank: r, Size: n, LocalRank: 0, LocalSize: 1, ID: "t", URL: url, Secret: secret, JobKey: secret,
					Prefix: fmt.Sprintf("test.quick%d", round), Transport: "tcp", HostRanks: []int{r}}
				c, err := connect(t.Context(), job)
				if err != nil {
					errs[r] = err
					return
				}
				errs[r] = c.Close()
			})
		}
		wg.Wait()
		for r, err := range errs {
			if err != nil {
				t.Errorf("round %d: rank %d: %v", round, r, err)
			}
		}
	}
}

// TestTCPKeyNotFromCredentials: the key that authenticates ranks over
// direct TCP comes from the job's secret key, not from what others on the
// job's NATS account know (token, job id, prefix): a client that derives
// a key from those, as a co-tenant could, cannot make a rank's listener
// prove itself, and the job's own ranks connect.
func TestTCPKeyNotFromCredentials(t *testing.T) {
	url, token := startServer(t)
	key := make([]byte, 16)
	rand.Read(key)
	const n = 2
	cs := make([]*Comm, n)
	errs := make([]error, n)
	jobs := make([]jobenv.Job, n)
	var wg sync.WaitGroup
	for r := range n {
		jobs[r] = jobenv.Job{Rank: r, Size: n, LocalRank: 0, LocalSize: 1, ID: "tcpkey", URL: url, Secret: token,
			JobKey: hex.EncodeToString(key), Prefix: "test.tcpkey", Transport: "tcp", HostRanks: []int{r}}
		wg.Go(func() { cs[r], errs[r] = connect(tctx(t), jobs[r]) })
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	if got := cs[0].Path(1); got != "tcp" {
		t.Fatalf("rank 0's path to rank 1 is %s; want tcp", got)
	}
	_, fast := cs[0].link.(*transport.Mux).Links()
	target := fast.(*tcp.Link).Self()
	j := jobs[0]
	guesses := map[string][]byte{
		"sha256(label, id, prefix, token)": func() []byte {
			k := sha256.Sum256([]byte("decorun tcp\x00" + j.ID + "\x00" + j.Prefix + "\x00" + j.Secret))
			return k[:]
		}(),
		"DeriveKey(token, ...)":    jobenv.DeriveKey(j.Secret, "decorun tcp", j.ID, j.Prefix),
		"DeriveKey(no secret,...)": jobenv.DeriveKey("", "decorun tcp", j.ID, j.Prefix),
	}
	for what, guess := range guesses {
		l, err := tcp.Listen(tcp.Config{Rank: 1, Size: n, Key: guess, Host: "127.0.0.1"}, func([]byte) {}, func(error) {})
		if err != nil {
			t.Fatal(err)
		}
		reach, why := l.Connect(tctx(t), map[int]tcp.Peer{0: target})
		l.Close()
		if reach[0] || !errors.Is(why[0], tcp.ErrAuth) || !strings.Contains(why[0].Error(), "could not prove that it is rank 0 of this job") {
			t.Errorf("a client with the key %s: reach %v, %v; want rank 0's proof refused", what, reach[0], why[0])
		}
	}
}
