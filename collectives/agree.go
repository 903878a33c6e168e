package collectives

import (
	"context"
	"errors"
	"fmt"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/internal/agree"
)

// Errors returned on every rank of a collective whose calls do not fit
// together. Test for them with errors.Is.
var (
	// ErrMismatch: the ranks called different collectives, or passed
	// different types, roots or lengths; the error is a *MismatchError.
	// It is comm.ErrMismatch, which comm's Split and Dup return when their
	// ranks' calls differ.
	ErrMismatch = comm.ErrMismatch
	// ErrInvalidArg: an argument is invalid on every rank (a root out of
	// range, a length not divisible by the size) or on some rank (the error
	// names it).
	ErrInvalidArg = errors.New("collectives: invalid argument")
)

// MismatchError says which two ranks disagree about what.
type MismatchError struct {
	Op  string // the collective this rank called
	Arg string // "collective", "type", "root" or "length"
	// Two ranks that passed different values and their values (opaque
	// numbers for "type").
	RankA, RankB   int
	ValueA, ValueB int64
}

func (e *MismatchError) Error() string {
	switch e.Arg {
	case "collective":
		return fmt.Sprintf("collectives: rank %d called %s but rank %d called %s",
			e.RankA, opcode(e.ValueA), e.RankB, opcode(e.ValueB))
	case "type":
		return fmt.Sprintf("collectives: %s: ranks %d and %d passed values of different types",
			e.Op, min(e.RankA, e.RankB), max(e.RankA, e.RankB))
	}
	return fmt.Sprintf("collectives: %s: rank %d passed %s %d but rank %d passed %s %d",
		e.Op, e.RankA, e.Arg, e.ValueA, e.RankB, e.Arg, e.ValueB)
}

// Unwrap returns ErrMismatch.
func (e *MismatchError) Unwrap() error { return ErrMismatch }

// opcode names a collective call; the list is shared with comm's Split and
// Dup (internal/agree), so that a rank that calls one of them while another
// calls a collective of this package sees the mismatch.
type opcode = agree.Op

const (
	opBarrier            = agree.Barrier
	opBcast              = agree.Bcast
	opScatter            = agree.Scatter
	opScatterv           = agree.Scatterv
	opGather             = agree.Gather
	opGatherv            = agree.Gatherv
	opAllgather          = agree.Allgather
	opAllgatherv         = agree.Allgatherv
	opAlltoall           = agree.Alltoall
	opAlltoallv          = agree.Alltoallv
	opReduce             = agree.Reduce
	opAllreduce          = agree.Allreduce
	opReduceSlice        = agree.ReduceSlice
	opAllreduceSlice     = agree.AllreduceSlice
	opReduceScatter      = agree.ReduceScatter
	opScan               = agree.Scan
	opExscan             = agree.Exscan
	opScanSlice          = agree.ScanSlice
	opExscanSlice        = agree.ExscanSlice
	opReduceSliceInto    = agree.ReduceSliceInto
	opAllreduceSliceInto = agree.AllreduceSliceInto
	opBcastInto          = agree.BcastInto
	opGatherInto         = agree.GatherInto
	opScatterInto        = agree.ScatterInto
	opGathervInto        = agree.GathervInto
	opAllgathervInto     = agree.AllgathervInto
	opNeighborAllgather  = agree.NeighborAllgather
	opNeighborAlltoall   = agree.NeighborAlltoall
)

// Header fields exchanged by the agreement step (see internal/agree).
const (
	fOp      = agree.FOp
	fType    = agree.FType
	fRoot    = agree.FRoot
	fLen     = agree.FLen
	fBad     = agree.FBad
	fEq      = agree.FEq
	fFan     = agree.FFan
	fData    = agree.FData
	fCrowded = agree.FCrowded
	fOne     = agree.FOnePhase
)

type header = agree.Header
type summary = agree.Summary

// agree runs the agreement step (internal/agree) on the call's tag, or
// through the communicator's shared-memory region, posting cl.payload.
// Unless the payloads went through the region (fused), the call is done
// with the region when agree returns; otherwise the caller reads them and
// then calls done.
func (cl *call) agree(ctx context.Context, h header) (*summary, error) {
	s := &cl.sum
	if cl.ahead {
		if n := payloadLen(cl.payload); n < aheadMax {
			cl.ac.PostAhead(ctx, cl.p, h, cl.payload)
		}
		*s = summary{}
		return s, errAhead
	}
	if cl.h != nil { // across hosts: the agreement alone (hier.go)
		var err error
		*s, _, err = cl.hierRun(ctx, h, nil)
		return s, err
	}
	err := cl.ac.CheckInto(ctx, cl.p, cl.r, h, cl.payload, cl.exchangeInto, s)
	if err != nil || !cl.fused(s) {
		cl.done()
	}
	return s, err
}

// aheadMax: a nonblocking call posts its part in its caller (call.ahead)
// only when the part is smaller than this; a larger one is posted, with
// the rest of the call, by the communicator's progress goroutine, started
// at once, so that copying it into the region happens in the background
// too. Below it, the rest of a call costs less than starting a goroutine
// beside ranks that busy every core (measured: at 64 KiB on two ranks
// the goroutine's start doubled Iallreduce+Wait), and the goroutine
// starts only for a call still unfinished after progressDelay.
const aheadMax = 256 << 10

func payloadLen(payload [][]byte) int {
	n := 0
	for _, b := range payload {
		n += len(b)
	}
	return n
}

// errAhead ends a nonblocking call's first run (call.ahead) at its
// agreement step.
var errAhead = errors.New("collectives: posted ahead")

// Length rules for check.
const (
	lenNone  = iota
	lenEqual // every rank passes the same length
	lenRoot  // the root passes its length, the others -1 (a root out of range: nobody)
	lenAny   // every rank passes its length, which may differ unless some rank requires lenEqual
)

// params are one rank's arguments as the agreement step sees them.
type params struct {
	typ     int64
	rooted  bool
	root    int
	length  int
	lenRule int
	fan     int   // c.MulticastMax() (Bcast)
	bad     error // a local argument error
	// outBad: bad is that len(out) ≠ len(v) (the *Into calls); the header
	// carries outLen, so that every rank's error can name both lengths.
	outBad bool
	outLen int
	// crowded: this rank's host has more ranks than cores (fCrowded; set
	// by the calls that choose an algorithm by it).
	crowded bool
}

// check runs the agreement step and returns the summary, or the error every
// rank returns when the calls do not fit together.
func (cl *call) check(ctx context.Context, a params) (*summary, error) {
	s, err := cl.checkArgs(ctx, a)
	if err != nil {
		cl.done()
	}
	return s, err
}

func (cl *call) checkArgs(ctx context.Context, a params) (*summary, error) {
	s, err := cl.agree(ctx, cl.header(a))
	if err != nil {
		return s, err
	}
	return s, cl.verdict(s, a)
}

// header is this rank's agreement header for arguments a.
func (cl *call) header(a params) header {
	h := header{fOp: int64(cl.op.Wire()), fType: a.typ, fLen: -1}
	cl.nbytes = max(cl.nbytes, a.length)
	if a.rooted {
		h[fRoot] = int64(a.root)
	}
	if a.lenRule == lenEqual || a.lenRule == lenAny || a.lenRule == lenRoot && cl.r == a.root {
		h[fLen] = int64(a.length)
	}
	if a.lenRule == lenEqual {
		h[fEq] = 1
	}
	h[fFan] = int64(a.fan)
	if a.crowded {
		h[fCrowded] = 1
	}
	if cl.ahead && cl.nb && cl.p*payloadLen(cl.payload) <= onePhaseMax {
		cl.askOne = true // decided in the caller's first run (start), read by Test
	}
	if cl.askOne {
		h[fOne] = 1
	}
	if a.bad != nil {
		h[fBad] = 1
		if a.outBad {
			h[fBad] = 2 + int64(a.outLen)
		}
	}
	return h
}

// verdict is the error every rank returns when the calls that the summary
// s describes do not fit together (the same on every rank but for a rank's
// own local argument error, which it returns as it made it); nil when they
// fit.
func (cl *call) verdict(s *summary, a params) error {
	mismatch := func(f int, arg string) error {
		x := s[f]
		if x.Min == x.Max {
			return nil
		}
		return &MismatchError{Op: cl.op.String(), Arg: arg, RankA: int(x.MinRank), ValueA: x.Min,
			RankB: int(x.MaxRank), ValueB: x.Max}
	}
	if err := mismatch(fOp, "collective"); err != nil {
		return err
	}
	if err := mismatch(fType, "type"); err != nil {
		return err
	}
	if s[fBad].Max != 0 {
		if a.bad != nil {
			return a.bad
		}
		if code := s[fBad].Max; code >= 2 { // the same text as on the rank itself
			inLen := -1
			if s[fLen].Min == s[fLen].Max {
				inLen = int(s[fLen].Min)
			}
			return errOutLen(cl.op, int(s[fBad].MaxRank), int(code-2), inLen)
		}
		return invalid(cl.op, nil, "rank %d passed invalid arguments", s[fBad].MaxRank)
	}
	if a.rooted {
		if err := mismatch(fRoot, "root"); err != nil {
			return err
		}
		if a.root < 0 || a.root >= cl.p {
			return invalid(cl.op, nil, "root %d out of range [0, %d)", a.root, cl.p)
		}
	}
	if s[fEq].Max != 0 { // the same on every rank, whatever rule each passed
		if err := mismatch(fLen, "length"); err != nil {
			return err
		}
	}
	return nil
}

// errOutLen is the error of an *Into call whose out has outLen elements
// on rank r, where in has inLen (-1: unknown here, because the ranks' in
// lengths differ too).
func errOutLen(op opcode, r, outLen, inLen int) error {
	if inLen < 0 {
		return invalid(op, nil, "rank %d passed out of length %d, not its in's length", r, outLen)
	}
	return invalid(op, nil, "rank %d passed out of length %d for in of length %d", r, outLen, inLen)
}

// argError is an invalid argument: errors.Is(err, ErrInvalidArg), and
// errors.Is(err, cause) for the cause, if any.
type argError struct {
	msg   string
	cause error
}

func (e *argError) Error() string   { return e.msg }
func (e *argError) Unwrap() []error { return []error{ErrInvalidArg, e.cause} }

func invalid(op opcode, cause error, format string, args ...any) error {
	msg := "collectives: " + op.String() + ": " + fmt.Sprintf(format, args...)
	if cause != nil {
		msg += ": " + cause.Error()
	}
	return &argError{msg: msg, cause: cause}
}

// Barrier blocks until every rank of c has called it (dissemination
// algorithm, ⌈lg p⌉ rounds of small messages).
func Barrier(ctx context.Context, c *comm.Comm) error {
	cl := begin(ctx, c, opBarrier)
	defer cl.release()
	_, err := cl.check(ctx, params{})
	return cl.wrap(err)
}
