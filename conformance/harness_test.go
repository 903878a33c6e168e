package conformance

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// tctx is a hang guard, not a timing assertion: -race on a loaded 2-core
// machine is slow.
func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// run starts a world of n ranks and runs f on every rank at once.
func run(t *testing.T, n int, f func(ctx context.Context, c *comm.Comm) error) {
	t.Helper()
	cs := commtest.World(t, n)
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error { return f(ctx, c) })
}

// sizes are the world sizes the collectives run at.
func sizes() []int {
	if testing.Short() {
		return []int{1, 2, 3, 5, 8}
	}
	return []int{1, 2, 3, 4, 5, 6, 7, 8, 9}
}

// payload is message i of sender src: n bytes that encode both, so that a
// misdelivered or reordered message is caught.
func payload(src, i, n int) []byte {
	b := make([]byte, n)
	for k := range min(n, 256) {
		b[k] = byte(src*31 + i*7 + k)
	}
	for done := min(n, 256); done < n; done *= 2 { // the pattern repeats every 256 bytes
		copy(b[done:], b[:done])
	}
	if n >= 4 {
		b[0], b[1], b[2], b[3] = byte(src), byte(i), byte(i>>8), byte(i>>16)
	}
	return b
}

// checkPayload reports an error unless got is payload(src, i, n).
func checkPayload(what string, got []byte, src, i, n int) error {
	if want := payload(src, i, n); !bytes.Equal(got, want) {
		head := got[:min(len(got), 8)]
		return fmt.Errorf("%s: got %d bytes starting % x; want message %d of rank %d (%d bytes)", what, len(got), head, i, src, n)
	}
	return nil
}
