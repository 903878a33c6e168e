package launcher_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/decorun/decorun/launcher"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// run runs cfg with output captured and a 20 s guard.
func run(t *testing.T, cfg launcher.Config) (err error, stdout, stderr string) {
	t.Helper()
	var o, e syncBuffer
	if cfg.Stdout == nil {
		cfg.Stdout = &o
	}
	if cfg.Stderr == nil {
		cfg.Stderr = &e
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err = launcher.Run(ctx, cfg)
	return err, o.String(), e.String()
}

// sh is a Config running script with /bin/sh -c on n ranks.
func sh(n int, script string) launcher.Config {
	return launcher.Config{NP: n, Program: "/bin/sh", Args: []string{"-c", script}}
}

// exitError asserts err is an *ExitError with the code and a message
// matching re.
func exitError(t *testing.T, err error, code int, re string) *launcher.ExitError {
	t.Helper()
	var ee *launcher.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Run() = %v (%T); want *ExitError with code %d", err, err, code)
	}
	if ee.Code != code {
		t.Errorf("Run() code = %d (%q); want %d", ee.Code, ee.Msg, code)
	}
	if !regexp.MustCompile(re).MatchString(ee.Msg) {
		t.Errorf("Run() message = %q; want match for %q", ee.Msg, re)
	}
	return ee
}

// pids reads the pid files ranks wrote into dir.
func pids(t *testing.T, dir string) []int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ps []int
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue // a pid file being written (see testdata/ctlrank)
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Fields(string(b)) {
			p, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("pid file %s: %v", e.Name(), err)
			}
			ps = append(ps, p)
		}
	}
	return ps
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// assertGone fails unless every pid is gone, allowing a moment for
// re-parented descendants to be reaped.
func assertGone(t *testing.T, ps []int, want int) {
	t.Helper()
	if len(ps) < want {
		t.Fatalf("got %d pids %v; want at least %d", len(ps), ps, want)
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, p := range ps {
		for alive(p) {
			if time.Now().After(deadline) {
				t.Errorf("process %d of the job is still alive after Run returned", p)
				syscall.Kill(p, syscall.SIGKILL)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// waitFiles waits until dir holds n files.
// waitFiles waits until dir holds n complete files: written by echo, so
// ending in a newline (the shell creates a file before it writes to it).
func waitFiles(t *testing.T, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ents, _ := os.ReadDir(dir)
		done := 0
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && strings.HasSuffix(string(b), "\n") {
				done++
			}
		}
		if done >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d complete files in %s after 10s", done, n, dir)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAllSucceed(t *testing.T) {
	err, out, _ := run(t, sh(4, `echo "rank $DECORUN_RANK of $DECORUN_SIZE"`))
	if err != nil {
		t.Fatalf("Run() = %v; want nil", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(lines)
	want := []string{"rank 0 of 4", "rank 1 of 4", "rank 2 of 4", "rank 3 of 4"}
	if !slices.Equal(lines, want) {
		t.Errorf("output lines = %q; want %q", lines, want)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("LAUNCHER_TEST_COPY", "copied")
	os.Unsetenv("LAUNCHER_TEST_UNSET")
	cfg := sh(2, `echo "$DECORUN_RANK $DECORUN_SIZE $DECORUN_LOCAL_RANK $DECORUN_LOCAL_SIZE|$DECORUN_JOB|$DECORUN_NATS_URL|${#DECORUN_SECRET}|$DECORUN_PREFIX|$FOO|$LAUNCHER_TEST_COPY|${LAUNCHER_TEST_UNSET-unset}"`)
	cfg.Env = []string{"FOO=a=b,c", "LAUNCHER_TEST_COPY", "LAUNCHER_TEST_UNSET"}
	cfg.TagOutput = true
	err, out, _ := run(t, cfg)
	if err != nil {
		t.Fatalf("Run() = %v; want nil", err)
	}
	re := regexp.MustCompile(`^\[(\d)\] (\d) 2 (\d) 2\|([0-9a-f]+)\|nats://127\.0\.0\.1:\d+\|64\|decorun\.([0-9a-f]+)\|a=b,c\|copied\|unset$`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("output = %q; want 2 lines", out)
	}
	for _, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("line %q does not match %v", l, re)
			continue
		}
		if m[1] != m[2] || m[2] != m[3] || m[4] != m[5] {
			t.Errorf("line %q: tag, rank, local rank or job id and prefix disagree", l)
		}
	}
}

func TestRankExitCode(t *testing.T) {
	dir := t.TempDir()
	cfg := sh(4, `echo $$ > `+dir+`/$DECORUN_RANK; if [ $DECORUN_RANK = 3 ]; then
		while [ $(ls `+dir+` | wc -l) -lt 4 ]; do sleep 0.01; done; exit 3; fi; sleep 30`)
	start := time.Now()
	err, _, _ := run(t, cfg)
	elapsed := time.Since(start)
	ee := exitError(t, err, 3, `^rank 3 \(pid \d+\) exited with code 3$`)
	if ee.Rank != 3 {
		t.Errorf("Rank = %d; want 3", ee.Rank)
	}
	if elapsed > 3*time.Second {
		t.Errorf("Run took %v; the others should be killed at once", elapsed)
	}
	assertGone(t, pids(t, dir), 4)
}

func TestRankKilledBySignal(t *testing.T) {
	dir := t.TempDir()
	err, _, _ := run(t, sh(3, `echo $$ > `+dir+`/$DECORUN_RANK; if [ $DECORUN_RANK = 2 ]; then
		while [ $(ls `+dir+` | wc -l) -lt 3 ]; do sleep 0.01; done; kill -KILL $$; fi; sleep 30`))
	exitError(t, err, 137, `^rank 2 \(pid \d+\) killed by signal SIGKILL$`)
	assertGone(t, pids(t, dir), 3)
}

// Ranks that ignore SIGTERM are killed after the grace, and children a rank
// left in its process group do not survive it.
func TestNoOrphans(t *testing.T) {
	dir := t.TempDir()
	cfg := sh(3, `trap "" TERM; sleep 30 & echo $! > `+dir+`/child$DECORUN_RANK; echo $$ > `+dir+`/$DECORUN_RANK;
		if [ $DECORUN_RANK = 1 ]; then while [ $(ls `+dir+` | wc -l) -lt 6 ]; do sleep 0.01; done; exit 9; fi; wait`)
	start := time.Now()
	err, _, _ := run(t, cfg)
	exitError(t, err, 9, `^rank 1 \(pid \d+\) exited with code 9$`)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %v; want SIGKILL after the grace", d)
	}
	assertGone(t, pids(t, dir), 6)
}

// The whole job is gone shortly after a rank dies.
func TestReactionTime(t *testing.T) {
	dir := t.TempDir()
	cfg := sh(4, `echo $$ > `+dir+`/$DECORUN_RANK; exec sleep 30`)
	errc := make(chan error, 1)
	var dead time.Time
	go func() { err, _, _ := run(t, cfg); errc <- err }()
	waitFiles(t, dir, 4)
	ps := pids(t, dir)
	dead = time.Now()
	syscall.Kill(ps[2], syscall.SIGSEGV)
	err := <-errc
	took := time.Since(dead)
	exitError(t, err, 139, `^rank 2 \(pid \d+\) killed by signal SIGSEGV`)
	assertGone(t, ps, 4)
	t.Logf("job gone %v after a rank died", took)
	if took > 10*time.Second { // a hang detector, not a performance test: see the log line
		t.Errorf("job took %v to end after a rank died", took)
	}
}

func TestTimeout(t *testing.T) {
	dir := t.TempDir()
	cfg := sh(2, `echo $$ > `+dir+`/$DECORUN_RANK; sleep 30`)
	cfg.Timeout = 300 * time.Millisecond
	start := time.Now()
	err, _, _ := run(t, cfg)
	exitError(t, err, 110, `^job timed out after 300ms$`)
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("Run took %v; want just over 300ms", d)
	}
	assertGone(t, pids(t, dir), 2)
}

func TestStdinGoesToRankZero(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("from file\n")
	f.Seek(0, 0)
	defer f.Close()
	for _, tc := range []struct {
		name string
		cfg  func(*launcher.Config)
		want string
	}{
		{"reader", func(c *launcher.Config) { c.Stdin = strings.NewReader("hello\nworld\n") }, "hello world"},
		{"file", func(c *launcher.Config) { c.Stdin = f }, "from file"},
		{"none", func(c *launcher.Config) {}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sh(3, `echo "got $(cat | tr '\n' ' ' | sed 's/ $//')"`)
			cfg.TagOutput = true
			tc.cfg(&cfg)
			err, out, _ := run(t, cfg)
			if err != nil {
				t.Fatalf("Run() = %v", err)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			for i := range lines {
				lines[i] = strings.TrimSpace(lines[i])
			}
			slices.Sort(lines)
			want := []string{strings.TrimSpace("[0] got " + tc.want), "[1] got", "[2] got"}
			if !slices.Equal(lines, want) {
				t.Errorf("output = %q; want %q", lines, want)
			}
		})
	}
}

// A rank 0 that never reads its stdin does not hold the job up.
func TestStdinUnread(t *testing.T) {
	cfg := sh(2, `exit 0`)
	cfg.Stdin = bytes.NewReader(make([]byte, 1<<20))
	if err, _, _ := run(t, cfg); err != nil {
		t.Fatalf("Run() = %v", err)
	}
}

func TestTagOutputAndStderr(t *testing.T) {
	var both syncBuffer
	cfg := sh(2, `echo out$DECORUN_RANK; echo err$DECORUN_RANK >&2; printf noeol$DECORUN_RANK`)
	cfg.TagOutput = true
	cfg.Stdout, cfg.Stderr = &both, &both
	err, _, _ := run(t, cfg)
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	lines := strings.Split(both.String(), "\n")
	slices.Sort(lines)
	want := []string{"", "[0] err0", "[0] noeol0", "[0] out0", "[1] err1", "[1] noeol1", "[1] out1"}
	if !slices.Equal(lines, want) {
		t.Errorf("output = %q; want %q", lines, want)
	}
}

func TestOutputDir(t *testing.T) {
	dir := t.TempDir()
	cfg := sh(2, `echo out$DECORUN_RANK; echo err$DECORUN_RANK >&2`)
	cfg.OutputDir = dir
	cfg.TagOutput = true
	err, out, errs := run(t, cfg)
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if out != "" || errs != "" {
		t.Errorf("terminal got %q, %q; want nothing", out, errs)
	}
	for r := range 2 {
		for _, s := range []string{"out", "err"} {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("rank.%d", r), "std"+s))
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%s%d\n", s, r); string(b) != want {
				t.Errorf("rank.%d/std%s = %q; want %q", r, s, b, want)
			}
		}
	}
}

// Long lines written in small pieces by several ranks at once come out
// whole, each from one rank.
func TestLineAtomicity(t *testing.T) {
	const ranks, lines = 4, 40
	cfg := launcher.Config{NP: ranks, Program: ctlrank, Args: []string{"spew", "-1", strconv.Itoa(lines)}, TagOutput: true}
	err, out, errs := run(t, cfg)
	if err != nil {
		t.Fatalf("Run() = %v; stderr %q", err, errs)
	}
	count := make(map[string]int)
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if len(l) < 5 || l[0] != '[' {
			t.Fatalf("line %.40q... has no rank tag", l)
		}
		r := int(l[1] - '0')
		body := l[4:]
		if strings.HasPrefix(body, "tail ") {
			if body != fmt.Sprintf("tail %d", r) {
				t.Errorf("line %q: tail of another rank", l)
			}
			count[fmt.Sprint("tail", r)]++
			continue
		}
		if body != strings.Repeat(string(rune('a'+r)), 100000) {
			t.Fatalf("line from rank %d is not whole (%d bytes, starts %.20q)", r, len(body), body)
		}
		count[fmt.Sprint(r)]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for r := range ranks {
		if count[fmt.Sprint(r)] != lines || count[fmt.Sprint("tail", r)] != 1 {
			t.Errorf("rank %d: %d lines and %d tails; want %d and 1", r, count[fmt.Sprint(r)], count[fmt.Sprint("tail", r)], lines)
		}
	}
}

// promptWatch is an output destination that reports when it has seen want.
type promptWatch struct {
	syncBuffer
	want string
	seen chan struct{}
	once sync.Once
}

func (p *promptWatch) Write(b []byte) (int, error) {
	n, err := p.syncBuffer.Write(b)
	if strings.Contains(p.String(), p.want) {
		p.once.Do(func() { close(p.seen) })
	}
	return n, err
}

// A prompt (a line not ended, then silence) reaches decorun's output while
// its rank waits for the answer, and the other ranks' lines never land
// inside it.
func TestPromptShowsAtOnce(t *testing.T) {
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	defer inW.Close()
	out := &promptWatch{want: "[0] question? ", seen: make(chan struct{})}
	cfg := sh(3, `if [ $DECORUN_RANK = 0 ]; then printf 'question? '; read a; echo "answer $a"; else sleep 0.3; echo "hello from $DECORUN_RANK"; fi`)
	cfg.TagOutput, cfg.Stdin, cfg.Stdout = true, inR, out
	res := make(chan error, 1)
	go func() {
		err, _, errs := run(t, cfg)
		if err != nil {
			err = fmt.Errorf("%w; stderr %q", err, errs)
		}
		res <- err
	}()
	select {
	case <-out.seen:
	case err := <-res:
		t.Fatalf("job ended before the prompt showed: %v; output %q", err, out.String())
	}
	inW.Write([]byte("yes\n"))
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(out.String(), "\n")
	var got []string
	for _, l := range lines {
		if l != "" {
			got = append(got, l)
		}
	}
	slices.Sort(got)
	whole := []string{"[0] question? answer yes\n", "[1] hello from 1\n", "[2] hello from 2\n"}
	// A prompt left silent for a second lets the others go on: its line is
	// ended and the answer comes on a line of its own.
	broken := []string{"[0] answer yes\n", "[0] question? \n", "[1] hello from 1\n", "[2] hello from 2\n"}
	if !slices.Equal(got, whole) && !slices.Equal(got, broken) {
		t.Errorf("output lines %q; want %q (or, after a long pause, %q)", got, whole, broken)
	}
}

func TestProgramNotFound(t *testing.T) {
	for _, prog := range []string{"decorun-no-such-program", "./no/such/file", "/etc/passwd"} {
		err, _, _ := run(t, launcher.Config{NP: 2, Program: prog})
		exitError(t, err, 127, `^cannot execute "`+regexp.QuoteMeta(prog)+`": `)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg launcher.Config
		re  string
	}{
		{launcher.Config{NP: 0, Program: "true"}, `^-n must be at least 1, got 0$`},
		{launcher.Config{NP: -3, Program: "true"}, `^-n must be at least 1, got -3$`},
		{launcher.Config{NP: 1}, `^no program given$`},
		{launcher.Config{NP: 1, Program: "true", Env: []string{"=x"}}, `^-x "=x": no variable name$`},
		{launcher.Config{NP: 1, Program: "true", Timeout: -1}, `^--timeout must not be negative`},
	} {
		err, _, _ := run(t, tc.cfg)
		exitError(t, err, 2, tc.re)
	}
}

func TestControlFin(t *testing.T) {
	err, _, errs := run(t, launcher.Config{NP: 3, Program: ctlrank, Args: []string{"fin", "-1"}})
	if err != nil {
		t.Fatalf("Run() = %v; stderr %q", err, errs)
	}
}

func TestJoinWithoutFin(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PIDDIR", dir)
	err, _, _ := run(t, launcher.Config{NP: 3, Program: ctlrank, Args: []string{"nofin", "1"}})
	exitError(t, err, 1, `^rank 1 exited with code 0 without closing its communicator \(comm\.Close\)$`)
	assertGone(t, pids(t, dir), 3)
}

func TestAbort(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PIDDIR", dir)
	err, _, _ := run(t, launcher.Config{NP: 3, Program: ctlrank, Args: []string{"abort", "1", "5"}})
	ee := exitError(t, err, 5, `^rank 1 called Abort\(5\)$`)
	if ee.Rank != 1 {
		t.Errorf("Rank = %d; want 1", ee.Rank)
	}
	assertGone(t, pids(t, dir), 3)

	err, _, _ = run(t, launcher.Config{NP: 2, Program: ctlrank, Args: []string{"abort", "0", "0"}})
	exitError(t, err, 1, `^rank 0 called Abort\(0\)$`)
}

func TestSignals(t *testing.T) {
	dir := t.TempDir()
	sigs := make(chan os.Signal, 1)
	cfg := sh(3, `trap "echo usr1 \$DECORUN_RANK" USR1; trap "echo int \$DECORUN_RANK; exit 0" INT;
		echo $$ > `+dir+`/$DECORUN_RANK; while :; do sleep 0.02; done`)
	cfg.Signals = sigs
	var out syncBuffer
	cfg.Stdout = &out
	errc := make(chan error, 1)
	go func() { err, _, _ := run(t, cfg); errc <- err }()
	waitFiles(t, dir, 3)
	sigs <- syscall.SIGUSR1
	waitOutput(t, &out, "usr1 0", "usr1 1", "usr1 2")
	sigs <- syscall.SIGINT
	err := <-errc
	exitError(t, err, 130, `^interrupted by SIGINT$`)
	waitOutput(t, &out, "int 0", "int 1", "int 2")
	assertGone(t, pids(t, dir), 3)
}

func waitOutput(t *testing.T, b *syncBuffer, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, missing := b.String(), ""
		for _, w := range want {
			if !strings.Contains(s, w+"\n") {
				missing = w
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("output %q lacks %q", s, missing)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestContextCancel(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		errc <- launcher.Run(ctx, launcher.Config{NP: 2, Program: "/bin/sh",
			Args: []string{"-c", `echo $$ > ` + dir + `/$DECORUN_RANK; sleep 30`}, Stdout: &syncBuffer{}, Stderr: &syncBuffer{}})
	}()
	waitFiles(t, dir, 2)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Run() = %v; want context.Canceled", err)
	}
	assertGone(t, pids(t, dir), 2)
}

func TestGoPackage(t *testing.T) {
	err, _, errs := run(t, launcher.Config{NP: 2, Program: "./testdata/ctlrank", Args: []string{"fin", "-1"}})
	if err != nil {
		t.Fatalf("Run() = %v; stderr %q", err, errs)
	}
	err, _, errs = run(t, launcher.Config{NP: 2, Program: "./testdata/broken"})
	exitError(t, err, 1, `^cannot build \./testdata/broken: `)
	if !strings.Contains(errs, "main.go") {
		t.Errorf("stderr = %q; want the compiler's output", errs)
	}
}
