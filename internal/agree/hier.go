package agree

import (
	"context"
	"errors"
	"fmt"
)

// Helpers for hierarchical collectives (package collectives): a call on a
// communicator that spans hosts agrees in parts (each host's ranks, then
// the hosts' leaders), so the summaries of parts travel as data and are
// merged where they meet.

// Merge merges o into s: each field's minimum and maximum over both, with
// the lowest rank that passed each, as the agreement step merges.
func (s *Summary) Merge(o *Summary) { s.merge(o) }

// Marshal is s as SummaryBytes bytes.
func (s *Summary) Marshal() []byte { return s.marshal() }

// Unmarshal sets s from b, which must hold at least SummaryBytes bytes.
func (s *Summary) Unmarshal(b []byte) error {
	if len(b) < SummaryBytes {
		return fmt.Errorf("agree: summary of %d bytes, want %d", len(b), SummaryBytes)
	}
	s.unmarshal(b)
	return nil
}

// Shift adds d to the ranks of s (a summary of a sub-communicator whose
// rank i is rank i+d of the communicator it serves).
func (s *Summary) Shift(d int) {
	for i := range s {
		s[i].MinRank += int64(d)
		s[i].MaxRank += int64(d)
	}
}

// Hier, when set (package collectives sets it), runs the agreement of a
// call on communicator c hierarchically, when c spans hosts: ok is false
// when it does not, and otherwise writes the summary into *s. Package
// comm's Split and Dup agree this way too, so that a rank that calls one
// of them while another calls a collective sees the mismatch.
var Hier func(ctx context.Context, c any, h Header, s *Summary) (ok bool, err error)

func hierCheck(ctx context.Context, cl *Call, h Header, s *Summary) (bool, error) {
	if Hier == nil {
		return false, nil
	}
	ok, err := Hier(ctx, cl.comm, h, s)
	if ok {
		cl.Skip() // the call ran on c's sub-communicators
	}
	return ok, err
}

var errSkipped = errors.New("agree: an earlier collective call on this communicator failed before it reached the shared-memory region")

// Skip gives up a call that will not run Check (its caller failed before
// it, or runs it by other means): a call through the region consumes its
// step, so that later calls take their turns; a call by messages has
// nothing to give up. On a communicator that cannot have a region, the
// first call decides so. Had no call on a communicator that has a region
// used it yet, its later calls fail (the ranks' steps would no longer
// match).
func (cl *Call) Skip() {
	st := cl.st
	eligible := false
	if HostOf != nil {
		h := HostOf(cl.comm)
		eligible = h.Region != nil && h.Eligible
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.reg == regOff || st.closed {
		return
	}
	if st.reg == regUntried && !eligible {
		st.reg = regOff
		return
	}
	if st.reg == regUntried {
		st.reg, st.broken = regBroken, errSkipped
	}
	st.abandoned[cl.Seq] = true
	if st.turn == cl.Seq {
		st.advance()
	}
}
