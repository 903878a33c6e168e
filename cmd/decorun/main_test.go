package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
