package cluster_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// natsCluster starts k real nats-server instances on loopback ports,
// routed into one cluster, with a user "alice" (password "s3cret").
func natsCluster(t *testing.T, k int) ([]*server.Server, []string) {
	t.Helper()
	cports := make([]int, k)
	for i := range cports {
		cports[i] = freePort(t)
	}
	var srvs []*server.Server
	var urls []string
	for i := 0; i < k; i++ {
		var routes []string
		for j, p := range cports {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
			}
		}
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			Users:   []*server.User{{Username: "alice", Password: "s3cret"}},
			Cluster: server.ClusterOpts{Name: "c", Host: "127.0.0.1", Port: cports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("cluster node not ready")
		}
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		srvs = append(srvs, s)
		urls = append(urls, s.ClientURL())
	}
	// Wait for the full mesh of routes.
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range srvs {
		for s.NumRoutes() < k-1 {
			if time.Now().After(deadline) {
				t.Fatalf("cluster routes not up: %d", s.NumRoutes())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return srvs, urls
}

// TestExistingCluster runs two ring jobs at once on a 3-node NATS cluster
// with --nats-url and user/password credentials: both give the right
// answer (a stray frame of the other job would break its sequence checks),
// and the ranks were spread over the nodes.
func TestExistingCluster(t *testing.T) {
	srvs, urls := natsCluster(t, 3)
	ring := prog(t, "ring")
	os.Setenv("DECORUN_NATS_PASSWORD", "s3cret") // read by decorun's flag; not on the command line
	defer os.Unsetenv("DECORUN_NATS_PASSWORD")
	var wg sync.WaitGroup
	ps := make([]*proc, 2)
	for i := range ps {
		ps[i] = start(t, "-n", "6", "--nats-url", strings.Join(urls, ","), "--nats-user", "alice", ring)
	}
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.wait(2 * time.Minute) }()
	}
	wg.Wait()
	for i, p := range ps {
		if p.exit != 0 {
			t.Fatalf("job %d: exit %d; stderr:\n%s", i, p.exit, p.errText())
		}
		if want := `Processor 0 received message "P0P1P2P3P4P5" from rank 5`; p.out() != want {
			t.Fatalf("job %d: output %q", i, p.out())
		}
	}
	for i, s := range srvs {
		// A server files a connection as closed when its read loop sees
		// the close, which may come after decorun has exited: wait a little.
		ranks := 0
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			cz, err := s.Connz(&server.ConnzOptions{State: server.ConnClosed})
			if err != nil {
				t.Fatal(err)
			}
			ranks = 0
			for _, c := range cz.Conns {
				if strings.HasPrefix(c.Name, "decorun rank ") {
					ranks++
				}
			}
			if ranks >= 4 || time.Now().After(deadline) {
				break
			}
		}
		if ranks != 4 { // 2 jobs x 6 ranks over 3 nodes: ranks r, r+3 of each job
			t.Errorf("node %d served %d rank connections, want 4", i, ranks)
		}
	}
	noLeftovers(t)
}

func TestExistingClusterBadCredentials(t *testing.T) {
	_, urls := natsCluster(t, 1)
	p := start(t, "-n", "2", "--nats-url", urls[0], "--nats-user", "alice", "--nats-password", "wrong", prog(t, "ring"))
	if code := p.wait(time.Minute); code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, p.errText())
	}
	if e := p.errText(); !strings.Contains(e, "cannot connect to the NATS server at "+urls[0]) || !strings.Contains(e, "uthorization") {
		t.Fatalf("stderr:\n%s", e)
	}
}

// TestJoinMode starts the ranks by hand, as srun or a Kubernetes Indexed
// Job would, with only the scheduler's variables, the server and the job id.
func TestJoinMode(t *testing.T) {
	_, urls := natsCluster(t, 2)
	ring := prog(t, "ring")
	for _, sched := range []string{"slurm", "kubernetes"} {
		t.Run(sched, func(t *testing.T) {
			const n = 4
			cmds := make([]*exec.Cmd, n)
			outs := make([]strings.Builder, n)
			for r := 0; r < n; r++ {
				cmd := exec.Command(ring)
				cmd.Env = append(os.Environ(), "DECORUN_NATS_URL="+strings.Join(urls, ","),
					"DECORUN_NATS_USER=alice", "DECORUN_NATS_PASSWORD=s3cret")
				switch sched {
				case "slurm":
					cmd.Env = append(cmd.Env, fmt.Sprintf("SLURM_PROCID=%d", r), fmt.Sprintf("SLURM_NTASKS=%d", n),
						"SLURM_JOB_ID=4242", "SLURM_STEP_ID=0", fmt.Sprintf("SLURM_LOCALID=%d", r%2), "SLURM_TASKS_PER_NODE=2(x2)")
				case "kubernetes":
					cmd.Env = append(cmd.Env, fmt.Sprintf("JOB_COMPLETION_INDEX=%d", r), fmt.Sprintf("DECORUN_SIZE=%d", n),
						"DECORUN_JOB=k8s-"+fmt.Sprint(time.Now().UnixNano()))
				}
				if sched == "kubernetes" && r > 0 {
					cmd.Env = append(cmd.Env[:len(cmd.Env)-1], cmds[0].Env[len(cmds[0].Env)-1]) // same job id
				}
				cmd.Stdout, cmd.Stderr = &outs[r], &outs[r]
				cmds[r] = cmd
			}
			runJoined(t, cmds, outs)
			if got, want := strings.TrimSpace(outs[0].String()), `Processor 0 received message "P0P1P2P3" from rank 3`; got != want {
				t.Fatalf("rank 0 printed %q, want %q", got, want)
			}
		})
	}
}

// TestExistingServerTLSToken: --nats-url with a token and TLS verified
// against a CA file.
func TestExistingServerTLSToken(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kb, _ := x509.MarshalECPrivateKey(key)
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, certPEM, 0o644)
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Authorization: "tok3n", TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}}, TLSTimeout: 5})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	url := fmt.Sprintf("tls://127.0.0.1:%d", s.Addr().(*net.TCPAddr).Port)
	p := start(t, "-n", "3", "--nats-url", url, "--nats-token", "tok3n", "--nats-ca", ca, prog(t, "ring"))
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	if want := `Processor 0 received message "P0P1P2" from rank 2`; p.out() != want {
		t.Fatalf("output %q", p.out())
	}
	// Without the CA the server's certificate is refused.
	p = start(t, "-n", "2", "--nats-url", url, "--nats-token", "tok3n", prog(t, "ring"))
	if code := p.wait(time.Minute); code != 1 || !strings.Contains(p.errText(), "certificate") {
		t.Fatalf("without --nats-ca: exit %d; stderr:\n%s", code, p.errText())
	}
}

// runJoined starts ranks that join through NATS by themselves (join mode),
// rank 0 last so that the others wait for it, and waits for each with a
// one-minute guard; a rank that fails or hangs fails the test, naming it.
func runJoined(t *testing.T, cmds []*exec.Cmd, outs []strings.Builder) {
	t.Helper()
	for r := len(cmds) - 1; r >= 0; r-- {
		if err := cmds[r].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for r, cmd := range cmds {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("rank %d: %v\n%s", r, err, outs[r].String())
			}
		case <-time.After(time.Minute):
			for _, c := range cmds {
				c.Process.Kill()
			}
			t.Fatalf("rank %d did not finish", r)
		}
	}
}
