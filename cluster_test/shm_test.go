package cluster_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
