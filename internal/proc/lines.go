package proc

import (
	"bufio"
	"errors"
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
// dst.Write call that starts with prefix. A last line without a newline gets
// one at end of input. Lines longer than maxLine bytes are passed on in
// pieces of maxLine bytes; only the first piece gets the prefix. CopyLines
// returns when src returns an error or EOF (a nil error) and keeps reading
// (discarding) after dst fails, so the writer of src is never blocked by a
// broken destination; it returns the first error of either side.
func CopyLines(dst io.Writer, src io.Reader, prefix []byte, maxLine int) error {
	br := bufio.NewReaderSize(src, 64<<10)
	buf := make([]byte, 0, 4<<10)
	var werr error
	midLine := false // the previous piece did not end its line
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
	var acc []byte // a line that did not fit in br's buffer
	for {
		frag, err := br.ReadSlice('\n')
		switch {
		case err == nil && acc == nil:
			emit(frag)
			midLine = false
		case err == nil:
			acc = append(acc, frag...)
			emit(acc)
			acc, midLine = nil, false
		case errors.Is(err, bufio.ErrBufferFull):
			acc = append(acc, frag...)
			for len(acc) >= maxLine {
				emit(acc[:maxLine])
				midLine = true
				acc = append(acc[:0], acc[maxLine:]...)
			}
			continue
		default: // EOF or a read error: flush what is left
			acc = append(acc, frag...)
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
		if cap(acc) > 4*maxLine {
			acc = nil
		}
	}
}
