package proc

import (
	"bytes"
	"errors"
	"io"
	"os"
	"time"
)

// IdleFlush is how long a line not ended yet waits for its end before
// CopyLines passes its start on: short enough for a prompt or a progress
// frame to show at once, long enough that a line printed in several writes
// goes on in one piece.
const IdleFlush = 100 * time.Millisecond

// CopyLines copies src to dst in pieces that a [Mux] can keep whole: each
// line, ended by a newline or by a carriage return (a progress bar's frames
// end so, to redraw the line on a terminal), goes on in one dst.Write as
// soon as it is read; a newline right after a carriage return (a CRLF)
// goes on alone. The start of a line not ended yet goes on by itself when
// src has been silent for idle (a prompt, a frame not ended yet), provided
// src has read deadlines (a pipe from os.Pipe has) and idle > 0, and when it
// reaches maxLine bytes (longer lines go on in pieces of maxLine bytes). A
// last line without a newline gets one at end of input. CopyLines returns
// when src returns an error or EOF (a nil error) and keeps reading
// (discarding) after dst fails, so the writer of src is never blocked by a
// broken destination; it returns the first error of either side.
func CopyLines(dst io.Writer, src io.Reader, maxLine int, idle time.Duration) error {
	in := make([]byte, 64<<10)
	var werr error
	midLine := false // a piece went on that did not end its line
	afterCR := false // the previous piece ended with a carriage return
	emit := func(piece []byte) {
		if werr == nil {
			_, werr = dst.Write(piece)
		}
	}
	dl, canIdle := src.(interface{ SetReadDeadline(time.Time) error })
	canIdle = canIdle && idle > 0
	armed := false // a read deadline is set
	var acc []byte // the start of a line not ended yet
	for {
		if canIdle && (len(acc) > 0 || armed) {
			var t time.Time
			if len(acc) > 0 {
				t = time.Now().Add(idle)
			}
			if dl.SetReadDeadline(t) != nil {
				canIdle = false // not a pollable file: no idle flushes
			}
			armed = !t.IsZero()
		}
		n, err := src.Read(in)
		if armed && errors.Is(err, os.ErrDeadlineExceeded) {
			if len(acc) > 0 {
				emit(acc)
				midLine, afterCR = true, false
				acc = acc[:0]
			}
			continue
		}
		data := in[:n]
		for len(data) > 0 {
			if afterCR && data[0] == '\n' { // the LF of a CRLF
				emit(data[:1])
				afterCR = false
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
			switch {
			case len(acc) > 0:
				emit(append(acc, '\n'))
			case midLine:
				emit([]byte{'\n'})
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
