package cluster_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	iproc "github.com/decorun/decorun/internal/proc"
)

// netHosts is a set of test hosts: Linux network namespaces joined by veth
// pairs to a bridge in this namespace, each with its own address.
type netHosts struct {
	names  []string // namespace names, used as host names
	links  []string // the root-side veth of each host
	bridge string
	server string // this machine's address on the bridge
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// makeHosts creates k namespaces on 10.77.X.0/24 and removes them at the end.
func makeHosts(t *testing.T, k int) *netHosts {
	t.Helper()
	if syscall.Geteuid() != 0 {
		t.Skip("multi-host tests need root to create network namespaces (ip netns); skipped")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("multi-host tests need iproute2's ip command; skipped")
	}
	b := make([]byte, 2)
	rand.Read(b)
	id := hex.EncodeToString(b)
	subnet := fmt.Sprintf("10.77.%d", int(b[0])%200+20)
	nh := &netHosts{bridge: "dcb" + id, server: subnet + ".1"}
	sh(t, "ip", "link", "add", nh.bridge, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", nh.bridge).Run() })
	sh(t, "ip", "addr", "add", nh.server+"/24", "dev", nh.bridge)
	sh(t, "ip", "link", "set", nh.bridge, "up")
	for i := 0; i < k; i++ {
		name := fmt.Sprintf("dc%sh%d", id, i+1)
		link := fmt.Sprintf("dc%sv%d", id, i+1)
		sh(t, "ip", "netns", "add", name)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
		sh(t, "ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", name)
		t.Cleanup(func() { exec.Command("ip", "link", "del", link).Run() })
		sh(t, "ip", "link", "set", link, "master", nh.bridge, "up")
		sh(t, "ip", "-n", name, "addr", "add", fmt.Sprintf("%s.%d/24", subnet, 11+i), "dev", "eth0")
		sh(t, "ip", "-n", name, "link", "set", "eth0", "up")
		sh(t, "ip", "-n", name, "link", "set", "lo", "up")
		nh.names = append(nh.names, name)
		nh.links = append(nh.links, link)
	}
	return nh
}

func (nh *netHosts) args(slots int) []string {
	var hs []string
	for _, n := range nh.names {
		hs = append(hs, fmt.Sprintf("%s:%d", n, slots))
	}
	return []string{"-H", strings.Join(hs, ","), "--launch-agent", "ip netns exec {host}", "--server-addr", nh.server}
}

// TestMultiHostRing runs ranks on 3 hosts (namespaces): each rank is in its
// host's namespace, and the ring and an Allreduce go through the job's
// server on the bridge, so their traffic crosses the namespaces.
func TestMultiHostRing(t *testing.T) {
	nh := makeHosts(t, 3)
	args := append(nh.args(2), "-n", "6", "--tag-output", "sh", "-c", "ip -o -4 addr show dev eth0 | awk '{print $4}'")
	p := start(t, args...)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	lines := strings.Split(p.out(), "\n")
	sort.Strings(lines)
	prefix := nh.server[:strings.LastIndex(nh.server, ".")]
	want := []string{"[0] %s.11/24", "[1] %s.11/24", "[2] %s.12/24", "[3] %s.12/24", "[4] %s.13/24", "[5] %s.13/24"}
	for i := range want {
		want[i] = fmt.Sprintf(want[i], prefix)
	}
	if strings.Join(lines, ",") != strings.Join(want, ",") {
		t.Fatalf("ranks ran at %v, want %v (by slot, 2 per host)", lines, want)
	}

	// Each host's agent binds its two ranks to a share of its CPUs each,
	// as the launcher does on its own host.
	p = start(t, append(nh.args(2), "-n", "6", "--tag-output", "sh", "-c",
		`echo "$DECORUN_LOCAL_RANK ${DECORUN_CPUS-unset} $(grep Cpus_allowed_list /proc/self/status | cut -f2)"`)...)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("bindings: exit %d; stderr:\n%s", code, p.errText())
	}
	cpus, err := iproc.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(p.out(), "\n") {
		f := strings.Fields(l) // [r] local DECORUN_CPUS allowed
		local, _ := strconv.Atoi(f[1])
		want := jobenv.FormatRanks(iproc.Share(cpus, local, 2))
		if want == "" {
			want = "unset " + jobenv.FormatRanks(cpus)
		} else {
			want += " " + want
		}
		if len(f) != 4 || strings.Join(f[2:], " ") != want {
			t.Errorf("bindings: %q; want local rank %s on %q", l, f[1], want)
		}
	}

	// Lines written in pieces with pauses by ranks on several hosts, two
	// per host: each comes out whole, whatever the others print meanwhile.
	p = start(t, append(nh.args(2), "-n", "6", "--tag-output", "sh", "-c", "printf 'part1-'; sleep 0.3; printf 'part2'; sleep 0.3; echo -end")...)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("pieces: exit %d; stderr:\n%s", code, p.errText())
	}
	lines = strings.Split(p.out(), "\n")
	sort.Strings(lines)
	if want := "[0] part1-part2-end,[1] part1-part2-end,[2] part1-part2-end,[3] part1-part2-end,[4] part1-part2-end,[5] part1-part2-end"; strings.Join(lines, ",") != want {
		t.Fatalf("lines written in pieces came out as %q", lines)
	}

	p = start(t, append(nh.args(2), "-n", "6", prog(t, "ring"))...)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("ring: exit %d; stderr:\n%s", code, p.errText())
	}
	if want := `Processor 0 received message "P0P1P2P3P4P5" from rank 5`; p.out() != want {
		t.Fatalf("ring output %q", p.out())
	}

	p = start(t, append(nh.args(2), "-n", "6", "--map-by", "node", prog(t, "allreduce"))...)
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Fatalf("allreduce: exit %d; stderr:\n%s", code, p.errText())
	}
	if want := "allreduce ok: 6 ranks, 300000 elements"; p.out() != want {
		t.Fatalf("allreduce output %q", p.out())
	}
	noLeftovers(t)
}

// TestMultiHostFailure: a rank failing on a remote host ends the job with
// its code and a message naming the rank; nothing is left on any host.
func TestMultiHostFailure(t *testing.T) {
	nh := makeHosts(t, 2)
	p := start(t, append(nh.args(2), "-n", "4", prog(t, "fault"), "exit", "3", "5")...)
	p.pids(4)
	if code := p.wait(time.Minute); code != 5 {
		t.Fatalf("exit %d, want 5; stderr:\n%s", code, p.errText())
	}
	if e := p.errText(); !regexp.MustCompile(`rank 3 \(pid \d+ on host ` + nh.names[1] + `\) exited with code 5`).MatchString(e) {
		t.Fatalf("stderr does not name rank 3, its host and code 5:\n%s", e)
	}
	noLeftovers(t)

	// SIGINT to decorun reaches the remote ranks too.
	p = start(t, append(nh.args(2), "-n", "4", prog(t, "fault"), "wait", "0")...)
	p.pids(4)
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(time.Minute); code != 130 {
		t.Fatalf("SIGINT: exit %d, want 130; stderr:\n%s", code, p.errText())
	}
	noLeftovers(t)
}

// TestMultiHostLinkCut cuts a host's link mid-job: the job ends within 5 s
// with a message naming the host, and no rank is left on any host.
func TestMultiHostLinkCut(t *testing.T) {
	nh := makeHosts(t, 3)
	p := start(t, append(nh.args(1), "-n", "3", prog(t, "fault"), "wait", "0")...)
	p.pids(3)
	time.Sleep(500 * time.Millisecond)
	cut := time.Now()
	sh(t, "ip", "link", "set", nh.links[1], "down")
	code := p.wait(time.Minute)
	t.Logf("job ended %v after the link of %s was cut", p.ended.Sub(cut), nh.names[1])
	if code == 0 {
		t.Fatalf("exit 0 after a host was cut off; stderr:\n%s", p.errText())
	}
	// Either side may notice first: the launcher ("host X stopped
	// responding") or the cut-off agent ("host X lost the launcher").
	if e := p.errText(); !regexp.MustCompile(`rank 1 .*host ` + nh.names[1] + ` (stopped responding|lost the launcher)`).MatchString(e) {
		t.Fatalf("stderr does not name the lost host:\n%s", e)
	}
	// The cut-off host's agent notices the launcher's silence and kills its
	// rank; give it its heartbeat timeout.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && leftovers() > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	noLeftovers(t)
}

// TestMultiHostPaths: with auto, ranks of one host exchange frames through
// shared memory and ranks of different hosts over direct TCP (encrypted:
// the job uses TLS), 4 MiB to every peer arriving intact, also with the
// ranks on decorun's own host (which listen at --server-addr);
// --transport=nats keeps everything on NATS.
func TestMultiHostPaths(t *testing.T) {
	nh := makeHosts(t, 2)
	args := nh.args(2)
	args[1] = "localhost:2," + args[1] // -H: decorun's host first, then the namespaces
	p := start(t, append(args, "-n", "6", "--transport=auto", prog(t, "paths"), fmt.Sprint(4<<20))...)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	if got, want := sortedLines(p.out()), wantPaths(6, 2, "shm", "tcp"); got != want {
		t.Errorf("paths\n%s\nwant\n%s", got, want)
	}
	p = start(t, append(nh.args(2), "-n", "4", "--transport=nats", prog(t, "paths"))...)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("--transport=nats: exit %d; stderr:\n%s", code, p.errText())
	}
	if got, want := sortedLines(p.out()), wantPaths(4, 2, "nats", "nats"); got != want {
		t.Errorf("--transport=nats: paths\n%s\nwant\n%s", got, want)
	}
	// DECORUN_TRANSPORT in decorun's own environment is the flag: the
	// ranks on the other hosts, started without that environment (as ssh
	// starts them; here env -u), get it too. (They used to take auto and
	// wait for ever for the TCP addresses of the ranks on NATS.)
	envArgs := slices.Clone(args)
	envArgs[slices.Index(envArgs, "--launch-agent")+1] = "env -u DECORUN_TRANSPORT ip netns exec {host}"
	p = startEnv(t, []string{"DECORUN_TRANSPORT=nats"}, append(envArgs, "-n", "6", "--timeout", "30", prog(t, "paths"))...)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("DECORUN_TRANSPORT=nats: exit %d; stderr:\n%s", code, p.errText())
	}
	if got, want := sortedLines(p.out()), wantPaths(6, 2, "nats", "nats"); got != want {
		t.Errorf("DECORUN_TRANSPORT=nats: paths\n%s\nwant\n%s", got, want)
	}
	noLeftovers(t)
}

// TestBenchAcrossHosts: decorun bench runs its ranks on other hosts with
// decorun's placement flags (-H, --launch-agent, --server-addr), as a user
// measures a cluster: latency between two namespace hosts, and Allreduce
// over 2 ranks on each of 3 hosts, each a line of figures. The 1 MiB
// Allreduce moves shared-memory and TCP frames through each rank at once
// (it caught a shared-memory frame given to the TCP link for reuse, which
// corrupted both streams).
func TestBenchAcrossHosts(t *testing.T) {
	nh := makeHosts(t, 3)
	for _, tc := range []struct {
		n     string
		slots int
		bench string
	}{{"2", 1, "latency"}, {"6", 2, "allreduce"}} {
		args := append([]string{"bench", "-n", tc.n}, nh.args(tc.slots)...)
		args = append(args, tc.bench, "--sizes", "64K,1M", "--iters", "20")
		p := start(t, args...)
		if code := p.wait(2 * time.Minute); code != 0 {
			t.Fatalf("decorun %v: exit %d; stderr:\n%s", args, code, p.errText())
		}
		var rows int
		for _, l := range strings.Split(p.out(), "\n") {
			if f := strings.Fields(l); len(f) >= 4 && (f[0] == "64K" || f[0] == "1M") {
				rows++
			}
		}
		if rows != 2 {
			t.Errorf("bench %s across hosts: %d rows of figures; output:\n%s", tc.bench, rows, p.out())
		}
	}
	noLeftovers(t)
}

// sniff counts the packets through network interface dev (in either
// direction) that hold want, until the returned stop is called, which
// returns the count.
func sniff(t *testing.T, dev string, want []byte) (stop func() int) {
	t.Helper()
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	const ethPAll = 0x0003 // ETH_P_ALL, in network order below
	proto := int(ethPAll<<8&0xff00 | ethPAll>>8)
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, proto)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	tv := syscall.NsecToTimeval(int64(100 * time.Millisecond))
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	var done atomic.Bool
	var n atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 256<<10)
		for !done.Load() {
			m, _, err := syscall.Recvfrom(fd, buf, 0)
			if err == nil && bytes.Contains(buf[:m], want) {
				n.Add(1)
			}
		}
	})
	return func() int {
		done.Store(true)
		wg.Wait()
		syscall.Close(fd)
		return int(n.Load())
	}
}

// TestMultiHostPlain: decorun --tcp-encrypt=false on 3 namespace hosts,
// 2 ranks each: every rank gets 1 MiB from every other, every byte
// checked, over shared memory within a host and direct TCP across, and
// the payloads cross the hosts' links in clear text; with encryption (the
// default, and --tcp-encrypt=true) the same job's payloads never appear
// on the wire. A job whose ranks disagree (one rank with
// DECORUN_TCP_ENCRYPT=false) fails, naming the rank and both settings.
func TestMultiHostPlain(t *testing.T) {
	nh := makeHosts(t, 3)
	// The message from rank 5 (host 3) to rank 0 (host 1) is 1 MiB of
	// byte 5*31+0 (testdata/paths).
	run := bytes.Repeat([]byte{5 * 31}, 1024)
	for _, tc := range []struct {
		flag  []string
		plain bool
	}{{[]string{"--tcp-encrypt=false"}, true}, {nil, false}, {[]string{"--tcp-encrypt=true"}, false}} {
		stop := sniff(t, nh.links[2], run)
		p := start(t, append(append(nh.args(2), tc.flag...), "-n", "6", prog(t, "paths"), fmt.Sprint(1<<20))...)
		code := p.wait(time.Minute)
		seen := stop()
		if code != 0 {
			t.Fatalf("%v: exit %d; stderr:\n%s", tc.flag, code, p.errText())
		}
		if got, want := sortedLines(p.out()), wantPaths(6, 2, "shm", "tcp"); got != want {
			t.Errorf("%v: paths\n%s\nwant\n%s", tc.flag, got, want)
		}
		if (seen > 0) != tc.plain {
			t.Errorf("%v: %d packets on host 3's link carried rank 5's message in clear text; want them %s", tc.flag, seen,
				map[bool]string{true: "there", false: "absent"}[tc.plain])
		}
	}

	// Rank 3 (host 2) turns encryption off, the others leave it on.
	script := `if [ "$DECORUN_RANK" = 3 ]; then export DECORUN_TCP_ENCRYPT=false; fi; exec "$0"`
	p := start(t, append(nh.args(2), "-n", "6", "sh", "-c", script, prog(t, "paths"))...)
	if code := p.wait(time.Minute); code == 0 {
		t.Fatalf("a job whose ranks disagree about encryption succeeded; stderr:\n%s", p.errText())
	}
	re := regexp.MustCompile(`rank [0145]: .*rank 3 has DECORUN_TCP_ENCRYPT=false and this rank has DECORUN_TCP_ENCRYPT=true|` +
		`rank 3: .*rank [0145] has DECORUN_TCP_ENCRYPT=true and this rank has DECORUN_TCP_ENCRYPT=false`)
	if e := p.errText(); !re.MatchString(e) {
		t.Errorf("stderr does not name rank 3 and both settings:\n%s", e)
	}
	noLeftovers(t)
}
