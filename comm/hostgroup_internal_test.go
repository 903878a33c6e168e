package comm

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/decorun/decorun/internal/agree"
	"github.com/decorun/decorun/internal/jobenv"
)

// pretendHosts starts ranks on pretend hosts: host[r] names rank r's host.
func pretendHosts(t *testing.T, host []int) []*Comm {
	t.Helper()
	url, secret := startServer(t)
	n := len(host)
	cs := make([]*Comm, n)
	errs := make([]error, n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for r := range n {
		var ranks []int
		for q := range n {
			if host[q] == host[r] {
				ranks = append(ranks, q)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := jobenv.Job{Rank: r, Size: n, LocalRank: r, LocalSize: n, ID: "t", URL: url, Secret: secret, JobKey: secret,
				Prefix: "test." + sanitize(t.Name()), Transport: jobenv.TransportAuto, HostRanks: ranks}
			cs[r], errs[r] = connect(ctx, job)
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return cs
}

// TestHostGroupRegions: the host communicators of a world on pretend
// hosts get their host's region (where the host has two ranks or more),
// and so do those of a Split and a Dup of it; the world itself has none.
func TestHostGroupRegions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	host := []int{0, 0, 0, 1, 2, 2}
	cs := pretendHosts(t, host)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	check := func(what string, c *Comm) {
		hg := c.HostGroups()
		if hg == nil {
			t.Errorf("%s: rank %d: no host groups", what, c.Rank())
			return
		}
		if c.reg != nil {
			t.Errorf("%s: rank %d: the communicator has a region of its own", what, c.Rank())
		}
		h := agree.HostOf(hg.Host)
		if want := hg.Host.Size() >= 2; (h.Region != nil && h.Eligible) != want {
			t.Errorf("%s: rank %d: host communicator of %d ranks: region %v eligible %v", what, c.Rank(), hg.Host.Size(), h.Region != nil, h.Eligible)
		}
	}
	par(t, cs, func(c *Comm) error {
		check("world", c)
		s, err := c.Split(ctx, 0, c.Rank())
		if err != nil {
			return err
		}
		defer s.Close()
		check("split", s)
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		defer d.Close()
		check("dup", d)
		return nil
	})
}
