package transport

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

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

	mu      sync.Mutex // guards got and changed
	got     map[int]string
	changed chan struct{} // closed and replaced when a record arrives
}

// Directory subscribes to the job's address records.
func (t *NATS) Directory() (*Directory, error) {
	d := &Directory{t: t, got: map[int]string{}, changed: make(chan struct{})}
	sub, err := t.nc.Subscribe(jobenv.AddrSubject(t.job.Prefix), func(m *nats.Msg) {
		r, rec, ok := strings.Cut(string(m.Data), " ")
		n, err := strconv.Atoi(r)
		if !ok || err != nil || n < 0 || n >= t.job.Size {
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		d.got[n] = rec
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
	for {
		d.mu.Lock()
		out := map[int]string{}
		var missing []int
		for _, r := range ranks {
			if rec, ok := d.got[r]; ok {
				out[r] = rec
			} else {
				missing = append(missing, r)
			}
		}
		ch := d.changed
		d.mu.Unlock()
		if len(missing) == 0 {
			return out, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("transport: rank %d waiting for the addresses of ranks %v: %w", d.t.job.Rank, missing, ctx.Err())
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
