// Command ctlrank stands in for a comm program in the launcher's tests: it
// speaks the control protocol of package jobenv with nats.go directly.
//
//	ctlrank ACTION TARGET [CODE]
//
// Rank TARGET (every rank when TARGET is -1) does ACTION; the other ranks
// join and then sleep until killed. When PIDDIR is set, every rank first
// writes its pid to $PIDDIR/<rank> and waits until all ranks have. Actions:
//
//	fin    join, request fin, exit 0
//	nofin  join, exit 0 without fin
//	abort  join, request abort with CODE, exit CODE
//	exit   join, exit CODE without fin
//	plain  exit CODE without connecting
//	spew   write CODE lines of 100000 bytes in small writes, then an
//	       unterminated last line, then exit 0 (no NATS)
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/nats-io/nats.go"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ctlrank:", err)
		os.Exit(99)
	}
}

func run() error {
	if len(os.Args) < 3 {
		return fmt.Errorf("usage: ctlrank ACTION TARGET [CODE]")
	}
	action := os.Args[1]
	target, _ := strconv.Atoi(os.Args[2])
	code := 0
	if len(os.Args) > 3 {
		code, _ = strconv.Atoi(os.Args[3])
	}
	job, ok, err := jobenv.FromEnv()
	if err != nil || !ok {
		return fmt.Errorf("no job: %v", err)
	}
	if dir := os.Getenv("PIDDIR"); dir != "" {
		// Written whole, then renamed: a rank killed mid-write (the job
		// ends as soon as the acting rank acts) leaves no empty pid file.
		tmp := filepath.Join(dir, "."+strconv.Itoa(job.Rank))
		os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o644)
		os.Rename(tmp, filepath.Join(dir, strconv.Itoa(job.Rank)))
		// Act only once every rank has written its pid.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			n := 0
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if !strings.HasPrefix(e.Name(), ".") {
					n++
				}
			}
			if n >= job.Size {
				break
			}
		}
	}
	me := target == -1 || target == job.Rank
	if me && action == "plain" {
		os.Exit(code)
	}
	if me && action == "spew" {
		return spew(job.Rank, code)
	}
	nc, err := nats.Connect(job.URL, nats.Token(job.Secret))
	if err != nil {
		return err
	}
	subj := jobenv.CtlSubject(job.Prefix)
	nc.Publish(subj, jobenv.Ctl{Op: jobenv.OpJoin, Rank: job.Rank}.Encode())
	if err := nc.Flush(); err != nil {
		return err
	}
	if !me {
		time.Sleep(time.Hour)
		return nil
	}
	switch action {
	case "fin":
		if _, err := nc.Request(subj, jobenv.Ctl{Op: jobenv.OpFin, Rank: job.Rank}.Encode(), 5*time.Second); err != nil {
			return err
		}
		nc.Close()
		os.Exit(0)
	case "nofin":
		os.Exit(0)
	case "abort":
		if _, err := nc.Request(subj, jobenv.Ctl{Op: jobenv.OpAbort, Rank: job.Rank, Code: code}.Encode(), 5*time.Second); err != nil {
			return err
		}
		os.Exit(code)
	case "exit":
		os.Exit(code)
	}
	return fmt.Errorf("unknown action %q", action)
}

func spew(rank, lines int) error {
	line := []byte(strings.Repeat(string(rune('a'+rank)), 100000) + "\n")
	for range lines {
		for b := line; len(b) > 0; {
			n := min(len(b), 3000)
			if _, err := os.Stdout.Write(b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
	}
	_, err := fmt.Fprintf(os.Stdout, "tail %d", rank)
	return err
}
