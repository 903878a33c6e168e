package launcher

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/shm"
	"github.com/nats-io/nats.go"
)

// world is one world of a job: its own ranks (k 0), or the ranks of its
// k-th spawn (comm.Spawn), which have a job id, subject prefix and
// DECORUN_RANK/DECORUN_SIZE of their own.
type world struct {
	k      int
	id     string
	prefix string
	n      int
	path   string // the executable
	prog   string // argv[0]
	args   []string
	built  bool
	place  []int    // host index of every rank (nil: all on this host)
	slots  []int    // rank -> index in job.ranks
	env    []string // environment of its ranks on this host, before the per-rank variables
	sub    *nats.Subscription
	inter  *interJob // a spawn's intercommunicator, nil for the job's world
	asker  *world    // the world whose ranks asked for it (a spawn's)
}

// interJob is the job of a spawn's intercommunicator: the spawning group
// (ranks 0..p-1) and the spawned ranks (p..p+n-1), by index in job.ranks.
type interJob struct {
	id, prefix string
	members    []int
	p          int
	hosts      []int // host of every member (SpawnReply.Hosts)
}

// name names rank n of w in messages: "rank 3", or "rank s1.3" for rank 3
// of the first spawn.
func (w *world) name(n int) string { return "rank " + w.tag(n) }

// tag is what starts rank n's output lines with TagOutput: "3", "s1.3".
func (w *world) tag(n int) string {
	if w.k == 0 {
		return strconv.Itoa(n)
	}
	return "s" + strconv.Itoa(w.k) + "." + strconv.Itoa(n)
}

// outDir is where rank n of w writes its output with OutputDir dir.
func (w *world) outDir(dir string, n int) string {
	if w.k == 0 {
		return filepath.Join(dir, "rank."+strconv.Itoa(n))
	}
	return filepath.Join(dir, "spawn."+strconv.Itoa(w.k), "rank."+strconv.Itoa(n))
}

// host is where rank n of w runs: an index of Config.Hosts, 0 when all
// run here.
func (w *world) host(n int) int {
	if w.place == nil {
		return 0
	}
	return w.place[n]
}

// hostRanks lists w's ranks on rank n's host, ascending.
func (w *world) hostRanks(n int) []int {
	var rs []int
	for m := range w.n {
		if w.host(m) == w.host(n) {
			rs = append(rs, m)
		}
	}
	return rs
}

// name names r in messages (see world.name).
func (r *rank) name() string {
	if r.w == nil { // a rank of the job's own world made without one
		return "rank " + strconv.Itoa(r.n)
	}
	return r.w.name(r.wr)
}

// spawned reports whether r is a rank of a spawn.
func (r *rank) spawned() bool { return r.w != nil && r.w.k != 0 }

// worldRank is r's rank in its world.
func (r *rank) worldRank() int {
	if r.w == nil {
		return r.n
	}
	return r.wr
}

// prefixOf is the subject prefix of r's world.
func (j *job) prefixOf(r *rank) string {
	if r.w == nil {
		return j.prefix
	}
	return r.w.prefix
}

// parentEnv is what rank n of a spawned world learns of its
// intercommunicator's job (nothing for the job's own ranks).
func (j *job) parentEnv(w *world, n int) []string {
	x := w.inter
	if x == nil {
		return nil
	}
	var same []int
	for i, h := range x.hosts {
		if h == x.hosts[x.p+n] {
			same = append(same, i)
		}
	}
	return []string{jobenv.EnvSpawn + "=" + strconv.Itoa(w.k), jobenv.EnvParentJob + "=" + x.id,
		jobenv.EnvParentPrefix + "=" + x.prefix, jobenv.EnvParentSize + "=" + strconv.Itoa(x.p),
		jobenv.EnvParentHostRanks + "=" + jobenv.FormatRanks(same)}
}

// spawn answers an OpSpawn from a rank of w: it checks the request, makes
// the new world and its intercommunicator's job, and adds the steps that
// start the new ranks to the launch. Nothing starts when it answers an
// error.
func (j *job) spawn(w *world, req *jobenv.SpawnRequest) []byte {
	reply := func(r jobenv.SpawnReply) []byte {
		b, _ := json.Marshal(r) // cannot fail: plain fields
		return b
	}
	refuse := func(format string, a ...any) []byte { return reply(jobenv.SpawnReply{Err: fmt.Sprintf(format, a...)}) }
	switch {
	case j.stopping:
		return refuse("the job is being stopped")
	case req == nil:
		return refuse("the request names no program")
	case req.Program == "":
		return refuse("no program given")
	case req.N < 1:
		return refuse("n must be at least 1, got %d", req.N)
	case len(req.Group) == 0:
		return refuse("the spawning group is empty")
	}
	for _, r := range req.Group {
		if r < 0 || r >= w.n || j.ranks[w.slots[r]] == nil {
			return refuse("the spawning group names %s, which is not a running rank", w.name(r))
		}
	}
	if isGoPackage(req.Program) {
		return refuse("cannot execute %q: it is a directory of Go source; Spawn runs an executable (build it first with go build)", req.Program)
	}
	path, err := exec.LookPath(req.Program)
	if err != nil {
		return refuse("cannot execute %q: %v", req.Program, err)
	}
	var place []int
	if len(j.cfg.Hosts) > 0 {
		if place, err = Map(j.cfg.Hosts, req.N, j.cfg.MapByNode, j.cfg.Oversubscribe); err != nil {
			return refuse("cannot place %d ranks: %v", req.N, err)
		}
	}
	k := len(j.worlds)
	nw := &world{k: k, id: jobenv.SpawnID(j.id, k), prefix: jobenv.SpawnPrefix(j.prefix, k), n: req.N,
		path: path, prog: req.Program, args: slices.Clone(req.Args), place: place}
	sub, err := j.srv.nc.ChanSubscribe(jobenv.CtlSubject(nw.prefix), j.ctl)
	if err == nil {
		err = j.srv.nc.Flush() // the server has the subscription before any new rank exists
	}
	if err != nil {
		if sub != nil {
			sub.Unsubscribe()
		}
		return refuse("cannot subscribe to the new ranks' control subject: %v", err)
	}
	nw.sub = sub
	x := &interJob{id: jobenv.InterID(j.id, k), prefix: jobenv.InterPrefix(j.prefix, k), p: len(req.Group)}
	for _, r := range req.Group {
		slot := w.slots[r]
		x.members = append(x.members, slot)
		x.hosts = append(x.hosts, j.ranks[slot].w.host(j.ranks[slot].wr))
	}
	for n := range req.N {
		nw.slots = append(nw.slots, len(j.ranks))
		j.ranks = append(j.ranks, nil)
		x.members = append(x.members, nw.slots[n])
		x.hosts = append(x.hosts, nw.host(n))
	}
	nw.inter, nw.asker = x, w
	nw.env = append(slices.Clone(j.env), jobenv.EnvJob+"="+nw.id, jobenv.EnvPrefix+"="+nw.prefix,
		jobenv.EnvSize+"="+strconv.Itoa(nw.n), jobenv.EnvLocalSize+"="+strconv.Itoa(nw.n))
	nw.env = append(nw.env, spawnedTraceEnv()...)
	j.worlds = append(j.worlds, nw)
	j.byCtl[jobenv.CtlSubject(nw.prefix)] = nw
	j.inters = append(j.inters, x)
	if err := j.planStarts(nw); err != nil {
		j.fail(err, syscall.SIGKILL)
		return refuse("%s", err.Msg)
	}
	return reply(jobenv.SpawnReply{K: k, ID: x.id, Prefix: x.prefix, Hosts: x.hosts})
}

// dropSpawns ends the spawned worlds' control subscriptions and removes
// what their ranks left in shared memory, once the job is over.
func (j *job) dropSpawns() {
	for _, w := range j.worlds[1:] {
		w.sub.Unsubscribe()
		shm.RemoveJob("", w.id)
		shm.RemoveJob("", w.inter.id)
	}
}
