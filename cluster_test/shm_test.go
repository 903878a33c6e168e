package cluster_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSegmentsRemovedAfterSIGKILL: ranks that die by SIGKILL before they
// could unlink their shared-memory segments leave nothing in /dev/shm: the
// launcher removes the job's segments when the job ends.
func TestSegmentsRemovedAfterSIGKILL(t *testing.T) {
	const fake = "0123456789abcdef"
	p := start(t, "-n", "2", "--transport=shm", "sh", "-c",
		`touch /dev/shm/decorun-"$DECORUN_JOB"-`+fake+`-"$DECORUN_RANK" && echo made && kill -9 $$`)
	if code := p.wait(time.Minute); code != 128+9 {
		t.Fatalf("exit %d, want 137; stderr:\n%s", code, p.errText())
	}
	if !strings.Contains(p.out(), "made") {
		t.Fatalf("the ranks made no segment:\n%s\n%s", p.out(), p.errText())
	}
	if left, _ := filepath.Glob("/dev/shm/decorun-*-" + fake + "-*"); len(left) != 0 {
		t.Errorf("segments left after the job: %v", left)
	}
	noLeftovers(t)
}

// TestStaleSegmentSwept: a segment whose owner died without anyone
// removing it (decorun itself SIGKILLed) is removed by the next job.
func TestStaleSegmentSwept(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Skip("no /proc/self/ns/pid:", err)
	}
	var nsNum uint64
	fmt.Sscanf(ns, "pid:[%d]", &nsNum)
	hdr := make([]byte, 4096)
	copy(hdr, "DCRSHM01")
	binary.LittleEndian.PutUint64(hdr[8:], uint64(dead.Process.Pid))
	binary.LittleEndian.PutUint64(hdr[16:], nsNum)
	name := fmt.Sprintf("/dev/shm/decorun-stale%d-0123456789abcdef-0", rand.Int64())
	if err := os.WriteFile(name, hdr, 0o600); err != nil {
		t.Skip("cannot write to /dev/shm:", err)
	}
	defer os.Remove(name)
	p := start(t, "-n", "1", "true")
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	if _, err := os.Stat(name); err == nil {
		t.Errorf("stale segment %s of dead pid %d is still there", name, dead.Process.Pid)
	}
}

func TestTransportFlag(t *testing.T) {
	p := start(t, "--transport=udp", "true")
	if code := p.wait(time.Minute); code != 2 || !strings.Contains(p.errText(), `--transport (or DECORUN_TRANSPORT) must be auto, nats, shm or tcp, got "udp"`) {
		t.Errorf("--transport=udp: exit %d, stderr %q; want 2 and a message naming the flag", code, p.errText())
	}
	p = start(t, "-n", "2", "-x", "DECORUN_TRANSPORT=bogus", prog(t, "ring"))
	if code := p.wait(time.Minute); code == 0 || !strings.Contains(p.errText(), `DECORUN_TRANSPORT="bogus"`) {
		t.Errorf("DECORUN_TRANSPORT=bogus: exit %d, stderr %q; want a failure naming the variable", code, p.errText())
	}
}

// plantedJob runs testdata/shmplant on 2 ranks (rank 1 has uid 65534 plant
// a forged segment before it joins; see there) and returns decorun's exit
// code, its stdout and stderr, and the planted file's path, which the test
// removes at the end.
func plantedJob(t *testing.T, how string, args ...string) (int, string, string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the attacker as uid 65534")
	}
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm")
	}
	a := append([]string{"-n", "2", "--timeout", "30s", "-x", "SHMPLANT=" + how}, args...)
	p := start(t, append(a, prog(t, "shmplant"))...)
	code := p.wait(2 * time.Minute)
	var planted string
	for _, l := range strings.Split(p.out(), "\n") {
		if f, ok := strings.CutPrefix(l, "planted "); ok {
			planted = f
		}
	}
	if planted == "" {
		t.Fatalf("rank 1 planted nothing (exit %d); stdout:\n%s\nstderr:\n%s", code, p.out(), p.errText())
	}
	t.Cleanup(func() { os.Remove(planted) })
	return code, p.out(), p.errText(), planted
}

// plantedIntact checks that the file uid 65534 planted is still there,
// still that user's, and holds what was planted (rank 1 compared it).
func plantedIntact(t *testing.T, out, planted string) {
	t.Helper()
	if !strings.Contains(out, "intact "+planted) {
		t.Errorf("the planted file changed; stdout:\n%s", out)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(planted, &st); err != nil || st.Uid != 65534 {
		t.Errorf("the planted file %s is gone or changed owner (%v, uid %d)", planted, err, st.Uid)
	}
}

// TestForgedSegmentObservedName: another user plants, under rank 1's
// number, a file named like rank 0's segment as anyone sees it in
// /dev/shm (with a header that claims to be rank 1's, ring for rank 0
// included). The names of a job's ranks share nothing, so the planted name
// is not rank 1's; the job runs over shared memory with correct results
// and no byte reaches the planted file.
func TestForgedSegmentObservedName(t *testing.T) {
	code, out, errText, planted := plantedJob(t, "observed", "--transport=auto")
	if code != 0 {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, out, errText)
	}
	plantedIntact(t, out, planted)
	for _, want := range []string{"0: 0=self 1=shm", "1: 0=shm 1=self"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
}

// TestForgedSegmentTakenName: another user takes rank 1's own segment name
// (computed here from the job's secret key: the worst case) before rank 1
// can create it. With auto, rank 1 says once why it has no shared memory,
// every pair with rank 1 takes NATS both ways, the job completes with
// correct results and no byte reaches the planted file; with shm, the job
// fails naming rank 1 and the path.
func TestForgedSegmentTakenName(t *testing.T) {
	code, out, errText, planted := plantedJob(t, "secret", "--transport=auto")
	if code != 0 {
		t.Fatalf("auto: exit %d; stdout:\n%s\nstderr:\n%s", code, out, errText)
	}
	plantedIntact(t, out, planted)
	for _, want := range []string{"0: 0=self 1=nats", "1: 0=nats 1=self"} {
		if !strings.Contains(out, want) {
			t.Errorf("auto: stdout lacks %q:\n%s", want, out)
		}
	}
	warn := "comm: rank 1: shared memory off, its peers on this host reach it through NATS: shm: rank 1 cannot create its segment " +
		planted + ": the name is taken by a file, another user's (uid 65534; this user is uid 0), mode 0666"
	if n := strings.Count(errText, warn); n != 1 {
		t.Errorf("auto: stderr says %d times %q; want once:\n%s", n, warn, errText)
	}
	if strings.Count(errText, "shared memory off") != 1 {
		t.Errorf("auto: stderr warns more than once:\n%s", errText)
	}

	code, out, errText, planted = plantedJob(t, "secret", "--transport=shm")
	if code == 0 {
		t.Fatalf("shm: exit 0; want a failure; stdout:\n%s\nstderr:\n%s", out, errText)
	}
	// Whichever rank fails first (decorun then ends the other) names
	// rank 1, its path and whose file holds it.
	for _, want := range []string{"--transport=shm: ", "rank 1 cannot create its segment " + planted + ": the name is taken by a file, another user's (uid 65534"} {
		if !strings.Contains(errText, want) {
			t.Errorf("shm: stderr lacks %q:\n%s", want, errText)
		}
	}
	if b, err := os.ReadFile(planted); err != nil || len(b) != 4096+256+1<<20 || strings.Trim(string(b[4096:]), "\x00") != "" {
		t.Errorf("shm: the planted file changed (%v)", err)
	}
}
