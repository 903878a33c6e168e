package comm

import (
	"os"
	"runtime"

	"github.com/decorun/decorun/internal/shm"
)

// Host groups: how a communicator's ranks lie on hosts, for hierarchical
// collectives (package collectives). Every rank learns each world rank's
// host at start-up (the launcher's list of each host's ranks, gathered by
// the start-up barrier), so each rank of a communicator computes the same
// layout, and the same two sub-communicators, without a message: its
// host's ranks (Host) and the hosts' leaders (Leaders). Their region:
// each rank makes its file of the region of its host's ranks when the
// communicator is made, as it would make its file of the communicator's own
// region (host.go), so that every file exists before any rank attaches.

// EnvCollHier set to "off" (on every rank) makes collectives on
// communicators that span hosts go by the flat message algorithms.
const EnvCollHier = "DECORUN_COLL_HIER"

// Context id salts of the sub-communicators.
const (
	saltHost    = 0x40575f67
	saltLeaders = 0x1eade125
)

func hierOn() bool { return os.Getenv(EnvCollHier) != "off" }

// HostGroups describes a communicator c whose ranks span two or more
// hosts, each holding a contiguous block of c's ranks, at least one host
// two or more of them.
type HostGroups struct {
	// Host has c's ranks on this rank's host, in c's rank order (its rank
	// i is c's rank Leader[HostIndex]+i). Its collectives run through a
	// shared-memory region when every one of them has one.
	Host *Comm
	// Leaders has each host's lowest rank of c, in c's rank order (its
	// rank i leads host i); nil on the other ranks.
	Leaders *Comm
	// Leader holds c's rank of each host's leader, ascending: host i has
	// c's ranks Leader[i] .. Leader[i+1]-1 (the last up to c.Size()-1).
	Leader []int
	// HostIndex is this rank's host.
	HostIndex int
}

// HostOf returns the host of c's rank r.
func (h *HostGroups) HostOf(r int) int {
	i := len(h.Leader) - 1
	for i > 0 && h.Leader[i] > r {
		i--
	}
	return i
}

// HostGroups returns c's host groups, or nil when c's ranks are on one
// host, no host has two of them, a host's ranks are not a contiguous block
// of c's ranks, the job's hosts are unknown, or $DECORUN_COLL_HIER is off:
// the same answer on every rank of c. The groups are made at the first
// call, without communication, and closed with c.
func (c *Comm) HostGroups() *HostGroups {
	if c.inter { // an Intercomm's Remote view: no collectives at all
		return nil
	}
	c.hierOnce.Do(func() {
		c.hier = c.makeHostGroups()
		if c.hier == nil || c.hier.Host.reg == nil {
			dropRegion(c.hreg) // unused
		}
		c.hreg = nil
	})
	return c.hier
}

// sameHost reports whether c's rank r shares this rank's host (false when
// the hosts are unknown).
func (c *Comm) sameHost(r int) bool {
	h := c.e.hosts
	return h != nil && h[c.toWorld(r)] == h[c.toWorld(c.rank)]
}

// aloneOnHost reports whether no other rank of c shares this rank's host.
func (c *Comm) aloneOnHost() bool {
	if c.e.hosts == nil {
		return false
	}
	for r := range c.size {
		if r != c.rank && c.sameHost(r) {
			return false
		}
	}
	return true
}

// adoptHost keeps g as the file of the region of c's ranks on this host,
// for HostGroups, when ok.
func (c *Comm) adoptHost(g *shm.Region, ok bool) {
	if g == nil {
		return
	}
	if !ok || c.e.hosts == nil || !hierOn() {
		dropRegion(g)
		return
	}
	c.hreg, c.hregOK = g, true
	c.hregOwned(g)
}

func (c *Comm) makeHostGroups() *HostGroups {
	h := c.e.hosts
	if h == nil || c.size < 3 || !hierOn() || c.alive("collective") != nil {
		return nil
	}
	hg := &HostGroups{}
	var mine []int // world ranks of c's ranks on this host
	big := false
	seen := map[int]bool{}
	for r := range c.size {
		w := h[c.toWorld(r)]
		if r == 0 || w != h[c.toWorld(r-1)] {
			if seen[w] {
				return nil // not contiguous
			}
			seen[w] = true
			hg.Leader = append(hg.Leader, r)
		} else {
			big = true
		}
		if c.sameHost(r) {
			mine = append(mine, c.toWorld(r))
		}
	}
	if len(hg.Leader) < 2 || !big {
		return nil
	}
	hg.HostIndex = hg.HostOf(c.rank)
	lead := hg.Leader[hg.HostIndex]
	var members []int // c's world ranks, for the loss of any of them
	if c.grp != nil {
		members = c.grp.world
	}
	hg.Host = c.sub(mix(c.id, saltHost), mine, c.rank-lead)
	c.e.addColl(hg.Host.Shadow().id, members)
	if c.hreg != nil && c.hregOK && len(mine) >= 2 {
		ok := true
		for _, w := range mine {
			ok = ok && c.e.host[w]
		}
		if ok {
			hg.Host.reg, hg.Host.regOK = c.hreg, true
		}
	}
	if c.rank == lead {
		leaders := make([]int, len(hg.Leader))
		for i, r := range hg.Leader {
			leaders[i] = c.toWorld(r)
		}
		hg.Leaders = c.sub(mix(c.id, saltLeaders), leaders, hg.HostIndex)
		c.e.addColl(hg.Leaders.Shadow().id, members)
	}
	return hg
}

// sub is a communicator of the given world ranks, this rank being rank
// me, with context id id: made alike on each of them, without messages.
func (c *Comm) sub(id uint64, world []int, me int) *Comm {
	g := &group{world: world, byWorld: make(map[int]int, len(world))}
	for i, w := range world {
		g.byWorld[w] = i
	}
	nc := c.derive(id)
	nc.grp, nc.rank, nc.size = g, me, len(world)
	return nc
}

// closeHier closes c's host groups (at c's Close).
func (c *Comm) closeHier() {
	c.hierOnce.Do(func() {}) // none made from now on
	if hg := c.hier; hg != nil {
		hg.Host.Close()
		if hg.Leaders != nil {
			hg.Leaders.Close()
		}
	}
	dropRegion(c.hreg)
}

// hregOwned closes g once c is garbage, in case HostGroups never ran.
func (c *Comm) hregOwned(g *shm.Region) {
	runtime.AddCleanup(c, func(g *shm.Region) { g.Close(); g.Unmap() }, g)
}

// collBroken is the error of a call on collective context id once a rank
// of its communicator was lost; else nil.
func (e *engine) collBroken(id uint64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.brokenErr(id)
}
