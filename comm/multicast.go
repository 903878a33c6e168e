package comm

import (
	"context"
	"fmt"
	"os"

	"github.com/decorun/decorun/internal/trace"
)

// EnvMulticast switched to "off" makes MulticastMax 0 in every
// communicator of the process, so that Multicast sends to each rank in
// turn (and package collectives keeps its trees): for comparisons.
const EnvMulticast = "DECORUN_MULTICAST"

// MulticastMax is the largest message that Multicast on c hands to every
// other rank with one NATS publish that the server fans out (one eager
// frame), or 0 if it cannot fan out: it can when c holds every rank of the
// job, this rank's data path is NATS alone (decorun --transport=nats, or
// auto where neither shared memory nor direct TCP reaches any peer), and
// $DECORUN_MULTICAST is not "off". Ranks
// may differ (their data paths do); a caller that must agree with the
// others exchanges it.
func (c *Comm) MulticastMax() int {
	if c.e.mc == nil || c.size != c.e.size || c.size < 2 {
		return 0
	}
	return c.e.eager
}

// Multicast sends data to every other rank of c with tag, as a Send to each
// would; each receives it with Recv (or RecvInto, Irecv) from this rank. It
// returns when data may be reused.
//
// When len(data) ≤ MulticastMax(), it is one frame, charged
// to the credit window of every receiver, published once; otherwise (or
// when some receiver's window is full) it is a Send to each. The first way
// does not keep the order of a message with respect to this rank's other
// messages on c (it travels apart from them), so give each multicast a tag
// that no other message of this rank in flight on c carries, as package
// collectives does (a tag per collective call). It does stay behind them
// for Close: a receiver sees this rank's Close only after its multicasts.
func (c *Comm) Multicast(ctx context.Context, tag int, data []byte) error {
	if err := c.alive("Multicast"); err != nil {
		return err
	}
	if err := c.checkTag("Multicast", tag, false); err != nil {
		return err
	}
	if c.size == 1 {
		return nil
	}
	if m := c.MulticastMax(); m > 0 && len(data) <= m {
		t0 := c.now()
		ok, id, err := c.e.multicast(c.id, tag, data)
		if t0 != 0 && ok {
			c.traceEv(trace.KindSend, "Multicast", t0, -3, tag, len(data), id, err) // peer -3: every rank
		}
		if err != nil {
			return fmt.Errorf("comm: rank %d: Multicast: %w", c.rank, err)
		}
		if ok {
			return nil
		}
	}
	reqs := make([]*Request, 0, c.size-1)
	for r := range c.size {
		if r == c.rank {
			continue
		}
		q, err := c.isend("Multicast", r, tag, "", data)
		if err != nil {
			for _, q := range reqs {
				q.Cancel()
			}
			return err
		}
		reqs = append(reqs, q)
	}
	return WaitAll(ctx, reqs...)
}

func multicastOff() bool { return os.Getenv(EnvMulticast) == "off" }
