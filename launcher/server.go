package launcher

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// jobServer is a job's embedded NATS server and the launcher's own
// in-process connection to it.
type jobServer struct {
	s      *server.Server
	nc     *nats.Conn
	secret string
	url    string
}

// randomHex returns n random bytes from crypto/rand in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// startServer starts a server on 127.0.0.1 and a random port, requiring a
// fresh random token, and connects to it in process.
func startServer(maxPending int64) (*jobServer, error) {
	js := &jobServer{secret: randomHex(32)}
	opts := &server.Options{
		Host:          "127.0.0.1",
		Port:          server.RANDOM_PORT,
		NoLog:         true,
		NoSigs:        true, // the launcher owns signals; the server's handler would os.Exit
		Authorization: js.secret,
		// Ranks bound what is queued for each other with credit windows;
		// a rank stopped with SIGSTOP must keep its connection.
		WriteDeadline: 24 * time.Hour,
		MaxPending:    maxPending,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, errors.New("nats-server: not ready for connections after 5s")
	}
	js.s, js.url = s, s.ClientURL()
	js.nc, err = nats.Connect("", nats.InProcessServer(s), nats.Token(js.secret),
		nats.Name("decorun"), nats.NoReconnect())
	if err != nil {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("connecting to the job's server in process: %w", err)
	}
	return js, nil
}

// close closes the launcher's connection and shuts the server down,
// waiting until it is done.
func (js *jobServer) close() {
	js.nc.Close()
	js.s.Shutdown()
	js.s.WaitForShutdown()
}
