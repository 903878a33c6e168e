package shm

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Region file layout (one file per member; see region.go for the protocol).
//
//	off   size  field
//	0     8     magic "DCRSHM0T" (the stem of a segment's: SweepStale
//	            reads pid and pid namespace at the same offsets)
//	8     8     owner pid
//	16    8     owner's pid namespace
//	24    8     reserved
//	32    8     communicator id
//	40    8     reserved
//	48    8     reserved
//	56    8     slot size
//	64    8     owner's world rank
//	72    16    nonce
//	88    32    tag: HMAC-SHA256(auth key, magic | fields 32..72 | nonce)
//	4096        two post lines of 256 bytes (step parity 0 and 1): post
//	            step (8), payload length (8), 5 header words, inline
//	            data from 56 to 232, the stream step (8) and the bytes
//	            streamed (8) at 232, the mark (8) at 248: a small call's
//	            step, header and payload share the line's first 64 bytes,
//	            so a reader takes one cache miss per member
//	4608  8     ack: the last step this member finished reading
//	4736  4     bell: this member's futex word
//	4740  4     sleep: how many of this member's goroutines sleep on bell
//	4864  4     state: 0 working, else why this member left (region.go)
//	8192        two data slots of slot size (step parity 0 and 1)
const (
	regionMagic   = "DCRSHM0T"
	rgComm        = 32
	rgSlot        = 56
	rgWorld       = 64
	rgNonce       = 72
	rgTag         = 88
	rgLines       = 4096
	rgLineSize    = 256
	rgInlineOff   = 56
	rgAck         = 4608
	rgBell        = 4736
	rgSleep       = 4740
	rgState       = 4864
	rgData        = 8192
	regionInline  = rgLineSize - 24 - rgInlineOff // the stream words and the mark are last
	rgHeaderBytes = rgData
)

// RegionConfig names one rank's file of a communicator's region.
type RegionConfig struct {
	// Dir holds the files; DefaultDir when empty. ID is the job id;
	// NameKey and AuthKey are the job's shared-memory keys (as Config's).
	Dir, ID          string
	NameKey, AuthKey []byte
	// Comm identifies the communicator (the same on every member); Rank
	// is this rank's world rank.
	Comm uint64
	Rank int
	// Slot is the size of each of a member's two data slots, a multiple
	// of 4 KiB.
	Slot int
}

// Members says who shares a region, for Attach.
type Members struct {
	// World holds each member's world rank, in member order; Me is this
	// member's index.
	World []int
	Me    int
	// Crowded: more ranks than cores on this host (see Region's waiting).
	Crowded bool
	// Alive reports an error once member m can no longer take part (its
	// rank died or closed); it is called while a wait lasts, about every
	// millisecond.
	Alive func(m int) error
}

// member is one mapped member file.
type member struct {
	mem   []byte
	lines [2]*atomic.Uint64
	ack   *atomic.Uint64
	bell  *atomic.Uint32
	sleep *atomic.Uint32
	state *atomic.Uint32
	// acked (this process's memory, not the file) is an ack of the
	// member's that this member has read: the member has finished
	// reading at least that step. CanPost loads the shared ack, whose
	// line the member wrote at its last step, only when acked is too
	// old.
	acked atomic.Uint64
}

func newMember(mem []byte) *member {
	m := &member{mem: mem,
		ack:   (*atomic.Uint64)(unsafe.Pointer(&mem[rgAck])),
		bell:  (*atomic.Uint32)(unsafe.Pointer(&mem[rgBell])),
		sleep: (*atomic.Uint32)(unsafe.Pointer(&mem[rgSleep])),
		state: (*atomic.Uint32)(unsafe.Pointer(&mem[rgState])),
	}
	for i := range m.lines {
		m.lines[i] = (*atomic.Uint64)(unsafe.Pointer(&mem[rgLines+i*rgLineSize]))
	}
	return m
}

// RegionName is the file name of member world rank w's file of
// communicator comm in job id: like a segment's name, with an HMAC of the
// communicator and rank, so that it matches the job's names that the
// launcher removes when the job ends.
func RegionName(id string, nameKey []byte, comm uint64, w int) string {
	m := hmac.New(sha256.New, nameKey)
	m.Write([]byte("region " + strconv.FormatUint(comm, 16) + " rank " + strconv.Itoa(w)))
	return namePrefix + sanitize(id) + "-" + hex.EncodeToString(m.Sum(nil)[:8]) + "-" + strconv.Itoa(w)
}

func regionTag(authKey, hdr []byte) []byte {
	m := hmac.New(sha256.New, authKey)
	m.Write([]byte(regionMagic))
	m.Write(hdr[rgComm:rgNonce])
	m.Write(hdr[rgNonce : rgNonce+nonceLen])
	return m.Sum(nil)
}

// Region is one member's handle on a communicator's shared-memory region
// on its host. CreateRegion makes this rank's file; Attach maps the other
// members', once every member has created its own.
type Region struct {
	cfg  RegionConfig
	mb   Members
	path string
	mems []*member // by member index; mems[mb.Me] is this member's own
	me   *member
	size int           // bytes of each file
	seen atomic.Uint64 // the last step WaitAll saw every member post

	unlinkOnce sync.Once
	closeOnce  sync.Once
	unmapOnce  sync.Once
}

// CreateRegion creates and maps this rank's file of a region.
func CreateRegion(cfg RegionConfig) (*Region, error) {
	if cfg.Dir == "" {
		cfg.Dir = DefaultDir
	}
	if cfg.Slot <= 0 || cfg.Slot%pageSize != 0 {
		return nil, fmt.Errorf("shm: bad region slot %d", cfg.Slot)
	}
	g := &Region{cfg: cfg, size: rgData + 2*cfg.Slot}
	g.path = filepath.Join(cfg.Dir, RegionName(cfg.ID, cfg.NameKey, cfg.Comm, cfg.Rank))
	w := cfg.Rank
	fd, err := syscall.Open(g.path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err == syscall.EEXIST {
		return nil, fmt.Errorf("shm: rank %d cannot create its collectives region %s: the name is taken by %s: %w", w, g.path, describe(g.path), err)
	}
	if err != nil {
		return nil, fmt.Errorf("shm: rank %d cannot create its collectives region %s: %w", w, g.path, err)
	}
	defer syscall.Close(fd)
	fail := func(what string, err error) (*Region, error) {
		os.Remove(g.path)
		return nil, fmt.Errorf("shm: rank %d: %s %s (%d bytes): %w", w, what, g.path, g.size, err)
	}
	if err := syscall.Fchmod(fd, 0o600); err != nil {
		return fail("chmod", err)
	}
	if err := syscall.Fallocate(fd, 0, 0, int64(g.size)); err != nil {
		return fail("allocate", err)
	}
	mem, err := syscall.Mmap(fd, 0, g.size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fail("map", err)
	}
	le := binary.LittleEndian
	le.PutUint64(mem[hdrPid:], uint64(os.Getpid()))
	le.PutUint64(mem[hdrPidNS:], pidNS())
	le.PutUint64(mem[rgComm:], cfg.Comm)
	le.PutUint64(mem[rgSlot:], uint64(cfg.Slot))
	le.PutUint64(mem[rgWorld:], uint64(w))
	if _, err := rand.Read(mem[rgNonce : rgNonce+nonceLen]); err != nil {
		syscall.Munmap(mem)
		return fail("nonce for", err)
	}
	copy(mem[rgTag:rgTag+sha256.Size], regionTag(cfg.AuthKey, mem))
	copy(mem, regionMagic) // last
	g.me = newMember(mem)
	return g, nil
}

// Attach maps every other member's file, checking that it is the one that
// member made for this communicator: a regular file (not through a
// symbolic link) of this user, mode 0600, one link, of the expected size,
// whose header names the communicator and the member's rank and carries
// the tag of the job's auth key. It fails naming the first file it
// refused; the caller then marks this member as failed (Fail).
func (g *Region) Attach(mb Members) error {
	if mb.Me < 0 || mb.Me >= len(mb.World) || mb.World[mb.Me] != g.cfg.Rank {
		return fmt.Errorf("shm: rank %d is not member %d of the region", g.cfg.Rank, mb.Me)
	}
	g.mb = mb
	g.mems = make([]*member, len(mb.World))
	g.mems[mb.Me] = g.me
	for i, w := range mb.World {
		if i == mb.Me {
			continue
		}
		path := filepath.Join(g.cfg.Dir, RegionName(g.cfg.ID, g.cfg.NameKey, g.cfg.Comm, w))
		mem, err := g.openMember(path, w)
		if err != nil {
			for _, m := range g.mems[:i] {
				if m != nil && m != g.me {
					syscall.Munmap(m.mem)
				}
			}
			g.mems = []*member{g.me}
			g.mb = Members{World: []int{g.cfg.Rank}}
			return fmt.Errorf("rank %d cannot map rank %d's collectives region: %w", g.cfg.Rank, w, err)
		}
		g.mems[i] = newMember(mem)
	}
	return nil
}

func (g *Region) openMember(path string, w int) ([]byte, error) {
	mem, err := mapOwn(path, func(n int64) string {
		if n != int64(g.size) {
			return fmt.Sprintf("%d bytes, want %d", n, g.size)
		}
		return ""
	})
	if err != nil {
		return nil, err
	}
	refuse := func(format string, args ...any) ([]byte, error) {
		return nil, fmt.Errorf("refused %s: "+format, append([]any{path}, args...)...)
	}
	le := binary.LittleEndian
	bad := func(format string, args ...any) ([]byte, error) {
		syscall.Munmap(mem)
		return refuse(format, args...)
	}
	switch {
	case string(mem[:8]) != regionMagic:
		return bad("not a decorun collectives region of this version")
	case le.Uint64(mem[rgComm:]) != g.cfg.Comm || int(le.Uint64(mem[rgSlot:])) != g.cfg.Slot ||
		int(le.Uint64(mem[rgWorld:])) != w:
		return bad("it is not rank %d's file of this communicator's region", w)
	case !hmac.Equal(mem[rgTag:rgTag+sha256.Size], regionTag(g.cfg.AuthKey, mem)):
		return bad("its header was not made with this job's key")
	case le.Uint64(mem[hdrPidNS:]) != pidNS():
		return bad("its owner is in another pid namespace")
	}
	return mem, nil
}

// Unlink removes this member's file name (the mappings stay valid); call
// it once every member has attached.
func (g *Region) Unlink() {
	g.unlinkOnce.Do(func() { os.Remove(g.path) })
}

// Close marks this member as gone (state closed), so that every wait on
// the region, this member's and the others', ends with an error, and
// removes this member's name if it is still there. Unmap, once no call
// uses the region any more, unmaps the files.
func (g *Region) Close() {
	g.closeOnce.Do(func() {
		g.leave(stateClosed)
		g.me.bell.Add(1)
		futexWakeAll(g.me.bell)
		g.Unlink()
	})
}

// Unmap unmaps every file of the region; nothing may use it afterwards.
func (g *Region) Unmap() {
	g.unmapOnce.Do(func() {
		for _, m := range g.mems {
			if m != nil && m != g.me {
				syscall.Munmap(m.mem)
			}
		}
		syscall.Munmap(g.me.mem)
	})
}

// Fail marks this member as failed (it could not attach): members waiting
// for it stop with an error naming it.
func (g *Region) Fail() { g.leave(stateFailed) }

func (g *Region) leave(state uint32) {
	g.me.state.CompareAndSwap(0, state)
	for _, m := range g.mems {
		if m != nil && m != g.me {
			m.bell.Add(1)
			futexWakeAll(m.bell)
		}
	}
}

// futexWakeAll wakes every sleeper on w.
func futexWakeAll(w *atomic.Uint32) {
	syscall.Syscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWakeOp, 1<<30, 0, 0, 0)
}

func schedYield() { syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
