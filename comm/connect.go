package comm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/shm"
	"github.com/decorun/decorun/internal/transport"
)

// Job says how a rank joins a job whose processes were started by something
// other than decorun (tests, a batch scheduler): its rank, the job's size,
// the NATS server and token, and the job id (ranks of one job must agree on
// it). Prefix, if set, replaces the subject prefix "decorun.<ID>".
type Job struct {
	Rank, Size int
	URL        string // one URL, or several separated by commas
	Token      string
	ID         string
	Prefix     string
	// Key is the job's secret key, as DECORUN_JOB_KEY: random per job
	// and known to its ranks only (it never crosses NATS). The keys that
	// name and authenticate shared-memory segments and authenticate
	// direct TCP connections derive from it. Empty: no direct TCP, and
	// segment names derive from the NATS credentials.
	Key string

	// Other credentials, as for decorun --nats-url.
	User, Password    string
	CredsFile         string
	NkeyFile          string
	CAFile            string
	CertFile, KeyFile string

	// HostRanks are the world ranks on this rank's host, as decorun's
	// DECORUN_HOST_RANKS (nil: unknown). With them, a communicator whose
	// ranks all share the host runs its collectives through shared memory.
	HostRanks []int

	// Transport is the data path: "nats", "auto" (shared memory between
	// ranks in one process or on one host, NATS otherwise) or "shm"
	// (like auto, but a rank that cannot be reached through shared memory
	// is an error). Empty: DefaultTransport.
	Transport string
}

// DefaultTransport is the data path of a job that does not choose one
// (decorun --transport, DECORUN_TRANSPORT, Job.Transport).
const DefaultTransport = jobenv.TransportAuto

// Connect joins job j and returns its world communicator, like Init does
// from decorun's environment. Unlike Init it may be called several times in
// one process, once per rank, which is how in-process tests run several
// ranks (see package commtest: commtest.World(tb, n) gives n connected ranks
// over a real embedded nats-server).
func Connect(ctx context.Context, j Job) (*Comm, error) {
	if j.Size < 1 || j.Rank < 0 || j.Rank >= j.Size {
		return nil, fmt.Errorf("comm: Connect: rank %d out of range for a job of %d ranks", j.Rank, j.Size)
	}
	tr, err := jobenv.ParseTransport(j.Transport)
	if err != nil {
		return nil, fmt.Errorf("comm: Connect: %w", err)
	}
	prefix := j.Prefix
	if prefix == "" {
		prefix = jobenv.DefaultPrefix(j.ID)
	}
	return connect(ctx, jobenv.Job{Rank: j.Rank, Size: j.Size, LocalRank: j.Rank, LocalSize: j.Size,
		ID: j.ID, URL: j.URL, Secret: j.Token, JobKey: j.Key, Prefix: prefix, User: j.User, Password: j.Password,
		CredsFile: j.CredsFile, NkeyFile: j.NkeyFile, CAFile: j.CAFile, CertFile: j.CertFile, KeyFile: j.KeyFile,
		Transport: tr, Joined: "connect", HostRanks: slices.Clone(j.HostRanks)})
}

// Shared-memory sizing: each rank's inbound rings share shmBudget bytes,
// each ring between shmMinRing and shmMaxRing (a power of two). The
// largest ring is as large as the largest credit window (maxWindow), so
// that a sender with credit finds room in the ring and does not copy its
// frames into its queue first (a 4 MiB ring under a 16 MiB window: bw at
// 1 MiB-4 MiB 1.06-1.51 GB/s, with 16 MiB 1.87-2.05 GB/s). Without
// the launcher's list of the ranks on this host, a job of more than
// shmMaxPeers ranks uses NATS only.
const (
	shmBudget   = 16 << 20
	shmMinRing  = 64 << 10
	shmMaxRing  = maxWindow
	shmMaxPeers = 256
	shmSpin     = 50 * time.Microsecond
	recvSpin    = 5 * time.Microsecond
)

// dial connects job's NATS link and sets up the direct paths the job's
// transport asks for: this rank's shared-memory segment (unless the job
// asked for NATS or TCP only) and its TCP listener (when peers may be on
// other hosts, or the job asked for TCP). It returns the NATS link (the
// control plane), the data path for comm's engine, and start, which runs
// the start-up barrier (NATS.Boot: every rank's inbox and segment exist
// once it returns, and each rank learns the nonces of its host's segments
// from it), then publishes this rank's address, opens the peers' segments
// whose nonces it learned, dials the peers that take TCP and fixes each
// peer's path. settle, when not nil, is for Close to call
// before it closes the link (see tcpPath.settle). drv and spin say how
// a blocked receive or send waits before it sleeps (see engine.drive):
// with shared memory and no more ranks on this host than cores, drv is the
// shared-memory link to drive for up to spin (shmSpin); with more ranks
// than cores, drv is nil and the caller polls its request for recvSpin
// while the pump carries the frames; without shared memory, spin is zero.
func dial(ctx context.Context, job jobenv.Job, wr *hostRegions, onFrame, onView func([]byte), onFatal func(error), onEvent func(jobenv.Ctl)) (
	t *transport.NATS, link transport.Link, start func() error, settle func(context.Context, func(int) bool) error, drv *shm.Link, spin time.Duration, shl *shm.Link, err error) {
	tr := job.Transport // named by connect
	t, err = transport.DialNATS(ctx, job, onFrame, onFatal, onEvent)
	if err != nil {
		return nil, nil, nil, nil, nil, 0, nil, err
	}
	group := "*" // the ranks of this host, named by the lowest; "*": unknown
	if len(job.HostRanks) > 0 {
		group = strconv.Itoa(job.HostRanks[0])
	}
	none := func() error {
		_, err := t.Boot(ctx, group, "")
		return err
	}
	if tr == jobenv.TransportNATS || job.Size == 1 {
		return t, t, none, nil, nil, 0, nil, nil
	}
	fail := func(err error) (*transport.NATS, transport.Link, func() error, func(context.Context, func(int) bool) error, *shm.Link, time.Duration, *shm.Link, error) {
		t.Close()
		return nil, nil, nil, nil, nil, 0, nil, err
	}
	sl, shmPeers, off, err := openSHM(job, tr, t, onFrame, onView, onFatal)
	if err != nil {
		return fail(err)
	}
	// What this rank announces at the barrier: its segment's nonce, or
	// why it has none (its peers then reach it through NATS, or with shm
	// fail naming it).
	rec := ""
	switch {
	case sl != nil:
		rec = sl.Nonce()
		if wr.create(job, sl) {
			rec += regionMark
		}
	case off != nil:
		rec = noSegment + strings.ReplaceAll(off.Error(), "\n", " ")
	}
	tp, err := listenTCP(job, tr, t, onFrame, onFatal)
	if err != nil {
		if sl != nil {
			sl.Close()
		}
		return fail(err)
	}
	if sl == nil && tp == nil {
		if off != nil && tr == jobenv.TransportSHM {
			return t, t, func() error {
				if _, err := t.Boot(ctx, group, rec); err != nil {
					return err
				}
				return fmt.Errorf("rank %d: --transport=shm: %w", job.Rank, off)
			}, nil, nil, 0, nil, nil
		}
		return t, t, func() error {
			_, err := t.Boot(ctx, group, rec)
			return err
		}, nil, nil, 0, nil, nil
	}
	link = t
	if tp != nil && tp.l != nil {
		tp.mux = transport.NewMux(t, tp.l)
		link = tp.mux
	}
	var mux *transport.Mux
	if sl != nil {
		mux = transport.NewMux(link, sl)
		link = mux
		// Driving pays while each rank has a core for its one spinning
		// thread; with more ranks than cores, spinning callers starve the
		// ranks that would send (Allreduce over 8 ranks on 2 cores: 1.5-1.8
		// times slower than the pump alone).
		if !crowded(job, len(shmPeers)) {
			drv, spin = sl, shmSpin
		} else {
			spin = recvSpin
		}
	}
	start = func() error {
		recs, err := t.Boot(ctx, group, rec)
		if err != nil {
			return err
		}
		if off != nil && tr == jobenv.TransportSHM {
			return fmt.Errorf("rank %d: --transport=shm: %w", job.Rank, off)
		}
		if tp != nil {
			if err := tp.dir.Publish(tp.rec); err != nil {
				return fmt.Errorf("rank %d: publishing its TCP address: %w", job.Rank, err)
			}
		}
		reach := make([]bool, job.Size)
		if sl != nil {
			nonces := map[int]string{}
			for p, r := range recs {
				if !strings.HasPrefix(r, noSegment) {
					nonces[p] = strings.TrimSuffix(r, regionMark)
				}
			}
			wr.learn(job, recs)
			var why map[int]error
			reach, why = sl.Connect(nonces)
			if tr == jobenv.TransportSHM {
				var errs []error
				for _, p := range shmPeers {
					if reach[p] {
						continue
					}
					if r, ok := strings.CutPrefix(recs[p], noSegment); ok {
						why[p] = fmt.Errorf("it has no segment: %s", r)
					}
					errs = append(errs, fmt.Errorf("--transport=shm: rank %d cannot be reached through shared memory: %w", p, why[p]))
				}
				if err := errors.Join(errs...); err != nil {
					return fmt.Errorf("rank %d: %w", job.Rank, err)
				}
			}
		}
		if tp != nil {
			if err := tp.start(ctx, job, tr, reach); err != nil {
				return fmt.Errorf("rank %d: %w", job.Rank, err)
			}
		}
		if mux != nil {
			return mux.Start(reach)
		}
		return nil
	}
	if tp != nil {
		settle = func(ctx context.Context, departed func(int) bool) error { return tp.settle(ctx, job, tr, departed) }
	}
	return t, link, start, settle, drv, spin, sl, nil
}

// noSegment starts the start-up record of a rank that has no
// shared-memory segment ("- why"); a rank with one announces its nonce.
const noSegment = "- "

// warnings is where a rank says, once, why it runs without a direct path
// it would have used (tests replace it).
var warnings io.Writer = os.Stderr

// crowded reports whether this rank and its peers on this host are more
// than the CPUs it may run on: the CPUs in its affinity mask, or fewer
// when the Go runtime found a lower CPU quota (a container's cgroup limit)
// and GOMAXPROCS was not set by hand. A rank the launcher bound to CPUs
// of its own (job.CPUs) is not: the launcher binds only ranks that the
// host's CPUs hold.
func crowded(job jobenv.Job, peers int) bool {
	if len(job.CPUs) > 0 {
		return false
	}
	n := runtime.NumCPU()
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		n = min(n, runtime.GOMAXPROCS(0))
	}
	return peers+1 > n
}

// openSHM creates this rank's shared-memory segment, unless the job asked
// for TCP, and returns it (nil when no peer may share this host) with the
// peers it has rings for. A segment that cannot be made (its name is
// taken, /dev/shm is full) is no error here: openSHM returns why in off,
// after saying so on warnings with auto; the rank announces it at the
// start-up barrier, so that its peers reach it through NATS (with auto)
// or every rank fails naming it (with shm).
func openSHM(job jobenv.Job, tr string, t *transport.NATS, onFrame, onView func([]byte), onFatal func(error)) (sl *shm.Link, peers []int, off, err error) {
	if tr == jobenv.TransportTCP {
		return nil, nil, nil, nil
	}
	switch {
	case job.HostRanks != nil:
		peers = slices.DeleteFunc(slices.Clone(job.HostRanks), func(r int) bool { return r == job.Rank })
	case job.Size <= shmMaxPeers:
		for r := range job.Size {
			if r != job.Rank {
				peers = append(peers, r)
			}
		}
	case tr == jobenv.TransportSHM:
		return nil, nil, nil, fmt.Errorf("rank %d: --transport=shm: a job of %d ranks needs %s to say which ranks share this host",
			job.Rank, job.Size, jobenv.EnvHostRanks)
	}
	if len(peers) == 0 {
		return nil, nil, nil, nil
	}
	ring := shmMaxRing
	for ring > shmMinRing && ring*len(peers) > shmBudget {
		ring /= 2
	}
	nameKey, authKey := job.SHMKeys()
	sl, err = shm.Open(shm.Config{ID: job.ID, NameKey: nameKey, AuthKey: authKey,
		Rank: job.Rank, Size: job.Size, Peers: peers, RingSize: ring, MaxFrame: t.MaxFrame(), Spin: shmSpin, Crowded: crowded(job, len(peers)), OnView: onView},
		onFrame, onFatal)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		return nil, nil, nil, nil // not Linux: NATS carries everything
	case err != nil && tr != jobenv.TransportSHM:
		fmt.Fprintf(warnings, "comm: rank %d: shared memory off, its peers on this host reach it through NATS: %v\n", job.Rank, err)
		return nil, nil, err, nil
	case err != nil:
		return nil, nil, err, nil
	}
	return sl, peers, nil, nil
}
