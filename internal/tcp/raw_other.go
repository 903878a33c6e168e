//go:build !linux

package tcp

import (
	"errors"
	"net"
)

// rawFD: elsewhere than Linux frames go through the connection's own
// Read and Write only (no driving, no inline writes).
func rawFD(net.Conn) int { return -1 }

var errNoRaw = errors.New("tcp: no raw socket access on this platform")

func readFD(int, []byte) (int, error)          { return 0, errNoRaw }
func peekFD(int, []byte) (int, error)          { return 0, errNoRaw }
func readvFD(int, []byte, []byte) (int, error) { return 0, errNoRaw }
func dropFD(int, []byte) (int, error)          { return 0, errNoRaw }
func writeFD(int, ...[]byte) (int, error)      { return 0, errNoRaw }

type pollFD struct {
	fd      int32
	events  int16
	revents int16
}

const pollOut = 0x4

// ready reports every socket ready (never called: no socket is polled
// here).
func ready(fds []pollFD) {
	for i := range fds {
		fds[i].revents = pollOut
	}
}
