package tcp

import (
	"net"
	"syscall"
	"unsafe"
)

// rawFD returns the socket under c for reads and writes that never wait
// (Go opens it non-blocking), or -1 when c is not a plain TCP connection
// (TLS: its records are the tls.Conn's business). The caller must stop
// using the number before c is closed.
func rawFD(c net.Conn) int {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return -1
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	if rc.Control(func(s uintptr) { fd = int(s) }) != nil {
		return -1
	}
	return fd
}

// readFD reads what the socket holds into p without waiting: 0 and
// syscall.EAGAIN when it holds nothing, io.EOF-like (0, nil) at the end of
// the stream.
func readFD(fd int, p []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, p)
		if err == syscall.EINTR {
			continue
		}
		return max(n, 0), err
	}
}

// readvFD is readFD into p and then q, in one system call (readv).
func readvFD(fd int, p, q []byte) (int, error) { return vecFD(syscall.SYS_READV, fd, p, q) }

// peekFD is readFD that leaves what it copies into p in the socket
// (MSG_PEEK): the next read or peek returns the same bytes again, unless
// dropFD dropped them first.
func peekFD(fd int, p []byte) (int, error) {
	for {
		n, _, err := syscall.Recvfrom(fd, p, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err == syscall.EINTR {
			continue
		}
		return max(n, 0), err
	}
}

// dropFD takes up to len(p) bytes out of the socket without copying them
// anywhere (MSG_TRUNC, which TCP sockets take as "discard" since Linux
// 2.4; p is not written to), and returns how many that was.
func dropFD(fd int, p []byte) (int, error) {
	for {
		n, _, err := syscall.Recvfrom(fd, p, syscall.MSG_TRUNC|syscall.MSG_DONTWAIT)
		if err == syscall.EINTR {
			continue
		}
		return max(n, 0), err
	}
}

// pollFD is struct pollfd.
type pollFD struct {
	fd      int32
	events  int16
	revents int16
}

// pollOut: writable (POLLOUT); what else ppoll reports on its own (an
// error, the peer's end) means a write would return at once too.
const pollOut = 0x4

// ready fills the revents of fds with what a write (events pollOut) to
// each would find now, in one system call that does not wait (ppoll with
// a zero timeout). Unlike a write that finds no room, it takes no
// socket's lock. On an error it reports every socket ready.
func ready(fds []pollFD) {
	var ts syscall.Timespec
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
			uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		switch errno {
		case 0:
			return
		case syscall.EINTR:
			continue
		}
		for i := range fds {
			fds[i].revents = pollOut
		}
		return
	}
}

// writeFD writes as much of the pieces (at most maxIov) as the socket
// takes without waiting, in one writev, and returns how many bytes that
// was.
func writeFD(fd int, pieces ...[]byte) (int, error) { return vecFD(syscall.SYS_WRITEV, fd, pieces...) }

// vecFD runs readv or writev (trap) on fd over the non-empty pieces (at
// most maxIov), retrying on EINTR, and returns how many bytes moved.
func vecFD(trap uintptr, fd int, pieces ...[]byte) (int, error) {
	var iov [maxIov]syscall.Iovec
	k := 0
	for _, p := range pieces {
		if len(p) > 0 {
			iov[k].Base = &p[0]
			iov[k].SetLen(len(p))
			k++
		}
	}
	for {
		n, _, errno := syscall.Syscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
		switch errno {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		default:
			return 0, errno
		}
	}
}
