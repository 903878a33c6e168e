// Package commtest runs several ranks of a job inside one test process,
// over a real embedded nats-server configured as decorun configures it.
//
//	func TestX(t *testing.T) {
//		cs := commtest.World(t, 4) // cs[r] is rank r's world communicator
//		...
//	}
package commtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/decorun/decorun/comm"
	"github.com/nats-io/nats-server/v2/server"
)

// Server starts an embedded nats-server on 127.0.0.1 with a random token,
// stopped at the end of the test, and returns its URL and token.
func Server(tb testing.TB) (url, token string) {
	tb.Helper()
	url, token, stop, err := startServer()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return url, token
}

// startServer starts the nats-server Server and Start use; stop shuts it
// down.
func startServer() (url, token string, stop func(), err error) {
	b := make([]byte, 16)
	rand.Read(b)
	token = hex.EncodeToString(b)
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Authorization: token, WriteDeadline: time.Hour})
	if err != nil {
		return "", "", nil, fmt.Errorf("commtest: nats-server: %w", err)
	}
	s.Start()
	stop = func() { s.Shutdown(); s.WaitForShutdown() }
	if !s.ReadyForConnections(5 * time.Second) {
		stop()
		return "", "", nil, fmt.Errorf("commtest: nats-server not ready after 5 s")
	}
	return s.ClientURL(), token, stop, nil
}

var jobs sync.Mutex
var jobSeq int

// World connects n ranks, each with its own NATS connection, and closes
// them at the end of the test (before the server stops). Their data path is
// $DECORUN_TRANSPORT (comm.DefaultTransport when unset), so that
// `DECORUN_TRANSPORT=shm go test ./...` runs a package's tests over shared
// memory.
func World(tb testing.TB, n int) []*comm.Comm {
	tb.Helper()
	return WorldOn(tb, n, os.Getenv("DECORUN_TRANSPORT"))
}

// WorldOn is World with the data path named: "auto" (or ""), "nats",
// "shm" or "tcp".
func WorldOn(tb testing.TB, n int, transport string) []*comm.Comm {
	tb.Helper()
	url, token := Server(tb)
	cs, err := connect(url, token, n, transport)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { closeAll(cs) })
	return cs
}

// WorldHosts is World with ranks placed on pretend hosts: host[r] names
// rank r's host, and each rank's Job.HostRanks lists the ranks with the
// same name, as decorun's launcher lists each host's ranks. The ranks still
// share this process and host; only what comm believes about hosts
// differs (collectives on communicators that span the pretend hosts run
// hierarchically; shared memory joins only ranks of one pretend host).
func WorldHosts(tb testing.TB, host []int) []*comm.Comm {
	tb.Helper()
	url, token := Server(tb)
	cs, err := connectHosts(url, token, host, os.Getenv("DECORUN_TRANSPORT"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { closeAll(cs) })
	return cs
}

// Start is World for Example functions and programs, which have no
// testing.TB: it starts an embedded nats-server, connects n ranks over it
// and returns them with stop, which closes every rank and then the server.
// Each rank's data path is $DECORUN_TRANSPORT, as in World.
func Start(n int) (cs []*comm.Comm, stop func(), err error) {
	url, token, stopServer, err := startServer()
	if err != nil {
		return nil, nil, err
	}
	if cs, err = connect(url, token, n, os.Getenv("DECORUN_TRANSPORT")); err != nil {
		stopServer()
		return nil, nil, err
	}
	return cs, func() { closeAll(cs); stopServer() }, nil
}

// connect connects the n ranks of a new job over the server at url; if a
// rank fails, it closes the others and names the rank.
func connect(url, token string, n int, transport string) ([]*comm.Comm, error) {
	host := make([]int, n) // every rank on this host: it is one process
	if k, err := strconv.Atoi(os.Getenv(EnvHosts)); err == nil && k > 0 {
		for r := range host {
			host[r] = r / k
		}
	}
	return connectHosts(url, token, host, transport)
}

// EnvHosts set to K makes World and Start place ranks on pretend hosts of
// K ranks each (ranks 0..K-1 on the first, and so on), as WorldHosts does,
// so that a package's tests run their communicators across hosts:
// COMMTEST_HOSTS=2 go test ./conformance.
const EnvHosts = "COMMTEST_HOSTS"

// connectHosts is connect with rank r on pretend host host[r].
func connectHosts(url, token string, host []int, transport string) ([]*comm.Comm, error) {
	n := len(host)
	jobs.Lock()
	jobSeq++
	id := fmt.Sprintf("commtest%d", jobSeq)
	jobs.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := make([]byte, 32)
	rand.Read(key)
	cs := make([]*comm.Comm, n)
	errs := make([]error, n)
	ranks := make([][]int, n) // each rank's host's ranks
	for r := range n {
		for q := range n {
			if host[q] == host[r] {
				ranks[r] = append(ranks[r], q)
			}
		}
	}
	var wg sync.WaitGroup
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs[r], errs[r] = comm.Connect(ctx, comm.Job{Rank: r, Size: n, URL: url, Token: token, ID: id, Key: hex.EncodeToString(key),
				Transport: transport, HostRanks: ranks[r]})
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			closeAll(cs)
			return nil, fmt.Errorf("commtest: rank %d: %w", r, err)
		}
	}
	return cs, nil
}

func closeAll(cs []*comm.Comm) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

// Run calls f for every rank concurrently and reports each rank's error.
func Run(tb testing.TB, cs []*comm.Comm, f func(c *comm.Comm) error) {
	tb.Helper()
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
			tb.Errorf("rank %d: %v", i, err)
		}
	}
}
