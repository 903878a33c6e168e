package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// decorun is the path of the binary built by TestMain.
var decorun string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "decorun-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	decorun = filepath.Join(dir, "decorun")
	if out, err := exec.Command("go", "build", "-o", decorun, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building decorun: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// exitCode runs decorun with args and returns its exit code, stdout and stderr.
func exitCode(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(decorun, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, o.String(), e.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), o.String(), e.String()
	}
	t.Fatalf("running decorun %q: %v", args, err)
	return 0, "", ""
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string // exact
	}{
		{[]string{"-n", "4", "true"}, 0, ""},
		{[]string{"-np", "2", "true"}, 0, ""},
		{[]string{"--np=2", "true"}, 0, ""},
		{[]string{"true"}, 0, ""},
		{[]string{"-n", "0", "true"}, 2, "decorun: -n must be at least 1, got 0\n"},
		{[]string{"-n", "-3", "true"}, 2, "decorun: -n must be at least 1, got -3\n"},
		{[]string{"-n", "x", "true"}, 2, "decorun: invalid value \"x\" for flag -n: parse error\n"},
		{[]string{"-n"}, 2, "decorun: flag needs an argument: -n\n"},
		{[]string{"-n", "2"}, 2, "decorun: no program given (usage: decorun -n N PROG [ARGS...])\n"},
		{[]string{}, 2, "decorun: no program given (usage: decorun -n N PROG [ARGS...])\n"},
		{[]string{"--bogus", "true"}, 2, "decorun: flag provided but not defined: -bogus\n"},
		{[]string{"--timeout", "soon", "true"}, 2, "decorun: --timeout: invalid duration \"soon\" (want e.g. 90s, 2m or a number of seconds)\n"},
		{[]string{"--timeout", "-1", "true"}, 2, "decorun: --timeout must be positive, got \"-1\"\n"},
		{[]string{"-x", "=v", "true"}, 2, "decorun: -x \"=v\": no variable name\n"},
		{[]string{"-n", "2", "decorun-no-such-program"}, 127, "decorun: cannot execute \"decorun-no-such-program\": exec: \"decorun-no-such-program\": executable file not found in $PATH\n"},
		{[]string{"-n", "3", "sh", "-c", "exit $((DECORUN_RANK+4))"}, 0, ""}, // code checked below
		{[]string{"--timeout", "0.2", "-n", "2", "sleep", "30"}, 110, "decorun: job timed out after 200ms\n"},
		{[]string{"-n", "2", ""}, 2, "decorun: the program name is empty (usage: decorun -n N PROG [ARGS...])\n"},
		{[]string{"-H", ":3", "true"}, 2, "decorun: -H \":3\": empty host name\n"},
		{[]string{"-H", "a,-oProxyCommand=x", "true"}, 2, "decorun: -H \"a,-oProxyCommand=x\": host name \"-oProxyCommand=x\" starts with \"-\"\n"},
		{[]string{"-n", "2", "../../internal/jobenv"}, 2, "decorun: cannot run ../../internal/jobenv: it holds Go package jobenv, not a main package (a program is package main with a func main)\n"},
		{[]string{"--nats-url", "nats://user:s3cretpw@127.0.0.1:x", "true"}, 1, "decorun: cannot connect to the NATS server at nats://user:xxxxx@127.0.0.1:x: parse \"nats://user:xxxxx@127.0.0.1:x\": invalid port \":x\" after host\n"},
		{[]string{"-n", "64", "true"}, 0, ""}, // more ranks than cores: fine
		{[]string{"--bind-to", "socket", "true"}, 2, "decorun: --bind-to \"socket\": want core or none\n"},
		{[]string{"--bind-to", "none", "-n", "2", "true"}, 0, ""},
	} {
		code, _, stderr := exitCode(t, tc.args...)
		if len(tc.args) > 3 && tc.args[1] == "3" {
			if code < 4 || code > 6 || !strings.Contains(stderr, fmt.Sprintf("exited with code %d", code)) {
				t.Errorf("decorun %q: code %d, stderr %q; want a rank's code 4-6, named", tc.args, code, stderr)
			}
			continue
		}
		if code != tc.code || stderr != tc.stderr {
			t.Errorf("decorun %q: code %d, stderr %q; want %d, %q", tc.args, code, stderr, tc.code, tc.stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := exitCode(t, "--help")
	if code != 0 || !strings.Contains(out, "--tag-output") || !strings.Contains(out, "-n N, --np N") {
		t.Errorf("decorun --help: code %d, output %q", code, out)
	}
}

// Flags after the program belong to it.
func TestProgramFlags(t *testing.T) {
	code, out, stderr := exitCode(t, "-n", "2", "--tag-output", "-x", "A=1,2", "sh", "-c", `echo "$A $0 $1"`, "-x", "-n")
	if code != 0 {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
	for r := range 2 {
		if want := fmt.Sprintf("[%d] 1,2 -x -n\n", r); !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}

// start starts decorun with args, waits until every rank has written its
// pid into dir and returns the command and the pids.
func start(t *testing.T, dir string, n int, args ...string) (*exec.Cmd, *bytes.Buffer, []int) {
	t.Helper()
	cmd := exec.Command(decorun, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ents, _ := os.ReadDir(dir)
		if len(ents) == n {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("ranks did not start: %q", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the files are written: let the writes finish
	var pids []int
	for r := range n {
		b, _ := os.ReadFile(filepath.Join(dir, strconv.Itoa(r)))
		p, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("pid file of rank %d: %v", r, err)
		}
		pids = append(pids, p)
	}
	return cmd, &stderr, pids
}

func assertGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for _, p := range pids {
		for {
			err := syscall.Kill(p, 0)
			if errors.Is(err, syscall.ESRCH) || zombie(p) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("rank process %d outlived decorun", p)
				syscall.Kill(p, syscall.SIGKILL)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestSIGINT(t *testing.T) {
	dir := t.TempDir()
	cmd, stderr, pids := start(t, dir, 3, "-n", "3", "sh", "-c", `echo $$ > `+dir+`/$DECORUN_RANK; exec sleep 30`)
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("decorun after SIGINT: %v; want exit code 130", err)
	}
	if got := stderr.String(); got != "decorun: interrupted by SIGINT\n" {
		t.Errorf("stderr = %q", got)
	}
	assertGone(t, pids)
}

// Ranks die with decorun even when it is killed with SIGKILL (Pdeathsig).
func TestSIGKILLedLauncher(t *testing.T) {
	dir := t.TempDir()
	cmd, _, pids := start(t, dir, 3, "-n", "3", "sh", "-c", `echo $$ > `+dir+`/$DECORUN_RANK; exec sleep 30`)
	cmd.Process.Kill()
	cmd.Wait()
	assertGone(t, pids)
}

// stdin reaches rank 0 only.
func TestStdin(t *testing.T) {
	cmd := exec.Command(decorun, "-n", "2", "--tag-output", "sh", "-c", `read x; echo "got $x"`)
	cmd.Stdin = strings.NewReader("hello\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		lines = append(lines, strings.TrimSpace(sc.Text()))
	}
	if len(lines) != 2 || !(lines[0] == "[0] got hello" && lines[1] == "[1] got" || lines[1] == "[0] got hello" && lines[0] == "[1] got") {
		t.Errorf("output %q; want rank 0 to get the line and rank 1 nothing", lines)
	}
}

// A password or token in --nats-url never reaches the terminal.
func TestNATSURLRedacted(t *testing.T) {
	for _, url := range []string{"nats://user:s3cretpw@127.0.0.1:1", "nats://s3cretpw@127.0.0.1:1", "nats://127.0.0.1:1,nats://u:s3cretpw@127.0.0.1:2"} {
		code, out, stderr := exitCode(t, "--nats-url", url, "true")
		if code != 1 || !strings.Contains(stderr, "cannot connect to the NATS server at nats://") || strings.Contains(out+stderr, "s3cretpw") {
			t.Errorf("decorun --nats-url %s: code %d, stderr %q; want 1 and the URL without its secret", url, code, stderr)
		}
	}
}

// SIGTERM while ranks are being started stops the launch: the ranks
// started are ended, the others never start, and decorun exits 143.
func TestSIGTERMDuringStartup(t *testing.T) {
	const np = 500
	dir := t.TempDir()
	cmd := exec.Command(decorun, "-n", strconv.Itoa(np), "sh", "-c", `echo $$ > `+dir+`/$DECORUN_RANK; exec sleep 100`)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no rank started in 20s: %q", stderr.String())
		}
	}
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	t.Logf("decorun exited %v after SIGTERM", time.Since(sent))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Errorf("decorun after SIGTERM: %v; want exit code 143", err)
	}
	if got := stderr.String(); got != "decorun: interrupted by SIGTERM\n" {
		t.Errorf("stderr = %q", got)
	}
	ents, _ := os.ReadDir(dir)
	t.Logf("%d of %d ranks had started", len(ents), np)
	if len(ents) >= np/2 {
		t.Errorf("%d of %d ranks started; want the launch stopped", len(ents), np)
	}
	time.Sleep(20 * time.Millisecond) // a rank may be writing its pid file
	var pids []int
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids = append(pids, p)
		}
	}
	assertGone(t, pids)
}

// -n beyond what the host can run is a usage error naming the limit, before
// any rank starts; the limit is the real one (here RLIMIT_NOFILE lowered
// with prlimit).
func TestTooManyRanks(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(decorun, "-n", "1000000", "sh", "-c", "echo > "+dir+"/$DECORUN_RANK")
	var stderrB bytes.Buffer
	cmd.Stderr = &stderrB
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	guard := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() }) // a hang guard
	err := cmd.Wait()
	if !guard.Stop() {
		t.Fatal("decorun -n 1000000 still running after 60s")
	}
	code, stderr := cmd.ProcessState.ExitCode(), stderrB.String()
	if code != 2 || !strings.HasPrefix(stderr, "decorun: -n 1000000 is more ranks than this host can run: ") || !strings.Contains(stderr, "room for") {
		t.Errorf("decorun -n 1000000: code %d, stderr %q; want 2 and the limits", code, stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d ranks ran", len(ents))
	}

	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("no prlimit")
	}
	out, err := exec.Command(prlimit, "--nofile=256:256", decorun, "-n", "100", "sleep", "5").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 ||
		!regexp.MustCompile(`^decorun: -n 100 is more ranks than this host can run: open files: decorun keeps 4 per rank open and RLIMIT_NOFILE \(ulimit -n\) is 256: room for \d+; ask for fewer ranks`).Match(out) {
		t.Errorf("decorun -n 100 with 256 open files: %v, %q; want exit 2 naming RLIMIT_NOFILE", err, out)
	}
	if out, err := exec.Command(prlimit, "--nofile=256:256", decorun, "-n", "20", "true").CombinedOutput(); err != nil {
		t.Errorf("decorun -n 20 with 256 open files: %v, %q; want it to run", err, out)
	}
}

// RLIMIT_NPROC counts for a user that is not root: run decorun as nobody.
func TestTooManyProcesses(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if os.Getuid() != 0 || err != nil {
		t.Skip("needs root and setpriv to become another user")
	}
	dir, err := os.MkdirTemp("", "decorun-nobody-") // t.TempDir's parent is not open to others
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "decorun")
	b, err := os.ReadFile(decorun)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	as := func(n string, prog ...string) *exec.Cmd {
		cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
			"prlimit", "--nproc=200:200", bin, "-n", n}, prog...)...)
		cmd.Dir = dir
		return cmd
	}
	out, err := as("150", "sleep", "5").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 ||
		!regexp.MustCompile(`^decorun: -n 150 is more ranks than this host can run: processes: each rank takes 2 tasks \(the rank and a decorun thread\), RLIMIT_NPROC \(ulimit -u\) is 200 and this user has \d+: room for \d+; ask`).Match(out) {
		t.Errorf("decorun -n 150 as nobody with 200 processes: %v, %q; want exit 2 naming RLIMIT_NPROC", err, out)
	}
	if out, err := as("10", "true").CombinedOutput(); err != nil {
		t.Errorf("decorun -n 10 as nobody with 200 processes: %v, %q; want it to run", err, out)
	}
}
