package comm

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/decorun/decorun/internal/agree"
	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/shm"
)

// Shared-memory regions for collectives. Every communicator whose ranks all
// share one host (and reach each other through shared memory) gets a
// region there: each rank makes its file when the communicator is made,
// before the exchange that makes it (the world: before the start-up
// barrier; Dup: before its agreement step; Split: before it sends its
// color), so that once the communicator exists every file does, and the
// ranks attach to each other's at their first collective call on it
// (internal/agree, package collectives). Whether a communicator has one is
// decided from what its ranks all exchanged: the same answer on every
// rank.

// EnvCollSHM set to "off" (on every rank) keeps collectives off
// shared-memory regions: every collective call then goes by messages.
const EnvCollSHM = "DECORUN_COLL_SHM"

// collSlot is the size of each of a rank's two data slots in a
// communicator's region: collective payloads up to it travel through the
// region (see package collectives).
var collSlot = 1 << 20

// regionMark ends the start-up record of a rank that made its file of the
// world's region.
const regionMark = "+r"

func init() {
	agree.HostOf = hostOf
	agree.Refuse = refuseColl
	agree.CacheOf = func(c any) *agree.Cache {
		if cc, ok := c.(*Comm); ok {
			return &cc.agreeCache
		}
		return nil
	}
}

// hostRegions is what connect learns about the world's region.
type hostRegions struct {
	world   *shm.Region
	worldOK bool
	hostOK  bool         // every rank of this host made its file (the world's host part, hostgroup.go)
	host    map[int]bool // world ranks of this host with a segment
}

func regionsOn() bool { return os.Getenv(EnvCollSHM) != "off" }

// create makes this rank's file of the world's region, when every rank of
// the job is on this host, or of the region of the world's ranks on this
// host (hostgroup.go), when it has two or more; it reports whether it did.
func (wr *hostRegions) create(job jobenv.Job, sl *shm.Link) bool {
	if len(job.HostRanks) < 2 || !regionsOn() || len(job.HostRanks) != job.Size && !hierOn() {
		return false
	}
	g, err := newRegion(sl, 0, job.Rank)
	if err != nil {
		fmt.Fprintf(warnings, "comm: rank %d: collectives go by messages: %v\n", job.Rank, err)
		return false
	}
	wr.world = g
	return true
}

// learn reads the start-up records of this host's other ranks (this
// rank has a segment): which have a segment, and whether all made their
// file of the world's region.
func (wr *hostRegions) learn(job jobenv.Job, recs map[int]string) {
	if job.HostRanks == nil {
		return
	}
	wr.host = map[int]bool{job.Rank: true}
	all := true
	for _, p := range job.HostRanks {
		if p == job.Rank {
			all = all && wr.world != nil
			continue
		}
		r, ok := recs[p]
		if ok && !strings.HasPrefix(r, noSegment) {
			wr.host[p] = true
		}
		all = all && ok && strings.HasSuffix(r, regionMark)
	}
	wr.hostOK = wr.world != nil && all
	wr.worldOK = wr.hostOK && len(job.HostRanks) == job.Size
}

func (wr *hostRegions) drop() {
	if wr.world != nil {
		wr.world.Close()
		wr.world.Unmap()
	}
}

func newRegion(sl *shm.Link, id uint64, rank int) (*shm.Region, error) {
	jid, nameKey, authKey := sl.Keys()
	return shm.CreateRegion(shm.RegionConfig{ID: jid, NameKey: nameKey, AuthKey: authKey,
		Comm: id, Rank: rank, Slot: collSlot})
}

// childRegion makes this rank's file of the region of a communicator about
// to be made from c with context id id (nil when c's ranks have no shared
// memory).
func (c *Comm) childRegion(id uint64) *shm.Region {
	if c.e.shl == nil || c.e.host == nil || !c.e.host[c.toWorld(c.rank)] || !regionsOn() {
		return nil
	}
	g, err := newRegion(c.e.shl, id, c.toWorld(c.rank))
	if err != nil {
		fmt.Fprintf(warnings, "comm: rank %d: collectives on a new communicator go by messages: %v\n", c.toWorld(c.rank), err)
		return nil
	}
	return g
}

// adopt gives the new communicator nc its region file g, which it uses
// when ok and every rank of nc has a segment on this host; when nc spans
// hosts, g serves the region of its ranks on this host instead, when
// hostOK (every one of them made its file; see hostgroup.go).
func (nc *Comm) adopt(g *shm.Region, ok, hostOK bool) {
	if g == nil {
		return
	}
	for r := range nc.size {
		ok = ok && nc.e.host[nc.toWorld(r)]
	}
	if !ok && nc.size >= 2 {
		nc.adoptHost(g, hostOK)
		return
	}
	if !ok || nc.size < 2 {
		g.Close()
		g.Unmap()
		return
	}
	nc.reg, nc.regOK = g, true
	runtime.AddCleanup(nc, func(g *shm.Region) { g.Close(); g.Unmap() }, g)
}

// dropRegion discards a file made for a communicator that was not made.
func dropRegion(g *shm.Region) {
	if g != nil {
		g.Close()
		g.Unmap()
	}
}

// releaseRegion ends c's region at Close: calls waiting in it end with an
// error, and the files are unmapped once none uses them.
func (c *Comm) releaseRegion() {
	if c.reg == nil {
		agree.Release(c)
		return
	}
	c.reg.Close()
	agree.Release(c)
	c.reg.Unmap()
}

// hostOf tells the agreement step about c's region.
func hostOf(x any) agree.Host {
	c, ok := x.(*Comm)
	if !ok || c.reg == nil || c.alive("collective") != nil {
		return agree.Host{}
	}
	e := c.e
	world := make([]int, c.size)
	for r := range world {
		world[r] = c.toWorld(r)
	}
	return agree.Host{
		Region: c.reg, Eligible: c.regOK,
		Rank: c.rank, Size: c.size, World: world, Crowded: e.crowded,
		Alive: func(r int) error {
			if err := c.alive("collective"); err != nil {
				return err
			}
			if err := e.collBroken(c.Shadow().id); err != nil {
				return err // a rank of the communicator this one serves is lost (hostgroup.go)
			}
			return e.peerErr(c.toWorld(r))
		},
	}
}

// peerErr is the error of a call that waits for world rank r, once r died
// or closed its communicator, or this rank's engine ended.
func (e *engine) peerErr(r int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.err != nil:
		return e.err
	case e.lost[r]:
		return e.lostErr(r)
	case e.finished[r]:
		return fmt.Errorf("rank %d closed its communicator: %w", r, ErrClosed)
	}
	return nil
}
