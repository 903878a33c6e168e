package cluster_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bin holds decorun and the rank programs, built once by TestMain.
var bin string

// repo is the module root (the parent of this directory).
var repo string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	wd, _ := os.Getwd()
	repo = filepath.Dir(wd)
	dir, err := os.MkdirTemp("", "decorun-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = dir
	if err := buildPkg("decorun", "./cmd/decorun"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

var (
	buildMu sync.Mutex
	built   = map[string]error{}
)

// buildPkg builds the package pkg (relative to the module root) into bin/name
// once per test run.
func buildPkg(name, pkg string) error {
	buildMu.Lock()
	defer buildMu.Unlock()
	if err, ok := built[name]; ok {
		return err
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg)
	cmd.Dir = repo
	var err error
	if out, e := cmd.CombinedOutput(); e != nil {
		err = fmt.Errorf("go build %s: %v\n%s", pkg, e, out)
	}
	built[name] = err
	return err
}

// prog builds a program of this module (examples/NAME or
// cluster_test/testdata/NAME) and returns the path of its binary.
func prog(t *testing.T, name string) string {
	t.Helper()
	pkg := "./examples/" + name
	if _, err := os.Stat(filepath.Join(repo, "cluster_test", "testdata", name)); err == nil {
		pkg = "./cluster_test/testdata/" + name
	}
	if err := buildPkg(name, pkg); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(bin, name)
}

// proc is a running decorun.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout []string
	stderr strings.Builder
	lines  chan string
	done   chan struct{}
	exit   int
	rusage *syscall.Rusage
	start  time.Time
	ended  time.Time
}

// start runs decorun with args (programs named by bare name are in bin).
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is start with env (NAME=value) added to decorun's own
// environment.
func startEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, lines: make(chan string, 1<<16), done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(bin, "decorun"), args...)
	p.cmd.Dir = repo
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = &lockedWriter{mu: &p.mu, b: &p.stderr}
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout = append(p.stdout, sc.Text())
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		err := p.cmd.Wait()
		p.ended = time.Now()
		p.exit = 0
		if ee, ok := err.(*exec.ExitError); ok {
			p.exit = ee.ExitCode()
		} else if err != nil {
			p.exit = -1
		}
		if p.cmd.ProcessState != nil {
			p.rusage, _ = p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
		}
		close(p.lines)
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}

// waitLine waits for a stdout line starting with prefix and returns it.
func (p *proc) waitLine(prefix string, d time.Duration) string {
	p.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("decorun ended (exit %d) before printing %q; stderr:\n%s", p.exit, prefix, p.errText())
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timer.C:
			p.t.Fatalf("no line %q within %v; stderr:\n%s", prefix, d, p.errText())
		}
	}
}

// pids waits for the "pid R P" lines of n ranks and returns the pids.
func (p *proc) pids(n int) []int {
	p.t.Helper()
	pids := make([]int, n)
	for i := 0; i < n; i++ {
		var r, pid int
		l := p.waitLine("pid ", 60*time.Second)
		if _, err := fmt.Sscanf(l, "pid %d %d", &r, &pid); err != nil || r < 0 || r >= n {
			p.t.Fatalf("bad pid line %q", l)
		}
		pids[r] = pid
	}
	return pids
}

// wait waits for decorun to exit and returns its exit code.
func (p *proc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("decorun still running after %v; stderr:\n%s", d, p.errText())
	}
	// Drain remaining lines so that stdout is complete.
	for range p.lines {
	}
	return p.exit
}

func (p *proc) out() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.stdout, "\n")
}

func (p *proc) errText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// leftovers counts the processes started from bin that are alive.
func leftovers() int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && strings.HasPrefix(exe, bin+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

// noLeftovers fails if any process started from bin (the ranks) is alive,
// or any of pids exists.
func noLeftovers(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
			t.Errorf("rank process %d is still there after decorun exited (kill 0: %v)", pid, err)
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		if strings.HasPrefix(exe, bin+string(filepath.Separator)) {
			t.Errorf("process %s (%s) of a job is still running", e.Name(), exe)
		}
	}
	for _, seg := range segments(pids...) {
		t.Errorf("shared-memory segment %s of a rank is still there after decorun exited", seg)
	}
}

// segments lists the decorun segments in /dev/shm whose owner (the pid in
// their header) is one of pids.
func segments(pids ...int) []string {
	names, _ := filepath.Glob("/dev/shm/decorun-*")
	var out []string
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			continue
		}
		b := make([]byte, 16)
		_, err = f.ReadAt(b, 0)
		f.Close()
		if err != nil || !strings.HasPrefix(string(b[:8]), "DCRSHM0") {
			continue
		}
		if slices.Contains(pids, int(binary.LittleEndian.Uint64(b[8:]))) {
			out = append(out, n)
		}
	}
	return out
}
