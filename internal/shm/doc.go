// Package shm carries comm's frames between rank processes on one host
// through shared memory: the fast path that decorun --transport=auto|shm
// puts under comm for same-host peers (internal/transport.Mux sends every
// other peer's frames over NATS).
//
// # Design
//
// Each rank creates one segment, a file in /dev/shm mapped with
// syscall.Mmap (MAP_SHARED; pure Go, no cgo), named
//
//	/dev/shm/decorun-<job id>-<hash>-<rank>
//
// where hash is HMAC-SHA256(name key, rank), cut to 64 bits: every rank of
// the job computes every name, nobody else can (comm derives the name key
// from the job's secret key, DECORUN_JOB_KEY, which only the job's ranks
// hold), and the names of one job share nothing but the job id, so a name
// seen in /dev/shm gives away no other. The segment belongs to its
// receiver: a header page (owner pid, pid namespace, a random nonce, an
// authentication tag, a doorbell word) followed by one inbound ring per
// peer that may write to it. A ring is a single-producer single-consumer byte
// stream: the producer (the peer) copies bytes in and publishes a 64-bit
// head with an atomic store, the consumer (the owner) copies bytes out and
// publishes the tail; head and tail sit on separate cache lines and only
// ever grow, so full and empty are head-tail == size and head == tail.
// Frames travel unchanged as a 4-byte length and the frame bytes, and a
// frame may be larger than the ring: it streams through it across
// wraparound in as many pieces as needed. A producer that finds the ring
// empty, and is at least 4 KiB and 16 times the next frame's size into it,
// writes a skip mark (length 0xFFFFFFFF) and starts the frame at index 0,
// so that a ring the consumer keeps empty reuses its first, mapped and
// cached pages (the first access to a page of the mapping costs 8-23 µs
// on the VM this was measured on); the skipped bytes are free once the
// consumer reads the mark, and 16 frames' room stays free meanwhile. A
// frame of up to 56 bytes (comm's header and 8 bytes of payload) written
// into an empty ring goes express: into the rest of the head's cache line,
// with a flag bit in head, so that the consumer, which polls head, finds
// it in the line it polls; one cache line then moves between the cores
// per message, not two in turn (head, then the frame's line). Before the
// producer publishes more while the consumer has not read it, it copies
// the frame into its place in the data. To know that the ring is empty
// the producer needs the consumer's tail, whose line the consumer has
// just written: a load of it on the way out of every send cost a miss.
// So the producer's process reads the tails of its outbound rings while
// it polls for something else (waiting for the reply, in a ping-pong),
// and a send loads the shared tail only when what was seen does not
// show the room it needs. An 8-byte one-way message took 0.58-0.63 µs
// where it took 0.77-0.80 with a load per send, and 1.25 before express
// frames (decorun bench latency, 2026-12-07 and -08, ranks bound to the
// VM's two cores). comm's credit windows,
// rendezvous, sequence numbers and ordering rules sit above and are
// untouched; a ring delivers one pair's frames in order, which is all comm
// asks of a Link.
//
// Wire-up: a rank creates its segment (O_CREAT|O_EXCL, mode 0600 whatever
// the umask, a fresh 128-bit nonce and HMAC-SHA256(auth key, rank, size,
// nonce) in the header) before comm's start-up barrier, announces the
// nonce at the barrier (Link.Nonce; comm sends it over the job's
// authenticated NATS connection, and each rank learns the nonces of its
// host's ranks from rank 0's answer, with no round trip of its own), and
// opens its peers' segments after it (Connect), so every segment exists by
// then. A peer is reached through shared memory only if it announced a
// nonce and its segment, opened with O_NOFOLLOW, is a regular file owned
// by this process's effective user, mode 0600, with one link, whose header
// names that rank, carries the tag of the job's auth key and the announced
// nonce, and whose owner is in the same pid namespace; otherwise the peer
// is reached through NATS, and Connect says why (a refused file is named
// with what is wrong with it). So another user cannot have a rank map a
// file of theirs: they cannot make a file this user owns, and cannot tell
// a name. A rank whose name is taken (Open fails, saying whose file holds
// the name) announces that it has no segment, so that no peer maps the
// file that holds its name and every pair with it takes one path, NATS,
// both ways. Once every expected peer has mapped a segment its owner
// unlinks the file (the mappings stay valid), so a running job normally
// leaves no name in /dev/shm at all. If a rank dies before that, the
// launcher (and decorun's agent on each other host) removes this user's
// /dev/shm/decorun-<job id>-* files when the job ends, and every
// rank that creates a segment first removes the segments of decorun
// processes that no longer exist (this user's, owner pid gone, same pid
// namespace), so even a SIGKILLed launcher leaves nothing behind for long.
//
// One goroutine per Link (the pump) reads every inbound ring and hands each
// whole frame to comm's engine: a frame that lies whole and contiguous in
// its ring is lent (Config.OnView: a view into the ring, whose room is
// freed when the callback returns; the engine copies what it keeps), and
// so is one that lies whole in the ring but wraps around its end, copied
// into the pump's scratch buffer first (reused, as large as the largest
// such frame); any other (one larger than what the ring had) comes in a
// fresh slice the callee owns, to the same onFrame callback
// the NATS link uses (so frames of different peers may be delivered
// concurrently with NATS's; comm's engine serialises them). The
// pump also finishes writes that did not fit: Send never blocks (comm calls
// it with its engine lock held, and two ranks blocked on each other's full
// rings while holding their locks would deadlock). Send copies the frame
// into the ring when there is room and nothing is queued before it, and
// otherwise queues a copy for the pump. The queue (one buffer per peer,
// reused, so streaming through it makes no garbage) is bounded by comm's
// credit window, the same bound that keeps the NATS server's buffers
// finite.
//
// Waiting: the pump polls its rings, spins for a short while (Config.Spin;
// between polls runtime.Gosched, so goroutines of its own process run, and
// after the first 10 µs also sched_yield, so other processes run: ranks
// that outnumber the cores still make progress, while a partner that
// answers within 10 µs does not find the pump waiting for the CPU behind
// another job; with Config.Crowded, when the host has more ranks than
// cores, sched_yield from the first round; the clock is read every 8th
// round), then sleeps on the segment's doorbell, a Linux futex
// word in the shared mapping (FUTEX_WAIT without FUTEX_PRIVATE_FLAG works
// across processes).
// A producer that publishes data rings the receiver's doorbell only when
// the receiver said it sleeps; a consumer that makes room rings the
// producer's doorbell only when the producer said it waits for room. Both
// flags are set before a last check (sequentially consistent atomics), so a
// wake-up is never lost. Close rings the pump's own doorbell. While frames
// wait for room in a peer's ring the pump sleeps at most 50 ms at a time,
// to notice that the peer died; otherwise at most 2 s (a sleep in a
// system call that lasts longer than 10 ms makes the Go runtime's monitor
// poll from 20 µs upwards afterwards, so short idle sleeps would cost
// CPU-bound ranks about 1,200 wake-ups a second each; measured on
// examples/fib as 10% of its speed on 2 cores). Send rings the pump's own
// doorbell when it queues the first frame for a peer, so the shorter bound
// takes effect at once.
//
// Driving: a caller about to block until a frame arrives (comm's blocking
// receives and sends, when the host has a core per rank) may poll the
// rings itself with Link.Drive instead of waiting for the pump to deliver
// and wake it. Whoever polls holds the Link's polling token (a mutex
// taken with TryLock only, and let go of before a Drive wakes the pump),
// so the readers, the scratch buffer and the callbacks still have one
// user at a time. While a caller drives, and for 200 µs after its wait
// ended (it is likely to wait again at once: a ping-pong, a collective's
// next step), the pump stands aside: it sleeps on its doorbell without
// setting its sleep flag, so producers do not ring for it, and a waiting
// rank has one spinning thread where the pump's and the waiter's would be
// two. A Drive ends when the caller's condition holds or when it has
// moved no frame for its time limit (comm: 50 µs, as the pump's
// Config.Spin); when the last driver ends without its condition (the
// caller goes to sleep), it rings the pump's doorbell so that the pump
// takes over at once. The pump, standing aside, still polls whenever it
// wakes (a doorbell rung means work) and sleeps only what is left of the
// 200 µs, so a frame that arrives after the last drive ended waits at most
// about 200 µs. Close waits for drivers to leave (each checks closed at
// every poll) before it unmaps.
//
// # Guarantees
//
//   - Frames to one destination arrive in the order sent, whole, exactly
//     once, or the link reports a fatal error (a corrupt length in a ring).
//   - Send never blocks; Flush returns once every queued frame is in its
//     ring (or its receiver is dead or closed); Close marks the segment
//     closed, stops the pump, unmaps and unlinks (unless Connect was
//     called and a peer has not mapped the segment yet: the name then
//     stays for it until the launcher removes the job's segments), and returns once the pump has
//     exited.
//   - A dead peer never hangs anything: a frame half written by a peer that
//     died stays half read without blocking other rings; frames for a peer
//     whose link is closed, and frames queued for a peer whose process is
//     gone (checked at each 50 ms timeout while frames wait), are dropped (comm learns of the
//     death from decorun and of a Close from its Fin frame; with NATS,
//     frames for a dead rank are dropped too).
//   - Memory is bounded: each segment is fallocated at creation (so a full
//     /dev/shm is an error at start-up, never a SIGBUS later), with rings of
//     Config.RingSize bytes.
//   - A segment is read and written only by the processes of its job's
//     user (mode 0600), and a rank writes only into segments that its
//     peers made for this job (owner, mode, links, tag and nonce checked
//     as above). Another user who takes a rank's name first (possible
//     only if they know the name: with a job key, they cannot) costs that
//     rank shared memory (comm: NATS instead, or with shm a start-up
//     error naming the rank and the path), never a message. Root, and the
//     job's own user, can read any segment: the guarantee is against
//     other users.
//
// # Cost
//
// A frame is copied twice: into the ring (SendV takes the frame's head and
// payload apart, so comm does not join them first; from 4 KiB on with
// non-temporal stores, Publish, which claim the lines the reader's core
// last read without fetching them back: 1.3 µs instead of 9-10 µs for
// 64 KiB here; region posts are written the same way), and out of it, by comm,
// into the receive buffer when a receive is posted, or, for an unexpected
// message, into a buffer of comm's pool that is reused once a receive took
// it (in fresh buffers, the page faults, zeroing and collections cost five
// times the copy); a frame that wraps around the ring's end costs one copy
// more (into the pump's scratch buffer). A small frame costs
// two atomic stores, two loads and, only when the receiver sleeps, a
// futex_wake system call. Each rank commits (number of shm peers) × RingSize bytes of
// /dev/shm for the job's lifetime plus one header page; comm sets RingSize
// so that this stays near 16 MiB per rank. Each rank's pump spins (and
// yields) for up to Config.Spin, 50 µs in comm, after the last frame:
// that CPU time buys latency (a frame found while spinning costs no system
// call on either side; one that finds the receiver asleep costs a
// futex_wake and a wake-up, tens of µs). A driving caller spins instead of
// the pump, for up to 50 µs after the last frame moved; the pump, standing
// aside, wakes every 200 µs to look (about 5,000 wake-ups a second while
// callers keep driving, none while the rank computes).
//
// # Collectives regions
//
// Region (region_linux.go, region_step_linux.go) is the other use of
// shared memory: a communicator's region for package collectives, one
// file per rank (decorun-<job id>-<hash>-<rank>, the hash an HMAC of the
// communicator's id and the rank, so the launcher's clean-up and
// SweepStale treat it like a segment). A file holds a header (magic
// "DCRSHM0T", owner pid and pid namespace at a segment's offsets, the
// communicator, the rank, the slot size, a nonce and HMAC-SHA256(auth key,
// those fields)), two post lines (a step number, a payload length, 5 header
// words, 176 bytes of inline payload, two stream words and a mark: a small
// post's step, header and payload lie in one cache line, which a reader
// fetches once), an
// acknowledgement word, a futex bell with its
// sleep flag, a state word (closed, failed) and two data slots. Members
// post step s in line and slot s mod 2, after every other member has
// acknowledged step s−2 (so a slot is never overwritten while read), with
// the step number stored last; a reader waits until the line holds s,
// reads, and acknowledges. A post of more than 16 KiB is streamed: the
// header and length first, published by storing s in the line's stream
// word, then the payload in pieces (16 KiB or a sixteenth of it, with
// Publish, which fences its stores), each followed by a store of the
// bytes written so far; the step last, as always. A reader that reads in
// order (WaitHeads, then Avail or WaitAvail before each piece) works on
// the first piece while the writer copies the next. Attach checks each other member's file as Open
// checks a segment (regular file of this user, mode 0600, one link,
// expected size, header fields and tag). Waiting polls, then yields, then
// sleeps on the member's own bell (see package collectives, Shared
// memory): the same strategy, one type (backoff), as a caller driving a
// link's rings, with each wait's clock paced to the cost of its poll;
// Close marks the member closed and rings every bell, so no wait
// outlives a member that left, and Unmap follows once no call uses the
// region.
//
// The package is Linux-only (futex, /dev/shm); elsewhere Open returns
// ErrUnsupported and comm uses NATS.
package shm
