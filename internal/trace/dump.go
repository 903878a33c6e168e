package trace

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// Environment variables that turn recording on in a rank.
const (
	// EnvTrace: "launcher" (set by decorun --trace or --report): ship the
	// buffer to the launcher; any other non-empty value is a path: each
	// rank writes its dump to PATH.rank<N> (join mode).
	EnvTrace = "DECORUN_TRACE"
	// EnvSites: "1" records call sites (decorun --report).
	EnvSites = "DECORUN_TRACE_SITES"
	// EnvEvents: the buffer's size in events (default DefaultEvents).
	EnvEvents = "DECORUN_TRACE_EVENTS"
	// ToLauncher is EnvTrace's value under decorun.
	ToLauncher = "launcher"
)

// Config is what the environment asks of a rank.
type Config struct {
	Dest   string // ToLauncher or a path prefix; "": off
	Sites  bool
	Events int
}

// FromEnv reads Config from the environment; an unusable
// DECORUN_TRACE_EVENTS is an error naming it.
func FromEnv() (Config, error) {
	c := Config{Dest: os.Getenv(EnvTrace), Sites: os.Getenv(EnvSites) == "1"}
	if s := os.Getenv(EnvEvents); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1<<26 {
			return c, fmt.Errorf("trace: %s=%q: want a number of events from 1 to %d", EnvEvents, s, 1<<26)
		}
		c.Events = n
	}
	return c, nil
}

// Dump is one rank's recording, as shipped to the launcher.
type Dump struct {
	Rank, Size int
	Host       string
	PID        int
	Epoch      int64 // wall-clock time of the rank's Start, Unix ns
	Offset     int64 // launcher clock - rank clock, ns
	RTT        int64 // round trip Offset was measured with, ns; 0: not measured
	Dropped    int64 // events lost for want of room
	Reason     string
	Events     []Event
	Sites      []string
}

// Take makes the Dump of this process now.
func Take(rank, size int, host string, offset, rtt int64, reason string) *Dump {
	evs, sites, dropped := Snapshot()
	return &Dump{Rank: rank, Size: size, Host: host, PID: os.Getpid(), Epoch: Epoch().UnixNano(),
		Offset: offset, RTT: rtt, Dropped: dropped, Reason: reason, Events: evs, Sites: sites}
}

// Encode returns d's wire form.
func (d *Dump) Encode() ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(d); err != nil {
		return nil, fmt.Errorf("trace: encoding rank %d's dump: %w", d.Rank, err)
	}
	return b.Bytes(), nil
}

// DecodeDump parses a dump.
func DecodeDump(b []byte) (*Dump, error) {
	var d Dump
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&d); err != nil {
		return nil, fmt.Errorf("trace: bad dump: %w", err)
	}
	return &d, nil
}

// Chunking: a dump travels in requests of at most a server's max payload,
// each prefixed with rank, index and a last flag.
const chunkHeader = 12

// Chunks splits an encoded dump of rank into payloads of at most max bytes.
func Chunks(rank int, enc []byte, max int) [][]byte {
	room := max - chunkHeader
	if room < 1 {
		room = 1
	}
	var out [][]byte
	for i := 0; len(out) == 0 || len(enc) > 0; i++ {
		n := min(room, len(enc))
		c := make([]byte, chunkHeader+n)
		binary.LittleEndian.PutUint32(c[0:], uint32(rank))
		binary.LittleEndian.PutUint32(c[4:], uint32(i))
		if n == len(enc) {
			c[8] = 1
		}
		copy(c[chunkHeader:], enc[:n])
		enc = enc[n:]
		out = append(out, c)
	}
	return out
}

// Collector gathers chunked dumps; the launcher's trace subscription feeds
// it. Safe for concurrent use.
type Collector struct {
	mu    sync.Mutex // guards the maps
	parts map[int][]byte
	next  map[int]int
	done  map[int][]byte
	size  int
}

// NewCollector expects dumps from ranks 0..size-1.
func NewCollector(size int) *Collector {
	return &Collector{parts: map[int][]byte{}, next: map[int]int{},
		done: map[int][]byte{}, size: size}
}

// Add stores one chunk; an error says what is wrong with it.
func (c *Collector) Add(chunk []byte) error {
	if len(chunk) < chunkHeader {
		return errors.New("trace: short chunk")
	}
	rank := int(binary.LittleEndian.Uint32(chunk[0:]))
	idx := int(binary.LittleEndian.Uint32(chunk[4:]))
	last := chunk[8] == 1
	if rank >= c.size {
		return fmt.Errorf("trace: chunk from rank %d of a job of %d", rank, c.size)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.done[rank]; ok {
		return nil // a second flush: the first one stands
	}
	if idx != c.next[rank] {
		return fmt.Errorf("trace: rank %d: chunk %d, want %d", rank, idx, c.next[rank])
	}
	c.next[rank]++
	c.parts[rank] = append(c.parts[rank], chunk[chunkHeader:]...)
	if last {
		c.done[rank] = c.parts[rank]
		delete(c.parts, rank)
	}
	return nil
}

// Dumps decodes the complete dumps, in rank order, and lists the ranks
// whose dump is missing or incomplete.
func (c *Collector) Dumps() (ds []*Dump, missing []int, errs []error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for r := range c.size {
		b, ok := c.done[r]
		if !ok {
			missing = append(missing, r)
			continue
		}
		d, err := DecodeDump(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("rank %d: %w", r, err))
			missing = append(missing, r)
			continue
		}
		ds = append(ds, d)
	}
	return ds, missing, errs
}

// ClockReply is the launcher's answer to a clock request: its wall clock.
func ClockReply() []byte {
	return binary.LittleEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
}

// Offset turns a clock round trip into an offset: t1 and t2 are the
// rank's wall clock before and after, reply the launcher's answer.
func Offset(t1, t2 int64, reply []byte) (offset, rtt int64, ok bool) {
	if len(reply) != 8 {
		return 0, 0, false
	}
	l := int64(binary.LittleEndian.Uint64(reply))
	return l - (t1+t2)/2, t2 - t1, true
}
