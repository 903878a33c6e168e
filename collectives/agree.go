package collectives

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/decorun/decorun/comm"
)

// Errors returned on every rank of a collective whose calls do not fit
// together. Test for them with errors.Is.
var (
	// ErrMismatch: the ranks called different collectives, or passed
	// different types, roots or lengths; the error is a *MismatchError.
	ErrMismatch = errors.New("collectives: mismatched calls")
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

type opcode int64

const (
	opBarrier opcode = iota + 1
	opBcast
	opScatter
	opScatterv
	opGather
	opGatherv
	opAllgather
	opAllgatherv
	opAlltoall
	opAlltoallv
	opReduce
	opAllreduce
	opReduceSlice
	opAllreduceSlice
	opReduceScatter
	opScan
	opExscan
	opScanSlice
	opExscanSlice
	// The *Into forms are the same collectives as their plain ones (wire):
	// ranks may mix them in one call. They differ in name only.
	opReduceSliceInto
	opAllreduceSliceInto
)

var opNames = [...]string{"?", "Barrier", "Bcast", "Scatter", "Scatterv", "Gather", "Gatherv", "Allgather",
	"Allgatherv", "Alltoall", "Alltoallv", "Reduce", "Allreduce", "ReduceSlice", "AllreduceSlice",
	"ReduceScatter", "Scan", "Exscan", "ScanSlice", "ExscanSlice", "ReduceSliceInto", "AllreduceSliceInto"}

// wire is the opcode that the agreement step compares: the plain form of an
// *Into call.
func (o opcode) wire() opcode {
	switch o {
	case opReduceSliceInto:
		return opReduceSlice
	case opAllreduceSliceInto:
		return opAllreduceSlice
	}
	return o
}

func (o opcode) String() string {
	if o < 0 || int(o) >= len(opNames) {
		return fmt.Sprintf("collective %d", int64(o))
	}
	return opNames[o]
}

// Header fields exchanged by the agreement step.
const (
	fOp   = iota
	fType // type hash
	fRoot // 0 for collectives without a root
	fLen  // a length: equal on all ranks, or the root's (-1 elsewhere)
	fBad  // 1 if this rank's arguments are invalid; 2 + len(out) if only its out's length is (the *Into calls)
	fEq   // 1 if this rank requires the lengths to be equal
	fFan  // the largest message this rank can take part in a NATS fan-out of (Bcast)
	nFields
)

type header [nFields]int64

// summary holds, for each field, the smallest and largest value any rank
// passed and the lowest rank that passed each.
type summary [nFields]struct {
	min, max         int64
	minRank, maxRank int64
}

func (s *summary) merge(o *summary) {
	for i := range s {
		a, b := &s[i], &o[i]
		if b.min < a.min || b.min == a.min && b.minRank < a.minRank {
			a.min, a.minRank = b.min, b.minRank
		}
		if b.max > a.max || b.max == a.max && b.maxRank < a.maxRank {
			a.max, a.maxRank = b.max, b.maxRank
		}
	}
}

const summaryBytes = nFields * 4 * 8

func (s *summary) marshal() []byte {
	b := make([]byte, 0, summaryBytes)
	for _, f := range s {
		b = binary.LittleEndian.AppendUint64(b, uint64(f.min))
		b = binary.LittleEndian.AppendUint64(b, uint64(f.minRank))
		b = binary.LittleEndian.AppendUint64(b, uint64(f.max))
		b = binary.LittleEndian.AppendUint64(b, uint64(f.maxRank))
	}
	return b
}

func (s *summary) unmarshal(b []byte) {
	for i := range s {
		f := &s[i]
		f.min = int64(binary.LittleEndian.Uint64(b[32*i:]))
		f.minRank = int64(binary.LittleEndian.Uint64(b[32*i+8:]))
		f.max = int64(binary.LittleEndian.Uint64(b[32*i+16:]))
		f.maxRank = int64(binary.LittleEndian.Uint64(b[32*i+24:]))
	}
}

// agree runs the dissemination exchange: after round k each rank has merged
// the headers of the 2^(k+1) ranks below it (cyclically), so after ⌈lg p⌉
// rounds every rank holds the same summary of all.
func (cl *call) agree(ctx context.Context, h header) (summary, error) {
	var s summary
	for i, v := range h {
		s[i].min, s[i].max = v, v
		s[i].minRank, s[i].maxRank = int64(cl.r), int64(cl.r)
	}
	in := make([]byte, summaryBytes)
	for d := 1; d < cl.p; d <<= 1 {
		dst, src := (cl.r+d)%cl.p, (cl.r-d+cl.p)%cl.p
		if err := cl.exchangeInto(ctx, dst, s.marshal(), src, in); err != nil {
			return s, err
		}
		var o summary
		o.unmarshal(in)
		s.merge(&o)
	}
	return s, nil
}

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
}

// check runs the agreement step and returns the summary, or the error every
// rank returns when the calls do not fit together.
func (cl *call) check(ctx context.Context, a params) (summary, error) {
	h := header{fOp: int64(cl.op.wire()), fType: a.typ, fLen: -1}
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
	if a.bad != nil {
		h[fBad] = 1
		if a.outBad {
			h[fBad] = 2 + int64(a.outLen)
		}
	}
	s, err := cl.agree(ctx, h)
	if err != nil {
		return s, err
	}
	mismatch := func(f int, arg string) error {
		x := s[f]
		if x.min == x.max {
			return nil
		}
		return &MismatchError{Op: cl.op.String(), Arg: arg, RankA: int(x.minRank), ValueA: x.min,
			RankB: int(x.maxRank), ValueB: x.max}
	}
	if err := mismatch(fOp, "collective"); err != nil {
		return s, err
	}
	if err := mismatch(fType, "type"); err != nil {
		return s, err
	}
	if s[fBad].max != 0 {
		if a.bad != nil {
			return s, a.bad
		}
		if code := s[fBad].max; code >= 2 { // the same text as on the rank itself
			inLen := -1
			if s[fLen].min == s[fLen].max {
				inLen = int(s[fLen].min)
			}
			return s, errOutLen(cl.op, int(s[fBad].maxRank), int(code-2), inLen)
		}
		return s, invalid(cl.op, nil, "rank %d passed invalid arguments", s[fBad].maxRank)
	}
	if a.rooted {
		if err := mismatch(fRoot, "root"); err != nil {
			return s, err
		}
		if a.root < 0 || a.root >= cl.p {
			return s, invalid(cl.op, nil, "root %d out of range [0, %d)", a.root, cl.p)
		}
	}
	if s[fEq].max != 0 { // the same on every rank, whatever rule each passed
		if err := mismatch(fLen, "length"); err != nil {
			return s, err
		}
	}
	return s, nil
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
	cl := begin(c, opBarrier)
	_, err := cl.check(ctx, params{})
	return cl.wrap(err)
}
