// Package launcher runs one decorun job: N copies of a program (the ranks) on
// this host, wired to a private NATS server, with their output forwarded and
// their lives tied to the job.
//
// [Run] is what `decorun -n N PROG [ARGS...]` does; cmd/decorun only parses
// flags into a [Config] and maps the returned [*ExitError] to an exit status.
//
// # What a job looks like
//
// Run, in order:
//
//  1. validates the Config (usage errors: exit code 2): an empty program
//     name, a host name that is empty, starts with "-" or holds white space,
//     and more ranks than this host can run (see Limits) are refused before
//     anything starts; resolves the program like os/exec does (a name
//     without a slash is looked up in PATH; a program that cannot be
//     executed: exit code 127), or, when Program is a directory holding .go
//     files, builds it with `go build -o TMP/NAME DIR` into a temporary
//     directory that is removed before Run returns (a package other than
//     main: usage error; build failure: the compiler output goes to Stderr,
//     exit code 1);
//  2. starts an embedded nats-server on 127.0.0.1 with a random port and a
//     random 32-byte token (hex), NoSigs (the launcher owns signals), a write
//     deadline of 24 h (a rank stopped with SIGSTOP must not have its
//     connection cut: ranks bound what is queued for each other with their
//     own credit windows) and a per-connection MaxPending of 64 MiB;
//  3. connects an in-process client, subscribes to the control subject
//     [jobenv.CtlSubject] and flushes, before any rank exists;
//  4. starts the ranks one at a time from its event loop, each with the
//     variables of package jobenv (DECORUN_RANK, DECORUN_SIZE,
//     DECORUN_LOCAL_RANK, DECORUN_LOCAL_SIZE, DECORUN_JOB, DECORUN_NATS_URL,
//     DECORUN_SECRET, DECORUN_JOB_KEY,
//     DECORUN_PREFIX) added to the launcher's environment
//     and the exports of [Config.Env]; before each start the loop handles
//     every event that is ready (see Start-up);
//  5. waits for every rank to exit, reacting at once to each exit, control
//     message, signal and the timeout (one goroutine per rank blocks in
//     waitid and feeds one event loop);
//  6. tears down: every rank gone, output drained, server shut down, all its
//     own goroutines ended; only then does Run return.
//
// # Start-up
//
// A job can be stopped at any moment of its start-up, as soon as it is
// running. Until the first rank starts (building a Go package, starting
// the server, connecting to [Config.NATS], finding the route to other
// hosts), SIGINT and SIGTERM on [Config.Signals] and the end of ctx abort
// the step under way (the go command's process group is killed, a
// connection being made is closed) and Run returns at once with 128+N, or
// ctx.Err(); other signals are dropped, as there is no rank to forward them
// to. While ranks are being started, the event loop handles every exit,
// control message, signal, timer and the end of ctx that is ready before
// it starts the next rank (a fork and exec, a few ms), so whatever stops
// the job (a signal, the timeout, ctx, a rank that fails, Abort) stops
// the launch too: no further rank starts, the ranks already started are
// stopped as below, and the job ends with the code of what stopped it.
// A signal other than SIGINT and SIGTERM reaches the ranks started by
// then. Agents of other hosts are started the same way, one per step,
// after the ranks of this host.
//
// Binding: unless [Config.NoBind], the ranks of the job's own world on a
// host that holds at least as many CPUs as ranks (the CPUs the launcher,
// or that host's agent, may run on) are each bound to an equal share of
// them, whole cores when the ranks are no more than the cores
// (internal/proc.Binding, from the cores read once per job): the
// starting thread takes the rank's CPU mask for the fork and gets its own
// back (proc.StartOn), so the rank is
// bound from its first instruction. The rank gets DECORUN_CPUS and, unless
// set, GOMAXPROCS of at least 2; comm then counts it as having a core of
// its own (it polls where crowded ranks yield). Costs: two
// sched_setaffinity calls per rank started.
//
// # Limits
//
// Before anything starts, Run compares the ranks placed on this host with
// what the host can run and returns a usage error (exit code 2) naming
// every limit that starting them would hit, with the number of ranks that
// fit under it. Per rank on this host the launcher keeps 3 open files
// (the rank's pidfd and its two output pipes; 1 with OutputDir) plus one
// for the rank's connection to the embedded server (each remote rank's
// connection counts too), and a thread that waits for it; each rank is
// one more task. The limits checked are RLIMIT_NOFILE; kernel.pid_max,
// kernel.threads-max, the pids cgroup and, for users without
// CAP_SYS_RESOURCE, RLIMIT_NPROC, against the tasks already running; the
// Go runtime's limit of 10000 threads (runtime/debug.SetMaxThreads); and
// memory, at 320 KiB per rank (what a rank that does nothing costs) against
// MemAvailable and the memory cgroup. These are lower bounds: a program
// that uses more threads, files or memory can still run out, in which case
// the rank that cannot start fails the job with a message naming the kind
// of limit. The number of cores is no limit: more ranks than cores is
// allowed. Limits of other hosts are not checked beforehand; a rank that
// cannot start there fails the job.
//
// # Control messages
//
// Ranks (package comm) send [jobenv.Ctl] messages on the control subject:
// OpJoin (published) marks the rank as having a communicator; OpFin (request)
// marks it closed, and the launcher replies "ok" after recording it, so a rank
// that got the reply and then exits is never misjudged; OpAbort (request)
// records "rank R called Abort(C)" as the job's failure, replies "ok" and
// stops the job. A rank that joined and then exits with status 0 without
// OpFin has failed (its peers may wait for it forever). A program that never
// joins (decorun -n 4 hostname) just runs.
//
// Because OpJoin is a plain publish, a rank should flush it before it can
// exit. When a rank exits 0 without OpFin, the launcher publishes a marker on
// the control subject and judges the exit only when the marker comes back:
// the server delivers the subject's messages to the launcher in the order it
// processed them, so a join the rank flushed before exiting is seen first.
//
// # Spawn
//
// A rank can ask for more ranks while the job runs (comm.Spawn). The
// request is a control message, OpSpawn: a request on the control subject
// of the asking rank's world (the job's, or a spawned world's, which the
// launcher subscribes to before it starts that world's ranks) carrying
// the program, its arguments, the number of ranks n and the spawning
// group as ranks of that world. The event loop answers it: it resolves
// the program like the job's (an executable; a name without a slash is
// looked up in PATH; a Go package directory is refused, build it first)
// and answers with an error naming the program when it cannot be
// executed, before any process starts; otherwise it places the n ranks
// with the job's rules (Hosts, MapByNode and Oversubscribe, the slots
// counted afresh for the n ranks; the launch agent for other hosts),
// replies with the spawn's number K and the host of every rank of the
// intercommunicator, and adds the new ranks to the steps of the launch,
// which the loop takes one at a time as it takes the job's own. The new
// ranks get the job's environment with their own world (DECORUN_RANK
// 0..n-1, DECORUN_SIZE n, job id ID-sK, prefix P.sK) and the
// intercommunicator's job (DECORUN_SPAWN K, DECORUN_PARENT_JOB ID-xK,
// DECORUN_PARENT_PREFIX P.xK, DECORUN_PARENT_SIZE, the spawning group's
// size, and DECORUN_PARENT_HOST_RANKS, its ranks on this rank's host);
// an agent started for them beats on the job's heartbeat subjects. From
// then on they are ranks of the job: their exits, joins and closes are
// judged as any rank's; one that exits before it joined (never called
// comm.Init) ends the job whatever its status, since its parents wait for
// it; under KeepGoing one that fails after it joined is lost, never fatal
// (rank 0 of a spawned world is not special), and its loss is published
// to its world and to the intercommunicator's job under the rank it has
// in each (as is the loss of a rank of a spawning group), and as
// OpSpawnLost (the spawn's number and its rank) to the world that asked
// for it, whose ranks may still wait for it in Spawn; their output
// is tagged "[sK.R] " and written under OutputDir/spawn.K/rank.R; and
// signals, the timeout and teardown reach them like every rank. Spawn is
// refused once the job is being stopped. The capacity check of Limits
// covers the job's own ranks only.
//
// # Guarantees
//
// No orphan ranks. Each rank is the leader of its own process group
// (Setpgid) and has a parent-death signal of SIGKILL (Pdeathsig), so it dies
// with the launcher even when the launcher is killed with SIGKILL. Every exit
// path of Run (success, failure, abort, timeout, signal, ctx cancellation,
// a failed start) kills the process groups of the ranks still alive and waits
// for them. When a rank exits, the rest of its process group (children it
// left behind) is killed with SIGKILL at once. Signals go to a group only
// while its leader is unreaped (waitid with WNOWAIT), so a recycled process
// id can never be hit. Limits: Pdeathsig covers the rank itself, not its
// children; a descendant that leaves the group (setsid, setpgid) escapes the
// group kill; Pdeathsig fires when the OS thread that started the rank exits,
// which in Go happens only when a goroutine locked to its thread exits, so
// Run must not be called from such a goroutine.
//
// Failure handling and exit codes. The first failure stops the job: the
// remaining ranks get SIGTERM (or the signal the launcher received), and
// SIGKILL after [Config.KillGrace] (default 100 ms). A stop is reported as
// an [*ExitError] whose Code is:
//
//   - 0 (Run returns nil) when every rank exits 0;
//   - the rank's exit code when a rank exits non-zero, 128+N when it is
//     killed by signal N; when several ranks failed before the launcher
//     began to stop the job, the lowest rank is reported (like mpirun);
//   - the Abort code (1 when it is 0 or beyond 255) for Abort;
//   - 1 for a rank that joined and exited 0 without closing its communicator;
//   - 110 (ETIMEDOUT, as mpirun) when [Config.Timeout] expires;
//   - 128+N when the launcher received signal N (SIGINT, SIGTERM) on
//     [Config.Signals]; other signals on that channel are only forwarded;
//   - 2 for a bad Config, 127 for a program that cannot be executed, 1 when
//     building a Go package fails or the server cannot start.
//
// With [Config.KeepGoing] (decorun --keep-going) a rank other than 0 that
// fails does not stop the job: the launcher prints one line naming it and
// how it ended, publishes a jobenv.OpLost event on jobenv.EventSubject (comm
// turns it into c.Lost() and comm.ErrRankLost for calls naming that rank)
// and goes on. Rank 0's failure, Abort, and exiting 0 without Close still
// stop the job; the exit code is then that of whatever stopped it, or 0.
//
// Ranks that die because the launcher stopped the job are not reported. When
// ctx is cancelled the job is stopped the same way and Run returns ctx.Err().
//
// Output. By default each rank's stdout and stderr are pipes read by the
// launcher and copied line by line to [Config.Stdout] and [Config.Stderr],
// so that lines of different ranks never mix; with [Config.TagOutput] each
// line starts with "[R] ". A line goes on as soon as it ends, with a
// newline or with a carriage return (a progress bar's frames end so and
// redraw their line on decorun's terminal). The start of a line not ended
// yet goes on when its rank has been silent for 100 ms, so that a prompt or
// a frame shows while the rank waits; from then on that rank's line holds
// the destination and the other ranks' lines wait until it ends, however
// slowly it is written, unless it stays silent for a second: then decorun
// ends it with a newline, lets the others go on, and the rank's next output
// starts a new, tagged line. A last line without a newline gets one added
// at end of file. A line longer than [MaxLine] bytes goes on in pieces of
// MaxLine bytes, held together the same way. With [Config.OutputDir]
// DIR, rank R writes straight into DIR/rank.R/stdout and DIR/rank.R/stderr
// (created, truncated; the Open MPI layout minus its job-number level) and
// nothing reaches the terminal. Stdin goes to rank 0 only: an *os.File is
// passed to it as is, unless it is a terminal (rank 0 is not in the
// terminal's foreground process group, so reading it would stop rank 0 with
// SIGTTIN); a terminal or another reader is copied into a pipe that is
// closed at EOF; the other ranks read from /dev/null.
//
// Secrets in messages. A password or token in a URL (nats://user:pass@host,
// nats://token@host) is replaced by "xxxxx" in every message of the
// launcher, of its agents and of the ranks' connection errors
// (jobenv.Redact); the ranks still get the URL as given.
//
// Security. A single-host job's server listens on 127.0.0.1 only and every
// client must present the job's token, drawn from crypto/rand for each job.
// The token reaches the ranks through the environment, which only the same
// user (and root) can read (/proc/PID/environ is mode 0400). So does the
// job key (DECORUN_JOB_KEY, also random per job, with --nats-url too, and
// never sent over NATS): the ranks derive from it the names and
// authentication of their shared-memory segments and the key of their
// direct TCP connections, which nobody else on a shared NATS account can
// then derive. A multi-host job adds TLS (see Several hosts).
//
// # Costs
//
// Per job: one in-process NATS server (a few goroutines, one TCP listener),
// three goroutines per rank when output goes to the terminal (waiter, stdout
// and stderr readers; one with OutputDir), of which the waiter holds an OS
// thread while it blocks in waitid, the open files listed under Limits, and
// one extra copy of every output byte through the launcher. Start-up is dominated by the server
// (a few ms) and, for a Go package, by `go build`. Teardown after a failure
// takes at most KillGrace plus the time the kernel needs to reap the ranks.
//
// # Several hosts
//
// With [Config.Hosts] ranks are placed by slot or by node (see [Map]). Ranks
// on this host start as above; for every other host the launcher starts one
// agent, `decorun __agent` (package internal/agent), through
// [Config.LaunchAgent] (ssh by default), sends it the job spec as JSON on
// its stdin (the token never appears on a command line), and reads its
// stdout: "started" (pid), "out" (one whole line), "exit" (status). Signals
// for remote ranks go down the same pipe. The embedded server then listens
// on all interfaces with TLS, a certificate made in memory per job and
// pinned by the ranks, plus the token. Liveness never depends on those
// streams: the launcher and every agent publish heartbeats on the job's
// server every 0.5 s, from goroutines that never wait for output; the
// launcher ends the job naming the host after 3 s without one (30 s before
// the first, for a slow ssh), and an agent that loses the launcher kills
// its ranks within 3.5 s however much they print. Output is paused, never
// dropped: when decorun's stdout is read slowly, each agent holds up to
// 1 MiB and then the ranks' writes block. Each remote rank also has
// Pdeathsig against its agent. Costs per remote host: one agent process,
// three launcher goroutines (reader, writer and heartbeat watcher, plus one
// heartbeat publisher per job), a JSON line per output line, and 4
// heartbeats a second.
//
// With [Config.NATS] no server is started: the job runs on an existing
// server or cluster under its per-job subject prefix.
//
// Run is Linux only (process groups, Pdeathsig, waitid).
package launcher
