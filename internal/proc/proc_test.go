package proc

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

// recorder keeps each Write as one element.
type recorder struct{ writes []string }

func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func TestCopyLines(t *testing.T) {
	long := strings.Repeat("x", 200<<10) // longer than the read buffer
	for _, tc := range []struct {
		name, in string
		prefix   string
		max      int
		want     []string
	}{
		{"lines", "a\nbb\n", "", 1 << 20, []string{"a\n", "bb\n"}},
		{"prefix", "a\nbb\n", "[3] ", 1 << 20, []string{"[3] a\n", "[3] bb\n"}},
		{"no final newline", "a\nlast", "[0] ", 1 << 20, []string{"[0] a\n", "[0] last\n"}},
		{"empty", "", "[0] ", 1 << 20, nil},
		{"empty lines", "\n\n", "", 1 << 20, []string{"\n", "\n"}},
		{"long line whole", long + "\nz\n", "> ", 1 << 20, []string{"> " + long + "\n", "> z\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r recorder
			// One byte per read: lines arrive in many pieces.
			if err := CopyLines(tagged(&r, tc.prefix), iotest.OneByteReader(strings.NewReader(tc.in)), tc.max, 0); err != nil {
				t.Fatal(err)
			}
			if len(r.writes) != len(tc.want) {
				t.Fatalf("%d writes; want %d (%.60q)", len(r.writes), len(tc.want), r.writes)
			}
			for i := range tc.want {
				if r.writes[i] != tc.want[i] {
					t.Errorf("write %d = %.60q (%d bytes); want %.60q (%d bytes)", i, r.writes[i], len(r.writes[i]), tc.want[i], len(tc.want[i]))
				}
			}
		})
	}
}

// A line over the limit goes out in pieces; only the first has the prefix.
func TestCopyLinesOverMax(t *testing.T) {
	long := strings.Repeat("x", 300<<10)
	var r recorder
	if err := CopyLines(tagged(&r, "> "), strings.NewReader(long+"\nz\n"), 100<<10, 0); err != nil {
		t.Fatal(err)
	}
	if len(r.writes) < 4 || len(r.writes[0]) != 2+100<<10 || r.writes[len(r.writes)-1] != "> z\n" {
		t.Fatalf("%d writes, first %d bytes, last %.20q", len(r.writes), len(r.writes[0]), r.writes[len(r.writes)-1])
	}
	if got := strings.Join(r.writes, ""); got != "> "+long+"\n> z\n" {
		t.Errorf("pieces do not add up to the input")
	}
	for i, w := range r.writes[1 : len(r.writes)-1] {
		if strings.HasPrefix(w, ">") {
			t.Errorf("piece %d has the prefix", i+1)
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) { f.n++; return 0, errors.New("broken") }

// A broken destination does not stop the reading.
func TestCopyLinesBrokenDestination(t *testing.T) {
	src := strings.NewReader(strings.Repeat("line\n", 1000))
	err := CopyLines(&failWriter{}, src, 1<<20, 0)
	if err == nil || err.Error() != "broken" {
		t.Errorf("CopyLines() = %v; want the write error", err)
	}
	if src.Len() != 0 {
		t.Errorf("%d bytes left unread", src.Len())
	}
}

func TestCopyLinesReadError(t *testing.T) {
	var out bytes.Buffer
	err := CopyLines(&out, io.MultiReader(strings.NewReader("half"), iotest.ErrReader(io.ErrUnexpectedEOF)), 1<<20, 0)
	if !errors.Is(err, io.ErrUnexpectedEOF) || out.String() != "half\n" {
		t.Errorf("CopyLines() = %v, output %q; want the read error and the flushed line", err, out.String())
	}
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		script string
		code   int
		str    string
	}{
		{"exit 0", 0, "exited with code 0"},
		{"exit 3", 3, "exited with code 3"},
		{"kill -KILL $$", 137, "killed by signal SIGKILL"},
		{"kill -TERM $$", 143, "killed by signal SIGTERM"},
	} {
		p, err := Start(exec.Command("/bin/sh", "-c", tc.script))
		if err != nil {
			t.Fatal(err)
		}
		st, err := p.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if st.ExitCode() != tc.code || st.String() != tc.str || st.Failed() != (tc.code != 0) {
			t.Errorf("%q: %v, code %d, failed %v; want %q, %d", tc.script, st, st.ExitCode(), st.Failed(), tc.str, tc.code)
		}
		if st2, ok := p.Poll(); !ok || st2 != st {
			t.Errorf("%q: Poll after Wait = %v, %v; want %v, true", tc.script, st2, ok, st)
		}
		if p.Signal(syscall.SIGKILL) {
			t.Errorf("%q: Signal after Wait sent a signal", tc.script)
		}
	}
}

// Children left in the group die with the leader.
func TestWaitKillsGroup(t *testing.T) {
	f := t.TempDir() + "/child"
	p, err := Start(exec.Command("/bin/sh", "-c", "sleep 30 & echo $! > "+f))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st, err := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			return // gone, or a zombie waiting for init
		}
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("child %d of the process outlived it", child)
		}
	}
}

// TestCopyLinesCarriageReturn: a piece that ends in a carriage return (a
// progress bar's frame) goes on at once, prefixed; the LF of a CRLF goes
// on alone; normal lines and a last line without a newline as before.
func TestCopyLinesCarriageReturn(t *testing.T) {
	var out bytes.Buffer
	in := "frame 1\rframe 2\rdone\r\nnext line\nlast"
	if err := CopyLines(tagged(&out, "[0] "), strings.NewReader(in), 1024, 0); err != nil {
		t.Fatal(err)
	}
	want := "[0] frame 1\r[0] frame 2\r[0] done\r\n[0] next line\n[0] last\n"
	if out.String() != want {
		t.Errorf("got %q; want %q", out.String(), want)
	}
	// A frame is written before the writer of src writes anything more.
	r, w := io.Pipe()
	got := make(chan string, 4)
	go CopyLines(writerFunc(func(p []byte) (int, error) { got <- string(p); return len(p), nil }), r, 1024, 0)
	w.Write([]byte("50%\r"))
	select {
	case s := <-got:
		if s != "50%\r" {
			t.Errorf("first piece %q", s)
		}
	case <-time.After(time.Minute): // a hang guard
		t.Fatal("a frame ending in CR was held back")
	}
	w.Close()
}

// tagged is a Mux source writing to w with prefix.
func tagged(w io.Writer, prefix string) io.Writer {
	return NewMux(w, time.Second).Source([]byte(prefix))
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
