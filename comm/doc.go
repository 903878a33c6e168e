// Package comm is what a decorun rank program uses to talk to the other
// ranks: a communicator with MPI-style point-to-point messaging.
//
//	c, err := comm.Init(ctx)          // reads the environment decorun set
//	defer c.Close()
//	if c.Rank() == 0 {
//		err = c.Send(ctx, 1, 0, []byte("hi"))
//	} else if c.Rank() == 1 {
//		data, st, err := c.Recv(ctx, 0, comm.AnyTag)
//	}
//
// Run without decorun, Init returns a world of one rank (a singleton, as in
// MPI) in which sends to self work.
//
// # Guarantees
//
//   - Non-overtaking: messages from one sender to one receiver on one
//     communicator that one receive could match are matched in the order
//     sent (MPI's rule). Matching is done by the I/O-free core in
//     internal/match.
//   - No loss: a message is either delivered or the communicator fails with
//     an error that says so; there is never a silent gap. Every frame carries
//     a per-(sender, receiver) sequence number and a gap is fatal; so are a
//     lost NATS connection (the client never reconnects, since a reconnect
//     loses what was in flight) and any slow-consumer report.
//   - Progress (MPI's progress rule): a send and the receive that matches
//     it complete, whatever else is outstanding between the two ranks. No
//     frame waits behind a frame it does not depend on for longer than it
//     takes the receiver to say that it waits: control frames (clear-to-
//     send, credit returns, revokes, Fin, Nudge) go when they arise;
//     rendezvous Data waits only for the stream window, which the receiver
//     returns as the data lands; an eager message that finds the eager
//     window full waits for credit, with every later send to that
//     receiver behind it in order, until either credit comes back (the
//     receiver matched earlier messages) or the receiver nudges: when a
//     rank has a receive posted (or a probe waiting) that could take a
//     peer's message while it holds nearly all of that peer's eager window
//     (W less the largest eager message), it sends the peer a Nudge, and
//     the peer sends what waits, and every send the window has no room
//     for until credit comes back, by rendezvous: a request-to-send
//     outside the windows, the data once a receive matched it. So a rank
//     that has a window's worth of messages to a peer that no receive
//     matched yet can still send that peer a message on another tag or
//     communicator (a Dup, the Shadow that collectives use) and take part
//     in a Barrier with it, while a receiver that keeps up never causes a
//     round trip. A blocking Send that goes by rendezvous returns once a
//     receive matched it (MPI allows this: a program must not depend on
//     Send buffering its message).
//   - Bounded memory: each sender holds, per receiver, an eager window W
//     and a stream window W/2. An eager message is sent eagerly only when
//     its sender has eager credit for all of it; the credit comes back
//     when a receive matches it (it is "unexpected" until then).
//     Rendezvous Data takes stream credit, returned as soon as it is
//     copied into the receive buffer, so a stream is never held up by
//     messages no receive has matched. So a receiver buffers at most
//     (size-1)·W bytes of unexpected data (held in buffers of up to twice
//     their size when they came through shared memory, see Cost), plus a
//     small envelope (about 200 bytes) per request-to-send no receive
//     matched yet, one per send its peers have outstanding (the senders'
//     own requests bound them, as in MPI); and no more than
//     (size-1)·1.5·W bytes of data are ever in flight to one rank:
//     W = 32 MiB/(size-1), clamped to [64 KiB, 16 MiB], keeps that within
//     75% of nats-server's 64 MiB per-connection limit (where it starts
//     stalling publishers, never dropping) for jobs of up to 512 ranks,
//     and nats.go's client-side pending limits are switched off so the
//     client never drops.
//   - Eager up to W/4: a message of up to W/4 bytes is sent as soon as the
//     sender has eager credit for all of it, whether or not a receive
//     matches it yet: in one frame up to NATS max_payload - 64 KiB, above
//     that as a head frame and Data chunks published together (a "long
//     eager" message, which the receiver keeps in its frames until a
//     receive matches it). Like every eager message it holds its credit
//     until received. To a peer reached over a plain (not TLS) TCP
//     connection, every eager message of more than 16 KiB goes as a long
//     eager message whose head frame carries no payload: when its receive
//     is posted before it arrives, the link reads the Data frames from
//     the socket straight into the receive's buffer (see internal/tcp).
//     On the sending side, the Data frames of such a message (and of a
//     rendezvous, below) are written from the sender's buffer: what the
//     socket does not take at once waits in the link's queue as the
//     caller's memory, not as a copy, and the Send (or the Isend's
//     request) completes once the kernel has taken the last byte, as MPI
//     allows a standard-mode send to. That takes only the receiving
//     rank's reader, which reads whatever arrives, not a matching receive:
//     such a send never waits for the receiver's program.
//   - Any size: a message larger than W/4 (and one that a Nudge turned
//     to rendezvous, see Progress) is sent by rendezvous: a request-to-
//     send frame is matched like an eager message, the receiver answers
//     clear-to-send once a receive matched it and its buffer exists, and
//     the data then streams in chunks under the stream window straight
//     from the sender's buffer into the receiver's. A 1 GiB Send costs
//     one 1 GiB buffer at the receiver and W/2 bytes in flight; no second
//     full copy.
//   - Start-up: every rank subscribes its inbox before it joins a start-up
//     barrier at rank 0 (on the same connection, so the server has the
//     subscription first), so nothing is published to a rank that is not
//     yet listening.
//
// # Cost
//
// A small message is one NATS publish (a copy into nats.go's write buffer)
// and two hops through the server; the receive path hands the payload nats.go
// allocated to the caller without another copy. Credit returns cost one small
// frame per W/4 bytes consumed (W/8 of rendezvous data). Messages above
// W/4, and those sent while the receiver nudged, add one round trip
// (RTS/CTS).
// The []byte Send/Recv path allocates nothing per message beyond nats.go's
// own receive buffer when the sender has eager credit. That is the NATS path
// (decorun --transport=nats); by default (auto) frames between ranks of one
// host go through shared-memory rings instead (internal/shm): no server hop,
// two copies, and no system call while the receiver polls (the ring lends
// each frame to the engine only while it handles it, so the payload of an
// unexpected message is copied into a buffer of the engine's pool: power-of-
// two classes from 4 KiB, reused once a RecvInto copied it out, given away
// to a Recv that has no buffer of its own, and at most 32 MiB of free
// buffers kept; a blocked receive, send or wait drives the rings itself
// for up to 50 µs after the last frame it moved, so that the frame it waits
// for reaches it with no thread woken, when the host has a core per rank;
// with more ranks than cores it polls its own request for 5 µs before it
// parks, and the shared-memory pump delivers; a receive that completes
// sets a flag its waiter polls, and its channel is sent to only when a
// caller blocks on it, so a small message's delivery takes no channel
// operation, no clock reading and no system call); and
// frames between ranks of different hosts go over direct TCP connections
// (internal/tcp; --transport=tcp for every pair): no server hop, one
// writev straight from the caller's buffers when the connection is idle
// (otherwise a copy into the sender's queue and one writev per batch),
// one read per batch, which a blocked receive, send or wait does itself
// for up to 50 µs when the host has a core per rank, as with shared
// memory; encrypted and authenticated when the job's NATS connection uses
// TLS (a TLS handshake per connection, then each frame sealed with
// AES-GCM on the same paths, at the cost of the cipher and one copy on the
// sending side; a frame altered, replayed or reordered on the wire fails
// the job at once), unless the job turned the sealing off for a trusted
// network (decorun --tcp-encrypt=false, DECORUN_TCP_ENCRYPT=false: the
// handshake still authenticates both ends, the frames then travel in clear
// text). Comm.Path tells which path each peer got.
//
// Multicast sends one message to every other rank of a communicator. Over
// NATS alone, on a communicator of every rank of the job, a message up to
// MulticastMax() bytes is one publish on the sender's multicast subject,
// which the server copies to every rank (each subscribes to all multicast
// subjects before the start-up barrier): charged to every receiver's
// credit window, numbered by a per-sender multicast sequence that each
// receiver checks (a gap is fatal, like a gap in the point-to-point
// numbers). It travels apart from point-to-point frames, so it is not
// ordered with them; package collectives' Bcast uses it with a tag of its
// own.
//
// # Cancellation
//
// Every blocking call takes a context. A Send cancelled before any of it was
// published is withdrawn as if never called; a large Send cancelled after its
// request-to-send left is revoked: the receiver drops it as if it had never
// been sent, and a receive that had already matched it waits again for the
// next message it accepts. A Send whose message went whole to a TCP
// link that still writes it from the caller's buffer (see Eager above)
// cannot be withdrawn: cancelling it has the link copy what it has not
// written yet, and the Send returns nil at once (the message arrives
// whole); a cancelled Isend request completes the same way. A Recv
// cancelled before it matched
// is withdrawn; one cancelled while a large message streams into it discards
// that message. Cancellation never corrupts the communicator: later calls
// work.
//
// # Communicators
//
// Split and Dup make communicators with their own matching context: no
// message sent on one is received on another, wildcards included. They are
// collective calls, counted in one sequence per communicator with the
// calls of package collectives: each starts with the same agreement step
// (a dissemination exchange of a small header on the communicator's
// Shadow, ⌈lg p⌉ rounds), so when ranks make different calls (Split on
// some, Dup or collectives.Barrier on others) every rank's call fails with
// an error wrapping ErrMismatch that names two ranks and their calls,
// instead of waiting for the others, and the communicator stays usable.
//
// HostGroups describes a communicator whose ranks span hosts (each host's
// ranks a contiguous block of them, some host with two or more): its
// ranks on this host and the hosts' leaders, as two communicators that
// every rank makes alike, without messages, from each world rank's host
// (the launcher's lists, gathered at start-up), and closes with the
// communicator. Package collectives runs its calls on them hierarchically;
// the loss of any rank of the communicator fails their collective traffic
// too, as it fails the communicator's own. DECORUN_COLL_HIER=off (on every
// rank) turns them off.
//
// # Spawn and intercommunicators
//
// Spawn (MPI_Comm_spawn) starts n more ranks of a program from a running
// job and returns an *Intercomm to them; the new ranks get theirs from
// Parent (MPI_Comm_get_parent), which is nil in a program that Spawn did
// not start. The new ranks form a world of their own: their Init returns
// a communicator of size n, ranks 0..n-1.
//
//	ic, err := comm.Spawn(ctx, world, "./worker", []string{"-v"}, 4, nil)
//	err = ic.Send(ctx, 2, 0, job)                  // to rank 2 of the workers
//	err = comm.SendValue(ctx, ic.Remote(), 3, 0, p) // typed calls go through Remote
//	// in ./worker, after Init:
//	p := comm.Parent()                   // nil when not spawned
//	data, st, err := p.Recv(ctx, 0, 0)   // from rank 0 of the spawning group
//	all, err := p.Merge(ctx, true)       // one communicator, parents first
//
// Spawn is collective over c: every rank of c calls it with the same
// program, arguments, n and root (SpawnOptions.Root, default 0). It
// starts with the agreement step of every collective call, so ranks that
// pass different arguments, or make a different collective call, fail
// with a *MismatchError naming two of them instead of waiting; n < 1 is
// then an error on every rank. It returns once every new rank has called
// Init, or with the same error on every rank of c.
//
// How the request reaches the launcher. The root sends one request
// (jobenv.OpSpawn) on its world's control subject, where OpJoin and
// OpFin go, and the decorun launcher that owns the job answers it from
// its event loop: it resolves the program as it resolved the job's (a
// name without a slash is looked up in PATH, a relative path is relative
// to decorun's working directory) and refuses, naming the program, one it
// cannot execute, before anything starts (ErrSpawn; the job goes on);
// otherwise it places the n ranks by the job's own rules (its hosts or
// hostfile, by slot or by node, with the slots counted afresh for the n
// ranks; its launch agent for other hosts; its -x exports, transport,
// NATS server and TLS), answers with the spawn's number K (1, 2, ... per
// job) and the hosts of the ranks, and starts them as it starts the
// job's own ranks. The root passes the answer to the other ranks of c.
// Ranks started by something other than decorun (a singleton, Connect,
// Slurm or Kubernetes join mode) have no launcher to ask: Spawn fails
// with ErrNoLauncher on every rank. A spawned program may itself Spawn.
//
// How the new ranks connect. Each spawn makes two jobs on the job's NATS
// server, under the job's subject prefix P: the new ranks' world (prefix
// P.sK, job id ID-sK, so shared-memory names and a TCP key of its own)
// and the intercommunicator's job (prefix P.xK, id ID-xK) of p+n ranks,
// p being c's size: the ranks of c are its ranks 0..p-1 in c's order,
// the new ranks p..p+n-1. Every rank of c and every new rank (in Init,
// after its world) joins that job through the same start-up barrier as a
// world, with the job's transport (shared memory between its ranks on
// one host, direct TCP between hosts, NATS otherwise; the launcher tells
// each rank which ranks share its host). An Intercomm is a view of that
// job: a rank index names a rank of the remote group, AnySource matches
// the remote group only, and Status.Source is a remote rank. Remote
// returns that view as a *Comm for the typed calls (SendValue,
// RecvValue, IrecvValue, ...); collective calls on it (package
// collectives, Split, Dup) fail with ErrInterCollective. Merge(ctx, high)
// splits the job into an ordinary communicator of p+n ranks, the group
// that passed high=false first (the spawning group when both pass the
// same), for collectives.
//
// Failure. The new ranks are ranks of the job to the launcher: one that
// fails ends the whole job, as any rank's failure does, named as
// "rank sK.R"; one that exits before it called Init ends the job too,
// whatever its status (its parents wait for it in Spawn). With
// decorun --keep-going a new rank that fails after Init is announced
// instead, to its world and to the intercommunicator's job: calls naming
// it fail with ErrRankLost, Intercomm.Lost delivers its remote rank, the
// merged communicator's Lost its rank in the order of Merge(ctx, false),
// and a Spawn still waiting for the new ranks fails with ErrRankLost
// (the launcher tells the world that asked for the spawn too, whose
// ranks listen from their start, so no loss is missed).
// A spawned rank that exits 0 without closing its world fails the job,
// as any rank. Their output is forwarded like any rank's; with
// decorun --tag-output their lines start with "[sK.R] " (spawn K, rank R
// of its world), and with --output-filename DIR they go to
// DIR/spawn.K/rank.R/.
//
// Cost. One control request and reply through the launcher and one
// message from the root to each rank of c; one fork and exec per new
// rank (and one launch-agent process per other host and spawn); and, on
// every rank of c and every new rank, one more NATS connection,
// shared-memory segment and TCP listener (those of the intercommunicator's
// job) until the Intercomm is closed. Closing the world closes every
// Intercomm of the process first.
//
// # Failure
//
// Close ends the communicator; calls blocked on it, and all later calls,
// fail with ErrClosed. Close also sends every peer a Fin frame behind all
// earlier traffic, so a peer's receive naming the closed rank fails with
// ErrPeerClosed (once the closed rank's earlier messages are received), and
// so does a send to it, instead of waiting forever. A rank that dies makes
// decorun stop the whole job (the MPI default), so a Recv from a dead rank
// never hangs; with decorun --keep-going the job goes on and calls naming the
// dead rank fail with ErrRankLost (c.Lost() announces it). A collective call
// may wait for data that passes through any of its ranks, so the loss also
// fails, on every survivor, every pending and later send and receive on the
// Shadow of each communicator that has the dead rank (the context of the
// collectives of package collectives, and of Split's and Dup's agreement):
// their collective calls end with the dead rank's ErrRankLost error instead
// of waiting for a survivor that has left the call. Communicators without
// the dead rank, and the user's own messages, are not affected.
//
// # Tracing
//
// Under decorun --trace or --report (docs/tracing.md) every call of this
// package records its start, end, peer, tag, size and communicator, and
// every message carries an id so that each receive is joined to the send it
// matched; Init records the start-up barrier, and the rank ships its
// recording to decorun at Close, at Abort, or when SIGTERM or SIGINT stops
// it (while tracing, Init catches these two signals; the rank then dies by
// the same signal). Without decorun --trace each call only checks that
// tracing is off: no allocation, no lock.
package comm
