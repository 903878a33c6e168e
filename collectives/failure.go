package collectives

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/decorun/decorun/comm"
)

// OpError reports that a reduction operator failed: it panicked, or
// returned a value that cannot be encoded. The rank where it failed returns
// it, and so does every rank whose result depends on the failed
// combination (see the package doc, Errors).
type OpError struct {
	Op   string // the collective
	Rank int    // where op failed; -1 if the report was cut short
	Msg  string // what happened there, e.g. "op panicked: ..."
}

func (e *OpError) Error() string {
	if e.Rank < 0 {
		return fmt.Sprintf("collectives: %s: op failed on another rank", e.Op)
	}
	return fmt.Sprintf("collectives: %s: on rank %d: %s", e.Op, e.Rank, e.Msg)
}

// A rank whose op failed does not leave its peers waiting: it goes on with
// the algorithm's schedule, sending a failure report wherever it would have
// sent a partial result, and so does every rank that receives one. A report
// is a typed message (a string, "rank:message"); collective data is always
// untyped, so Status.Type tells them apart.

// guard calls f, turning a panic into the call's failure.
func (cl *call) guard(f func()) {
	if cl.failed != nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			cl.failed = &OpError{Op: cl.op.String(), Rank: cl.r, Msg: fmt.Sprintf("op panicked: %v", v)}
		}
	}()
	f()
}

// failEncode records that this rank cannot encode op's result.
func (cl *call) failEncode(err error) {
	if cl.failed == nil {
		cl.failed = &OpError{Op: cl.op.String(), Rank: cl.r, Msg: "cannot encode op's result: " + err.Error()}
	}
}

// report is the failure report for a receive of at most limit bytes (-1: any).
func (cl *call) report(limit int) string {
	s := strconv.Itoa(cl.failed.Rank) + ":" + cl.failed.Msg
	if limit >= 0 && len(s) > limit {
		s = s[:limit]
	}
	return s
}

// adopt records a failure report received from src.
func (cl *call) adopt(b []byte, st comm.Status) {
	if cl.failed != nil {
		return
	}
	e := &OpError{Op: cl.op.String(), Rank: -1}
	if s, err := comm.Decode[string](b, st); err == nil {
		if r, msg, ok := strings.Cut(s, ":"); ok {
			if n, err := strconv.Atoi(r); err == nil {
				e.Rank, e.Msg = n, msg
			}
		}
	}
	cl.failed = e
}

func isReport(st comm.Status) bool { return st.Type() != "" }

// isendRed starts sending out to dst, or this rank's failure report.
func (cl *call) isendRed(dst int, out []byte, limit int) (*comm.Request, error) {
	return cl.isendRedTag(dst, cl.tag, out, limit)
}

// isendRedTag is isendRed with a tag other than the call's.
func (cl *call) isendRedTag(dst, tag int, out []byte, limit int) (*comm.Request, error) {
	if cl.failed != nil {
		return comm.IsendValue(cl.s, dst, tag, cl.report(limit))
	}
	return cl.s.Isend(dst, tag, out)
}

// encodeRed returns encode's result, or nil once the call failed (an
// encoding error fails it).
func (cl *call) encodeRed(encode func() ([]byte, error)) []byte {
	if cl.failed != nil {
		return nil
	}
	b, err := encode()
	if err != nil {
		cl.failEncode(err)
	}
	return b
}

// sendRed sends out to dst, or the failure report.
func (cl *call) sendRed(ctx context.Context, dst int, out []byte) error {
	q, err := cl.isendRed(dst, out, -1)
	if err != nil {
		return err
	}
	_, err = q.Wait(ctx)
	return err
}

// recvRed receives from src; ok is false if src sent a failure report,
// which the call adopts.
func (cl *call) recvRed(ctx context.Context, src int) (b []byte, ok bool, err error) {
	b, st, err := cl.s.Recv(ctx, src, cl.tag)
	if err != nil {
		return nil, false, err
	}
	if isReport(st) {
		cl.adopt(b, st)
		return nil, false, nil
	}
	return b, true, nil
}

// exchangeRed sends out (or the failure report) to dst while it receives
// from src, like recvRed.
func (cl *call) exchangeRed(ctx context.Context, dst int, out []byte, src int) ([]byte, bool, error) {
	q, err := cl.isendRed(dst, out, -1)
	if err != nil {
		return nil, false, err
	}
	in, ok, err := cl.recvRed(ctx, src)
	if err != nil {
		q.Cancel()
		return nil, false, err
	}
	_, err = q.Wait(ctx)
	return in, ok, err
}

// recvIntoRed receives exactly len(b) bytes from src into b, or a failure
// report, which the call adopts.
func (cl *call) recvIntoRed(ctx context.Context, src int, b []byte) error {
	st, err := cl.s.RecvInto(ctx, b, src, cl.tag)
	if err != nil {
		return err
	}
	if isReport(st) {
		cl.adopt(b[:st.Size], st)
		return nil
	}
	if st.Size != len(b) {
		return errSize(src, st.Size, len(b))
	}
	return nil
}

// exchangeIntoRed is exchangeInto that sends the failure report instead
// of out once the call failed, and receives one like recvIntoRed.
func (cl *call) exchangeIntoRed(ctx context.Context, dst int, out []byte, src int, in []byte) error {
	q, err := cl.isendRed(dst, out, len(out))
	if err != nil {
		return err
	}
	if err := cl.recvIntoRed(ctx, src, in); err != nil {
		q.Cancel()
		return err
	}
	_, err = q.Wait(ctx)
	return err
}

// combine folds in into red unless the call failed, guarding op.
func (cl *call) combine(red reducer, in []byte, fromLower bool) error {
	var err error
	cl.guard(func() { err = red.combine(in, fromLower) })
	return err
}

// result is the call's error once its schedule is done: its failure, if any.
func (cl *call) result() error {
	if cl.failed != nil {
		return cl.failed
	}
	return nil
}
