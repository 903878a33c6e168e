// Package tcp carries comm's frames between rank processes over direct TCP
// connections: the data path that decorun --transport=auto puts under comm
// for peers on other hosts, and --transport=tcp for every peer
// (internal/transport.Mux sends the other peers' frames over shared memory
// or NATS). NATS stays the control plane: it carries the addresses that
// ranks dial, start-up, Close, aborts and heartbeats.
//
// # Design
//
// Each rank listens on one TCP port (Config.Host, a free port) and
// publishes a Peer record, its address and, with TLS, the fingerprint of its
// certificate, through the job's NATS connection (comm does the publishing,
// after the start-up barrier, on a subject every rank subscribed to before
// it). A rank that sends to a peer over TCP dials that peer's address:
// connections are one-way, from the sender (the dialer) to the receiver
// (the acceptor), so that each rank decides on its own how it reaches each
// peer and no two ranks ever race to open the same connection. Two ranks
// that talk both ways hold two connections.
//
// Authentication is a challenge-response over HMAC-SHA256 with a key every
// rank of the job derives from the job's secret key (Config.Key; comm
// derives it from DECORUN_JOB_KEY, random per job and handed to the ranks
// only, never sent over NATS, and not from the NATS token, job id or
// subject prefix, which others on a shared NATS account may know; neither
// key nor job key ever crosses the connection):
//
//	dialer -> acceptor   "DECOTCP1", src rank, dst rank, 32-byte nonce Nd
//	acceptor -> dialer   32-byte nonce Na, HMAC(K, "acceptor" | hello | Na | B)
//	dialer -> acceptor   HMAC(K, "dialer" | hello | Na | B)
//	acceptor -> dialer   1 (accepted)
//
// where B is, with TLS, 32 bytes of the TLS session's exported keying
// material (RFC 5705/8446; empty without TLS), binding both proofs to this
// very session. Each side checks the other's proof (constant time) before
// it trusts the connection; the acceptor delivers nothing before the
// dialer's proof checks out, and accepts one connection per source rank.
// The two proofs differ by their label, so neither side can be used as an
// oracle for the other's.
//
// Encryption (Config.TLS; comm turns it on when the job's NATS connection
// uses TLS, as every multi-host decorun job does): each rank makes an
// ephemeral self-signed ECDSA P-256 certificate in memory at start-up and
// publishes its SHA-256 fingerprint with its address, through the NATS
// connection that is itself TLS-protected with the job's pinned server
// certificate. The dialer accepts only a server certificate with that
// fingerprint (TLS 1.3, no session tickets), and the HMAC exchange runs
// inside that TLS session. Without TLS (single-host jobs, loopback) the
// handshake still authenticates both ends, but the stream itself is
// neither encrypted nor integrity-protected, like the job's NATS traffic
// then.
//
// Opting out (Config.Plain; comm sets it from DECORUN_TCP_ENCRYPT=false,
// decorun --tcp-encrypt=false): on a trusted cluster network, where MPI
// implementations never encrypt, a job may send its frames unsealed. The
// handshake is the same as with encryption, TLS included: the dialer
// still accepts only the certificate the acceptor published over the
// job's TLS-protected NATS connection, and both proofs are still bound to
// that TLS session; only the frames after the ack skip AES-GCM and take
// the plain path (inline writev from the caller's buffers, placement into
// posted receives). Keeping TLS costs one TLS 1.3 handshake per
// connection at start-up (an ECDSA signature and its check, about a
// millisecond) and nothing per frame, and it keeps what the handshake
// establishes as strong as with encryption: a connection is made only
// with the listener the peer published, only between processes that know
// the job key, and the proofs, the ranks and the nonces never cross the
// network in clear text. What it cannot keep is everything after the
// handshake: an attacker on the path between two hosts (one who sees and
// can rewrite the packets) can read every frame, and can alter, inject,
// drop or replay frames by taking over the TCP stream; comm then
// delivers whatever arrives, as Open MPI's TCP transport would. An
// attacker off the path is held off by TCP itself (sequence numbers), as
// for any TCP connection. The setting cannot be downgraded from the
// network: each rank takes it from its own environment, publishes it with
// its address (Peer.Plain, over the TLS-protected NATS connection), and
// the dialer's setting travels in its hello, which both proofs cover. A
// dialer refuses a peer whose record says the other (ErrMismatch, naming
// the peer's rank and what each side does), an acceptor a dialer whose
// hello does, and comm fails the job on ErrMismatch whatever the
// transport (never a fall-back to NATS), so a job whose ranks disagree
// stops at start-up with an error naming the rank.
//
// TLS carries the handshake only. Once both proofs have checked out, each
// end takes a 32-byte secret from the session's exported keying material
// (RFC 5705/8446, its own label and the context "dialer to acceptor"), and
// the frames travel on the raw socket, each sealed on its own with
// AES-128-GCM:
//
//	4-byte length n | n bytes of ciphertext | 16-byte tag
//
// with the length as additional data and, as nonce, the number of frames
// sealed on the connection so far (a 64-bit counter both ends keep; it is
// never sent). The key is HMAC-SHA256(secret, "decorun-tcp key") cut to
// 16 bytes; after every 16 GiB both ends replace the secret with
// HMAC-SHA256(secret, "decorun-tcp next") at the same frame, so no key
// seals more than 2^30 AES blocks. The handshake leaves nothing buffered
// in the TLS session: the acceptor writes nothing after its ack and the
// dialer nothing between its proof and the ack, so the first byte after
// the ack is the first sealed frame. This way a TLS link takes the same
// paths as a plain one (the caller writes the sealed frame inline, a
// polling caller reads and opens it), at the cost of AES-GCM and one copy
// on each side, where crypto/tls's records need a goroutine to read them.
//
// What an attacker on the network can and cannot do to a sealed link
// (TLS, not Plain):
//
//   - Read frames: no. The key comes from a TLS 1.3 session with the
//     acceptor whose certificate the dialer pinned by the fingerprint the
//     acceptor published over the job's TLS-protected NATS connection; an
//     attacker who relays the handshake learns neither the session's
//     secrets nor the exported key. Lengths and timing are visible, as
//     with TLS.
//   - Alter, inject or forge a frame: no. A changed byte anywhere (length,
//     ciphertext, tag) or a frame made up fails AES-GCM's tag check.
//   - Replay, reorder or drop frames: no. The nonce is the frame's
//     position in the stream, so a frame opened anywhere but where it was
//     sealed fails, and so does every frame after a dropped one. Frames
//     of another connection (another session, another key) never open.
//   - Any such frame ends the link: the receiver delivers nothing from it
//     or after it, closes the connection, and reports at once, not after
//     Config.Grace, an error wrapping ErrForged that names its rank and the
//     sending rank; comm fails the job with it.
//   - Cut the stream (a reset, or a close in the middle of a frame): the
//     receiver never delivers a partial frame, and reports the broken
//     connection, naming the peer, like any other (a PeerError after
//     Config.Grace); comm fails unless the peer had closed its
//     communicator, which it announces with a sealed Fin frame first. An
//     attacker who can end TCP connections can end the job, as with TLS,
//     but cannot make it lose a message silently.
//   - Use either end as an oracle: connections are one-way, and the
//     acceptor never writes after the handshake.
//
// None of this holds for the frames of a job that opted out (Config.Plain,
// above): only its handshake is protected.
//
// Framing: a frame travels as a 4-byte little-endian length and its bytes.
// Send never blocks (comm calls it with its engine lock held, and two ranks
// blocked on each other's full sockets while holding their locks would
// deadlock, since the receiving goroutine needs the lock to deliver). When
// nothing is queued for the destination and its writer is idle, Send
// writes the frame itself, with one non-blocking writev of the length,
// comm's header and the payload straight from the caller's buffers: no
// copy, no goroutine woken. What the socket does not take (all of it when
// the socket is full or frames are already queued) goes to the
// destination's queue, and one writer goroutine per outgoing connection
// hands the queue to the kernel, up to 64 pieces per writev, with writevs
// that do not wait (between them it waits for the socket to have room,
// without holding the queue's lock) while Send fills the queue behind it.
// A caller that drives the link (Poll, below) writes queued frames too:
// it asks the kernel which outgoing sockets with queued frames have room
// (one ppoll, which takes no socket's lock) and writes to those itself,
// one writev that does not wait, under the queue's lock and never while
// the writer goroutine writes; so a sender that waits for its sends to
// complete refills a full socket as soon as the kernel makes room, where
// the writer goroutine would have to be woken (and, with two Ps sharing
// the rank's core, wait for the caller to yield).
// A small frame that follows the last one Send wrote itself within 5 µs
// is queued too, so that a stream of small messages costs a writev per
// batch rather than per frame. Queued frames of up to 16 KiB are packed
// into 64 KiB batches, larger ones get a buffer each; both kinds come
// from pools and go back once written, so streaming makes no garbage. The
// queue is bounded by comm's credit window, the bound that keeps NATS's
// and shared memory's buffers finite.
//
// Lending: Send copies what the socket does not take, because its caller
// may reuse the buffer as soon as it returns. SendLent does not: the
// frame's body waits in the queue as the caller's memory, and SendLent
// reports that it kept it; the link calls the caller's done once the
// kernel has taken the body's last byte (or the connection broke and the
// frame was dropped). comm lends the payload of every Data frame of a long
// eager or rendezvous message to a plain TCP peer, and completes the send
// only on done (MPI lets a standard-mode send block until its buffer is
// reusable); that needs only the receiving rank's reader goroutine, which
// reads whatever arrives, never a matching receive. Keep takes the lent
// bodies back: it copies what is not written yet of each into the link's
// own buffers (waiting at most for the one writev in flight, which does
// not wait), so a send that is cancelled or fails returns its caller's
// buffer at once and its frames still go out whole, in order. A TLS link
// never lends: it seals each frame into a buffer of its own anyway.
//
// Receiving: each incoming connection has a reader goroutine and a
// token. Whoever holds the token reads the socket (into a 64 KiB buffer,
// several small frames per system call; a frame over 16 KiB straight into
// a slice of its own once its length is known; shortly after a frame over
// 16 KiB, while fewer than two small frames have followed it, a read into
// the buffer takes at most 1 KiB, or the rest of the small frame it holds
// the start of, so that the next large frame's length is found with few
// of its bytes and the rest goes straight where it belongs: in a stream
// of long messages, a head frame and Data frames, the read buffer sees
// only the heads; the read that ends a large frame takes up to 1 KiB
// after it into the read buffer in the same readv) and hands each whole frame
// to onFrame (the same callback the other links use; comm's engine
// serialises them), so frames are delivered in order whoever reads them.
// The reader goroutine waits for the socket to become readable without
// holding the token. Poll lets any goroutine take the token of each idle
// connection and read what has arrived, without waiting, and Drive calls
// it in a loop: comm's blocked receives, sends and waits drive the link
// for up to 50 µs after the last frame moved, when the host has a core
// per rank, so the frame a caller waits for is read and delivered by that
// caller, with no goroutine woken on the way. A driving caller claims the
// link (Claim): the reader goroutines, woken by Go's network poller when
// data arrives, leave the sockets to it and wait; they go back to their
// sockets at once when the caller gives up and sleeps or may have left
// bytes in a socket, and otherwise 50 µs after a caller got what it
// waited for, unless another claim comes first (as it does in a run of
// blocking calls): a frame that arrives while nobody waits for anything
// may wait that long (or up to a millisecond, the resolution of the
// runtime's timers when the process is idle). Drive
// lets the process's other goroutines run every 64 rounds and never
// yields the core to other processes. Poll peeks at the socket
// (MSG_PEEK) rather than reading it, and stops after a peek that found
// bytes (unless they end in a large frame, which it reads on): their
// frames delivered, the bytes stay in the socket until the connection's
// next read drops them (MSG_TRUNC, no copy) before it reads on (shortly
// after a large frame it reads instead: see the 1 KiB reads above; a peek
// there would cost a drop and a read more per message). The kernel sends
// the acknowledgement it owes for them when
// they leave the socket, so it goes while the caller acts on the frame
// rather than inside the read that brings it (see "Where the time goes");
// the socket holds at most one read buffer's worth of such bytes, which
// the frames' receiver already has. Sealed frames (TLS) take the same
// paths: Send seals into a queue buffer and writes it inline, Poll opens
// each frame as it parses it. comm gives back
// the large frames it has copied out (eager messages received into a
// buffer, rendezvous and long-message chunks: Recycle, through
// transport.Mux), and later large frames are read into them: a stream of
// large messages allocates and zeroes no memory on the receiving side.
//
// Placing: on a plain connection, a frame of more than PlaceMin (16 KiB)
// bytes is offered, as soon as its first bytes are read, to the link's
// Placer (SetPlacer; comm is one). comm takes the Data frames of a receive
// it has already matched (rendezvous, and the rest of a long message) and
// names the slice of the receive's buffer they go to; the link copies
// what it had read of the frame there and reads the rest of the frame from
// the socket straight into it, then hands comm the frame's head (Placed),
// in the frame's place in the stream. comm sends eager messages of more
// than PlaceMin bytes to a TCP peer as long messages whose head frame
// carries no payload (the head and the first Data frame go in one
// writev, SendPair: one segment, as one frame would), so that when the
// receive was posted before the message came (as it is in a ping-pong,
// or a window of posted receives), the payload crosses from the kernel
// into the caller's buffer with no copy on the way: the receiving side
// pays TCP's one copy out of the kernel, as Open MPI does. A receive that completes while its frame is
// being placed (an error, a caller that gave up) cancels the placement
// first: the link stops writing into the buffer at once (waiting at most
// for a read that does not wait) and reads the rest of the frame into its
// own buffer, so no byte lands in memory its owner has got back.
//
// # Where the time goes
//
// Go sets TCP_NODELAY on every connection, so Nagle never delays a frame.
// Measured with pprof on both ranks of `decorun bench latency` and `bw
// --transport=tcp` (two ranks on a 2-core VM, loopback), and with small
// two-process Go programs:
//
//   - Goroutine hand-offs. A small message costs, one way, a writev on
//     the sender and a read on the receiver, which is all a spinning C or
//     Go ping-pong pays (7.2 µs one way). Each goroutine woken per frame
//     adds about 5 µs: handing each frame to a writer goroutine, to a
//     reader goroutine woken by the network poller, and from it to the
//     waiting caller through a channel cost 43-69 µs one way (futex and
//     epoll_wait took a quarter to a third of each rank's time). Hence
//     the inline writes, the polling callers and the claims above.
//   - System calls per frame: one writev to send (queued frames: one per
//     batch), one peek to receive while the caller polls and one more
//     call to drop what it peeked at (at the caller's next wait, off the
//     critical path; one per batch of small frames), plus the peeks that
//     find nothing while it waits (non-blocking, about 0.5 µs each).
//   - Copies: a frame sent inline is not copied before the kernel; a
//     queued one is copied once into the queue, unless its body was lent
//     (SendLent: comm's Data frames of more than 16 KiB on a plain
//     link), which is written from the caller's buffer. A received frame of up
//     to 16 KiB is copied once out of the read buffer. A larger one is
//     read straight into the receive's buffer when comm has matched its
//     receive (Placing, above): then only TCP's two copies remain (into
//     the kernel and out of it), as with Open MPI, which reads each
//     fragment into the user's buffer. Otherwise (a message that arrives
//     before its receive is posted, a sealed link) it is read into a slice of
//     its own and comm copies the payload into the caller's buffer once
//     the receive comes.
//   - Allocations: none per frame once comm gives frames back (reading a
//     fresh 1 MiB slice per eager message, zeroing it and collecting it
//     took 27% of the receiver's time). comm gives back what it copied
//     out (RecvInto); a small frame whose payload comm hands to the
//     caller (Recv) is the caller's, and the next one a fresh slice. A
//     fresh slice is, until the heap reaches the collector's goal, memory
//     the process never touched: a page fault and the kernel zeroing a
//     page every few small frames. That made the first few thousand
//     messages of a 1 KiB ping-pong slow (14.1-14.9 µs a round trip with
//     GOGC=off, where every frame is fresh, 8.7 in reused memory); small
//     frames given back are now read into again (Recycle), from
//     power-of-two classes of buffers made with room for the header comm
//     cuts off before it gives a payload back.
//   - Acknowledgements of small frames. Connections are one-way, so the
//     receiver's ACKs ride on no data, and Linux decides when to send
//     them from what arrives. A data segment is acknowledged at once
//     when more than the receiver's rcv_mss (536 bytes, the kernel's
//     initial estimate of the sender's segment size, raised by any
//     larger segment) has arrived unacknowledged; otherwise a segment
//     pushed by the sender (every write) is acknowledged by the read
//     that empties the socket, every second one once the socket has
//     sent data of its own (the handshake), as here. On loopback the
//     ACK is processed by the sender's socket within the system call
//     that sends it: acknowledged from the read, it kept the caller
//     3-4 µs longer on every other round trip of a ping-pong (8 B:
//     half the round trips at 8.0 µs one way, half at 11.6; perf's
//     callchains of net:net_dev_queue showed 5,983 ACKs sent from
//     tcp_recvmsg for 10,000 frames of 8 bytes, none for frames of
//     224 bytes, two of which exceed 536 bytes and are acknowledged on
//     arrival, in the sender's writev). Hence the step between 192 and
//     224 bytes (10.4-11.9 against 8.6-9.0 µs one way); and once a
//     larger message has raised rcv_mss, every size pays it (a two-rank
//     ping-pong program under `decorun -n 2 --transport tcp`, sizes of
//     8 B to 1 KiB taking turns: 13.7-14.0 µs median at each). Poll
//     therefore peeks and leaves the frames it delivers in the socket
//     until its next read: the ACK goes then, and a ping-pong of 8 B to
//     1 KiB takes 6.9-7.4 µs one way at every size, where it took
//     8.6-11.9 (two rounds each, back to back, `decorun bench latency
//     --transport tcp --sizes 8,192,224,1K`, 2026-12-07 23:49 UTC). The
//     ACK count is the same (nstat). The
//     reader goroutine, which delivers to a sleeping caller anyway,
//     reads as before; Poll drops a peek that found a large frame's
//     head at once and reads the frame on, as before.
//   - One connection per pair: the same raw Go ping-pong takes 5.95 µs one
//     way over one connection, where each reply carries the ACK of the
//     message it answers, and 8.2 µs over two one-way connections, as
//     here (sizes 8 B-1 KiB): one connection per pair of ranks would save
//     about 2 µs one way, at the cost of deciding who dials and of a
//     handshake and security argument for both directions.
//   - Read buffer: 64 KiB per connection, so a stream of small frames
//     takes one read per 64 KiB; write batches of 64 KiB likewise.
//   - A stream of 64 KiB messages (each a head frame and one Data frame,
//     into a window of posted receives): when every read into the read
//     buffer took up to 64 KiB, a polling receiver's peek copied most of
//     the next message's body into the read buffer, the placer copied it
//     on into the receive's buffer, and the next read dropped it from the
//     socket: peek and drop took 47% of the receiver's time, the copy
//     9% (`bench bw --transport tcp --sizes 64K --iters 400`, pprof).
//     Reading at most 1 KiB after a large frame, a message cost the
//     receiver two reads (1 KiB: the head frame and the Data frame's
//     first bytes; then the rest, straight into the receive's buffer)
//     and the sender one writev (strace). The read that ends a frame
//     now also takes up to 1 KiB after it (readv into the frame's rest
//     and the read buffer, as Open MPI reads a fragment and its
//     endpoint cache), so the next message's head comes with it: 83,000
//     reads and readvs for 28,160 messages where there were 102,000
//     reads (perf, 400 windows), and both ranks' profiles are the
//     kernel's copy. A 64 KiB message is two segments on loopback
//     (65,640 bytes with its two headers, above the MSS of 65,483);
//     Open MPI's fragments made 4.5 data segments per message (nstat).
//     A ppoll before each peek, so that a spinning caller would not take
//     the socket's lock while the sender's segments arrive (perf showed
//     3% in that lock's slow path), put a second system call on a
//     ping-pong's critical path (0.5-1.2 µs one way at 8 B-8 KiB) for no
//     gain that showed above the busy VM's noise; only pollOut uses it.
//   - Queued frames: at 1-4 MiB a window of messages fills the socket,
//     and what it does not take waits for the writer goroutine, which
//     the network poller wakes when there is room and which then needs
//     one of the rank's Ps while the sender spins in its wait. The
//     polling sender writes them itself (pollOut).
//   - Bandwidth: a plain Go stream between two processes on the test VM,
//     reading 1 MiB at a time and copying it out, reaches 4.4-4.6 GB/s.
//     Before large frames were placed, the receiver of a stream of 1 MiB
//     messages spent about a fifth of its time copying payloads out of
//     frames (comm's deliverLong) and the sender as much copying frames
//     into its queue. Placed, the receiver copies under 4% of its time
//     (what the read that found a frame's head took of it), and a stream
//     of 1-4 MiB messages into posted receives reaches 3.3-4.2 GB/s where
//     it reached 1.5-3.6 (Open MPI: 4.2-5.3 GB/s, same sitting). The
//     sender then copied the bytes the socket did not take at once into
//     its queue (22% of its time at 1 MiB); lent (SendLent), they are
//     written from the caller's buffer: the same `bw --sizes 1M --iters
//     100` took 1.23-1.29 s of the sender's CPU where it took 1.75-1.77
//     (memmove from 22% to 2% of it; writev, the kernel's copy, is 77%),
//     and the receiver's 1.73-1.86 s against 1.94-2.22. Neither rank
//     uses a whole core: they wait on each other (credit returns, frames
//     queued behind a full socket). A larger SO_SNDBUF (8 MiB, above the
//     4 MiB Linux's autotuning reaches) made no difference measurable on
//     the busy VM.
//   - Recycled frames: a frame given back as a tail loses a header's
//     length each time; one that has fallen short of the next frame is
//     dropped, not put back. A sync.Pool hands out what it got last, so a
//     short frame put back would be offered first every time and every
//     later large frame would be a fresh, zeroed allocation (page faults
//     and zeroing on the receiver): measured that way, 64 KiB messages
//     with TLS into a window of posted receives reached 276-513 MB/s,
//     and 690-974 with short frames dropped.
//   - ACK segments: connections are one-way, so the kernel's ACKs
//     never ride on data: a ping-pong costs one bare ACK segment per
//     round trip (nstat), where Open MPI, one connection per pair, sends
//     them with its replies.
//   - TLS: crypto/tls's records can only be read with a read that waits,
//     so through a tls.Conn every frame would take the writer goroutine
//     and a reader goroutine: two hand-offs per frame and no polling
//     (55-113 µs one way for 8 B-8 KiB, where plain frames took 14-34).
//     Frames sealed on the raw socket take the plain path's inline write
//     and polled read, and cost AES-GCM on both sides plus the copy into
//     the sealing buffer: within 0-3 µs of plain at 8 B-8 KiB, about
//     45 µs more at 64 KiB; AES-GCM runs at about 2 GB/s per core here,
//     which bounds bandwidth (0.9-1.4 GB/s at 64 KiB-4 MiB).
//   - Waiting: a caller spins (polling) for up to 50 µs, then sleeps and
//     the reader goroutine delivers. A 1 MiB ping-pong between two
//     network-namespace hosts pays that wake-up on most round trips (one
//     way: fastest 170-260 µs, median 450-580); spinning for up to 1 ms
//     instead (comm's tcpSpin) brought the median to 309-370 µs in three
//     rounds of five and made it 704 and 1,402 µs in the two others,
//     where other jobs took the cores (2026-12-08 02:43 UTC); not done. When other jobs keep the cores busy,
//     a peer often takes longer than that to be scheduled, and a wait then
//     costs a wake-up as well (50-100 µs one way), where Open MPI, which
//     spins without limit, holds its median and pays in its tail and in
//     CPU time.
//
// # Guarantees
//
//   - Frames to one destination arrive in the order sent, whole, exactly
//     once (one TCP stream per ordered pair), or the link reports an error.
//   - A connection that breaks (read or write error, a peer process that
//     died, a peer host that vanished once the kernel notices) is never
//     silent: frames still queued for that peer are dropped and, after
//     Config.Grace, onFatal gets a *PeerError naming the peer rank. The
//     grace lets the job's control plane speak first: a peer that closed
//     its communicator sent comm's Fin frame before its connections ended,
//     and decorun ends the job or, with --keep-going, announces the lost
//     rank within that time; comm ignores a PeerError for such a peer and
//     fails on any other. A corrupt frame length, or with TLS a frame that
//     does not open (ErrForged), is fatal at once.
//   - Send, SendLent and Poll never block (Poll delivers through onFrame,
//     which may wait for comm's engine lock, and calls the done of lent
//     frames it finished writing; Keep waits at most for a writev that
//     does not wait). A lent body is never pooled nor written after done
//     was called or Keep returned; done is called once at most, by the
//     writer goroutine or a caller of Poll, without any of the link's
//     locks held, and never after Close has returned.
//     Flush returns once every queued frame has been
//     handed to the kernel (or its connection broke); Close closes the
//     listener and every connection and returns once every goroutine of the
//     link has exited. Frames handed to the kernel before Close are still
//     delivered (a closed socket sends what it holds, then FIN).
//   - Memory is bounded by comm's credit windows (queue) plus one frame per
//     incoming connection being read and a 64 KiB read buffer per incoming
//     connection (and in the kernel, up to that many bytes already
//     delivered that a peek left in the socket); the pools of queue buffers and recycled large frames
//     hold no more than was in flight, and the garbage collector empties
//     them; recycled small frames, at most 256 KiB per size class (2.5 MiB
//     per process).
//   - Only ranks that know the job's key get a frame delivered, and a rank
//     sends only to a listener that proved it knows the key: a stray or
//     hostile client is dropped after a failed proof or after
//     Config.Timeout, whichever comes first, and an address record forged
//     on NATS leads a dialer to a listener that cannot prove itself, which
//     the dialer refuses (ErrAuth).
//
// # Cost
//
// Per peer reached over TCP: one connection each way, one writer goroutine
// (sender side) and one reader goroutine (receiver side), made at start-up
// (dials run in parallel); per rank one listener and its accept goroutine.
// A frame costs one writev when the socket has room and nothing is
// queued (otherwise a copy into the queue, or with SendLent none, and a
// share of the writer's writevs), and one or more reads on the receiving
// side (a polling caller: a peek, and a drop at its next read); a frame of up to
// 16 KiB is copied once more out of the read buffer into its own slice,
// and a larger one too unless comm placed it (what the read that found its
// head took of it: at most 1 KiB when it follows another large frame
// closely, up to 64 KiB otherwise; the rest is read into the receive's
// buffer). An eager message of more than 16 KiB costs a
// second, small frame (its head, 48 bytes and its type name). A
// caller that drives the link spins, polling the sockets with system
// calls that return at once, for up to 50 µs after the last frame it
// moved: CPU time bought for latency, only when the host has a core per
// rank. While frames wait in a queue, each of its rounds also asks the
// kernel (one ppoll for up to 16 sockets) whether their sockets have room,
// and writes to those that do. With TLS, AES-GCM sealing and opening on top, and a copy of each
// frame sent inline into a sealing buffer; with Config.Plain only the TLS
// handshake at start-up, and frames cost what they cost without TLS.
package tcp
