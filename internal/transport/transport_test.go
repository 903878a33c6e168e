package transport_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/transport"
	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func serve(t *testing.T) *server.Server {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, Authorization: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// TestOrderBootAndLoss: frames arrive in order; Boot returns only when all
// ranks are subscribed, with the records of the other ranks of the
// rank's group; a server that goes away is reported as ErrLost.
func TestOrderBootAndLoss(t *testing.T) {
	s := serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 3
	type rank struct {
		t      *transport.NATS
		frames chan []byte
		fatal  chan error
	}
	rs := make([]*rank, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	tables := make([]map[int]string, n)
	groups := []string{"h0", "h0", "h2"}
	for r := n - 1; r >= 0; r-- { // rank 0 last: the others must wait for it
		rk := &rank{frames: make(chan []byte, 10000), fatal: make(chan error, 10)}
		rs[r] = rk
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := jobenv.Job{Rank: r, Size: n, URL: s.ClientURL(), Secret: "tok", Prefix: "t"}
			var err error
			rk.t, err = transport.DialNATS(ctx, job, func(f []byte) { rk.frames <- f },
				func(err error) { rk.fatal <- err }, func(jobenv.Ctl) {})
			if err == nil {
				tables[r], err = rk.t.Boot(ctx, groups[r], fmt.Sprintf("record of %d", r))
			}
			errs[r] = err
		}()
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	for r, want := range []string{"map[1:record of 1]", "map[0:record of 0]", "map[]"} {
		if got := fmt.Sprint(tables[r]); got != want {
			t.Errorf("rank %d: Boot's records %s; want %s", r, got, want)
		}
	}
	for i := 0; i < 1000; i++ {
		if err := rs[1].t.Send(0, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 1000; i++ {
		if got := string(<-rs[0].frames); got != fmt.Sprint(i) {
			t.Fatalf("frame %d arrived as %s", i, got)
		}
	}
	if rs[0].t.MaxFrame() != 1<<20 {
		t.Fatalf("MaxFrame %d", rs[0].t.MaxFrame())
	}
	rs[2].t.Close()
	rs[2].t.Close() // idempotent
	s.Shutdown()
	for _, r := range []int{0, 1} {
		select {
		case err := <-rs[r].fatal:
			if !errors.Is(err, transport.ErrLost) {
				t.Fatalf("rank %d: %v", r, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("rank %d: no loss reported after the server went away", r)
		}
		rs[r].t.Close()
	}
	select {
	case err := <-rs[2].fatal:
		t.Fatalf("closed link reported %v", err)
	default:
	}
}

func TestDialBadToken(t *testing.T) {
	s := serve(t)
	job := jobenv.Job{Rank: 0, Size: 2, URL: s.ClientURL(), Secret: "wrong", Prefix: "t"}
	_, err := transport.DialNATS(context.Background(), job, func([]byte) {}, func(error) {}, func(jobenv.Ctl) {})
	if err == nil {
		t.Fatal("connected with a wrong token")
	}
}

// A password or token in the job's URL stays out of the error that names it.
func TestDialErrorRedactsURL(t *testing.T) {
	for _, url := range []string{"nats://user:s3cretpw@127.0.0.1:1", "nats://s3cretpw@127.0.0.1:1", "nats://u:s3cretpw@127.0.0.1:x"} {
		job := jobenv.Job{Rank: 0, Size: 2, URL: url, Prefix: "t"}
		_, err := transport.DialNATS(context.Background(), job, func([]byte) {}, func(error) {}, func(jobenv.Ctl) {})
		if err == nil || strings.Contains(err.Error(), "s3cretpw") || !strings.Contains(err.Error(), "cannot connect to nats://") {
			t.Errorf("DialNATS(%s) = %v; want an error naming the URL without its secret", url, err)
		}
	}
}
