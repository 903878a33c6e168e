package shm

import (
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// sharedDir is a directory like /dev/shm (world-writable, sticky) that
// another user can plant files in; removed at the end of the test.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "shm-forge-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// asNobody runs a shell command as uid 65534 (a real second user); the
// test skips when it cannot (not root).
func asNobody(t *testing.T, script string, args ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a command as uid 65534")
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as uid 65534: %s: %v\n%s", script, err, out)
	}
}

// TestCreateRefusesPlantedName: another user creates, in a shared
// directory, the name a rank is about to create; Open fails with an error
// that names the rank, the path and whose file it is, and writes nothing
// into it.
func TestCreateRefusesPlantedName(t *testing.T) {
	dir := sharedDir(t)
	key := []byte("secret")
	path := filepath.Join(dir, Name("job", key, 1))
	asNobody(t, `umask 0 && printf planted > "$1"`, path)
	_, err := Open(Config{Dir: dir, ID: "job", NameKey: key, AuthKey: key, Rank: 1, Size: 2, Peers: []int{0}, RingSize: 4096},
		func([]byte) {}, func(error) {})
	if err == nil {
		t.Fatal("Open over a planted name succeeded")
	}
	for _, want := range []string{"rank 1 cannot create its segment " + path, "another user's (uid 65534", "mode 0666"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if !errors.Is(err, os.ErrExist) {
		t.Errorf("error %v does not wrap os.ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "planted" {
		t.Errorf("the planted file now holds %q", b)
	}
	RemoveJob(dir, "job")
	if _, err := os.Stat(path); err != nil {
		t.Errorf("RemoveJob removed another user's file: %v", err)
	}
}

// TestConnectRefusesForgeries: a peer's segment is mapped only if it is a
// regular file of this user, mode 0600, with one link, not reached
// through a symbolic link, made with the job's key and holding the nonce
// its rank announced; each forgery is refused with a message saying why.
func TestConnectRefusesForgeries(t *testing.T) {
	key := []byte("secret")
	cases := []struct {
		name string
		// forge turns path, a good segment of rank 1 (nonce all zero),
		// into a forgery; it may return another nonce to announce.
		forge func(t *testing.T, dir, path string) string
		want  string
	}{
		{"another user's", func(t *testing.T, dir, path string) string {
			if os.Geteuid() != 0 {
				t.Skip("needs root, to give the file to uid 65534")
			}
			if err := os.Chown(path, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return ""
		}, "owned by uid 65534, not by this user"},
		{"mode 0644", func(t *testing.T, dir, path string) string {
			os.Chmod(path, 0o644)
			return ""
		}, "mode 0644, not 0600"},
		{"two links", func(t *testing.T, dir, path string) string {
			if err := os.Link(path, filepath.Join(dir, "second")); err != nil {
				t.Fatal(err)
			}
			return ""
		}, "2 links, not 1"},
		{"symbolic link", func(t *testing.T, dir, path string) string {
			real := filepath.Join(dir, "real")
			os.Rename(path, real)
			os.Symlink(real, path)
			return ""
		}, "is a symbolic link"},
		{"fifo", func(t *testing.T, dir, path string) string {
			os.Remove(path)
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
			return ""
		}, "not a regular file"},
		{"another nonce", func(t *testing.T, dir, path string) string {
			return strings.Repeat("ab", nonceLen)
		}, "not the segment rank 1 announced"},
		{"another key", func(t *testing.T, dir, path string) string {
			os.Remove(path)
			s, err := create(path, []byte("guess"), make([]byte, nonceLen), 1, 2, []int{0}, 4096)
			if err != nil {
				t.Fatal(err)
			}
			s.unmap()
			return ""
		}, "not made with this job's key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, Name("job", key, 1))
			s, err := create(path, key, make([]byte, nonceLen), 1, 2, []int{0}, 4096)
			if err != nil {
				t.Fatal(err)
			}
			before := append([]byte(nil), s.mem...)
			s.unmap()
			nonce := tc.forge(t, dir, path)
			if nonce == "" {
				nonce = hex.EncodeToString(make([]byte, nonceLen))
			}
			l, err := Open(Config{Dir: dir, ID: "job", NameKey: key, AuthKey: key, Rank: 0, Size: 2, Peers: []int{1}, RingSize: 4096},
				func([]byte) {}, func(error) {})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			reach, why := l.Connect(map[int]string{1: nonce})
			if reach[1] || why[1] == nil || !strings.Contains(why[1].Error(), tc.want) {
				t.Fatalf("Connect: reach %v, why %v; want refused: %q", reach[1], why[1], tc.want)
			}
			if err := l.Send(1, []byte("secret message")); err == nil {
				t.Error("Send to a refused peer succeeded")
			}
			if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() || tc.name == "another key" {
				return // nothing to compare
			}
			if b, err := os.ReadFile(path); err != nil || string(b) != string(before) {
				t.Error("the forged file changed")
			}
		})
	}
	t.Run("no nonce", func(t *testing.T) {
		dir := t.TempDir()
		s, err := create(filepath.Join(dir, Name("job", key, 1)), key, make([]byte, nonceLen), 1, 2, []int{0}, 4096)
		if err != nil {
			t.Fatal(err)
		}
		s.unmap()
		l, err := Open(Config{Dir: dir, ID: "job", NameKey: key, AuthKey: key, Rank: 0, Size: 2, Peers: []int{1}, RingSize: 4096},
			func([]byte) {}, func(error) {})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if reach, why := l.Connect(nil); reach[1] || why[1] == nil || !strings.Contains(why[1].Error(), "rank 1 announced no segment") {
			t.Errorf("Connect without rank 1's nonce: reach %v, why %v; want refused", reach[1], why[1])
		}
	})
}

// TestNamesShareNothing: the names of one job's ranks have nothing in
// common but the job id and their rank numbers, so that a name seen in
// /dev/shm does not give away another; and a segment is mode 0600 under
// any umask.
func TestNamesShareNothing(t *testing.T) {
	key := []byte("secret")
	hash := func(r int) string {
		parts := strings.Split(Name("job", key, r), "-")
		return parts[len(parts)-2]
	}
	if hash(0) == hash(1) || hash(1) == hash(2) {
		t.Errorf("names of ranks 0, 1 and 2 share their hash: %s %s %s", Name("job", key, 0), Name("job", key, 1), Name("job", key, 2))
	}
	if Name("job", key, 0) == Name("job", []byte("other"), 0) {
		t.Error("two keys give one name")
	}
	old := syscall.Umask(0o277)
	defer syscall.Umask(old)
	dir := t.TempDir()
	l, err := Open(Config{Dir: dir, ID: "job", NameKey: key, AuthKey: key, Rank: 0, Size: 2, Peers: []int{1}, RingSize: 4096},
		func([]byte) {}, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if st, err := os.Stat(l.Path()); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("segment mode %v (%v); want 0600", st.Mode(), err)
	}
}
