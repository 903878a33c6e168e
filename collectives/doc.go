// Package collectives implements MPI's collective operations over a
// [comm.Comm]: calls that every rank of a communicator makes together, in
// the same order, and that return when this rank's part is complete.
//
//	sum, err := collectives.Allreduce(ctx, c, x, collectives.Sum)
//	v, err := collectives.Bcast(ctx, c, cfg, 0)          // cfg from rank 0
//	part, err := collectives.Scatter(ctx, c, data, 0)   // len(data)/Size() each
//	all, err := collectives.Gather(ctx, c, part, 0)     // concatenation at rank 0
//
// # API
//
// Every call takes ctx first and the communicator second, and is generic in
// the element type; the ranks of one call must use the same type.
//
//   - Barrier(ctx, c)
//   - Bcast(ctx, c, v T, root) T: root's v on every rank.
//   - Scatter(ctx, c, data []T, root) []T: root's data in Size() equal blocks,
//     block i to rank i. Scatterv(ctx, c, parts [][]T, root) []T: parts[i] to
//     rank i, any lengths.
//   - Gather(ctx, c, part []T, root) []T: the concatenation of every rank's
//     part, in rank order, at root (nil elsewhere); parts must have equal
//     lengths. Gatherv(ctx, c, part []T, root) [][]T: parts of any length,
//     indexed by rank.
//   - Allgather(ctx, c, part []T) []T and Allgatherv(ctx, c, part []T) [][]T:
//     the same on every rank.
//   - BcastInto(ctx, c, buf []E, root), GatherInto(ctx, c, part, out []E,
//     root) and ScatterInto(ctx, c, data, out []E, root), for slices of
//     numbers: MPI's forms that fill the caller's buffer (buf on every rank
//     of the same length; out at root of Size() parts; out on every rank of
//     one block, root's data of Size() blocks), so that repeated calls
//     allocate nothing. They are calls of their own: ranks may not mix
//     them with Bcast, Gather or Scatter in one call.
//   - GathervInto(ctx, c, part, out []E, counts, displs []int, root) and
//     AllgathervInto(ctx, c, part, out []E, counts, displs []int): parts of
//     any length into one flat buffer, rank q's at out[displs[q]:] with
//     counts[q] elements (MPI_Gatherv's and MPI_Allgatherv's recvcounts
//     and displs), at root or on every rank.
//   - Alltoall(ctx, c, data []T) []T: block i of data (len(data)/Size()
//     elements) goes to rank i; the result holds the block from rank j at
//     block j. Alltoallv(ctx, c, parts [][]T) [][]T: parts[i] to rank i, the
//     result indexed by source rank.
//   - NeighborAllgather(ctx, c, v T) []T and NeighborAlltoall(ctx, c, vs
//     []T) []T, on a communicator with a topology (comm.CartCreate,
//     comm.DistGraphCreateAdjacent): v to every destination neighbour,
//     vs[i] to destination i, and what each source neighbour sent, indexed
//     as c.NeighborRanks() (on a grid, for each dimension the rank before
//     and the rank after; the zero T for a ProcNull neighbour past an
//     edge).
//   - Reduce(ctx, c, v T, op, root) T, Allreduce(ctx, c, v T, op) T: op
//     folded over every rank's whole value v. Scan: the fold over ranks
//     0..Rank(); Exscan: over ranks 0..Rank()-1 (the zero T on rank 0).
//   - ReduceSlice, AllreduceSlice(ctx, c, v []E, op) []E: element-wise
//     reductions of equal-length slices, with bandwidth-optimal algorithms
//     for large vectors. AllreduceSliceInto(ctx, c, in, out []E, op) and
//     ReduceSliceInto(ctx, c, in, out []E, op, root) write the same result
//     into out, MPI's receive buffer (ReduceSliceInto at root only; out may
//     be nil elsewhere): len(out) must equal len(in), out may be in itself
//     (in place, MPI_IN_PLACE) but must not otherwise overlap it. The plain
//     forms are these with a new result, and ranks may mix the two forms in
//     one call. Reusing out saves the result's allocation, which at 1 MiB is
//     the largest cost of AllreduceSlice (see Costs). ReduceScatter(ctx, c, v []E, op) []E: block Rank()
//     of the element-wise reduction (len(v) divisible by Size()).
//     ScanSlice, ExscanSlice(ctx, c, v []E, op) []E: element-wise Scan and
//     Exscan, MPI_Scan and MPI_Exscan of a buffer. On rank 0, which has
//     no ranks before it (MPI leaves its result undefined), Exscan and
//     ExscanSlice both return the zero value of their result type: the
//     zero T, and a nil slice. Every
//     rank must pass the same length; the agreement step checks it.
//
// Reduction operators are plain functions, op(a, b T) T; the built-in ones
// are generic functions whose type Go infers at the call:
// Allreduce(ctx, c, 1.5, Sum) works on float64. They are Sum, Prod, Min,
// Max, LAnd, LOr, LXor (logical: nonzero is true, result 0 or 1), BAnd,
// BOr, BXor (bitwise, on integers), MinLoc and MaxLoc (on [Loc] pairs, ties
// to the lower Index, like MPI_MINLOC). [Elementwise] lifts an op on
// elements to one on equal-length slices; the whole-value calls recognise
// it and then check lengths like the *Slice calls (which are the better
// choice for vectors: no allocation per combination). The *Slice calls
// call op once per element, except for Sum on float64, float32, int,
// int32, int64 and uint64 named at a non-generic call site, which they
// add in a loop of their own: on amd64 CPUs with AVX2, 32 bytes per
// instruction (VADDPD, VADDPS, VPADDQ, VPADDD), the same additions
// element by element as a + b, so the results are the same bits; a fold
// of 64 KiB then takes less than half the scalar loop's time (in
// cache), and the fold of a payload that another rank just posted is
// bound by reading it.
//
// A user op must be associative. It need not be commutative: every
// reduction combines the contributions in rank order, v0 op v1 op ... op
// vp-1 (with the parentheses each algorithm chooses), and every rank of an
// Allreduce gets the result of the same expression, so floating-point
// results agree bit for bit across ranks and across runs of one job size.
// op is called on the caller's goroutine and may not communicate.
//
// Values travel as their memory image when T (or the element type of a
// slice) has a fixed-size numeric or bool kind, named types included: no
// encoding, and large slices are received straight into the result. Other
// types are encoded with CBOR, as comm's typed messages are. Ranks must
// share byte order and word size, as everywhere in decorun.
//
// # Shared memory
//
// When every rank of a communicator runs on one host and reaches the others
// through shared memory (decorun's default transport, auto, or shm, with the
// launcher's list of each host's ranks), the communicator has a region in
// /dev/shm: one file per rank, made when the communicator is made (the
// world at start-up, Dup and Split as they run) and mapped by every other
// rank at its first collective call on it, after the same checks as comm's
// segments (this user's file, mode 0600, one link, a header authenticated
// with the job's key). Each rank's file holds two post lines and two data
// slots of 1 MiB, used by turns (a call's step number picks one): a call
// is one step in which every rank posts its agreement header and its
// payload (the value, the slice, the part, or the root's data) and reads
// every other rank's header. When every payload fits its slot, the ranks
// read what they need straight from each other's slots and combine it
// themselves, in rank order (every rank of Allreduce computes
// v0 op v1 op ... op vp−1 from the same bytes, so results agree bit for bit
// across ranks and runs; the parentheses differ from the message
// algorithms', so a float sum can differ in its last bits between a
// communicator with a region and one without), and no message moves. A
// larger payload goes by the message algorithms below, with the agreement
// already done. The agreement's checks are the same either way: mismatched
// calls fail on every rank with the same errors. Element-wise reductions of
// numbers of 16 KiB or more take a second phase within the step: rank r
// folds block r of every payload (in rank order), publishes it in its own
// slot and marks the step, and the others copy it from there (a
// reduce-scatter and an allgather through memory; one rank per block does
// the work, and a failure of op travels with the mark). Allreduce then
// posts its vector without its own block, which nobody else reads (half
// the bytes on two ranks), starting with the next rank's block.
//
// A payload of more than 16 KiB is streamed: its header and length are
// published first, then the payload in pieces (16 KiB, or a sixteenth of
// it), each followed by a store of how many bytes have landed. The calls
// that read large payloads in order (a Reduce's root folding, foldBlocks,
// BcastInto, GatherInto and ScatterInto) check the headers as soon as
// every rank's is there and then read each piece once it has landed, so
// the reader's copy or fold runs beside the writer's copy instead of after
// it; a reduction goes by pieces of 16 KiB of the result, which stay in
// the reader's cache while every payload is folded into them.
//
// A step's slots are reused two steps later, once every rank has
// acknowledged reading them; a post and an acknowledgement are atomic
// stores, a read is a load and a copy. A rank waiting for another polls the
// other's line without a system call for up to 50 µs when the host has a
// core for each of its ranks (with more ranks than cores it skips this),
// then yields its core (sched_yield) for up to 500 µs, then sleeps on a
// futex word in its own file, which a rank that posts or acknowledges
// rings only when the sleeper said it sleeps. While it waits it checks,
// about every millisecond, ctx, and whether a rank of the communicator has
// died (decorun --keep-going: the call fails with an error wrapping
// comm.ErrRankLost naming it), or closed the communicator. Calls on one
// communicator take the region in the order they were made (nonblocking
// ones included).
//
// Costs: each rank maps 2 MiB + 8 KiB per communicator with a region
// per rank of it on the host (n² mappings of n files); a fused call copies
// each payload into its owner's slot once and out of it once per reader
// (Bcast: p−1 readers; a small Allreduce: every rank reads and combines all
// p payloads; a large one: each reads 1/p of every payload and p−1 blocks of
// the result; a large ReduceSlice on two ranks, or on a host with more
// ranks than cores, has its root read all of every payload instead, so the
// others leave once they have posted). Nothing is posted that nobody
// reads: a gather's root posts only its header, and a rank reads its own
// part from the caller's memory rather than from its post (unless an
// output overlaps it). A small call's post (step, header, payload up to 8
// bytes) lies in one cache line, so each reader takes one cache miss per
// rank; posts of 4 KiB or more are written with non-temporal stores, which
// do not first fetch the lines that the readers' cores hold from the step
// before: they cost the same whether or not the ranks' cores share a
// cache, where a plain copy is faster when they do and several times
// slower when they do not (see internal/shm's Publish). Files are unlinked
// once every rank has mapped them, so a running job leaves nothing in
// /dev/shm, and the launcher removes any that a killed rank left.
// DECORUN_COLL_SHM=off (on every rank) keeps collectives off regions. Measured beside Open MPI: docs/performance.md.
//
// # Across hosts
//
// A communicator whose ranks span hosts runs its collectives
// hierarchically when every host's ranks are a contiguous block of its
// ranks and some host has two or more of them (comm.HostGroups; decorun's
// default placement by slot gives such blocks, --map-by node does not).
// Every rank knows every world rank's host from the start-up barrier, so
// each computes the same layout and makes the same two sub-communicators,
// without a message, at the first call: its host's ranks, with a
// shared-memory region whose files every rank made with the communicator,
// and the hosts' leaders (each host's lowest rank). A call takes its
// numbers on both when it is numbered on c, in the order of the calls on
// c, nonblocking ones included, and runs in three steps:
//
//   - Up: the host's ranks post their agreement headers and payloads in
//     the host's region (a payload over the 1 MiB slot, or a host without
//     a region, goes to the leader by a binomial tree of messages); the
//     leader reads every header of its host, and when they fit together
//     folds the payloads in rank order into the host's contribution.
//   - Across: the leaders exchange each host's summary of headers and
//     contribution (one round up to 8 hosts, else Bruck's allgather); each
//     merges the summaries into the global one, which is the flat
//     agreement's summary (the same minima, maxima and ranks), and when
//     the calls fit together folds the contributions in host order.
//   - Down: the leader posts the global summary and the result in the
//     host's region (or sends them down a binomial tree), and every rank
//     returns what they say: the same MismatchError or ErrInvalidArg as
//     the flat agreement gives, the OpError of a failed op, or the
//     result.
//
// Each rank of a host that has two or more of the communicator's ranks
// keeps a region file for them (2 MiB + 8 KiB, as on one host), made with
// the communicator and dropped at the first call when the communicator
// turns out not to run hierarchically.
//
// So the agreement travels with the data: no round of its own. Because the
// hosts are contiguous blocks, the fold in host order of folds in rank
// order is the fold in rank order, v0 op v1 op ... op vp−1, computed alike
// by every leader from the same bytes: results are bit-identical on every
// rank (a float sum's parentheses differ from the flat algorithms'). Hosts
// that are not contiguous blocks (round-robin) run flat.
//
// Barrier, Bcast and BcastInto of less than 256 KiB, Reduce, Allreduce,
// and ReduceSlice and AllreduceSlice (and their Into forms) of less than
// 64 KiB of numbers move their data this way. Every other collective,
// larger values and vectors, and comm's Split and
// Dup run the same three steps without data (the agreement alone: a
// mismatch between a Split on some ranks and a collective on others is
// seen, as on one host), then move their data by the flat message
// algorithms over c. Large vectors go flat because the leaders' exchange
// sends whole vectors over one connection per host, where Rabenseifner's
// algorithm spreads them over every rank's: on 3 namespace hosts × 2
// ranks, AllreduceSlice of 64 KiB took 8.7–9.3 ms through the leaders
// against 7.5–8.6 ms flat, 256 KiB 16.8–18.6 ms against 7.4–8.2 ms, and a
// Bcast of 1 MiB 19.6–25.4 ms against 12.5–18.9 ms. (A Bcast's length is
// the root's: the hierarchical agreement tells every rank, and the root
// posts nothing in its host's region when it is large.) Costs of the small
// calls: two region steps on each host and one round of messages between
// the leaders (each sends its host's part to every other; Bruck's
// allgather, ⌈lg h⌉ rounds, with more than 8 hosts), where the flat
// algorithms take ⌈lg p⌉ or more rounds between any ranks, most of them
// across hosts.
//
// On 3 network-namespace hosts × 2 ranks (2-core VM, 2026-12-07) the
// hierarchical calls took about a third to a half of the flat ones'
// time for Barrier and 8-byte Allreduce and Bcast; at 1 MiB, where the data
// moves by the flat algorithms after the hierarchical agreement, both are
// the same. DECORUN_COLL_HIER=off runs the flat algorithms, to compare:
//
//	decorun bench -H hb1:2,hb2:2,hb3:2 --launch-agent 'ip netns exec {host}' \
//	  --server-addr 10.88.0.1 -n 6 [-x DECORUN_COLL_HIER=off] barrier allreduce bcast --sizes 8,1M
//
// Failures: a rank that cancels its call returns ctx.Err(); the ranks
// that wait for it (its host's ranks in a region step, the leaders, the
// ranks of other hosts waiting for their leader) return when their own ctx
// ends, as on one host. When a rank dies under decorun --keep-going, the
// loss breaks both sub-communicators of every communicator that has the
// rank, so that every survivor's call fails with an error naming it
// (wrapping comm.ErrRankLost), whether it waits in its host's region or
// for another leader. DECORUN_COLL_HIER=off (on every rank) runs every
// collective flat.
//
// # Costs
//
// In the notation of MPICH's collective headers: α is one message's latency
// (with NATS, two hops through the server), β the time per byte, γ the time
// per byte of op, n the bytes of the result (Bcast: the value; Gather,
// Allgather, Alltoall: the whole result; reductions: one rank's vector),
// p = Size() and lg = ⌈log2⌉.
//
// Agreement. Every collective but Barrier starts with a dissemination
// exchange of a 224-byte header (which collective, a hash of the element
// type, the root, one length, whether lengths must be equal, a local-error
// code that carries len(out) when an *Into call's out has the wrong length,
// the largest Bcast this rank can take part in by fan-out): lg p
// rounds in which rank
// r sends what it knows to r+2^k and merges what r−2^k knows, keeping each
// field's minimum and maximum with the ranks that passed them. Cost lg p·α.
// Afterwards every rank knows whether the calls match, and returns the same
// error if they do not (see Errors); it also tells non-roots the length of
// the root's data, which the large-message algorithms need. Barrier is this
// exchange with nothing to check (the dissemination barrier).
//
//   - Barrier: dissemination, lg p·α.
//   - Bcast: NATS fan-out when every rank can take part (below) and p ≥ 3:
//     the root publishes the value once and the server delivers a copy to
//     every rank: α + n·β at the root, plus the server's (p−1)·n bytes of
//     copies, written to the p−1 connections in parallel (the tree's
//     messages pass through the server too: (p−1)·n bytes in and out).
//     Otherwise a binomial tree, lg p·α + n·lg p·β, when n < 256 KiB or
//     p < 3; above that a binomial scatter of p contiguous pieces of the
//     encoded value followed by a ring allgather in which the root
//     receives nothing: (lg p + p − 1)·α + 2n·(p−1)/p·β. All three receive
//     straight into the result's memory.
//   - Scatter(v), Gather(v): binomial tree carrying the blocks of each
//     subtree in one message: lg p·α + n·(p−1)/p·β. Scatter and
//     ScatterInto of numbers with blocks of 64 KiB or more send each block
//     straight from root's data to its rank (ScatterInto receives it
//     straight into out): (p−1)·α + n·(p−1)/p·β, each byte moved once,
//     where the tree forwards subtrees' blocks through the ranks between
//     (n·lg p/2 bytes in all, 10 times slower at 8 ranks of 1 MiB on 2
//     cores).
//   - Allgather(v): Bruck's algorithm (any p, no final copy beyond one
//     rotation of block references): lg p·α + n·(p−1)/p·β.
//   - Alltoall(v): pairwise exchange, in step i sending to r+i and receiving
//     from r−i: (p−1)·α + n·(p−1)/p·β.
//   - Reduce: binomial tree over ranks combining lower-rank subtrees on the
//     left, rooted at rank 0, plus one message to the root if it is not 0:
//     (lg p + 1)·α + n·lg p·(β + γ).
//   - Allreduce and small AllreduceSlice/ReduceSlice: recursive doubling;
//     when p is not a power of two the first 2·(p − 2^⌊lg p⌋) ranks first fold
//     in pairs (even into odd) and the odd rank sends the result back at the
//     end (MPICH's scheme, which keeps rank order): (lg p + 2)·α +
//     n·(lg p + 2)·β + n·(lg p + 1)·γ.
//   - AllreduceSlice of n ≥ 64 KiB (numeric elements, p ≥ 2): Rabenseifner's
//     algorithm over q = 2^⌊lg p⌋ ranks, a reduce-scatter by recursive
//     halving (partners at distance 1, 2, 4, ..., so that each step folds
//     two adjacent groups of ranks, the lower on the left; one rank computes
//     each block) and an allgather of the blocks by recursive doubling:
//     2·lg q·α + 2n·(q−1)/q·β + n·(q−1)/q·γ, the bandwidth lower bound in
//     the fewest rounds. When p is not a power of two the first 2·(p − q)
//     ranks fold in pairs first and get the result back at the end, as
//     above: 2α + 2n·β + n·γ more. Every receive is posted before the
//     agreement step, so each message is copied once, straight into place
//     (its messages carry the call's tag with bit 30 set, like a Bcast's
//     fan-out message, so they never match the agreement's); a rank
//     holds its result and at most n/2 of scratch (3n/2 on the ranks that
//     fold), kept in a pool between calls. In place (AllreduceSliceInto with
//     out = in) the first halving step cannot receive into the result, which
//     still holds the rank's input: it receives into scratch too (n/2 more,
//     the same copies and the same bits), and a rank that folds combines the
//     fold into the result. AllreduceSliceInto thus allocates nothing of the
//     vector's size at steady state (go test -bench AllreduceInto
//     -benchmem: a few hundred bytes of requests per call in this package;
//     over shared memory the transport still copies frames that wrap its
//     ring's end into new memory). Nothing is gathered at one rank.
//   - ReduceSlice of n ≥ 64 KiB (numeric elements, p ≥ 3): the same fold
//     and reduce-scatter by recursive halving, then each of the q ranks
//     sends its block to the root, which posted their receives into the
//     result before the agreement step: (lg q + 1)·α + 2n·(q−1)/q·β +
//     n·(q−1)/q·γ, and α + n·β + n·γ more for the fold when p is not a power
//     of two. The root receives q − 1 blocks (q if it folded); a rank other
//     than the root works in n + n/2 of pooled scratch (2n + n/2 if it
//     folds).
//   - ReduceScatter: pairwise reduce-scatter: (p−1)·α + n·(p−1)/p·(β + γ).
//     The block owner receives each rank's raw block and combines in rank
//     order with two accumulators (ranks below it, ranks above it).
//   - Scan, Exscan, ScanSlice, ExscanSlice: recursive doubling over
//     aligned blocks of ranks (any p): lg p·α + n·lg p·(β + γ).
//
// Bcast fans out when c spans the whole job (the world, its Dups, a Split
// that keeps every rank), every rank's data path is NATS alone (decorun
// --transport=nats, or auto where no peer is reached by shared memory or
// direct TCP: over those the tree is faster than going through the
// server, and a Mux link has no fan-out),
// and the encoded value fits one eager frame of comm (comm.MulticastMax:
// the credit window's quarter, at most NATS's max_payload less 64 KiB; 960
// KiB for up to 9 ranks with the default 1 MiB max_payload). The agreement
// step carries each rank's limit and takes the smallest, so every rank
// chooses the same algorithm. The frame is charged to the root's credit
// window towards every rank; where one is short, comm.Multicast sends to
// each rank in turn instead. $DECORUN_MULTICAST=off switches the fan-out
// off. With p = 2 the tree is the same one message.
//
// On separate rank processes over NATS, the fan-out is faster than the
// tree at every size up to one frame: on 8 ranks of 2 cores a Bcast of 8 B
// takes about 0.8 of the tree's time and one of 512 KiB about 0.4
// (decorun bench bcast --transport nats, fan-out on and off alternated;
// $DECORUN_MULTICAST=off switches it off).
//
// The other switch points (256 KiB for Bcast without fan-out, 64 KiB for
// AllreduceSlice and ReduceSlice) follow the cost model with NATS's α of
// tens of microseconds (larger than MPICH's, so its 12 KiB and 2 KiB
// thresholds move up). On shared memory, Rabenseifner's algorithm takes
// about half the time of recursive doubling at 64 KiB on 8 ranks and
// about a third at 1 MiB on 2 ranks. BenchmarkBcast, BenchmarkAllreduce
// (and its Into and InPlace forms) and BenchmarkAlltoall measure 8 B,
// 64 KiB and 1 MiB on 2, 4 and 8 ranks.
//
// A result allocated per call costs more than the algorithm at large
// sizes: the garbage makes each rank collect every few calls, and a
// collection's pauses on oversubscribed cores hold up every rank. So
// AllreduceSliceInto into a buffer reused across calls takes about half
// the time of AllreduceSlice at 1 MiB on 8 ranks (what decorun bench
// allreduce measures, as osu_allreduce reuses its buffers).
//
// # Matching and concurrency
//
// All collective traffic goes over c.Shadow(), so it never matches the
// user's point-to-point receives (AnySource and AnyTag included). Its tag is a
// per-communicator sequence number that every collective call on c
// increments (comm's Split and Dup count in the same sequence and start
// with the same agreement step), so messages of one collective never match another's (tags
// use 30 bits and wrap). A Bcast's fan-out message carries the call's tag
// with bit 30 set: it travels on its own NATS subscription, so it may
// reach a rank before the root's agreement messages of the same call,
// which carry the plain tag, and must never match their receives. The large
// AllreduceSlice sets bit 30 on its data for the same reason: it posts its
// receives before the agreement step. Among
// themselves a root's multicasts stay in order (one subject per root, so
// NATS keeps publish order to each subscriber, through cluster routes
// too), and comm checks their own sequence numbers; their order relative
// to point-to-point frames is not relied on anywhere (comm makes a rank's
// Close wait behind its multicasts). Calls on
// different communicators (from Split or Dup) may run at the same time on
// different goroutines; calls on one communicator must be made one at a
// time, in the same order on every rank (MPI's rule).
//
// # Nonblocking collectives
//
// Every collective has a nonblocking form named with an I (MPI-3's
// MPI_Iallreduce and the rest): Ibarrier, Ibcast, Ireduce, Iallreduce,
// IreduceSlice, IallreduceSlice and their *Into forms, Igather(v),
// Iscatter(v), Iallgather(v), Ialltoall(v), IreduceScatter, Iscan, Iexscan,
// IscanSlice, IexscanSlice, IbcastInto, IgatherInto, IscatterInto,
// IgathervInto, IallgathervInto, IneighborAllgather and
// IneighborAlltoall.
// Each takes the blocking form's arguments, returns at once a [*Request]
// of the blocking form's result, and goes on in the background while the
// caller computes, sends and receives, or starts other calls:
//
//	q := collectives.Iallreduce(ctx, c, residual, collectives.Sum)
//	... exchange halos, compute ...
//	total, err := q.Wait(ctx)
//
// Wait(ctx) blocks until the call is complete and returns what the blocking
// form would have returned, errors included (the same mismatch and
// argument errors, found by the same agreement step); Test() never waits
// and reports whether it is complete. Both may be called again and
// from several goroutines. Wait's ctx bounds only the waiting: when it
// ends, Wait returns ctx.Err() and the call goes on; a later Wait or Test
// gets its result. The call itself is governed by the ctx passed to the
// I-function: when that ends, the call fails with ctx.Err() as the
// blocking form would (see Cancellation).
//
// A nonblocking call takes its place in the order of collective calls on
// c when it is started, as MPI requires: the ranks must start the
// collective calls on a communicator, blocking and nonblocking ones and
// comm's Split and Dup, in the same order, one at a time, and they match
// in that order whenever they complete. A blocking call on some ranks and
// its nonblocking form on others are the same call and match. Requests may
// be waited for in any order; calls on different communicators, and
// point-to-point traffic, proceed independently of each other.
//
// Buffers: a slice passed to a nonblocking call (and the out of the *Into
// forms) belongs to the call until it is complete. Do not modify it
// before Wait or Test has reported completion, and do not read out
// before then (MPI's rule for the buffers of a nonblocking call). Values
// that are not slices or maps are copied when the call starts.
//
// How it works, and what it costs: the I-function takes the call's number
// on c at once. When c's calls go through a shared-memory region (see
// Shared memory), nothing before the call holds the region and this
// rank's part is under 256 KiB, it posts the call there before it returns:
// it runs the blocking form up to its agreement step, which puts this
// rank's header and payload in the region, where the other ranks find
// them while this one computes. A nonblocking call asks for one phase:
// once every rank has posted, each rank reads every part it needs from
// the posts and combines them itself, and no rank waits for another
// again (an element-wise reduction whose blocking form would split the
// fold among the ranks, each publishing its block in a second phase,
// folds whole instead, on every rank of the call, blocking ones too, as
// long as the parts total at most 4 MiB). So when every other rank has
// posted already, the call finishes before the I-function returns, and a
// Wait that comes after the others have posted only reads: it never
// waits for a rank that is still computing. Otherwise what remains (wait
// for the others' posts, read and combine them) is done by whichever
// comes first: Wait, on the caller's core; Test, once every rank's part
// is there; the next collective call on c, which needs the region and
// finishes the calls before it, as MPI's progress rule asks; or c's
// progress goroutine. The price of one phase is reading every part: a
// rank of a 64 KiB Iallreduce on two ranks reads 128 KiB where the
// blocking form reads 64 KiB and waits once more.
//
// The progress goroutine: one per communicator with unfinished
// nonblocking calls, never one per call. It completes them one after
// another in the order they started and ends when none is left. It
// starts at once for a call that did not post (a part of 256 KiB or
// more, which it posts itself, so that even the copy into the region is
// done in the background; a communicator without a region; a region held
// by an earlier call); for a posted call it starts only if that call is
// still unfinished a millisecond after it started, because Wait finishes a posted
// call in less time than starting a goroutine beside busy ranks takes.
// While it waits for ranks that have not posted it neither spins nor
// yields: it sleeps until another rank posts, so it takes no core from
// the ranks that compute meanwhile, and once woken the operating system
// runs it before them; once every rank has posted, its waits are the
// blocking form's. A call is therefore complete
// without Wait: Test reports it, and the other ranks' later calls are
// not held up by a rank that computes. None is left behind once the
// calls are complete; a call that waits for a rank that never makes it
// holds its communicator's goroutine (and the calls behind it) until its
// ctx ends, which is what the blocking form would do to its caller.
//
// Wait waits for the progress goroutine only when that has begun the
// call: if nobody has, Wait runs it on the caller's core (a posted call once every rank has posted, so that Wait's
// ctx still bounds the wait; a call that did not post when every call
// started before it is complete and Wait's ctx is the call's own, or ends
// only with it). The price of a nonblocking call beside its blocking
// form's own cost is its request: two allocations for a small Iallreduce
// (the request, which holds the ctx that carries the call's number, and
// the closure of its blocking form; the call goes back to a pool once it
// is complete), and, for a large one, starting the progress goroutine,
// which wakes a runtime thread (4-21 µs of the caller's time on the
// 2-core VM). The background work needs a core:
// when the host has fewer cores than busy threads it takes the core of a
// rank that computes, which is what hides it in the caller's wall-clock
// time. Nonblocking calls on one communicator run one at a time, in
// order; to overlap two collectives with each other, start them on
// different communicators (Dup).
//
// What a compute phase hides (decorun bench iallreduce measures it as
// OSU's osu_iallreduce does: 100·(1 − (total − compute)/pure)): a posted
// call's work is done by the ranks' own threads, the copy of the part into
// the region in the I-function, the reading and folding by the last rank
// to post (in its I-function) and by the others in Wait, because handing
// it to another thread costs more than the work of a call under some
// tens of microseconds (waking a sleeping thread took about 10 µs on the
// 2-core VM, and the thread ran 25-45 µs later). So the share hidden is
// what the ranks' waiting for each other is of the call's time: most of
// it for a small call, whose time is mostly waiting, little at 64 KiB,
// where the copy in and the read of the others' parts are most of the
// work; from 256 KiB the progress goroutine does the work while the
// ranks compute, if the host has a core for it. On a host with more
// ranks than cores the operating system runs a computing rank for its
// whole time slice, so the ranks sharing a core compute one after
// another, and one whose Wait needs a post from a rank of its core waits
// for the others' compute phases: no library hides anything there in
// OSU's measure (Open MPI 4.1 neither; see docs/collectives.md).
//
// # Errors
//
// No mismatch that the agreement step can see produces a hang or garbage:
// different collectives (or a collective here and comm's Split or Dup
// there: "collectives: rank 3 called Barrier but rank 0 called Split", and
// Split's or Dup's own error on the other ranks), different element types, different roots, unequal
// lengths where they must be equal (Gather, Allgather, Alltoall,
// ReduceSlice, AllreduceSlice, ReduceScatter, ScanSlice, ExscanSlice, and
// Reduce, Allreduce, Scan and Exscan of slices when any rank's op came
// from Elementwise), a root whose len(data) is not
// divisible by Size() for Scatter, and a local argument error on some rank
// (a wrong number of parts for Scatterv or Alltoallv; an *Into call's out
// whose length differs from in's, or that overlaps in without being it)
// all return an error on
// every rank that names the ranks and values: a [*MismatchError] (errors.Is
// ErrMismatch) or an error wrapping [ErrInvalidArg]. A root out of range is
// ErrInvalidArg on every rank; the rank still takes part in the agreement,
// since a rank that alone passed a bad root must not leave the others
// waiting for it. A bad out, likewise, is not an early return on its own
// rank: the rank reports it in the agreement step, without touching out or
// posting a receive, and every rank returns ErrInvalidArg before any data
// moves ("collectives: AllreduceSliceInto: rank 3 passed out of length 99
// for in of length 100" on every rank; other local errors name only the
// rank elsewhere). Collectives do not check mismatches that would need the
// data itself, nor lengths of whole values passed to Reduce, Allreduce,
// Scan and Exscan with an op of your own (ops such as concatenation accept
// different lengths; an element-wise op of your own should be an element
// op passed to a *Slice call); they call op on what they receive.
//
// An op that panics (or returns a value that cannot be encoded) does not
// crash the rank: the call returns an [*OpError] naming the rank where op
// failed and the panic ("collectives: Allreduce: on rank 3: op panicked:
// ..."). The failing rank goes on with the algorithm's schedule, sending a
// failure report (a typed message; collective data is untyped) wherever it
// would have sent a partial result, and so does every rank that receives
// one, so no rank waits for it, and every rank whose result includes the
// failed combination returns the OpError: with a deterministic op (one
// that fails on the same inputs wherever it runs), every rank of Allreduce
// and AllreduceSlice, the root of Reduce and ReduceSlice, the ranks of Scan
// from the first failing one up. Ranks whose result does not depend on it
// may return normally. The communicator stays usable.
//
// A rank that dies during a collective makes decorun stop the job naming
// it, so no collective waits for a dead rank. With decorun --keep-going
// the job goes on: every survivor's call on a communicator that has the
// dead rank (and every later one there) fails with an error that wraps
// comm.ErrRankLost and names it, whether the call waits for the rank
// itself or for another survivor that has already failed.
//
// # Cancellation
//
// When ctx ends, the call returns ctx.Err() unchanged on that rank. Ranks
// that are waiting for it stay blocked until their own ctx ends, so use one
// deadline for all ranks; a rank that already had all it needed from the
// cancelled rank may complete the call normally. The communicator stays usable, for point-to-point
// and for later collectives, provided every rank made the cancelled call (so
// that the sequence numbers stay in step): messages left over from the
// cancelled call carry its old tag and are never matched by a later
// collective. They do stay buffered at their receivers, holding a part of
// the sender's credit window, until the communicator is closed; if
// cancellation is routine, run collectives on a communicator from Dup and
// Close it after a cancelled call.
package collectives
