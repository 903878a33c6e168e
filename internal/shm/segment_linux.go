package shm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Segment header layout (the first page(s) of a segment file).
//
//	off  size   field
//	0    8      magic "DCRSHM02"
//	8    8      owner pid
//	16   8      owner's pid namespace (inode of /proc/self/ns/pid)
//	24   8      reserved (0)
//	32   8      owner rank
//	40   8      job size
//	48   8      ring size (data bytes per ring)
//	56   8      opened: how many peers have mapped the segment (atomic)
//	64   4      closed: 1 once the owner closed its link (atomic)
//	72   16     nonce: random, announced by the owner over NATS
//	88   32     tag: HMAC-SHA256(auth key, magic | rank | size | nonce)
//	128  4      bell: the owner's futex word (atomic)
//	192  4      sleep: 1 while the owner's pump sleeps on bell (atomic)
//	256  8·size slot table: offset of the ring from rank r, 0 when none
const (
	magic      = "DCRSHM02"
	magicStem  = "DCRSHM0" // any layout version: pid and pid namespace sit at the same offsets
	hdrPid     = 8
	hdrPidNS   = 16
	hdrRank    = 32
	hdrSize    = 40
	hdrRing    = 48
	hdrOpened  = 56
	hdrClosed  = 64
	hdrNonce   = 72
	hdrTag     = 88
	hdrBell    = 128
	hdrSleep   = 192
	hdrSlots   = 256
	nonceLen   = 16
	pageSize   = 4096
	namePrefix = "decorun-"
)

// DefaultDir is where segments live.
const DefaultDir = "/dev/shm"

// segment is a mapped segment file.
type segment struct {
	mem    []byte
	bell   *atomic.Uint32
	sleep  *atomic.Uint32
	opened *atomic.Uint64
	closed *atomic.Uint32
}

func newSegment(mem []byte) *segment {
	return &segment{mem: mem,
		bell:   (*atomic.Uint32)(unsafe.Pointer(&mem[hdrBell])),
		sleep:  (*atomic.Uint32)(unsafe.Pointer(&mem[hdrSleep])),
		opened: (*atomic.Uint64)(unsafe.Pointer(&mem[hdrOpened])),
		closed: (*atomic.Uint32)(unsafe.Pointer(&mem[hdrClosed])),
	}
}

func (s *segment) u64(off int) uint64 { return binary.LittleEndian.Uint64(s.mem[off:]) }

// ring returns the ring rank src writes into, or nil.
func (s *segment) ring(src int) (*Ring, error) {
	size := int(s.u64(hdrSize))
	if src < 0 || src >= size {
		return nil, nil
	}
	off := int(s.u64(hdrSlots + 8*src))
	n := int(s.u64(hdrRing))
	if off == 0 {
		return nil, nil
	}
	if off < 0 || n <= 0 || off+RingHeader+n > len(s.mem) {
		return nil, fmt.Errorf("shm: segment's ring for rank %d lies outside it", src)
	}
	return NewRing(s.mem[off : off+RingHeader+n])
}

// wake rings the owner's doorbell if its pump sleeps.
func (s *segment) wake() {
	if s.sleep.Load() != 0 {
		s.bell.Add(1)
		futexWake(s.bell)
	}
}

func headerLen(size int) int { return roundUp(hdrSlots+8*size, pageSize) }

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// Name is the file name of rank's segment in job id: the hash in it is
// HMAC-SHA256(nameKey, rank), so that the names of one job's ranks share
// nothing but the job id, and one name tells nothing about another (nor
// about the authentication key, derived apart from nameKey).
func Name(id string, nameKey []byte, rank int) string {
	m := hmac.New(sha256.New, nameKey)
	m.Write([]byte("rank " + strconv.Itoa(rank)))
	return namePrefix + sanitize(id) + "-" + hex.EncodeToString(m.Sum(nil)[:8]) + "-" + strconv.Itoa(rank)
}

// tag is the authentication tag of a segment's header.
func tag(authKey []byte, rank, size int, nonce []byte) []byte {
	m := hmac.New(sha256.New, authKey)
	m.Write([]byte(magic))
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], uint64(rank))
	binary.LittleEndian.PutUint64(b[8:], uint64(size))
	m.Write(b[:])
	m.Write(nonce)
	return m.Sum(nil)
}

// sanitize keeps a job id usable in a file name: letters, digits, '.' and
// '_' (so that "decorun-<id>-" never matches another id's names), at most
// 64 of them.
func sanitize(id string) string {
	b := []byte(id)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) == 0 || string(b) == "." || string(b) == ".." {
		return "_" + string(b)
	}
	return string(b)
}

var segName = regexp.MustCompile(`^decorun-[A-Za-z0-9._]+-[0-9a-f]{16}-[0-9]+$`)

// RemoveJob removes every segment of job id from dir (DefaultDir when
// empty): the launcher calls it when a job ends, however it ended.
func RemoveJob(dir, id string) {
	if dir == "" {
		dir = DefaultDir
	}
	names, _ := filepath.Glob(filepath.Join(dir, namePrefix+globEscape(sanitize(id))+"-*"))
	uid := os.Geteuid()
	for _, p := range names {
		var st syscall.Stat_t
		// Only this user's files: a name another user planted stays.
		if segName.MatchString(filepath.Base(p)) && syscall.Lstat(p, &st) == nil &&
			st.Mode&syscall.S_IFMT == syscall.S_IFREG && int(st.Uid) == uid {
			os.Remove(p)
		}
	}
}

func globEscape(s string) string {
	return strings.NewReplacer("[", `\[`, "*", `\*`, "?", `\?`).Replace(s)
}

// SweepStale removes from dir (DefaultDir when empty) the segments of
// processes that no longer exist: this user's files whose owner pid is gone
// in this pid namespace, or whose header was never completed (older than a
// minute). It reports how many it removed.
func SweepStale(dir string) int {
	if dir == "" {
		dir = DefaultDir
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	ns, uid, n := pidNS(), os.Geteuid(), 0
	for _, e := range ents {
		if !segName.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if stale(p, ns, uid) && os.Remove(p) == nil {
			n++
		}
	}
	return n
}

func stale(p string, ns uint64, uid int) bool {
	var st syscall.Stat_t
	if syscall.Lstat(p, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || int(st.Uid) != uid {
		return false
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	var h [hdrPidNS + 8]byte
	if _, err := f.ReadAt(h[:], 0); err != nil || !bytes.HasPrefix(h[:], []byte(magicStem)) {
		return time.Since(time.Unix(st.Mtim.Unix())) > time.Minute
	}
	pid := int(binary.LittleEndian.Uint64(h[hdrPid:]))
	return binary.LittleEndian.Uint64(h[hdrPidNS:]) == ns && pid > 0 && !alive(pid)
}

// alive reports whether process pid exists (a zombie counts).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// pidNS identifies this process's pid namespace (0 when unknown), so that
// pids read from a segment are only trusted within the same namespace.
func pidNS() uint64 {
	l, err := os.Readlink("/proc/self/ns/pid") // "pid:[4026531836]"
	if err != nil {
		return 0
	}
	l = strings.TrimSuffix(strings.TrimPrefix(l, "pid:["), "]")
	v, _ := strconv.ParseUint(l, 10, 64)
	return v
}

// create makes, sizes and maps this rank's segment with a ring for every
// rank in peers; its header carries nonce and the tag made with authKey.
// A name that exists already (another user may have planted it) is an
// error that says whose file holds it.
func create(path string, authKey, nonce []byte, rank, size int, peers []int, ringSize int) (*segment, error) {
	hl := headerLen(size)
	stride := roundUp(RingHeader+ringSize, pageSize)
	total := hl + len(peers)*stride
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err == syscall.EEXIST {
		return nil, fmt.Errorf("shm: rank %d cannot create its segment %s: the name is taken by %s: %w", rank, path, describe(path), err)
	}
	if err != nil {
		return nil, fmt.Errorf("shm: rank %d cannot create its segment %s: %w", rank, path, err)
	}
	defer syscall.Close(fd)
	fail := func(what string, err error) (*segment, error) {
		os.Remove(path)
		return nil, fmt.Errorf("shm: rank %d: %s %s (%d bytes): %w", rank, what, path, total, err)
	}
	// Exactly 0600 whatever the umask: peers accept nothing else.
	if err := syscall.Fchmod(fd, 0o600); err != nil {
		return fail("chmod", err)
	}
	// fallocate, not ftruncate: a full /dev/shm fails here rather than as a
	// SIGBUS when a page is first touched.
	if err := syscall.Fallocate(fd, 0, 0, int64(total)); err != nil {
		return fail("allocate", err)
	}
	mem, err := syscall.Mmap(fd, 0, total, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fail("map", err)
	}
	le := binary.LittleEndian
	le.PutUint64(mem[hdrPid:], uint64(os.Getpid()))
	le.PutUint64(mem[hdrPidNS:], pidNS())
	le.PutUint64(mem[hdrRank:], uint64(rank))
	le.PutUint64(mem[hdrSize:], uint64(size))
	le.PutUint64(mem[hdrRing:], uint64(ringSize))
	copy(mem[hdrNonce:hdrNonce+nonceLen], nonce)
	copy(mem[hdrTag:hdrTag+sha256.Size], tag(authKey, rank, size, nonce))
	for i, p := range peers {
		le.PutUint64(mem[hdrSlots+8*p:], uint64(hl+i*stride))
	}
	copy(mem, magic) // last: a reader that sees the magic sees the rest
	return newSegment(mem), nil
}

// describe says what holds path (for an error): its type, owner and mode.
func describe(path string) string {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return "a file that cannot be examined (" + err.Error() + ")"
	}
	what := "a file"
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFLNK:
		what = "a symbolic link"
	case syscall.S_IFDIR:
		what = "a directory"
	case syscall.S_IFREG:
	default:
		what = "a special file"
	}
	who := "this user's"
	if int(st.Uid) != os.Geteuid() {
		who = fmt.Sprintf("another user's (uid %d; this user is uid %d)", st.Uid, os.Geteuid())
	}
	return fmt.Sprintf("%s, %s, mode %04o", what, who, st.Mode&0o7777)
}

// Nonce is the random value in this rank's segment header, in hex: the
// rank announces it to its peers over the job's authenticated NATS
// connection, and a peer maps the segment only if it holds that nonce.
func (l *Link) Nonce() string { return hex.EncodeToString(l.nonce) }

// Connect opens the segments of the peers, which must have been created
// (by Open in their processes) before it is called; nonces holds what
// each peer announced (its Nonce), and a peer without one is not opened.
// It returns, for every rank, whether frames to it go through shared
// memory, and for every peer it could not reach, why.
func (l *Link) Connect(nonces map[int]string) (reach []bool, why map[int]error) {
	l.connected.Store(true)
	reach = make([]bool, l.cfg.Size)
	why = map[int]error{}
	outs := make([]*outbound, l.cfg.Size)
	for _, p := range l.cfg.Peers {
		nonce, err := hex.DecodeString(nonces[p])
		if _, ok := nonces[p]; !ok || err != nil || len(nonce) != nonceLen {
			why[p] = fmt.Errorf("rank %d announced no segment", p)
			continue
		}
		path := filepath.Join(l.cfg.Dir, Name(l.cfg.ID, l.cfg.NameKey, p))
		seg, err := open(path, l.cfg.AuthKey, nonce, p, l.cfg.Size)
		if err != nil {
			why[p] = err
			continue
		}
		r, err := seg.ring(l.cfg.Rank)
		if err == nil && r == nil {
			err = fmt.Errorf("%s has no ring for rank %d", path, l.cfg.Rank)
		}
		if err != nil {
			seg.unmap()
			why[p] = err
			continue
		}
		seg.opened.Add(1)
		outs[p] = &outbound{dst: p, seg: seg, w: Writer{R: r}}
		reach[p] = true
	}
	l.outs.Store(&outs)
	return reach, why
}

// open maps the segment of another rank after checking that it is the one
// that rank made: a regular file (not through a symbolic link) of this
// user, mode 0600, with one link, whose header names rank of size, carries
// the tag of authKey and the nonce the rank announced, and whose owner is
// in this pid namespace.
func open(path string, authKey, nonce []byte, rank, size int) (*segment, error) {
	mem, err := mapOwn(path, func(n int64) string {
		if n < int64(headerLen(size)) {
			return fmt.Sprintf("%d bytes, shorter than its header", n)
		}
		return ""
	})
	if err != nil {
		return nil, err
	}
	refuse := func(format string, args ...any) (*segment, error) {
		return nil, fmt.Errorf("refused %s: "+format, append([]any{path}, args...)...)
	}
	s := newSegment(mem)
	bad := func(format string, args ...any) (*segment, error) {
		syscall.Munmap(mem)
		return refuse(format, args...)
	}
	switch {
	case string(mem[:8]) != magic:
		return bad("not a decorun segment of this version")
	case int(s.u64(hdrRank)) != rank || int(s.u64(hdrSize)) != size:
		return bad("it is rank %d of %d, want rank %d of %d", s.u64(hdrRank), s.u64(hdrSize), rank, size)
	case !hmac.Equal(mem[hdrTag:hdrTag+sha256.Size], tag(authKey, rank, size, mem[hdrNonce:hdrNonce+nonceLen])):
		return bad("its header was not made with this job's key")
	case subtle.ConstantTimeCompare(mem[hdrNonce:hdrNonce+nonceLen], nonce) != 1:
		return bad("it is not the segment rank %d announced (another nonce)", rank)
	case s.u64(hdrPidNS) != pidNS():
		return bad("its owner is in another pid namespace")
	}
	return s, nil
}

func (s *segment) unmap() { syscall.Munmap(s.mem) }

// mapOwn maps the file at path, opened without following a symbolic link,
// once it is a regular file of this user, mode 0600, with one link, of a
// size that badSize accepts (it returns what is wrong, or ""): the checks
// that keep a rank from mapping a file another user made. Its errors name
// the file and what is wrong with it.
func mapOwn(path string, badSize func(int64) string) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err == syscall.ELOOP {
		return nil, fmt.Errorf("%s is a symbolic link, not a file of decorun's", path)
	}
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, err
	}
	why := ""
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		why = fmt.Sprintf("not a regular file (mode %07o)", st.Mode)
	case int(st.Uid) != os.Geteuid():
		why = fmt.Sprintf("owned by uid %d, not by this user (uid %d)", st.Uid, os.Geteuid())
	case st.Mode&0o7777 != 0o600:
		why = fmt.Sprintf("mode %04o, not 0600", st.Mode&0o7777)
	case st.Nlink != 1:
		why = fmt.Sprintf("%d links, not 1", st.Nlink)
	default:
		why = badSize(st.Size)
	}
	if why != "" {
		return nil, fmt.Errorf("refused %s: %s", path, why)
	}
	return syscall.Mmap(fd, 0, int(st.Size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
}
