package launcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/transport"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// jobServer is a job's NATS server and the launcher's own connection to
// it: an embedded server (s set) or an existing one (s nil).
type jobServer struct {
	s         *server.Server
	nc        *nats.Conn
	info      jobenv.Job // URL and credentials the ranks use
	remoteURL string     // the URL ranks on other hosts use, if any
}

// randomHex returns n random bytes from crypto/rand in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// startServer starts a server on 127.0.0.1 and a random port, requiring a
// fresh random token, and connects to it in process. With remoteAddr set,
// it listens on all interfaces instead and requires TLS with a certificate
// made for this job (for 127.0.0.1 and remoteAddr), which the ranks pin.
func startServer(ctx context.Context, maxPending int64, remoteAddr string) (*jobServer, error) {
	secret := randomHex(32)
	js := &jobServer{info: jobenv.Job{Secret: secret, JobKey: randomHex(32)}}
	opts := &server.Options{
		Host:          "127.0.0.1",
		Port:          server.RANDOM_PORT,
		NoLog:         true,
		NoSigs:        true, // the launcher owns signals; the server's handler would os.Exit
		Authorization: secret,
		// Ranks bound what is queued for each other with credit windows;
		// a rank stopped with SIGSTOP must keep its connection.
		WriteDeadline: 24 * time.Hour,
		MaxPending:    maxPending,
	}
	var certPEM string
	if remoteAddr != "" {
		tc, pemText, err := jobCert(remoteAddr)
		if err != nil {
			return nil, err
		}
		opts.Host, opts.TLSConfig, opts.TLSTimeout, certPEM = "0.0.0.0", tc, 5, pemText
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	s.Start()
	for deadline := time.Now().Add(5 * time.Second); !s.ReadyForConnections(10 * time.Millisecond); {
		err := ctx.Err()
		if err == nil && time.Now().After(deadline) {
			err = errors.New("nats-server: not ready for connections after 5s")
		}
		if err != nil {
			s.Shutdown()
			s.WaitForShutdown()
			return nil, err
		}
	}
	js.s, js.info.URL = s, s.ClientURL()
	if remoteAddr != "" {
		port := s.Addr().(*net.TCPAddr).Port
		js.info.URL = fmt.Sprintf("tls://127.0.0.1:%d", port)
		js.info.CAPEM = certPEM
		js.remoteURL = fmt.Sprintf("tls://%s", net.JoinHostPort(remoteAddr, strconv.Itoa(port)))
	}
	js.nc, err = nats.Connect("", nats.InProcessServer(s), nats.Token(secret),
		nats.Name("decorun"), nats.NoReconnect())
	if err != nil {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("connecting to the job's server in process: %w", err)
	}
	return js, nil
}

// connectExternal connects to an existing server or cluster; it gives up
// as soon as ctx ends.
func connectExternal(ctx context.Context, c NATSConfig) (*jobServer, error) {
	// The job's own secret key, apart from the credentials: others on
	// the same NATS account know those.
	info := jobenv.Job{URL: c.URL, Secret: c.Token, JobKey: randomHex(32), User: c.User, Password: c.Password,
		CredsFile: c.CredsFile, NkeyFile: c.NkeyFile, CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile}
	opts, err := transport.Auth(info)
	if err != nil {
		return nil, err
	}
	// The dialer resolves names under ctx too (SkipHostLookup).
	d := &ctxDialer{ctx: ctx, timeout: 10 * time.Second}
	nc, err := nats.Connect(c.URL, append(opts, nats.Name("decorun"), nats.NoReconnect(), nats.Timeout(10*time.Second),
		nats.SetCustomDialer(d), nats.SkipHostLookup())...)
	d.release()
	if err == nil && ctx.Err() != nil {
		nc.Close()
		err = ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	return &jobServer{nc: nc, info: info}, nil
}

// close closes the launcher's connection and shuts an embedded server down,
// waiting until it is done.
func (js *jobServer) close() {
	js.nc.Close()
	if js.s != nil {
		js.s.Shutdown()
		js.s.WaitForShutdown()
	}
}
