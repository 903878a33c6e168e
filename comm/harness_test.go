package comm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer runs a real embedded nats-server configured as decorun does.
func startServer(t testing.TB) (url, secret string) {
	t.Helper()
	b := make([]byte, 16)
	rand.Read(b)
	secret = hex.EncodeToString(b)
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Authorization: secret, WriteDeadline: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL(), secret
}

// world starts n ranks in this process, each with its own NATS connection,
// and closes them at the end of the test.
func world(t testing.TB, n int) []*Comm {
	t.Helper()
	return worldOn(t, n, testTransport)
}

// worldOn is world over the data path tr.
func worldOn(t testing.TB, n int, tr string) []*Comm {
	t.Helper()
	url, secret := startServer(t)
	id := t.Name()
	cs := make([]*Comm, n)
	errs := make([]error, n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for r := 0; r < n; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := jobenv.Job{Rank: r, Size: n, LocalRank: r, LocalSize: n, ID: "t", URL: url, Secret: secret, JobKey: secret,
				Prefix: "test." + sanitize(id), Transport: tr}
			cs[r], errs[r] = connect(ctx, job)
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	return cs
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// par runs f for every rank concurrently and fails the test with each error.
func par(t testing.TB, cs []*Comm, f func(c *Comm) error) {
	t.Helper()
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(c)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", i, err)
		}
	}
}

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a hang guard, not a timing assertion: -race on a loaded 2-core machine is slow
	t.Cleanup(cancel)
	return ctx
}

// testTransport is the data path of world's ranks: DECORUN_TRANSPORT, so
// that `DECORUN_TRANSPORT=shm go test ./comm` runs every test over shared
// memory; TestSHM sets it for a selection.
var testTransport = os.Getenv(jobenv.EnvTransport)

func jobSingleton() jobenv.Job { return jobenv.Job{Rank: 0, Size: 1, LocalSize: 1} }
