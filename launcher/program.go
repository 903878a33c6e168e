package launcher

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/decorun/decorun/internal/proc"
)

// resolveProgram returns the path of the executable to run for
// cfg.Program, building it first when it is a Go package directory. cleanup
// removes what was built; it is never nil.
func resolveProgram(ctx context.Context, cfg *Config) (path string, cleanup func(), err error) {
	nop := func() {}
	if isGoPackage(cfg.Program) {
		return buildPackage(ctx, cfg)
	}
	path, err = exec.LookPath(cfg.Program)
	if err != nil {
		return "", nop, &ExitError{Code: ExitNotFound, Rank: -1,
			Msg: fmt.Sprintf("cannot execute %q: %v", cfg.Program, err), Err: err}
	}
	return path, nop, nil
}

// isGoPackage reports whether dir is a directory holding .go files.
func isGoPackage(dir string) bool {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	return len(m) > 0
}

// buildPackage builds the Go main package in cfg.Program into a new
// temporary directory, writing the go command's output to cfg.Stderr.
func buildPackage(ctx context.Context, cfg *Config) (string, func(), error) {
	nop := func() {}
	abs, err := filepath.Abs(cfg.Program)
	if err != nil {
		return "", nop, &ExitError{Code: 1, Rank: -1, Msg: fmt.Sprintf("cannot build %s: %v", cfg.Program, err), Err: err}
	}
	if err := checkMain(abs); err != nil {
		return "", nop, &ExitError{Code: ExitUsage, Rank: -1, Msg: fmt.Sprintf("cannot run %s: %v", cfg.Program, err), Err: err}
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", nop, &ExitError{Code: ExitNotFound, Rank: -1,
			Msg: fmt.Sprintf("cannot build %s: the go command is needed to build a Go package: %v", cfg.Program, err), Err: err}
	}
	tmp, err := os.MkdirTemp("", "decorun-build-")
	if err != nil {
		return "", nop, &ExitError{Code: 1, Rank: -1, Msg: fmt.Sprintf("cannot build %s: %v", cfg.Program, err), Err: err}
	}
	cleanup := func() { os.RemoveAll(tmp) }
	out := filepath.Join(tmp, filepath.Base(abs))

	// The go command and the compilers it runs form one process group,
	// killed as a whole when ctx ends (SIGINT or SIGTERM: see setupWatch).
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, ".")
	cmd.Dir = abs
	cmd.Stdout, cmd.Stderr = cfg.Stderr, cfg.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second // output copying after a kill
	err = cmd.Run()
	if ctx.Err() != nil {
		cleanup()
		return "", nop, ctx.Err()
	}
	if err != nil {
		cleanup()
		return "", nop, &ExitError{Code: 1, Rank: -1, Msg: fmt.Sprintf("cannot build %s: go build: %v", cfg.Program, err), Err: err}
	}
	return out, cleanup, nil
}

// errNotMain is the cause when a Go package given as the program is a
// library.
var errNotMain = errors.New("not a main package")

// checkMain makes sure the Go package in dir is a program (package main)
// before it is built: `go build -o FILE` writes a library package's archive
// to FILE, which then cannot be executed. Other problems (no buildable
// file, several packages) are left to go build, which explains them.
func checkMain(dir string) error {
	p, err := build.ImportDir(dir, 0)
	if err != nil || p.IsCommand() {
		return nil
	}
	return fmt.Errorf("it holds Go package %s, %w (a program is package main with a func main)", p.Name, errNotMain)
}

// interrupted is the failure for a stopping signal the launcher received.
func interrupted(s os.Signal) *ExitError {
	sig, ok := s.(syscall.Signal)
	if !ok {
		return &ExitError{Code: 1, Rank: -1, Msg: "interrupted by " + s.String()}
	}
	return &ExitError{Code: 128 + int(sig), Rank: -1, Msg: "interrupted by " + proc.SignalName(sig)}
}
