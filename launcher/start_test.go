package launcher_test

import (
	"context"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/decorun/decorun/launcher"
)

// countFiles is the number of entries in dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A job being launched stops at once, starting no more ranks, when a
// signal, the timeout, ctx or a failing rank stops it: ranks already
// started are ended as usual.
func TestStopDuringStartup(t *testing.T) {
	const np = 500
	for _, tc := range []struct {
		name string
		stop string // "signal", "cancel", "timeout" or "rank"
		sig  syscall.Signal
		code int
		re   string
	}{
		{"SIGTERM", "signal", syscall.SIGTERM, 143, `^interrupted by SIGTERM$`},
		{"SIGINT", "signal", syscall.SIGINT, 130, `^interrupted by SIGINT$`},
		{"timeout", "timeout", 0, 110, `^job timed out after 20ms$`},
		{"rank fails", "rank", 0, 3, `^rank 0 \(pid \d+\) exited with code 3$`},
		{"cancel", "cancel", 0, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := sh(np, `[ $DECORUN_RANK = 0 ] && [ "$STOP" = rank ] && exit 3; echo $$ > `+dir+`/$DECORUN_RANK; exec sleep 100`)
			cfg.Env = []string{"STOP=" + tc.stop}
			sigs := make(chan os.Signal, 1)
			cfg.Signals = sigs
			if tc.stop == "timeout" {
				cfg.Timeout = 20 * time.Millisecond
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			cfg.Stdout, cfg.Stderr = &syncBuffer{}, &syncBuffer{}
			errc := make(chan error, 1)
			go func() { errc <- launcher.Run(ctx, cfg) }()
			var sent time.Time
			if tc.stop == "signal" || tc.stop == "cancel" {
				waitFiles(t, dir, 1)
				sent = time.Now()
				if tc.sig != 0 {
					sigs <- tc.sig
				} else {
					cancel()
				}
			}
			var err error
			select {
			case err = <-errc:
			case <-time.After(60 * time.Second): // a hang guard
				t.Fatal("Run did not return 60s after the job was stopped")
			}
			if !sent.IsZero() {
				t.Logf("Run returned %v after the stop", time.Since(sent))
			}
			if tc.stop == "cancel" {
				if err != context.Canceled {
					t.Errorf("Run() = %v; want context.Canceled", err)
				}
			} else {
				exitError(t, err, tc.code, tc.re)
			}
			started := countFiles(t, dir)
			t.Logf("%d of %d ranks had started", started, np)
			if started >= np/2 {
				t.Errorf("%d of %d ranks started; want the launch stopped", started, np)
			}
			assertGone(t, pids(t, dir), 0)
		})
	}
}

// A signal stops the set-up too: here, connecting to a server that never
// answers (--nats-url), which would otherwise take its 10 s timeout.
func TestSignalWhileConnecting(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c // held open, silent
		}
	}()
	defer func() {
		l.Close()
		for c := range accepted {
			c.Close()
		}
	}()
	sigs := make(chan os.Signal, 1)
	cfg := launcher.Config{NP: 2, Program: "true", Signals: sigs, NATS: launcher.NATSConfig{URL: "nats://" + l.Addr().String()},
		Stdout: &syncBuffer{}, Stderr: &syncBuffer{}}
	errc := make(chan error, 1)
	go func() { errc <- launcher.Run(t.Context(), cfg) }()
	c := <-accepted
	accepted <- c
	sent := time.Now()
	sigs <- syscall.SIGTERM
	err = <-errc
	t.Logf("Run returned %v after SIGTERM", time.Since(sent))
	exitError(t, err, 143, `^interrupted by SIGTERM$`)
}

// More ranks than this host can run is a usage error before anything
// starts, naming the limits.
func TestTooManyRanks(t *testing.T) {
	dir := t.TempDir()
	cfg := sh(1_000_000, `echo $$ > `+dir+`/$DECORUN_RANK`)
	err, _, _ := run(t, cfg)
	ee := exitError(t, err, 2, `^-n 1000000 is more ranks than this host can run: .*: room for \d+`)
	if !strings.Contains(ee.Msg, "ulimit") && !strings.Contains(ee.Msg, "memory") && !strings.Contains(ee.Msg, "kernel.") {
		t.Errorf("message %q names no limit", ee.Msg)
	}
	if n := countFiles(t, dir); n != 0 {
		t.Errorf("%d ranks ran", n)
	}
}
