package cluster_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestMultiHostSlowReader: decorun's stdout is read by a reader that stops
// for 6 s (a pager, a terminal's Ctrl-S) while a remote host's rank prints
// 1000 lines of 300 bytes a second. The host is not declared lost (its
// heartbeats do not travel with its output), the job exits 0, and every
// line arrives once, in order: output pauses, it is not dropped.
func TestMultiHostSlowReader(t *testing.T) {
	nh := makeHosts(t, 2)
	const count = 7000
	cmd := exec.Command(filepath.Join(bin, "decorun"), append(nh.args(1), "-n", "2", prog(t, "talk"), "1", "1000", fmt.Sprint(count))...)
	cmd.Dir = repo
	var errMu sync.Mutex
	var stderr strings.Builder
	cmd.Stderr = &lockedWriter{mu: &errMu, b: &stderr}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	next, paused := 0, false
	var bad []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "line ") {
			continue
		}
		if !paused {
			paused = true
			time.Sleep(6 * time.Second)
		}
		var r, i int
		if _, err := fmt.Sscanf(l, "line %d %d ", &r, &i); err != nil || r != 1 || i != next || len(l) != 299 {
			bad = append(bad, fmt.Sprintf("%.40q (want line 1 %d)", l, next))
		} else {
			next++
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		errMu.Lock()
		defer errMu.Unlock()
		t.Fatalf("decorun still running a minute after its stdout ended; stderr:\n%s", stderr.String())
	}
	if err != nil {
		t.Fatalf("decorun: %v, after %d lines; stderr:\n%s", err, next, stderr.String())
	}
	if strings.Contains(stderr.String(), "WARNING") {
		t.Errorf("a job on decorun's own server (TLS) warned:\n%s", stderr.String())
	}
	if next != count || len(bad) > 0 {
		t.Fatalf("got %d lines in order, want %d; out of order or mangled: %v", next, count, bad[:min(len(bad), 5)])
	}
	noLeftovers(t)
}

// TestMultiHostCutWhilePrinting cuts the link of a host whose ranks print
// 5000 lines a second, started through an ssh-like launch agent (relay:
// the agent's streams cross the cut link, so they stall without ending,
// and decorun killing its end of the connection does not reach the
// agent). decorun ends the job naming the host, and the cut-off agent
// kills its ranks and exits on its own, within the 4 s docs/multihost.md states
// (checked with a 10 s hang guard).
func TestMultiHostCutWhilePrinting(t *testing.T) {
	nh := makeHosts(t, 1)
	host := nh.server[:strings.LastIndex(nh.server, ".")] + ".11" // makeHosts' address of the first host
	relay, talk := prog(t, "relay"), prog(t, "talk")
	addr := net.JoinHostPort(host, "7070")
	srv := exec.Command("ip", "netns", "exec", nh.names[0], relay, "serve", addr)
	var srvMu sync.Mutex
	var srvLog strings.Builder
	srv.Stderr = &lockedWriter{mu: &srvMu, b: &srvLog}
	srvText := func() string {
		srvMu.Lock()
		defer srvMu.Unlock()
		return srvLog.String()
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("relay server did not start: %v\n%s", err, srvText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := start(t, "-H", host+":2", "--launch-agent", relay+" dial {host}:7070", "--server-addr", nh.server,
		"-n", "2", talk, "-1", "5000", "-1")
	p.pids(2)
	p.waitLine("line 1 ", time.Minute)
	p.waitLine("line 0 ", time.Minute)
	remote := jobProcesses()
	delete(remote, p.cmd.Process.Pid) // decorun itself: left are the agent and 2 ranks
	if len(remote) != 3 {
		t.Fatalf("want the agent and 2 ranks running, found %v", remote)
	}
	t.Cleanup(func() { // whatever the outcome, by pid
		for pid := range remote {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	cut := time.Now()
	sh(t, "ip", "link", "set", nh.links[0], "down")
	if code := p.wait(time.Minute); code == 0 {
		t.Fatalf("exit 0 after the host was cut off; stderr:\n%s", p.errText())
	}
	if e := p.errText(); !regexp.MustCompile(`host ` + regexp.QuoteMeta(host) + ` (stopped responding|lost the launcher)`).MatchString(e) {
		t.Fatalf("stderr does not name the lost host:\n%s", e)
	}
	deadline := time.Now().Add(10 * time.Second)
	goneAt := map[int]time.Duration{} // after the cut
	for len(goneAt) < len(remote) && time.Now().Before(deadline) {
		for pid := range remote {
			if _, seen := goneAt[pid]; !seen && !running(pid) {
				goneAt[pid] = time.Since(cut).Round(10 * time.Millisecond)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var report, left []string
	for pid, what := range remote {
		if d, ok := goneAt[pid]; ok {
			who := "rank " + fmt.Sprint(pid)
			if strings.Contains(what, "__agent") {
				who = "agent " + fmt.Sprint(pid)
			}
			report = append(report, fmt.Sprintf("%s gone %v after the cut", who, d))
		} else {
			left = append(left, fmt.Sprintf("pid %d (%s)", pid, what))
		}
	}
	t.Logf("cut-off host: decorun exited %v after the cut; %s", p.ended.Sub(cut).Round(10*time.Millisecond), strings.Join(report, ", "))
	if len(left) > 0 {
		t.Fatalf("still running on the cut-off host %v after decorun exited: %v; relay server's stderr:\n%s",
			time.Since(p.ended).Round(time.Second), left, srvText())
	}
	if !regexp.MustCompile(`decorun agent on ` + regexp.QuoteMeta(host) + `: no heartbeat from the launcher for [0-9.]+s; killed its ranks`).MatchString(srvText()) {
		t.Errorf("the agent did not say why it killed its ranks; relay server's stderr:\n%s", srvText())
	}
}

// jobProcesses returns the running decorun agents and rank programs (not
// the relay), pid to command line.
func jobProcesses() map[int]string {
	ps := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || !strings.HasPrefix(exe, bin+string(filepath.Separator)) || filepath.Base(exe) == "relay" {
			continue
		}
		var pid int
		fmt.Sscan(e.Name(), &pid)
		cl, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		ps[pid] = strings.ReplaceAll(strings.TrimRight(string(cl), "\x00"), "\x00", " ")
	}
	return ps
}

// running reports whether pid is a live process (not gone, not a zombie).
func running(pid int) bool {
	_, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil
}

// TestMultiHostClearTextWarning: a job with ranks on another host, on an
// existing server reached with a nats:// URL and no TLS, runs but warns
// loudly that its traffic crosses the network in clear text.
func TestMultiHostClearTextWarning(t *testing.T) {
	nh := makeHosts(t, 1)
	s, err := server.NewServer(&server.Options{Host: nh.server, Port: -1, NoLog: true, NoSigs: true, Authorization: "tok3n"})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	url := fmt.Sprintf("nats://%s:%d", nh.server, s.Addr().(*net.TCPAddr).Port)
	p := start(t, append(nh.args(1), "--nats-url", url, "--nats-token", "tok3n", "-n", "1", prog(t, "talk"), "0", "1", "0")...)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	if want := "decorun: WARNING: this job has ranks on other hosts and its NATS connection (--nats-url) does not use TLS: " +
		"its messages cross the network in CLEAR TEXT"; !strings.Contains(p.errText(), want) {
		t.Fatalf("stderr does not warn %q:\n%s", want, p.errText())
	}
	if strings.Contains(p.errText(), "tok3n") {
		t.Errorf("the warning shows the token:\n%s", p.errText())
	}
}
