package launcher_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// ctlrank is the path of the built testdata/ctlrank helper.
var ctlrank string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "launcher-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctlrank = filepath.Join(dir, "ctlrank")
	out, err := exec.Command("go", "build", "-o", ctlrank, "./testdata/ctlrank").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building ctlrank: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
