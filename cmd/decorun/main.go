// Command decorun runs an SPMD job: N copies of a program that talk to each
// other through package comm.
//
//	decorun -n 4 ./examples/hello       # a Go package: built first
//	decorun -np 8 ./ring -iterations 10 # flags after the program are its own
//	decorun -n 2 --tag-output -x GOMAXPROCS=1 hostname
//	decorun -n 4 --trace pi.html --report ./examples/pi # timeline and summary (docs/tracing.md)
//
// decorun exits 0 when every rank exits 0; otherwise with the failed rank's
// code (128+N for signal N), the Abort code, 110 on --timeout, 130 on
// SIGINT, 2 on a usage error and 127 when the program cannot be executed.
// See package launcher for the rules.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"github.com/decorun/decorun/internal/agent"
	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/launcher"
	"github.com/urfave/cli/v2"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == launcher.AgentArg {
		// Started by another host's decorun through the launch agent.
		os.Exit(agent.Run(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// usageError is a command-line mistake: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// run is decorun with its arguments and files; it returns the exit code.
func run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	var cfg launcher.Config
	ran := false // the Action filled cfg (not --help)
	app := &cli.App{
		Name:      "decorun",
		Usage:     "run N copies of a program as one SPMD job",
		UsageText: "decorun [-n N] [options] PROG [ARGS...]\n\nPROG is an executable (looked up in PATH) or a directory holding a Go main\npackage, which decorun builds first. Everything after PROG goes to PROG.",
		Flags: slices.Concat([]cli.Flag{
			&cli.IntFlag{Name: "n", Aliases: []string{"np"}, Value: 1, Usage: "number of ranks `N`"},
			&cli.StringSliceFlag{Name: "x", Usage: "export `NAME=VALUE` (or NAME, copied from decorun's environment) to every rank; repeatable"},
			&cli.BoolFlag{Name: "tag-output", Usage: "prefix each output line with [RANK] ([sK.RANK] for the ranks of the K-th comm.Spawn)"},
			&cli.StringFlag{Name: "output-filename", Usage: "write rank R's output to `DIR`/rank.R/stdout and DIR/rank.R/stderr instead of the terminal (DIR/spawn.K/rank.R for the ranks of the K-th comm.Spawn)"},
			&cli.StringFlag{Name: "timeout", Usage: "stop the job and exit 110 after `D` (a Go duration such as 90s or 2m, or seconds)"},
		}, placeFlags(), []cli.Flag{
			&cli.StringFlag{Name: "nats-url", Usage: "run the job on an existing NATS server or cluster at `URL` (comma-separated for several) instead of an embedded server"},
			&cli.StringFlag{Name: "nats-token", EnvVars: []string{"DECORUN_NATS_TOKEN"}, Usage: "token for --nats-url"},
			&cli.StringFlag{Name: "nats-user", EnvVars: []string{"DECORUN_NATS_USER"}, Usage: "user for --nats-url"},
			&cli.StringFlag{Name: "nats-password", EnvVars: []string{"DECORUN_NATS_PASSWORD"}, Usage: "password for --nats-url (better in $DECORUN_NATS_PASSWORD than on the command line)"},
			&cli.StringFlag{Name: "nats-creds", Usage: "credentials `FILE` (user JWT and nkey seed) for --nats-url"},
			&cli.StringFlag{Name: "nats-nkey", Usage: "nkey seed `FILE` for --nats-url"},
			&cli.StringFlag{Name: "nats-ca", Usage: "CA certificates `FILE` (PEM) to verify the --nats-url server's TLS certificate"},
			&cli.StringFlag{Name: "nats-cert", Usage: "client certificate `FILE` (PEM) for --nats-url"},
			&cli.StringFlag{Name: "nats-key", Usage: "client certificate key `FILE` (PEM) for --nats-url"},
			&cli.StringFlag{Name: "transport", EnvVars: []string{jobenv.EnvTransport}, Usage: "data path between ranks: `auto` (shared memory on one host, direct TCP between hosts, NATS where neither can be set up), nats (everything through NATS), shm (like auto; a same-host rank unreachable through shared memory is an error) or tcp (direct TCP to every rank, on one host too; a rank it cannot reach is an error); default auto"},
			tcpEncryptFlag(),
			&cli.BoolFlag{Name: "keep-going", Usage: "when a rank other than 0 fails, tell the others and go on (comm.ErrRankLost, deco reruns its tasks) instead of stopping the job"},
		}, traceFlags()),
		HideHelpCommand:           true,
		Commands:                  append(benchCommands(), traceCommands()...), // decorun bench: bench.go; decorun trace: trace.go
		HideVersion:               true,
		DisableSliceFlagSeparator: true, // -x A=1,2 is one variable
		Reader:                    stdin,
		Writer:                    stdout,
		ErrWriter:                 stderr,
		ExitErrHandler:            func(*cli.Context, error) {}, // run maps errors to codes
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return &usageError{err.Error()}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return &usageError{"no program given (usage: decorun -n N PROG [ARGS...])"}
			}
			if c.Args().First() == "" {
				return &usageError{"the program name is empty (usage: decorun -n N PROG [ARGS...])"}
			}
			ran = true
			cfg.NP = c.Int("n")
			cfg.Program = c.Args().First()
			cfg.Args = c.Args().Tail()
			cfg.Env = c.StringSlice("x")
			cfg.KeepGoing = c.Bool("keep-going")
			cfg.Transport = c.String("transport")
			cfg.TCPPlain = !c.Bool("tcp-encrypt")
			cfg.Trace, cfg.Report, cfg.ReportJSON = c.String("trace"), c.Bool("report"), c.String("report-json")
			if err := placement(c, &cfg); err != nil {
				return err
			}
			cfg.NATS = launcher.NATSConfig{URL: c.String("nats-url"), Token: c.String("nats-token"),
				User: c.String("nats-user"), Password: c.String("nats-password"),
				CredsFile: c.String("nats-creds"), NkeyFile: c.String("nats-nkey"),
				CAFile: c.String("nats-ca"), CertFile: c.String("nats-cert"), KeyFile: c.String("nats-key")}
			cfg.TagOutput = c.Bool("tag-output")
			cfg.OutputDir = c.String("output-filename")
			if s := c.String("timeout"); s != "" {
				d, err := parseTimeout(s)
				if err != nil {
					return err
				}
				cfg.Timeout = d
			}
			return nil
		},
	}
	if err := app.Run(args); err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "decorun: %s\n", ue.msg)
			return launcher.ExitUsage
		}
		fmt.Fprintf(stderr, "decorun: %v\n", err)
		return 1
	}
	if !ran {
		return 0 // --help
	}

	if usableStdin(stdin) {
		cfg.Stdin = stdin
	}
	cfg.Stdout, cfg.Stderr = stdout, stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	cfg.Signals = sigs

	err := launcher.Run(context.Background(), cfg)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "decorun: %v\n", jobenv.Redact(err.Error()))
	var ee *launcher.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

// parseTimeout accepts a Go duration ("90s", "1m30s") or, like mpirun, a
// number of seconds ("90", "1.5").
func parseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != f || f > float64(1<<62)/float64(time.Second) {
			return 0, &usageError{fmt.Sprintf("--timeout: invalid duration %q (want e.g. 90s, 2m or a number of seconds)", s)}
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d <= 0 {
		return 0, &usageError{fmt.Sprintf("--timeout must be positive, got %q", s)}
	}
	return d, nil
}

// usableStdin reports whether decorun should forward f to rank 0: f must be
// open, and a terminal only while decorun is in its foreground process group
// (reading it from the background would stop decorun with SIGTTIN).
func usableStdin(f *os.File) bool {
	if f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		return true
	}
	var pgrp int32
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pgrp)))
	if e != 0 {
		return true // a character device that is not a terminal, such as /dev/null
	}
	return int(pgrp) == syscall.Getpgrp()
}

// placeFlags are the flags that place ranks on hosts, shared by decorun
// and decorun bench.
// tcpEncryptFlag is decorun's and decorun bench's --tcp-encrypt.
func tcpEncryptFlag() cli.Flag {
	return &cli.BoolFlag{Name: "tcp-encrypt", Value: true, EnvVars: []string{jobenv.EnvTCPEncrypt},
		Usage: "encrypt the ranks' direct TCP frames (AES-GCM) whenever the job uses TLS, as every multi-host job does; " +
			"--tcp-encrypt=false sends them in CLEAR TEXT, for a trusted cluster network only: anyone on the path can then read, " +
			"alter and inject frames (connections are still authenticated at set-up). Every rank must have the same setting"}
}

func placeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "H", Aliases: []string{"host"}, Usage: "run on these hosts: `h1:4,h2:4` (slots per host; 1 when omitted)"},
		&cli.StringFlag{Name: "hostfile", Usage: "hosts from `FILE` in Open MPI's format: NAME [slots=N] [max_slots=M] per line"},
		&cli.StringFlag{Name: "map-by", Value: "slot", Usage: "place ranks by `slot` (fill each host in turn) or node (one per host in turn)"},
		&cli.BoolFlag{Name: "oversubscribe", Usage: "allow more ranks on a host than it has slots"},
		&cli.StringFlag{Name: "launch-agent", Usage: "command that runs a command on a host, {host} for its name (default: " + launcher.DefaultLaunchAgent + ")"},
		&cli.StringFlag{Name: "bind-to", Value: "core", Usage: "bind ranks to CPUs: `core` (each rank of a host to an equal share of its CPUs, as mpirun does, when the ranks are no more than the CPUs; otherwise unbound) or none"},
		&cli.StringFlag{Name: "server-addr", Usage: "`ADDR` of this machine that the other hosts reach the job's server at (default: found from the route to them)"},
	}
}

// placement sets cfg's hosts and placement from placeFlags.
func placement(c *cli.Context, cfg *launcher.Config) error {
	if c.IsSet("H") && c.IsSet("hostfile") {
		return &usageError{"-H and --hostfile cannot be used together"}
	}
	if h := c.String("H"); h != "" {
		hs, err := launcher.ParseHostList(h)
		if err != nil {
			return &usageError{err.Error()}
		}
		cfg.Hosts = hs
	}
	if f := c.String("hostfile"); f != "" {
		hs, err := launcher.ParseHostfile(f)
		if err != nil {
			return &usageError{err.Error()}
		}
		cfg.Hosts = hs
	}
	switch m := c.String("map-by"); m {
	case "slot":
	case "node":
		cfg.MapByNode = true
	default:
		return &usageError{fmt.Sprintf("--map-by %q: want slot or node", m)}
	}
	switch b := c.String("bind-to"); b {
	case "core":
	case "none":
		cfg.NoBind = true
	default:
		return &usageError{fmt.Sprintf("--bind-to %q: want core or none", b)}
	}
	cfg.Oversubscribe = c.Bool("oversubscribe")
	cfg.LaunchAgent = c.String("launch-agent")
	cfg.ServerAddr = c.String("server-addr")
	return nil
}
