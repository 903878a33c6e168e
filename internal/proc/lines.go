package proc

import (
	"bytes"
	"io"
	"sync"
)

// SyncWriter serialises writes to W: each Write is one W.Write call made
// while holding the mutex. Share one SyncWriter among all copiers writing to
// the same destination.
type SyncWriter struct {
	mu sync.Mutex // guards W
	W  io.Writer
}

// Write writes p to the underlying writer while holding the lock.
func (s *SyncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.W.Write(p)
}

// CopyLines copies src to dst one line at a time, each line in one
// dst.Write call that starts with prefix. A line ends at a newline, or at a
// carriage return, which redraws the line on a terminal (a progress bar's
// frames end so): such a piece goes on as soon as it is read, with the
// prefix, so that the frames reach the terminal while they are drawn, and
// a newline right after it (a CRLF) goes on alone. A last line without a
// newline gets one at end of input. Lines longer than maxLine bytes are
// passed on in pieces of maxLine bytes; only the first piece gets the
// prefix. CopyLines returns when src returns an error or EOF (a nil error)
// and keeps reading (discarding) after dst fails, so the writer of src is
// never blocked by a broken destination; it returns the first error of
// either side.
func CopyLines(dst io.Writer, src io.Reader, prefix []byte, maxLine int) error {
	in := make([]byte, 64<<10)
	buf := make([]byte, 0, 4<<10)
	var werr error
	midLine := false // the previous piece did not end its line
	afterCR := false // the previous piece ended with a carriage return
	emit := func(line []byte) {
		if werr != nil {
			return
		}
		if !midLine {
			buf = append(append(buf[:0], prefix...), line...)
			line = buf
		}
		_, werr = dst.Write(line)
	}
	var acc []byte // the start of a line not ended yet
	for {
		n, err := src.Read(in)
		data := in[:n]
		for len(data) > 0 {
			if afterCR && data[0] == '\n' { // the LF of a CRLF
				midLine = true
				emit(data[:1])
				midLine, afterCR = false, false
				data = data[1:]
				continue
			}
			i := bytes.IndexAny(data, "\r\n")
			if i < 0 {
				acc = append(acc, data...)
				for len(acc) >= maxLine {
					emit(acc[:maxLine])
					midLine = true
					acc = append(acc[:0], acc[maxLine:]...)
				}
				afterCR = false
				break
			}
			line := data[:i+1]
			if len(acc) > 0 {
				acc = append(acc, line...)
				line = acc
			}
			emit(line)
			midLine, afterCR = false, data[i] == '\r'
			acc = acc[:0]
			data = data[i+1:]
		}
		if cap(acc) > 4*maxLine {
			acc = nil
		}
		if err != nil {
			if len(acc) > 0 {
				emit(append(acc, '\n'))
			}
			if err == io.EOF {
				err = nil
			}
			if err != nil {
				return err
			}
			return werr
		}
	}
}
