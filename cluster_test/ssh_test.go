package cluster_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sshHost runs a real sshd on a loopback address and port, accepting a
// freshly generated key for the current user, and returns the launch agent
// command that reaches it.
func sshHost(t *testing.T, addr string) string {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/sshd", "/usr/bin/sshd"} {
			if _, e := os.Stat(p); e == nil {
				sshd, err = p, nil
			}
		}
	}
	if err != nil {
		t.Skip("sshd not installed (Debian: apt-get install openssh-server; .ci/run does); skipped")
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("ssh not installed; skipped")
	}
	if syscall.Geteuid() != 0 {
		t.Skip("the ssh test runs sshd as root; skipped")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	key := filepath.Join(dir, "id")
	hostKey := filepath.Join(dir, "host")
	for _, k := range []string{key, hostKey} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, _ := os.ReadFile(key + ".pub")
	auth := filepath.Join(dir, "authorized_keys")
	os.WriteFile(auth, pub, 0o600)
	port := freePort(t)
	conf := filepath.Join(dir, "sshd_config")
	os.WriteFile(conf, []byte(fmt.Sprintf(`ListenAddress %s:%d
HostKey %s
AuthorizedKeysFile %s
PidFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
`, addr, port, hostKey, auth, filepath.Join(dir, "sshd.pid"))), 0o600)
	os.MkdirAll("/run/sshd", 0o755)
	cmd := exec.Command(sshd, "-D", "-e", "-f", conf)
	var logb strings.Builder
	cmd.Stderr = &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", net.JoinHostPort(addr, fmt.Sprint(port)))
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("sshd did not start: %s", logb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Sprintf("ssh -p %d -i %s -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR {host}", port, key)
}

// TestSSHLaunch starts ranks on "another host" through a real ssh
// connection to a real sshd (on 127.0.0.2, which decorun does not treat as
// this host): the agent and the ranks run under sshd, talk to the job's
// server over TLS, and the ring completes.
func TestSSHLaunch(t *testing.T) {
	agent := sshHost(t, "127.0.0.2")
	p := start(t, "-H", "localhost:1,127.0.0.2:2", "--launch-agent", agent, "--server-addr", "127.0.0.1",
		"-n", "3", "--tag-output", prog(t, "ring"))
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	if want := `[0] Processor 0 received message "P0P1P2" from rank 2`; p.out() != want {
		t.Fatalf("output %q; stderr:\n%s", p.out(), p.errText())
	}
	// A remote failure through ssh: exit code and message.
	p = start(t, "-H", "localhost:1,127.0.0.2:2", "--launch-agent", agent, "--server-addr", "127.0.0.1",
		"-n", "3", prog(t, "fault"), "exit", "2", "4")
	p.pids(3)
	if code := p.wait(time.Minute); code != 4 {
		t.Fatalf("exit %d, want 4; stderr:\n%s", code, p.errText())
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && leftovers() > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	noLeftovers(t)
}
