package comm_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// TestHostGroups: every rank computes the same layout from the job's
// hosts; the host and leader communicators carry messages; layouts that
// cannot run hierarchically give nil everywhere.
func TestHostGroups(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := commtest.WorldHosts(t, []int{0, 0, 0, 1, 2, 2})
	commtest.Run(t, cs, func(c *comm.Comm) error {
		hg := c.HostGroups()
		if hg == nil {
			t.Errorf("rank %d: no host groups", c.Rank())
			return nil
		}
		if !slices.Equal(hg.Leader, []int{0, 3, 4}) {
			t.Errorf("rank %d: leaders %v, want [0 3 4]", c.Rank(), hg.Leader)
		}
		want := map[int]int{0: 0, 1: 0, 2: 0, 3: 1, 4: 2, 5: 2}[c.Rank()]
		if hg.HostIndex != want || hg.HostOf(c.Rank()) != want {
			t.Errorf("rank %d: host %d (HostOf %d), want %d", c.Rank(), hg.HostIndex, hg.HostOf(c.Rank()), want)
		}
		if got := hg.Host.Rank() + hg.Leader[hg.HostIndex]; got != c.Rank() {
			t.Errorf("rank %d: host rank %d", c.Rank(), hg.Host.Rank())
		}
		if lead := c.Rank() == hg.Leader[hg.HostIndex]; lead != (hg.Leaders != nil) {
			t.Errorf("rank %d: leader %v but Leaders %v", c.Rank(), lead, hg.Leaders)
		}
		// A ring on each sub-communicator.
		for _, s := range []*comm.Comm{hg.Host, hg.Leaders} {
			if s == nil || s.Size() == 1 {
				continue
			}
			next, prev := (s.Rank()+1)%s.Size(), (s.Rank()+s.Size()-1)%s.Size()
			if err := comm.SendValue(ctx, s, next, 7, c.Rank()); err != nil {
				return err
			}
			v, _, err := comm.RecvValue[int](ctx, s, prev, 7)
			if err != nil {
				return err
			}
			want := hg.Leader[prev] // leaders: sub-rank i leads host i
			if s == hg.Host {
				want = hg.Leader[hg.HostIndex] + prev
			}
			if v != want {
				t.Errorf("rank %d: got %d from sub-rank %d, want %d", c.Rank(), v, prev, want)
			}
		}
		return nil
	})
	// A Split that keeps the layout; one that puts every rank on its
	// own host (even ranks 0, 2, 4: hosts 0, 0, 2 -> hierarchical); and a
	// round-robin layout, which is not.
	commtest.Run(t, cs, func(c *comm.Comm) error {
		s, err := c.Split(ctx, c.Rank()%2, c.Rank())
		if err != nil {
			return err
		}
		defer s.Close()
		hg := s.HostGroups()
		switch c.Rank() % 2 {
		case 0: // world ranks 0 2 4 on hosts 0 0 2
			if hg == nil || !slices.Equal(hg.Leader, []int{0, 2}) {
				t.Errorf("rank %d: even split: %+v", c.Rank(), hg)
			}
		case 1: // world ranks 1 3 5 on hosts 0 1 2: one each
			if hg != nil {
				t.Errorf("rank %d: odd split has host groups %+v", c.Rank(), hg)
			}
		}
		rr, err := c.Split(ctx, 0, []int{0, 3, 1, 4, 2, 5}[c.Rank()])
		if err != nil {
			return err
		}
		defer rr.Close()
		if hg := rr.HostGroups(); hg != nil {
			t.Errorf("rank %d: round-robin split has host groups %+v", c.Rank(), hg)
		}
		return nil
	})
}
