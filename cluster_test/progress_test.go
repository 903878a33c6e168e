package cluster_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestDecoProgressOnTerminal: run on a terminal (a pseudo-terminal here),
// decorun tells its ranks so (DECORUN_TTY), rank 0's deco block draws its
// progress bar although its own stderr is a pipe to decorun, and decorun
// forwards each frame (which ends in a carriage return, not a newline) as
// it comes: frames arrive while the block runs, before its result line,
// and the first already counts the tasks done by then.
func TestDecoProgressOnTerminal(t *testing.T) {
	cmd := exec.Command(filepath.Join(bin, "decorun"), "-n", "2", prog(t, "decotasks"))
	cmd.Dir = repo
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	type chunk struct {
		at   time.Time
		data []byte
	}
	chunks := make(chan chunk, 1<<12)
	go func() {
		defer close(chunks)
		b := make([]byte, 4096)
		for {
			n, err := tty.Read(b)
			if n > 0 {
				chunks <- chunk{time.Now(), bytes.Clone(b[:n])}
			}
			if err != nil {
				return
			}
		}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var out bytes.Buffer
	var framesBefore int // frames read before the result line
	sumAt := -1
	deadline := time.After(2 * time.Minute) // a hang guard
read:
	for {
		select {
		case c, ok := <-chunks:
			if !ok {
				break read
			}
			out.Write(c.data)
			if sumAt < 0 {
				if i := bytes.Index(out.Bytes(), []byte("sum ")); i >= 0 {
					sumAt = i
					framesBefore = strings.Count(string(out.Bytes()[:i]), "tasks/s")
				}
			}
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("no end after 2 minutes; output so far:\n%q", out.String())
		}
	}
	if err := <-waited; err != nil {
		t.Fatalf("decorun: %v; output:\n%q", err, out.String())
	}
	text := out.String()
	if sumAt < 0 || !strings.Contains(text, "ok") {
		t.Fatalf("no result line; output:\n%q", text)
	}
	if framesBefore == 0 {
		t.Fatalf("no progress frame before the block's result; output:\n%q", text)
	}
	// The first frame counts the tasks done by then (the bar appears
	// after half a second, when some of the 40 ms tasks are done).
	m := regexp.MustCompile(`\((\d+)/60`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no task count in the frames; output:\n%q", text)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Errorf("the first frame shows 0 of 60 tasks done, half a second into the block; output:\n%q", text)
	}
}

// TestPartialLineOnTerminal: under decorun on a terminal, the start of a
// line left unfinished (a prompt, a status) shows while its rank is still
// busy, not when it ends the line; another rank's line does not land inside
// it.
func TestPartialLineOnTerminal(t *testing.T) {
	cmd := exec.Command(filepath.Join(bin, "decorun"), "-n", "2", "--tag-output", "sh", "-c",
		`if [ $DECORUN_RANK = 0 ]; then printf 'working... '; sleep 0.5; echo done; else sleep 0.2; echo ready; fi`)
	cmd.Dir = repo
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var reads []string
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		b := make([]byte, 4096)
		for {
			n, err := tty.Read(b)
			if n > 0 {
				reads = append(reads, string(b[:n]))
			}
			if err != nil {
				return
			}
		}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("decorun: %v", err)
		}
	case <-time.After(2 * time.Minute): // a hang guard
		cmd.Process.Kill()
		t.Fatal("no end after 2 minutes")
	}
	tty.Close()
	<-readDone
	text := strings.Join(reads, "")
	first := -1
	for i, r := range reads {
		if strings.Contains(r, "working") {
			first = i
			break
		}
	}
	if first < 0 || strings.Contains(strings.Join(reads[:first+1], ""), "done") {
		t.Fatalf("the unfinished line did not show before its end; reads %q", reads)
	}
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(text, "\r", "")), "\n")
	sort.Strings(lines)
	got := strings.Join(lines, "|")
	// A line left silent for a second lets the others go on: it is ended,
	// and the rest comes on a line of its own.
	if got != "[0] working... done|[1] ready" && got != "[0] done|[0] working... |[1] ready" {
		t.Errorf("lines %q", lines)
	}
}
