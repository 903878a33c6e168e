// Package trace records what a rank's communication did, cheaply, and turns
// the records of every rank of a job into one timeline (a Chrome/Perfetto
// trace-event JSON file, or a self-contained HTML page) and an mpiP-style
// report. decorun --trace, --report and --report-json use it; comm,
// collectives and deco feed it.
//
// # What is recorded
//
// One [Event] per call, with its start and end on this process's monotonic
// clock:
//
//   - comm: Send, Recv, RecvInto, Isend, Irecv, Wait, Test (when it finds a
//     request complete), Probe, Iprobe, Sendrecv and their typed forms:
//     the peer (world rank), tag, bytes, communicator id and, for a message,
//     its id (below);
//   - collectives: the operation, the bytes this rank gave the agreement
//     step (the encoded value), and the algorithm chosen (binomial tree,
//     recursive doubling, fan-out, shared-memory region, hierarchical, ...);
//   - deco: every task run on this rank (function name, start, end), and on
//     rank 0 every task's life from queued to settled, with the rank it ran
//     on and whether it was rerun after its worker was lost;
//   - the job: the start-up barrier (Init), ranks lost (--keep-going),
//     Abort, the signal that stopped the rank, and Close.
//
// # How it is cheap
//
// With tracing off every hook is one atomic load of a package variable and
// a predictable branch: no allocation, no lock, no time read. With tracing
// on, [Start] preallocates one buffer of fixed-size slots per process
// (DECORUN_TRACE_EVENTS slots, default 65536; events past the end are
// counted as dropped, never grow the buffer). [Record] claims a slot with
// one atomic add, copies the event in and marks it complete with one atomic
// store: no lock, no allocation (names are static strings). Times are two
// monotonic clock reads (time.Since of the process's epoch). With call sites
// on (decorun --report), Record also copies the caller's program counters
// (runtime.Callers) of comm and collective events into a parallel
// preallocated array; they are resolved to file:line of the first frame
// outside decorun's own packages only when the buffer is shipped.
// Start touches every page of the buffers, so that recording never waits
// for a page fault. BenchmarkRecord and BenchmarkRecordSites measure the
// cost per event (0.1-0.15 µs, and 0.5-0.9 µs with call sites, on the
// loaded 2-core VM of docs/tracing.md), BenchmarkOff the check with
// tracing off (under 1 ns).
//
// # Matching sends to receives
//
// With tracing on, comm gives every message a per-sender id (the engine's
// message counter, which rendezvous and long messages use anyway) and puts
// it in the frame header's id field, which eager frames otherwise leave
// zero; the receiving engine keeps it with the message, so the receive that
// matched it records (source world rank, id) and the send recorded (its own
// rank, id). The merge draws a flow arrow for every pair. With tracing off
// eager frames carry no id, as before.
//
// # Shipping the buffers
//
// decorun --trace sets DECORUN_TRACE=launcher in every rank's environment.
// A rank flushes its buffer once, on the first of: Close of the world
// communicator, Abort, or SIGTERM/SIGINT (comm catches them while tracing,
// flushes, then dies by the same signal, so that a job being stopped keeps
// what its surviving ranks recorded; the launcher gives ranks a longer kill
// grace while tracing). A flush encodes a [Dump] (gob) and sends it to the
// launcher in chunks (NATS requests on the job's trace subject, each
// answered once stored), so the dump is complete exactly when its last
// chunk was answered. The launcher merges whatever complete dumps it holds
// when the job ends, whatever the job's outcome, and names in the file's
// metadata the ranks it has none of.
//
// In join mode (ranks started by srun or Kubernetes, no decorun launcher),
// DECORUN_TRACE=PATH makes every rank write its dump to PATH.rank<N>;
// decorun trace merge turns those files into a trace.
//
// # Clocks
//
// Ranks on different hosts have different clocks. At start-up, just after
// the start-up barrier, each rank asks the launcher for its clock over NATS
// a few times and keeps the answer with the shortest round trip: offset =
// launcher time - midpoint of the request. The merge puts every event on the
// launcher's clock (event time + the rank's offset) and states each rank's
// offset and the round trip it was measured with in the file's metadata
// (otherData.ranks); the error is at most half that round trip. In join
// mode there is no launcher: clocks are taken as they are (offset 0, stated
// as not measured).
//
// # Output
//
// [Merge] builds the trace-event JSON: one process per rank named "rank R
// (host)", threads (tracks) per kind: comm, collectives, deco tasks, job,
// with extra lanes ("comm 2", ...) where calls of one kind overlap in time
// (concurrent goroutines), so that every track's complete ("X") events nest
// properly; deco's queued-to-settled spans are async ("b"/"e") events; flow
// events ("s"/"f", one id per message) join sends to receives. [HTML] renders
// the same data as one HTML page with inline JavaScript and CSS that needs
// no network. [Summarize] computes the end-of-job [Report]; its call sites
// are the first frame of the user's code, and messages that package
// collectives or deco sent on their own are attributed to them
// ([SiteCollectives], [SiteDeco]) rather than to a line of the program.
// [Validate] checks a file against the trace-event format.
package trace
