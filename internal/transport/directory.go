package transport

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/nats-io/nats.go"
)

// Directory collects one record (an address to dial) from each rank of
// the job that publishes one, on jobenv.AddrSubject. A rank opens it
// before the start-up barrier and publishes after it, so that every
// record reaches every rank that opened one (the same argument as for
// inboxes: see Boot).
type Directory struct {
	t   *NATS
	sub *nats.Subscription

	mu      sync.Mutex // guards got, done and changed
	got     map[int]string
	done    map[int]bool  // ranks that published Done
	changed chan struct{} // closed and replaced when a record arrives
}

// doneRecord is what Done publishes; no address record looks like it.
const doneRecord = "+done"

// Directory subscribes to the job's address records.
func (t *NATS) Directory() (*Directory, error) {
	d := &Directory{t: t, got: map[int]string{}, done: map[int]bool{}, changed: make(chan struct{})}
	sub, err := t.nc.Subscribe(jobenv.AddrSubject(t.job.Prefix), func(m *nats.Msg) {
		r, rec, ok := strings.Cut(string(m.Data), " ")
		n, err := strconv.Atoi(r)
		if !ok || err != nil || n < 0 || n >= t.job.Size {
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if rec == doneRecord {
			d.done[n] = true
		} else {
			d.got[n] = rec
		}
		close(d.changed)
		d.changed = make(chan struct{})
	})
	if err != nil {
		return nil, fmt.Errorf("transport: rank %d subscribe to addresses: %w", t.job.Rank, err)
	}
	d.sub = sub
	return d, nil
}

// Publish announces this rank's record.
func (d *Directory) Publish(rec string) error {
	return d.t.nc.Publish(jobenv.AddrSubject(d.t.job.Prefix), []byte(strconv.Itoa(d.t.job.Rank)+" "+rec))
}

// Wait returns the records of ranks, once all have arrived, or ctx ends.
func (d *Directory) Wait(ctx context.Context, ranks []int) (map[int]string, error) {
	out := map[int]string{}
	err := d.wait(ctx, ranks, "addresses", func(r int) bool {
		rec, ok := d.got[r]
		if ok {
			out[r] = rec
		}
		return ok
	}, nil)
	return out, err
}

// Done announces that this rank has finished using the records (it has
// dialed every peer it dials).
func (d *Directory) Done() error { return d.Publish(doneRecord) }

// WaitDone returns once every one of ranks has announced Done or is
// skipped (skip is asked again every 10 ms while any is missing: a rank
// that died will never announce), or ctx ends.
func (d *Directory) WaitDone(ctx context.Context, ranks []int, skip func(int) bool) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	return d.wait(ctx, ranks, "connections", func(r int) bool { return d.done[r] || skip(r) }, tick.C)
}

// wait returns once has (called with mu held) holds for every one of
// ranks, or ctx ends; it looks again at each record and each tick.
func (d *Directory) wait(ctx context.Context, ranks []int, what string, has func(int) bool, tick <-chan time.Time) error {
	for {
		d.mu.Lock()
		var missing []int
		for _, r := range ranks {
			if !has(r) {
				missing = append(missing, r)
			}
		}
		ch := d.changed
		d.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-tick:
		case <-ctx.Done():
			return fmt.Errorf("transport: rank %d waiting for the %s of ranks %v: %w", d.t.job.Rank, what, missing, ctx.Err())
		}
	}
}

// Close unsubscribes.
func (d *Directory) Close() { d.sub.Unsubscribe() }

// LocalIP is this host's address on its route to the job's NATS server
// (no packet is sent), or 127.0.0.1 when that cannot be told.
func (t *NATS) LocalIP() string {
	addr := t.nc.ConnectedAddr()
	if addr == "" {
		return "127.0.0.1"
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	if ua, ok := c.LocalAddr().(*net.UDPAddr); ok {
		return ua.IP.String()
	}
	return "127.0.0.1"
}
