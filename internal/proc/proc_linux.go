//go:build linux

package proc

import (
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"unsafe"
)

// Status is how a process ended.
type Status struct {
	Code   int            // exit code when Signal is 0
	Signal syscall.Signal // signal that killed it, or 0
	Core   bool           // it dumped core
}

// Failed reports whether the process did not exit with code 0.
func (s Status) Failed() bool { return s.Signal != 0 || s.Code != 0 }

// ExitCode is the shell's view of s: the exit code, or 128+signal.
func (s Status) ExitCode() int {
	if s.Signal != 0 {
		return 128 + int(s.Signal)
	}
	return s.Code
}

// String says how the process ended: "exited with code 3" or
// "killed by signal SIGKILL".
func (s Status) String() string {
	if s.Signal != 0 {
		m := "killed by signal " + SignalName(s.Signal)
		if s.Core {
			m += " (core dumped)"
		}
		return m
	}
	return fmt.Sprintf("exited with code %d", s.Code)
}

// Proc is a started process that leads its own process group.
// Its methods are safe for concurrent use.
type Proc struct {
	cmd *exec.Cmd
	pid int

	mu     sync.Mutex // guards exited and status; held while signalling the group
	exited bool       // the leader has exited and may be reaped: its pid may be reused
	status Status     // how it ended, once exited
	werr   error      // waitid failed
}

// Start starts cmd as the leader of a new process group whose leader gets
// SIGKILL when the starting thread dies (Pdeathsig). Any SysProcAttr of cmd
// is replaced. Stdin, Stdout and Stderr of cmd must be nil or *os.File, so
// that [Proc.Wait] returns as soon as the process is reaped.
func Start(cmd *exec.Cmd) (*Proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &Proc{cmd: cmd, pid: cmd.Process.Pid}, nil
}

// Pid is the process id, which is also the process group id.
func (p *Proc) Pid() int { return p.pid }

// Signal sends sig to the process group while its leader has not exited.
// Once the leader has exited it does nothing and returns false.
func (p *Proc) Signal(sig syscall.Signal) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return false
	}
	// The leader is alive or an unreaped zombie, so its pid, which is the
	// group id, cannot have been given to another process.
	_ = syscall.Kill(-p.pid, sig)
	return true
}

// Poll reports whether the process has exited and how, without waiting.
func (p *Proc) Poll() (Status, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return p.status, p.werr == nil
	}
	// Wait cannot reap the process while we hold mu.
	st, ok, err := waitid(p.pid, false)
	if err != nil {
		return Status{}, false
	}
	return st, ok
}

// Wait blocks until the process exits, kills what is left of its process
// group with SIGKILL, reaps the process and returns how it ended. Call it
// once.
func (p *Proc) Wait() (Status, error) {
	st, _, err := waitid(p.pid, true)
	p.mu.Lock()
	p.exited, p.status, p.werr = true, st, err
	// Children the process left behind in its group die with it. The
	// leader is still unreaped, so the group id is still ours.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	p.mu.Unlock()
	werr := p.cmd.Wait()
	if err != nil {
		// waitid failed: fall back on what os/exec reports.
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			return statusOf(ee.Sys().(syscall.WaitStatus)), nil
		}
		if werr != nil {
			return Status{}, fmt.Errorf("proc: wait for pid %d: %w", p.pid, werr)
		}
		return Status{}, nil
	}
	return st, nil
}

func statusOf(ws syscall.WaitStatus) Status {
	if ws.Signaled() {
		return Status{Signal: ws.Signal(), Core: ws.CoreDump()}
	}
	return Status{Code: ws.ExitStatus()}
}

// Values of si_code for SIGCHLD (asm-generic/siginfo.h).
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// waitid waits (block) or polls for pid to exit without reaping it
// (WNOWAIT), and decodes the siginfo the kernel fills in.
func waitid(pid int, block bool) (Status, bool, error) {
	const pPID = 1                       // P_PID
	opts := syscall.WEXITED | 0x01000000 // WNOWAIT
	if !block {
		opts |= syscall.WNOHANG
	}
	var info [128]byte // siginfo_t
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), uintptr(opts), 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return Status{}, false, e
		}
		break
	}
	// siginfo_t: int si_signo, si_errno, si_code, then a union aligned like
	// a pointer whose SIGCHLD member is pid_t si_pid, uid_t si_uid,
	// int si_status.
	union := 12
	if unsafe.Sizeof(uintptr(0)) == 8 {
		union = 16
	}
	code := *(*int32)(unsafe.Pointer(&info[8]))
	gotPid := *(*int32)(unsafe.Pointer(&info[union]))
	status := int(*(*int32)(unsafe.Pointer(&info[union+8])))
	if gotPid == 0 {
		return Status{}, false, nil // WNOHANG and still running
	}
	switch code {
	case cldExited:
		return Status{Code: status}, true, nil
	case cldKilled:
		return Status{Signal: syscall.Signal(status)}, true, nil
	case cldDumped:
		return Status{Signal: syscall.Signal(status), Core: true}, true, nil
	}
	return Status{}, false, fmt.Errorf("proc: waitid for pid %d: unexpected si_code %d", pid, code)
}
