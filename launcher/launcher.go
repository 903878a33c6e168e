package launcher

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
)

// Defaults of [Config] fields left zero.
const (
	DefaultKillGrace  = 100 * time.Millisecond // Config.KillGrace
	DefaultMaxPending = 64 << 20               // Config.MaxPending, bytes
)

// MaxLine is the longest output line kept whole; see the package doc.
const MaxLine = 16 << 20

// lineHold is how long a rank's open line (see the package doc) may hold
// the other ranks' output back while it is silent.
const lineHold = time.Second

// Exit codes of the launcher that are not a rank's own.
const (
	ExitUsage    = 2   // bad Config or command line
	ExitTimeout  = 110 // Config.Timeout expired (ETIMEDOUT, as mpirun)
	ExitNotFound = 127 // the program cannot be executed
)

// Config describes one job. Only NP and Program are required.
type Config struct {
	// NP is the number of ranks; at least 1.
	NP int
	// Program is an executable (a name without a slash is looked up in
	// PATH) or a directory holding a Go main package, which Run builds
	// first with the go command found in PATH.
	Program string
	// Args are the program's arguments, without the program name.
	Args []string
	// Env lists variables exported to every rank on top of the launcher's
	// own environment: "NAME=VALUE", or "NAME" to copy the launcher's
	// value (skipped when unset). The DECORUN_* variables of package
	// jobenv always win.
	Env []string

	// Stdin is copied to rank 0; the other ranks read /dev/null. An
	// *os.File other than a terminal or another character device is
	// handed to rank 0 as is. Nil: rank 0 reads /dev/null too. Another
	// reader (a terminal included) is copied into a pipe by a goroutine
	// that Run does not wait for, once the job is over, while Stdin.Read
	// blocks.
	Stdin io.Reader
	// Stdout and Stderr receive the ranks' output lines. Nil means
	// os.Stdout and os.Stderr. Run writes nothing else to them, except the
	// go build output for a Go package, which goes to Stderr.
	Stdout, Stderr io.Writer
	// TagOutput prefixes each output line with "[R] ", R the rank
	// ("[sK.R] " for rank R of the K-th comm.Spawn).
	TagOutput bool
	// OutputDir, when set, sends rank R's output to OutputDir/rank.R/stdout
	// and OutputDir/rank.R/stderr instead of Stdout and Stderr
	// (OutputDir/spawn.K/rank.R/... for rank R of the K-th comm.Spawn).
	OutputDir string

	// Timeout stops the job with exit code 110 after this long. Zero: no
	// limit.
	Timeout time.Duration
	// KillGrace is how long ranks being stopped get between SIGTERM (or
	// the forwarded signal) and SIGKILL. Zero means DefaultKillGrace.
	KillGrace time.Duration
	// Signals, when not nil, delivers signals the launcher received.
	// SIGINT and SIGTERM are forwarded to every rank's process group and
	// then stop the job (exit code 128+N); a second one kills at once.
	// Any other signal is only forwarded. They act at any point, before
	// and while the ranks start too: see Start-up in the package doc.
	Signals <-chan os.Signal

	// KeepGoing lets the job go on when a rank other than rank 0 fails
	// (exits non-zero or dies by a signal): the launcher prints a line
	// naming it, tells the surviving ranks (comm's Lost channel; their
	// calls naming that rank fail with comm.ErrRankLost) and does not stop
	// the job. Rank 0's failure, Abort and exiting without Close still end
	// the job. The job's exit code is then rank 0's (0 when it succeeded).
	// Package deco uses this to rerun a dead worker's tasks.
	KeepGoing bool

	// Hosts, when set, places the ranks on these hosts (decorun -H or
	// --hostfile): by slot (fill each host's slots in order) or, with
	// MapByNode, one rank per host in turn. More ranks than slots needs
	// Oversubscribe. Ranks on this host ("localhost", 127.0.0.1 or its host
	// name) start directly; on every other host the launcher starts
	// `AgentPath agent` through LaunchAgent, and the job's embedded server
	// listens on all interfaces with TLS (a certificate made for the job,
	// pinned by the ranks) as well as the job's token.
	Hosts         []Host
	MapByNode     bool
	Oversubscribe bool
	// LaunchAgent is the command that runs a command on a host, with
	// "{host}" standing for the host name (appended when absent), split
	// into words as a shell would (quotes and backslashes; no expansions,
	// no shell is run). Default:
	// DefaultLaunchAgent (ssh in batch mode). "ip netns exec {host}" runs
	// "hosts" that are network namespaces of this machine.
	LaunchAgent string
	// AgentPath is decorun's path on the other hosts (default: this
	// executable's path: install decorun at the same path everywhere, as
	// mpirun requires of orted).
	AgentPath string
	// ServerAddr is the address of this machine that the other hosts reach
	// the job's server at. Default: the source address of the route to each
	// host (their names must resolve).
	ServerAddr string

	// NATS, when its URL is set, runs the job on an existing NATS server or
	// cluster instead of an embedded one (decorun --nats-url). Every subject
	// of the job lives under a per-job prefix ("decorun.<job id>", the id
	// drawn at random), so jobs sharing a cluster never see each other's
	// traffic; ranks spread over the cluster's servers (rank r tries the
	// r-th URL first). The server's own limits (max_payload, max_pending,
	// write_deadline) then apply: see docs/multihost.md.
	NATS NATSConfig

	// Transport is the ranks' data path (decorun --transport): "auto"
	// (shared memory between ranks on one host, direct TCP between hosts,
	// NATS where neither can be set up), "nats" (everything through the
	// NATS server), "shm" (like auto, but a same-host peer that cannot be
	// reached through shared memory fails the rank at start-up) or "tcp"
	// (direct TCP to every peer, on one host too; a peer it cannot reach
	// fails the rank). Empty: comm's default (comm.DefaultTransport).
	// An export of DECORUN_TRANSPORT in Env (decorun -x) replaces it, so
	// that every rank, remote ones included, gets the same one.
	// Every rank also gets DECORUN_HOST_RANKS, the ranks on its host, and
	// in a multi-host job the ranks on this host DECORUN_TCP_ADDR, the
	// address (ServerAddr) peers on other hosts dial them at.
	Transport string

	// TCPPlain turns off the encryption of the ranks' direct TCP frames
	// (decorun --tcp-encrypt=false), for a trusted network: an on-path
	// attacker can then read, alter and inject frames. Off by default:
	// frames are encrypted whenever the job's NATS connection uses TLS,
	// as every multi-host job's does. Connections stay authenticated.
	// Every rank gets DECORUN_TCP_ENCRYPT; an export of it in Env
	// (decorun -x) replaces this field, as for Transport.
	TCPPlain bool

	// NoBind leaves the ranks unbound (decorun --bind-to none). By
	// default, when a host's ranks are no more than the CPUs the launcher
	// (or the host's agent) may use there, each rank is bound to an equal
	// share of them of its own, as mpirun binds to cores: ranks polling
	// shared memory then never share a CPU, nor move to one whose caches
	// are cold. Ranks that outnumber the CPUs run unbound, as do the ranks
	// of a spawn (comm.Spawn). A bound rank gets DECORUN_CPUS, its CPUs,
	// and GOMAXPROCS set to at least 2 unless Env or the environment sets
	// it.
	NoBind bool

	// MaxPending is the server's limit on bytes queued for one client
	// connection. Zero means DefaultMaxPending.
	MaxPending int64

	// Trace, when set, records every rank's communication (decorun
	// --trace; see docs/tracing.md) and writes the merged timeline to this
	// file when the job ends, whatever its outcome: a self-contained HTML
	// page when the name ends in .html, else trace-event JSON (Perfetto,
	// chrome://tracing). Report prints an mpiP-style summary to Stderr when
	// the job ends (decorun --report); ReportJSON writes it as JSON to this
	// file. While any of them is on, KillGrace defaults to TraceKillGrace.
	Trace      string
	Report     bool
	ReportJSON string
}

// NATSConfig locates an existing NATS server or cluster and the
// credentials to present to it. File names must be valid on every host that
// runs a rank.
type NATSConfig struct {
	URL       string // nats://host:port, or several separated by commas
	Token     string
	User      string
	Password  string
	CredsFile string // a .creds file (user JWT and nkey seed)
	NkeyFile  string // an nkey seed file
	CAFile    string // PEM CA certificates for the server's TLS certificate
	CertFile  string // client certificate (PEM) for servers that verify clients
	KeyFile   string // its key
}

// ExitError is how a job that did not succeed ended. Run returns it for
// every failure except ctx cancellation.
type ExitError struct {
	// Code is the exit status the launcher process should end with.
	Code int
	// Rank is the rank the failure is about, or -1. Ranks started by
	// comm.Spawn count on from NP, in the order they were asked for (Msg
	// names them as "rank sK.R").
	Rank int
	// Msg is one line for the user, without a "decorun: " prefix, such as
	// "rank 3 (pid 1234) exited with code 3".
	Msg string
	// Err is the underlying cause, if any.
	Err error
}

func (e *ExitError) Error() string { return e.Msg }

// Unwrap returns the underlying cause.
func (e *ExitError) Unwrap() error { return e.Err }

func usageError(format string, args ...any) *ExitError {
	return &ExitError{Code: ExitUsage, Rank: -1, Msg: fmt.Sprintf(format, args...)}
}

// validate checks cfg and fills in defaults.
func (cfg *Config) validate() error {
	if cfg.NP < 1 {
		return usageError("-n must be at least 1, got %d", cfg.NP)
	}
	if cfg.Program == "" {
		return usageError("no program given")
	}
	for i, h := range cfg.Hosts {
		if err := checkHostName(h.Name); err != nil {
			return usageError("host %d of %d: %v", i+1, len(cfg.Hosts), err)
		}
	}
	for _, e := range cfg.Env {
		name, v, set := strings.Cut(e, "=")
		if name == "" {
			return usageError("-x %q: no variable name", e)
		}
		if !set {
			v, set = os.LookupEnv(name) // a bare -x NAME exports nothing when NAME is unset
		}
		if name == jobenv.EnvTransport && set {
			tr, err := jobenv.ParseTransport(v)
			if err != nil {
				return usageError("-x: %v", err)
			}
			cfg.Transport = tr
		}
		if name == jobenv.EnvTCPEncrypt && set {
			plain, err := jobenv.ParseTCPEncrypt(v)
			if err != nil {
				return usageError("-x: %v", err)
			}
			cfg.TCPPlain = plain
		}
	}
	if cfg.Timeout < 0 {
		return usageError("--timeout must not be negative, got %v", cfg.Timeout)
	}
	if cfg.KillGrace < 0 {
		return usageError("kill grace must not be negative, got %v", cfg.KillGrace)
	}
	if err := cfg.checkTraceFiles(); err != nil {
		return err
	}
	if cfg.KillGrace == 0 && cfg.tracing() {
		cfg.KillGrace = TraceKillGrace
	}
	if cfg.KillGrace == 0 {
		cfg.KillGrace = DefaultKillGrace
	}
	if _, err := jobenv.ParseTransport(cfg.Transport); err != nil {
		return usageError("--transport (or %s) must be %s, %s, %s or %s, got %q", jobenv.EnvTransport, jobenv.TransportAuto, jobenv.TransportNATS,
			jobenv.TransportSHM, jobenv.TransportTCP, cfg.Transport)
	}
	if cfg.MaxPending < 0 {
		return usageError("max pending must not be negative, got %d", cfg.MaxPending)
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.NATS.URL == "" && cfg.NATS != (NATSConfig{}) {
		return usageError("NATS credentials given without --nats-url")
	}
	if (cfg.NATS.CertFile == "") != (cfg.NATS.KeyFile == "") {
		return usageError("--nats-cert and --nats-key go together")
	}
	if cfg.LaunchAgent == "" {
		cfg.LaunchAgent = DefaultLaunchAgent
	}
	if _, err := splitWords(cfg.LaunchAgent); err != nil {
		return usageError("--launch-agent %q: %v", cfg.LaunchAgent, err)
	}
	if cfg.AgentPath == "" {
		p, err := os.Executable()
		if err != nil {
			return usageError("cannot tell decorun's own path for remote hosts: %v", err)
		}
		cfg.AgentPath = p
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	return nil
}

// Run runs the job cfg describes and blocks until every rank has exited,
// the job's server is shut down and every goroutine Run started has ended
// (see Config.Stdin for the one exception). It returns nil when all ranks
// exited 0 (and each rank that joined closed its communicator), ctx.Err()
// when ctx ended the job, and an [*ExitError] otherwise. Run may be called
// concurrently for different jobs.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	var place []int
	remote := false
	if len(cfg.Hosts) > 0 {
		var err error
		if place, err = Map(cfg.Hosts, cfg.NP, cfg.MapByNode, cfg.Oversubscribe); err != nil {
			return err
		}
		for _, h := range place {
			remote = remote || !isLocal(cfg.Hosts[h].Name)
		}
	}
	if err := checkCapacity(&cfg, place); err != nil {
		return err
	}

	// Until the loop of the job takes over Config.Signals, a stopping
	// signal cancels w.ctx, which every step of the set-up obeys.
	w := watchSetup(ctx, cfg.Signals)
	defer w.stop(ctx)
	var srv *jobServer
	var remoteURL string
	path, cleanup, err := resolveProgram(w.ctx, &cfg)
	defer cleanup()
	if err == nil {
		srv, remoteURL, err = jobServerFor(w.ctx, cfg, place, remote)
	}
	if serr := w.stop(ctx); serr != nil {
		if srv != nil {
			srv.close()
		}
		return serr
	}
	if err != nil {
		return err
	}
	defer srv.close()

	j, err := newJob(cfg, path, srv)
	if err != nil {
		return err
	}
	j.place, j.remoteURL, j.remoteFiles = place, remoteURL, map[string]*os.File{}
	return j.run(ctx)
}

// jobServerFor connects to the NATS server the job runs on, starting an
// embedded one unless Config.NATS names one. remoteURL is how ranks on other
// hosts reach an embedded server.
func jobServerFor(ctx context.Context, cfg Config, place []int, remote bool) (srv *jobServer, remoteURL string, err error) {
	if cfg.NATS.URL != "" {
		srv, err = connectExternal(ctx, cfg.NATS)
		if err != nil {
			err = &ExitError{Code: 1, Rank: -1, Msg: jobenv.Redact("cannot connect to the NATS server at " + cfg.NATS.URL + ": " + err.Error()),
				Err: jobenv.RedactError(err)}
		}
		return srv, "", err
	}
	var addr string
	if remote {
		if addr, err = serverAddr(ctx, cfg, place); err != nil {
			return nil, "", err
		}
	}
	srv, err = startServer(ctx, cfg.MaxPending, addr)
	if err != nil {
		return nil, "", &ExitError{Code: 1, Rank: -1, Msg: "cannot start the job's NATS server: " + err.Error(), Err: err}
	}
	return srv, srv.remoteURL, nil
}
