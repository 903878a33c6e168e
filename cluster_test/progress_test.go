package cluster_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
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
