package comm_test

import (
	"context"
	"testing"

	"github.com/decorun/decorun/comm/commtest"
)

// BenchmarkSoftwarePath runs a Send and the matching RecvInto of 8 bytes
// in one goroutine, between two in-process ranks on shared memory: no
// wait for another core, so it measures the software of one message.
func BenchmarkSoftwarePath(b *testing.B) {
	cs := commtest.WorldOn(b, 2, "shm")
	ctx := context.Background()
	buf := make([]byte, 8)
	rbuf := make([]byte, 8)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := cs[0].Send(ctx, 1, 0, buf); err != nil {
			b.Fatal(err)
		}
		if _, err := cs[1].RecvInto(ctx, rbuf, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
}
