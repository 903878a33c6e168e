package cluster_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/decorun/decorun/internal/trace"
)

// readTrace reads and validates a trace file written by decorun --trace.
func readTrace(t *testing.T, path string) *trace.File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no trace file: %v", err)
	}
	f, err := trace.ParseFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Validate(f); err != nil {
		t.Fatalf("%s is not a valid trace:\n%v", path, err)
	}
	return f
}

// traceCounts counts a trace's processes (by name), complete events by
// name, flows and async task spans.
type traceCounts struct {
	procs   map[int]string
	threads map[string]bool // thread names
	byName  map[string]int  // X events
	flows   int
	life    int // deco queue spans
	tasks   int // deco task slices
}

func countTrace(f *trace.File) traceCounts {
	c := traceCounts{procs: map[int]string{}, threads: map[string]bool{}, byName: map[string]int{}}
	for _, e := range f.TraceEvents {
		switch {
		case e.Ph == "M" && e.Name == "process_name":
			c.procs[e.Pid], _ = e.Args["name"].(string)
		case e.Ph == "M" && e.Name == "thread_name":
			n, _ := e.Args["name"].(string)
			c.threads[n] = true
		case e.Ph == "X":
			c.byName[e.Name]++
			if e.Cat == "deco" {
				c.tasks++
			}
		case e.Ph == "s":
			c.flows++
		case e.Ph == "b":
			c.life++
		}
	}
	return c
}

// checkProcs checks one process per rank, named "rank R (host)".
func checkProcs(t *testing.T, c traceCounts, n int) {
	t.Helper()
	if len(c.procs) != n {
		t.Errorf("%d processes in the trace; want %d (one per rank): %v", len(c.procs), n, c.procs)
	}
	host, _ := os.Hostname()
	for r := range n {
		if want := fmt.Sprintf("rank %d (%s)", r, host); c.procs[r] != want {
			t.Errorf("process %d is named %q; want %q", r, c.procs[r], want)
		}
	}
}

// TestTracePipeline traces examples/pipeline at -n 4: every one of its 18
// point-to-point messages (5 items and an end mark from each of ranks 0-2)
// is a send with a flow arrow to the receive that matched it.
func TestTracePipeline(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pipeline.json")
	p := start(t, "-n", "4", "--trace", out, prog(t, "pipeline"))
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	c := countTrace(readTrace(t, out))
	checkProcs(t, c, 4)
	if got := c.byName["SendValue"]; got != 18 {
		t.Errorf("%d SendValue events; want 18", got)
	}
	if got := c.byName["RecvValue"]; got != 18 {
		t.Errorf("%d RecvValue events; want 18", got)
	}
	if c.flows < 18 {
		t.Errorf("%d message arrows; want at least the 18 of SendValue/RecvValue", c.flows)
	}
	if c.byName["Barrier"] != 4 {
		t.Errorf("%d Barrier events; want 4 (one per rank)", c.byName["Barrier"])
	}
	for _, th := range []string{"comm", "collectives", "job"} {
		if !c.threads[th] {
			t.Errorf("no %q track; tracks: %v", th, c.threads)
		}
	}
}

// TestTracePi traces examples/pi at -n 4 over NATS alone (its Reduce then
// goes by messages: the agreement step's and a binomial tree's 3) and with
// the default data path (through the shared-memory region: no message).
// Every message received has its arrow from the send.
func TestTracePi(t *testing.T) {
	for _, tc := range []struct {
		transport string
		flows     int
		alg       string
	}{{"nats", 3, "binomial tree"}, {"auto", 0, "shared-memory region"}} {
		t.Run(tc.transport, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "pi.json")
			p := start(t, "-n", "4", "--transport", tc.transport, "--trace", out, prog(t, "pi"), "-samples", "1000")
			if code := p.wait(60 * time.Second); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
			}
			f := readTrace(t, out)
			c := countTrace(f)
			checkProcs(t, c, 4)
			if c.byName["Reduce"] != 4 {
				t.Errorf("%d Reduce events; want 4", c.byName["Reduce"])
			}
			recvs := 0
			for _, e := range f.TraceEvents {
				if e.Ph == "X" && e.Cat == "comm" && e.Args["msg"] != nil && strings.HasPrefix(e.Name, "Recv") {
					recvs++
				}
			}
			if c.flows < tc.flows || c.flows != recvs {
				t.Errorf("%d message arrows for %d receives; want one per receive, at least %d", c.flows, recvs, tc.flows)
			}
			for _, e := range f.TraceEvents {
				if e.Name == "Reduce" && e.Args["algorithm"] != tc.alg {
					t.Errorf("rank %d's Reduce: algorithm %v; want %q", e.Pid, e.Args["algorithm"], tc.alg)
				}
				if e.Name == "Reduce" && e.Args["bytes"] != float64(8) {
					t.Errorf("rank %d's Reduce: bytes %v; want 8 (an int64)", e.Pid, e.Args["bytes"])
				}
			}
			if m := f.OtherData; len(m.Ranks) != 4 || m.Ranks[0].RTTNs <= 0 {
				t.Errorf("metadata: %+v; want 4 ranks with measured clock offsets", m.Ranks)
			}
		})
	}
}

// TestTraceFib traces examples/fib at -n 3: every task is on rank 0's deco
// queue track, and as many task slices ran on the ranks.
func TestTraceFib(t *testing.T) {
	out := filepath.Join(t.TempDir(), "fib.json")
	p := start(t, "-n", "3", "--trace", out, prog(t, "fib"), "32", "31", "30", "29", "28", "27")
	if code := p.wait(120 * time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	f := readTrace(t, out)
	c := countTrace(f)
	checkProcs(t, c, 3)
	if c.life != 6 || c.tasks != 6 {
		t.Errorf("%d queued-to-settled spans and %d task slices; want 6 and 6 (one per fib call)", c.life, c.tasks)
	}
	if c.byName["main.fibSerial"] != 6 {
		t.Errorf("task slices by name: %v; want 6 of main.fibSerial", c.byName)
	}
	if !c.threads["deco tasks"] || !c.threads["deco queue"] {
		t.Errorf("tracks %v; want deco tasks and deco queue", c.threads)
	}
}

// TestTraceJobDies: rank 1 of 3 exits with code 3 while the others wait
// for it; decorun stops them, and the trace keeps what they recorded (they
// ship it on SIGTERM), naming rank 1 as missing.
func TestTraceJobDies(t *testing.T) {
	out := filepath.Join(t.TempDir(), "fault.json")
	p := start(t, "-n", "3", "--trace", out, prog(t, "fault"), "exit", "1", "3")
	if code := p.wait(60 * time.Second); code != 3 {
		t.Fatalf("exit %d; want 3; stderr:\n%s", code, p.errText())
	}
	f := readTrace(t, out)
	if m := f.OtherData.Missing; len(m) != 1 || m[0] != 1 {
		t.Errorf("missing ranks %v; want [1]", m)
	}
	got := map[int]string{}
	for _, r := range f.OtherData.Ranks {
		got[r.Rank] = r.Reason
	}
	for _, r := range []int{0, 2} {
		if got[r] != "signal terminated" {
			t.Errorf("rank %d flushed on %q; want \"signal terminated\" (all: %v)", r, got[r], got)
		}
	}
	c := countTrace(f)
	if c.byName["start-up"] != 2 {
		t.Errorf("%d start-up events; want 2 (ranks 0 and 2)", c.byName["start-up"])
	}
}

// TestTraceReport checks decorun --report and --report-json on
// examples/pipeline at -n 4 against what the program does: its call sites
// with their counts, and the messages it sent.
func TestTraceReport(t *testing.T) {
	js := filepath.Join(t.TempDir(), "report.json")
	p := start(t, "-n", "4", "--report", "--report-json", js, prog(t, "pipeline"))
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	text := p.errText()
	for _, re := range []string{
		`decorun report: 4 ranks`,
		`(?m)^0 \(\S+\)\s+\S+\s+\S+\s+\S+%`,
		`(?m)^\s+pipeline/main\.go:45\s+SendValue\s+15\s+3\s`,
		`(?m)^\s+pipeline/main\.go:55\s+RecvValue\s+18\s+3\s`,
		`(?m)^\s+pipeline/main\.go:68\s+SendValue\s+3\s+3\s`,
		`(?m)^\s+pipeline/main\.go:72\s+Barrier\s+4\s+4\s`,
		`collectives: time per rank max`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("report lacks %s:\n%s", re, text)
		}
	}
	r := readReport(t, js)
	if r.Size != 4 || len(r.Ranks) != 4 {
		t.Fatalf("report of %d ranks with %d lines; want 4", r.Size, len(r.Ranks))
	}
	sites := map[string]int{}
	for _, s := range r.Sites {
		sites[s.Site+" "+s.Call] = s.Count
	}
	for k, want := range map[string]int{"pipeline/main.go:45 SendValue": 15, "pipeline/main.go:68 SendValue": 3,
		"pipeline/main.go:55 RecvValue": 18, "pipeline/main.go:72 Barrier": 4} {
		if sites[k] != want {
			t.Errorf("site %s: count %d; want %d (all: %v)", k, sites[k], want, sites)
		}
	}
	// Ranks 0-2 send 6 messages each at least (their Barrier may add some).
	for _, rr := range r.Ranks[:3] {
		if rr.Sends < 6 || rr.WallNs <= 0 || rr.CommNs <= 0 || rr.CommNs+rr.OutsideNs != rr.WallNs {
			t.Errorf("rank %d: %+v; want at least 6 sends and wall = comm + outside", rr.Rank, rr)
		}
	}
	if r.Sizes[0].Count < 18 {
		t.Errorf("messages under 64 bytes: %d; want at least 18", r.Sizes[0].Count)
	}
}

// chromium returns the path of a headless browser, skipping the test when
// there is none (outside CI only).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (.ci/run installs it); under CI this test must run")
	}
	t.Skip("chromium is not installed: apt-get install -y chromium")
	return ""
}

// headless runs chromium on page with extra flags and returns its stdout.
func headless(t *testing.T, browser, page string, flags ...string) string {
	t.Helper()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}, flags...)
	cmd := exec.Command(browser, append(args, "file://"+page)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.Output()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("chromium still running after 90s; stderr:\n%s", stderr.String())
	}
	if err != nil {
		t.Fatalf("chromium: %v; stderr:\n%s", err, stderr.String())
	}
	return string(out)
}

// TestTraceHTML renders the traces of examples/pipeline and examples/fib
// as HTML (decorun --trace FILE.html) and checks, in a real headless
// browser, that the drawn page has a bar per call, an arrow per message
// and the deco tasks.
func TestTraceHTML(t *testing.T) {
	browser := chromium(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "pipeline.html")
	p := start(t, "-n", "4", "--trace", page, prog(t, "pipeline"))
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?i)(src|href)=["']?(https?:)?//`).Match(html) {
		t.Errorf("the page loads something from the network")
	}
	dom := headless(t, browser, page, "--dump-dom")
	count := func(re string) int { return len(regexp.MustCompile(re).FindAllStringIndex(dom, -1)) }
	if n := count(`<rect [^>]*class="bar k-send"`); n < 18 {
		t.Errorf("%d send bars in the rendered page; want at least 18", n)
	}
	if n := count(`<rect [^>]*class="bar k-recv"`); n < 18 {
		t.Errorf("%d receive bars in the rendered page; want at least 18", n)
	}
	if n := count(`<path [^>]*class="arrow"`); n < 18 {
		t.Errorf("%d message arrows in the rendered page; want at least 18", n)
	}
	for r := range 4 {
		if !strings.Contains(dom, fmt.Sprintf(">rank %d (", r)) {
			t.Errorf("no row for rank %d in the rendered page", r)
		}
	}
	shot := filepath.Join(dir, "pipeline.png")
	headless(t, browser, page, "--screenshot="+shot, "--window-size=1400,900")
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Errorf("screenshot: %v (%v); want a PNG", fi, err)
	}

	// decorun trace view turns a JSON trace of fib into a page with tasks.
	js := filepath.Join(dir, "fib.json")
	p = start(t, "-n", "2", "--trace", js, prog(t, "fib"), "30", "29", "28", "27")
	if code := p.wait(120 * time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	page = filepath.Join(dir, "fib.html")
	v := start(t, "trace", "view", js, page)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Fatalf("decorun trace view: exit %d; stderr:\n%s", code, v.errText())
	}
	dom = headless(t, browser, page, "--dump-dom")
	if n := len(regexp.MustCompile(`<rect [^>]*class="bar task"[^>]*data-name="main.fibSerial"`).FindAllString(dom, -1)); n != 4 {
		t.Errorf("%d task bars of main.fibSerial in the rendered page; want 4", n)
	}
	if n := len(regexp.MustCompile(`<rect [^>]*class="bar task-life"`).FindAllString(dom, -1)); n != 4 {
		t.Errorf("%d queued-to-settled bars in the rendered page; want 4", n)
	}
}

// TestTraceMerge: without decorun's launcher (join mode, or a program run
// on its own), DECORUN_TRACE=PATH makes the rank write PATH.rank0, and
// decorun trace merge turns it into a valid trace.
func TestTraceMerge(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "solo")
	cmd := exec.Command(prog(t, "pipeline"))
	cmd.Env = append(os.Environ(), "DECORUN_TRACE="+base)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pipeline alone: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "solo.json")
	p := start(t, "trace", "merge", "-o", out, base+".rank0")
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("decorun trace merge: exit %d; stderr:\n%s", code, p.errText())
	}
	f := readTrace(t, out)
	c := countTrace(f)
	checkProcs(t, c, 1)
	if c.byName["Barrier"] != 1 || c.byName["start-up"] != 1 {
		t.Errorf("events by name %v; want a Barrier and the start-up", c.byName)
	}
	if r := f.OtherData.Ranks; len(r) != 1 || r[0].RTTNs != 0 || r[0].Reason != "close" {
		t.Errorf("metadata %+v; want one rank, clock not measured, flushed on close", r)
	}
}

// TestTraceMultiHost traces examples/pipeline on 2 hosts (network
// namespaces, 2 ranks each): the ranks on the other host ship their
// recording through the job's server, every rank's clock offset is
// measured, and the messages that cross hosts have their arrows.
func TestTraceMultiHost(t *testing.T) {
	nh := makeHosts(t, 2)
	out := filepath.Join(t.TempDir(), "hosts.json")
	p := start(t, append(nh.args(2), "-n", "4", "--trace", out, prog(t, "pipeline"))...)
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	f := readTrace(t, out)
	c := countTrace(f)
	if len(c.procs) != 4 || c.byName["SendValue"] != 18 || c.flows < 18 {
		t.Errorf("%d processes, %d SendValue, %d arrows; want 4, 18, at least 18", len(c.procs), c.byName["SendValue"], c.flows)
	}
	for _, r := range f.OtherData.Ranks {
		if r.RTTNs <= 0 || r.Reason != "close" {
			t.Errorf("rank %d: clock round trip %d ns, flushed on %q; want measured, close", r.Rank, r.RTTNs, r.Reason)
		}
	}
	noLeftovers(t)
}

// TestTraceJobEvents: an Abort and a rank lost under --keep-going are in
// the trace: the aborting rank ships its recording at Abort, the others
// when decorun stops them; the survivor records the loss.
func TestTraceJobEvents(t *testing.T) {
	t.Run("abort", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "abort.json")
		p := start(t, "-n", "3", "--trace", out, prog(t, "fault"), "abort", "1", "5")
		if code := p.wait(60 * time.Second); code != 5 {
			t.Fatalf("exit %d; want 5; stderr:\n%s", code, p.errText())
		}
		f := readTrace(t, out)
		got := map[int]string{}
		for _, r := range f.OtherData.Ranks {
			got[r.Rank] = r.Reason
		}
		want := map[int]string{0: "signal terminated", 1: "abort(5)", 2: "signal terminated"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ranks flushed on %v; want %v", got, want)
		}
	})
	t.Run("lost", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "lost.json")
		p := start(t, "-n", "3", "--keep-going", "--trace", out, prog(t, "fault"), "survive", "1", "3")
		if code := p.wait(60 * time.Second); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
		}
		f := readTrace(t, out)
		if m := f.OtherData.Missing; len(m) != 1 || m[0] != 1 {
			t.Errorf("missing ranks %v; want [1]", m)
		}
		found := false
		for _, e := range f.TraceEvents {
			if e.Pid == 0 && e.Name == "rank lost" && e.Args["rank"] == float64(1) {
				found = true
			}
		}
		if !found {
			t.Errorf("rank 0 has no \"rank lost\" event for rank 1")
		}
	})
}

// TestTraceDecoRetried: a worker SIGKILLed in the middle of a deco block
// under --keep-going; rank 0's queue track shows all 60 tasks, those the
// dead worker held marked as rerun and settled elsewhere, and the report
// counts them.
func TestTraceDecoRetried(t *testing.T) {
	dir := t.TempDir()
	out, js := filepath.Join(dir, "deco.json"), filepath.Join(dir, "report.json")
	p := start(t, "-n", "3", "--keep-going", "--trace", out, "--report-json", js, prog(t, "decotasks"), "kill")
	pids := p.pids(3)
	time.Sleep(300 * time.Millisecond) // every rank holds a task now
	if err := syscall.Kill(pids[2], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	f := readTrace(t, out)
	life, retried := 0, 0
	for _, e := range f.TraceEvents {
		if e.Ph != "b" {
			continue
		}
		life++
		if e.Args["retried"] == true {
			retried++
			if e.Args["ran_on"] == float64(2) {
				t.Errorf("a rerun task is said to have run on the dead rank 2: %v", e.Args)
			}
		}
	}
	if life != 60 || retried == 0 {
		t.Errorf("%d tasks on rank 0's queue, %d rerun; want 60, at least 1", life, retried)
	}
	r := readReport(t, js)
	if r.Tasks == nil || r.Tasks.Retried != retried || len(r.Missing) != 1 || r.Missing[0] != 2 {
		t.Errorf("report: tasks %+v, missing %v; want %d rerun, rank 2 missing", r.Tasks, r.Missing, retried)
	}
	noLeftovers(t, pids...)
}

// TestTraceSpawn traces examples/sweep at -n 2 with 3 spawned workers:
// the job's own 2 ranks are in the trace (their world's calls, arrows
// valid), the spawned ranks and the intercommunicator's calls are not,
// and nothing complains on stderr.
func TestTraceSpawn(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sweep.json")
	p := start(t, "-n", "2", "--trace", out, prog(t, "sweep"), "-workers", "3", "-points", "12")
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	if !strings.HasSuffix(p.out(), "12 points by 3 workers") {
		t.Errorf("output %q", p.out())
	}
	if e := p.errText(); strings.Contains(e, "trace") {
		t.Errorf("stderr mentions the trace:\n%s", e)
	}
	f := readTrace(t, out)
	c := countTrace(f)
	checkProcs(t, c, 2)
	if len(f.OtherData.Missing) != 0 {
		t.Errorf("missing ranks %v; want none", f.OtherData.Missing)
	}
}

// readReport reads the report --report-json wrote to path.
func readReport(t *testing.T, path string) trace.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r trace.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}
