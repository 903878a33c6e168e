package cluster_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestTCPSlowLossyLink streams 1 GiB (100,000 messages of mixed sizes, the
// largest 8 MiB) between two hosts (network namespaces) whose link delays
// every packet and drops some (tc netem; a rate limit that drops the
// excess where the kernel has no netem), over direct TCP with TLS: every
// message arrives, in order, with the checksum the sender computed, and
// the receiver's memory stays bounded.
func TestTCPSlowLossyLink(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 1 GiB over a slowed link")
	}
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("needs iproute2's tc; skipped")
	}
	nh := makeHosts(t, 2)
	for _, h := range nh.names {
		// netem delays and drops; a kernel without it (the CI VM's) gets a
		// token bucket whose queue holds 1 ms at 400 Mbit/s and drops
		// what does not fit, so TCP still meets loss and retransmits.
		netem := []string{"ip", "netns", "exec", h, "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms", "loss", "0.1%"}
		out, err := exec.Command(netem[0], netem[1:]...).CombinedOutput()
		switch {
		case err == nil:
			t.Logf("%s: netem delay 1ms loss 0.1%%", h)
		case strings.Contains(string(out), "qdisc kind is unknown"):
			sh(t, "ip", "netns", "exec", h, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "400mbit", "burst", "64kb", "latency", "1ms")
			t.Logf("%s: no netem in this kernel; tbf rate 400mbit latency 1ms", h)
		default:
			t.Fatalf("%s: %v\n%s", strings.Join(netem, " "), err, out)
		}
	}
	began := time.Now()
	p := start(t, append(nh.args(1), "-n", "2", "--transport=tcp", prog(t, "stream"), "100000", "1024")...)
	pids := p.pids(2)
	if code := p.wait(8 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s\nstdout:\n%s", code, p.errText(), p.out())
	}
	out := p.out()
	if !strings.Contains(out, "stream ok: 100000 messages") {
		t.Fatalf("the receiver did not get every byte:\n%s", out)
	}
	if recv, limit := maxrss(t, out, 1), 256<<10; recv > limit {
		t.Errorf("receiver's peak RSS %d KiB, above %d KiB", recv, limit)
	}
	t.Logf("1 GiB in %v", p.ended.Sub(began))
	for _, h := range nh.names {
		st, _ := exec.Command("ip", "netns", "exec", h, "tc", "-s", "qdisc", "show", "dev", "eth0").CombinedOutput()
		t.Logf("%s: %s", h, strings.Join(strings.Fields(string(st)), " "))
	}
	noLeftovers(t, pids...)
}
