package cluster_test

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// transports are the data paths the jobs below run on.
var transports = []string{"nats", "shm"}

func TestRing(t *testing.T) {
	for _, tr := range transports {
		for _, n := range []int{1, 2, 8} {
			t.Run(fmt.Sprintf("%s/%d", tr, n), func(t *testing.T) {
				testRing(t, n, "--transport="+tr)
			})
		}
	}
	t.Run("auto/3", func(t *testing.T) { testRing(t, 3, "--transport=auto") })
}

func testRing(t *testing.T, n int, flags ...string) {
	p := start(t, append(append([]string{"-n", fmt.Sprint(n)}, flags...), prog(t, "ring"))...)
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	want := "Processor 0 received message \"P0"
	for r := 1; r < n; r++ {
		want += fmt.Sprintf("P%d", r)
	}
	want += fmt.Sprintf("\" from rank %d", n-1)
	if p.out() != want {
		t.Fatalf("output %q, want %q", p.out(), want)
	}
	noLeftovers(t)
}

// TestRingFromPackageDir is the README's command: decorun builds the Go
// package directory it is given.
func TestRingFromPackageDir(t *testing.T) {
	p := start(t, "-np", "3", "./examples/ring")
	if code := p.wait(3 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	if want := `Processor 0 received message "P0P1P2" from rank 2`; p.out() != want {
		t.Fatalf("output %q, want %q", p.out(), want)
	}
}

func TestHelloEightRanks(t *testing.T) {
	p := start(t, "-n", "8", "--tag-output", prog(t, "hello"))
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	lines := strings.Split(p.out(), "\n")
	sort.Strings(lines)
	if len(lines) != 8 {
		t.Fatalf("%d lines, want 8:\n%s", len(lines), p.out())
	}
	re := regexp.MustCompile(`^\[(\d)\] Hello from rank (\d) of 8 on \S+$`)
	for i, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil || m[1] != strconv.Itoa(i) || m[2] != m[1] {
			t.Fatalf("line %q: want a tagged hello from rank %d", l, i)
		}
	}
}

func TestNonCommProgram(t *testing.T) {
	p := start(t, "-n", "4", "sh", "-c", "echo rank $DECORUN_RANK of $DECORUN_SIZE")
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	lines := strings.Split(p.out(), "\n")
	sort.Strings(lines)
	if strings.Join(lines, ",") != "rank 0 of 4,rank 1 of 4,rank 2 of 4,rank 3 of 4" {
		t.Fatalf("output:\n%s", p.out())
	}
}

func TestRankExitCode(t *testing.T) {
	p := start(t, "-n", "4", prog(t, "fault"), "exit", "2", "3")
	pids := p.pids(4)
	if code := p.wait(time.Minute); code != 3 {
		t.Fatalf("exit %d, want 3; stderr:\n%s", code, p.errText())
	}
	if e := p.errText(); !strings.Contains(e, "rank 2") || !strings.Contains(e, "code 3") {
		t.Fatalf("stderr does not name rank 2 and code 3:\n%s", e)
	}
	noLeftovers(t, pids...)
}

func TestRankKilled(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testRankKilled(t, "--transport="+tr) })
	}
}

func testRankKilled(t *testing.T, flag string) {
	p := start(t, "-n", "4", flag, prog(t, "fault"), "wait", "0")
	pids := p.pids(4)
	killed := time.Now()
	syscall.Kill(pids[1], syscall.SIGKILL)
	if code := p.wait(time.Minute); code != 128+9 {
		t.Fatalf("exit %d, want 137; stderr:\n%s", code, p.errText())
	}
	t.Logf("job gone %v after SIGKILL of rank 1", p.ended.Sub(killed))
	if e := p.errText(); !strings.Contains(e, "rank 1") || !strings.Contains(e, "SIGKILL") {
		t.Fatalf("stderr does not name rank 1 and SIGKILL:\n%s", e)
	}
	noLeftovers(t, pids...)
}

func TestInterrupt(t *testing.T) {
	p := start(t, "-n", "8", prog(t, "fault"), "wait", "0")
	pids := p.pids(8)
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(time.Minute); code != 130 {
		t.Fatalf("exit %d, want 130; stderr:\n%s", code, p.errText())
	}
	if e := p.errText(); !strings.Contains(e, "SIGINT") {
		t.Fatalf("stderr does not mention SIGINT:\n%s", e)
	}
	noLeftovers(t, pids...)
}

func TestTimeout(t *testing.T) {
	p := start(t, "-n", "2", "--timeout", "1s", prog(t, "fault"), "wait", "0")
	pids := p.pids(2)
	if code := p.wait(time.Minute); code != 110 {
		t.Fatalf("exit %d, want 110; stderr:\n%s", code, p.errText())
	}
	if e := p.errText(); !strings.Contains(e, "timed out") {
		t.Fatalf("stderr does not say the job timed out:\n%s", e)
	}
	noLeftovers(t, pids...)
}

func TestExitWithoutClose(t *testing.T) {
	p := start(t, "-n", "3", prog(t, "fault"), "noclose", "1")
	pids := p.pids(3)
	if code := p.wait(time.Minute); code == 0 {
		t.Fatalf("exit 0 although rank 1 never closed its communicator; stderr:\n%s", p.errText())
	}
	if e := p.errText(); !strings.Contains(e, "rank 1") || !strings.Contains(e, "without closing") {
		t.Fatalf("stderr does not say rank 1 exited without closing:\n%s", e)
	}
	noLeftovers(t, pids...)
}

func TestAbort(t *testing.T) {
	p := start(t, "-n", "4", prog(t, "fault"), "abort", "2", "7")
	pids := p.pids(4)
	if code := p.wait(time.Minute); code != 7 {
		t.Fatalf("exit %d, want 7; stderr:\n%s", code, p.errText())
	}
	if e := p.errText(); !strings.Contains(e, "rank 2") || !strings.Contains(e, "Abort(7)") {
		t.Fatalf("stderr does not name rank 2 and Abort(7):\n%s", e)
	}
	noLeftovers(t, pids...)
}

func maxrss(t *testing.T, out string, rank int) int {
	t.Helper()
	m := regexp.MustCompile(fmt.Sprintf(`(?m)^rank %d maxrss (\d+) KiB$`, rank)).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rank %d printed no maxrss line:\n%s", rank, out)
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// TestNoLossStalledReceiver is the loss test: 100,000 messages of mixed
// sizes, 1 GiB in all, to a receiver that is stopped for 12 s mid-stream
// (past nats-server's 10 s write deadline and with far more than its 64 MiB
// pending limit still to come). Every message arrives in order with its
// checksum, and memory stays bounded everywhere.
func TestNoLossStalledReceiver(t *testing.T) {
	if testing.Short() {
		t.Skip("loss test takes about 30 s")
	}
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testNoLossStalledReceiver(t, "--transport="+tr) })
	}
}

func testNoLossStalledReceiver(t *testing.T, flag string) {
	p := start(t, "-n", "2", flag, prog(t, "stream"), "100000", "1024")
	pids := p.pids(2)
	p.waitLine("progress 20000", 2*time.Minute)
	syscall.Kill(pids[1], syscall.SIGSTOP)
	time.Sleep(12 * time.Second)
	syscall.Kill(pids[1], syscall.SIGCONT)
	if code := p.wait(5 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s\nstdout:\n%s", code, p.errText(), p.out())
	}
	out := p.out()
	if !strings.Contains(out, "stream ok: 100000 messages") {
		t.Fatalf("receiver did not get every message:\n%s", out)
	}
	send, recv := maxrss(t, out, 0), maxrss(t, out, 1)
	all := int(p.rusage.Maxrss)
	t.Logf("peak RSS: sender %d KiB, receiver %d KiB, largest process %d KiB", send, recv, all)
	const limit = 256 << 10 // KiB
	if send > limit || recv > limit || all > limit {
		t.Fatalf("memory not bounded: sender %d KiB, receiver %d KiB, largest %d KiB (limit %d KiB)", send, recv, all, limit)
	}
	noLeftovers(t, pids...)
}

// TestOneGiBMessage sends a single 1 GiB message: it arrives intact and
// neither side holds a second full copy.
func TestOneGiBMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB transfer")
	}
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testOneGiBMessage(t, "--transport="+tr) })
	}
}

func testOneGiBMessage(t *testing.T, flag string) {
	p := start(t, "-n", "2", flag, prog(t, "stream"), "1", "1024")
	pids := p.pids(2)
	if code := p.wait(5 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	out := p.out()
	if !strings.Contains(out, "stream ok: 1 messages, 1073741824 bytes") {
		t.Fatalf("1 GiB message not received:\n%s", out)
	}
	send, recv := maxrss(t, out, 0), maxrss(t, out, 1)
	t.Logf("peak RSS: sender %d KiB, receiver %d KiB, largest process %d KiB", send, recv, p.rusage.Maxrss)
	const limit = (1 << 20) + 200<<10 // 1 GiB buffer + 200 MiB, in KiB
	if send > limit || recv > limit {
		t.Fatalf("a second copy of the message: sender %d KiB, receiver %d KiB", send, recv)
	}
	noLeftovers(t, pids...)
}

func TestKeepGoing(t *testing.T) {
	p := start(t, "-n", "4", "--keep-going", prog(t, "fault"), "survive", "2", "9")
	pids := p.pids(4)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("exit %d, want 0 (rank 0 succeeded); stderr:\n%s", code, p.errText())
	}
	if e := p.errText(); !strings.Contains(e, "rank 2") || !strings.Contains(e, "exited with code 9; the job goes on without it") {
		t.Fatalf("stderr does not report rank 2's failure:\n%s", e)
	}
	if !strings.Contains(p.out(), "rank 0 saw rank 2 lost: comm: rank 0: Recv with rank 2: rank 2 is gone (exited with code 9): comm: rank lost") {
		t.Fatalf("rank 0 output:\n%s", p.out())
	}
	noLeftovers(t, pids...)
}

// Without --keep-going the same failure stops the job.
func TestNoKeepGoing(t *testing.T) {
	p := start(t, "-n", "4", prog(t, "fault"), "survive", "2", "9")
	pids := p.pids(4)
	if code := p.wait(time.Minute); code != 9 {
		t.Fatalf("exit %d, want 9; stderr:\n%s", code, p.errText())
	}
	noLeftovers(t, pids...)
}
