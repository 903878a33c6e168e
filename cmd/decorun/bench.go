package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/decorun/decorun/cmd/decorun/internal/bench"
	"github.com/decorun/decorun/cmd/decorun/internal/benchplot"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/launcher"
	"github.com/urfave/cli/v2"
)

// rankMode is the hidden subcommand that the bench command starts on every
// rank: the decorun binary itself is the benchmark program.
const rankMode = "__bench-rank"

// benchCommands returns `decorun bench` and the hidden rank mode it uses.
func benchCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:            "bench",
			Usage:           "run the OSU-style benchmark suite (decorun bench --help)",
			SkipFlagParsing: true, // flags may follow the benchmark names: parsed by benchApp
			Action: func(c *cli.Context) error {
				n := 0
				for _, l := range c.Lineage()[1:] {
					if l.IsSet("n") { // decorun -n 8 bench ...
						n = l.Int("n")
					}
				}
				return benchApp(c.App.Writer, c.App.ErrWriter, n).RunContext(c.Context, benchArgs(c.Args().Slice()))
			},
		},
		{
			Name:            rankMode,
			Hidden:          true,
			SkipFlagParsing: true,
			Action:          benchRank,
		},
	}
}

// benchFlags are the flags of decorun bench; the bool ones are listed in
// benchBools, since benchArgs must know which flags take no value.
func benchFlags(n int) []cli.Flag {
	if n == 0 {
		n = 2
	}
	flags := []cli.Flag{
		&cli.IntFlag{Name: "n", Aliases: []string{"np"}, Value: n, Usage: "number of ranks `N` (latency, bw and bibw use ranks 0 and 1)"},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON object per measurement instead of a table", DisableDefaultText: true},
		&cli.BoolFlag{Name: "baseline", Usage: "also measure a raw nats.go ping-pong and stream between the same processes and print the ratio", DisableDefaultText: true},
		&cli.StringFlag{Name: "sizes", Usage: "message sizes: `LIST` of sizes (8, 64K, 1M) and MIN:MAX power-of-two ranges (default 0:4M point to point, 8:1M collectives)"},
		&cli.IntFlag{Name: "iters", Usage: "timed iterations `N` per size, or startup runs", DefaultText: "OSU-like, by size"},
		&cli.IntFlag{Name: "warmup", Usage: "untimed iterations `N` before them", DefaultText: "OSU-like, or iters/10"},
		&cli.StringFlag{Name: "transport", EnvVars: []string{jobenv.EnvTransport}, Usage: "data path of the benchmark jobs: `auto`, nats, shm or tcp, as decorun --transport (default: decorun's, auto)"},
		tcpEncryptFlag(),
		&cli.StringFlag{Name: "timeout", Usage: "stop the benchmark job after `D` (a Go duration or seconds)"},
		&cli.StringFlag{Name: "cpuprofile", Usage: "write each rank's CPU profile to `PATH`.rankR"},
		&cli.StringFlag{Name: "memprofile", Usage: "write each rank's allocation profile to `PATH`.rankR"},
		&cli.StringSliceFlag{Name: "x", Usage: "export `NAME=VALUE` (or NAME) to every rank, as decorun -x; repeatable"},
	}
	flags = append(flags, plotFlags()...)
	return append(flags, placeFlags()...) // across hosts, as decorun: -H, --hostfile, --launch-agent, ...
}

var benchBools = []string{"json", "baseline", "oversubscribe", "h", "help"}

// benchArgs moves flags before the benchmark names, so that both
// `decorun bench --json latency` and `decorun bench latency --json` work.
func benchArgs(args []string) []string {
	out := []string{"decorun bench"}
	var names []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			names = append(names, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			out = append(out, a)
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !hasValue && !slices.Contains(benchBools, name) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		default:
			names = append(names, a)
		}
	}
	return append(append(out, "--"), names...)
}

func benchApp(stdout, stderr io.Writer, n int) *cli.App {
	return &cli.App{
		Name:  "decorun bench",
		Usage: "OSU-style micro-benchmarks of decorun, on this host or across hosts (-H, --hostfile)",
		UsageText: "decorun bench [options] BENCHMARK... [options]\n\n" +
			"BENCHMARK: " + strings.Join(bench.Names, ", ") + ", or all.\n" +
			"latency, bw and bibw run between ranks 0 and 1; the collectives on all N ranks;\n" +
			"startup times decorun -n N of a program that only joins and closes.\n" +
			"--plot FILE.svg (or .png) also draws the results; with --plot-ref and no BENCHMARK,\n" +
			"it draws saved results (osu_like output, decorun bench --json) alone.",
		Flags:           benchFlags(n),
		HideHelpCommand: true,
		HideVersion:     true,
		Writer:          stdout,
		ErrWriter:       stderr,
		ExitErrHandler:  func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return &usageError{"bench: " + err.Error()}
		},
		Action: func(c *cli.Context) error { return runBench(c, stdout, stderr) },
	}
}

func runBench(c *cli.Context, stdout, stderr io.Writer) error {
	if c.NArg() == 0 && c.IsSet("plot") && c.IsSet("plot-ref") {
		return plotRefs(c) // draw saved results, run nothing
	}
	names, err := bench.Parse(c.Args().Slice())
	if err != nil {
		return &usageError{"bench: " + err.Error()}
	}
	cfg := bench.Config{Benchmarks: names, Iters: c.Int("iters"), Baseline: c.Bool("baseline"), JSON: c.Bool("json"),
		CPUProfile: c.String("cpuprofile"), MemProfile: c.String("memprofile"), Transport: c.String("transport"),
		TCPPlain: !c.Bool("tcp-encrypt")}
	if cfg.Transport == "" {
		cfg.Transport = comm.DefaultTransport
	}
	if c.IsSet("warmup") {
		w := c.Int("warmup")
		cfg.Warmup = &w
	}
	if s := c.String("sizes"); s != "" {
		if cfg.Sizes, err = bench.ParseSizes(s); err != nil {
			return &usageError{"bench: --sizes: " + err.Error()}
		}
	}
	np := c.Int("n")
	if np < 1 {
		return &usageError{fmt.Sprintf("bench: -n must be at least 1, got %d", np)}
	}
	if np < 2 && slices.ContainsFunc(names, func(s string) bool { return s == bench.Latency || s == bench.BW || s == bench.BiBW }) {
		return &usageError{"bench: latency, bw and bibw need -n 2 or more"}
	}
	plotPath, refs, err := plotSetup(c, names)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var tap *resultTap // with --plot: keeps the results
	if plotPath != "" {
		tap = &resultTap{out: stdout, p: &bench.Printer{W: stdout, JSON: cfg.JSON, Baseline: cfg.Baseline}}
	}
	job := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == bench.StartupB })
	if len(job) > 0 {
		cfg.Benchmarks = job
		rankCfg := cfg
		var out io.Writer = stdout
		if tap != nil {
			rankCfg.JSON, out = true, tap // the tap prints them as cfg.JSON says
		}
		arg, _ := json.Marshal(rankCfg) // plain fields: cannot fail
		lc := launcher.Config{NP: np, Program: exe, Args: []string{rankMode, string(arg)}, Stdout: out, Stderr: stderr,
			Transport: cfg.Transport, TCPPlain: cfg.TCPPlain, Env: c.StringSlice("x")}
		if err := placement(c, &lc); err != nil { // across hosts: -H, --hostfile, --launch-agent, ...
			return err
		}
		if s := c.String("timeout"); s != "" {
			if lc.Timeout, err = parseTimeout(s); err != nil {
				return err
			}
		}
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(sigs)
		lc.Signals = sigs
		err := launcher.Run(c.Context, lc)
		if tap != nil {
			err = errors.Join(err, tap.flush())
		}
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	if slices.Contains(names, bench.StartupB) {
		warm, iters := cfg.Iterations(bench.StartupB, 0)
		argv := []string{exe, "-n", strconv.Itoa(np), "--transport", cfg.Transport, "--tcp-encrypt=" + strconv.FormatBool(c.Bool("tcp-encrypt")), exe, rankMode, "noop"}
		res, err := bench.Startup(c.Context, argv, np, warm, iters)
		if err != nil {
			return fmt.Errorf("bench startup: %w", err)
		}
		res.Transport = cfg.Transport
		if len(job) > 0 && !cfg.JSON {
			fmt.Fprintln(stdout)
		}
		p := &bench.Printer{W: stdout, JSON: cfg.JSON}
		if err := p.Print(res); err != nil {
			return err
		}
	}
	if tap == nil {
		return nil
	}
	run := benchplot.Series{Name: "decorun " + cfg.Transport, Results: tap.results}
	if err := benchplot.Write(plotPath, append([]benchplot.Series{run}, refs...)); err != nil {
		return fmt.Errorf("bench: --plot: %w", err)
	}
	return nil
}

// benchRank is one rank of the benchmark job: decorun __bench-rank CONFIG,
// or decorun __bench-rank noop (join and close: the startup benchmark).
func benchRank(c *cli.Context) error {
	if c.NArg() != 1 {
		return &usageError{rankMode + " is started by decorun bench"}
	}
	cm, err := comm.Init(c.Context)
	if err != nil {
		return err
	}
	if c.Args().First() == "noop" {
		return cm.Close()
	}
	var cfg bench.Config
	if err := json.Unmarshal([]byte(c.Args().First()), &cfg); err != nil {
		return errors.Join(fmt.Errorf("bench: bad rank configuration: %w", err), cm.Close())
	}
	if err := bench.Run(c.Context, cm, cfg, c.App.Writer); err != nil {
		return fmt.Errorf("bench: rank %d: %w", cm.Rank(), err)
	}
	return cm.Close()
}
