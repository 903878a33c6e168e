package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/decorun/decorun/internal/trace"
	"github.com/urfave/cli/v2"
)

// traceFlags are decorun's tracing flags (see docs/tracing.md).
func traceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "trace", Usage: "record every rank's communication and write the timeline to `FILE` when the job ends: FILE.html is a self-contained page, anything else trace-event JSON for ui.perfetto.dev or chrome://tracing"},
		&cli.BoolFlag{Name: "report", Usage: "print a summary when the job ends: time in communication per rank, top call sites, message sizes, collective imbalance, deco tasks"},
		&cli.StringFlag{Name: "report-json", Usage: "write the --report summary as JSON to `FILE`"},
	}
}

// traceCommands is decorun trace view and decorun trace merge.
func traceCommands() []*cli.Command {
	return []*cli.Command{{
		Name:  "trace",
		Usage: "work with trace files (decorun trace --help)",
		Subcommands: []*cli.Command{
			{
				Name:      "view",
				Usage:     "render a trace-event JSON file written by decorun --trace as a self-contained HTML timeline",
				ArgsUsage: "IN.json OUT.html",
				Action: func(c *cli.Context) error {
					if c.NArg() != 2 {
						return &usageError{"trace view: want IN.json OUT.html"}
					}
					b, err := os.ReadFile(c.Args().Get(0))
					if err != nil {
						return err
					}
					f, err := trace.ParseFile(b)
					if err != nil {
						return fmt.Errorf("%s: %w", c.Args().Get(0), err)
					}
					page, err := trace.HTML(f, "decorun trace: "+c.Args().Get(0))
					if err != nil {
						return err
					}
					return os.WriteFile(c.Args().Get(1), page, 0o644)
				},
			},
			{
				Name:      "merge",
				Usage:     "merge the files that ranks in join mode wrote (DECORUN_TRACE=PATH makes rank N write PATH.rankN) into one trace (OUT.html: an HTML timeline)",
				ArgsUsage: "-o OUT.json PATH.rank0 PATH.rank1 ...",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "o", Required: true, Usage: "write the trace to `FILE`"},
					&cli.BoolFlag{Name: "report", Usage: "also print the --report summary"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return &usageError{"trace merge: no rank files given"}
					}
					var dumps []*trace.Dump
					size := 0
					seen := map[int]string{}
					for _, p := range c.Args().Slice() {
						b, err := os.ReadFile(p)
						if err != nil {
							return err
						}
						d, err := trace.DecodeDump(b)
						if err != nil {
							return fmt.Errorf("%s: %w", p, err)
						}
						if q, dup := seen[d.Rank]; dup {
							return &usageError{fmt.Sprintf("trace merge: %s and %s both hold rank %d", q, p, d.Rank)}
						}
						seen[d.Rank] = p
						size = max(size, d.Size)
						dumps = append(dumps, d)
					}
					var missing []int
					for r := range size {
						if _, ok := seen[r]; !ok {
							missing = append(missing, r)
						}
					}
					f := trace.Merge(sortDumps(dumps), size, missing)
					var out []byte
					var err error
					if strings.HasSuffix(strings.ToLower(c.String("o")), ".html") {
						out, err = trace.HTML(f, "decorun trace")
					} else {
						out, err = f.JSON()
					}
					if err != nil {
						return err
					}
					if c.Bool("report") {
						trace.Summarize(dumps, size, missing).Write(c.App.ErrWriter)
					}
					return os.WriteFile(c.String("o"), out, 0o644)
				},
			},
		},
	}}
}

func sortDumps(ds []*trace.Dump) []*trace.Dump {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j].Rank < ds[j-1].Rank; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
	return ds
}
