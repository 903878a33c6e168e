// Command stream is cluster_test's loss test: rank 0 streams messages of
// mixed sizes to rank 1, which checks that every one arrives, in order, with
// the checksum the sender computed.
//
//	stream COUNT TOTAL_MIB
//
// With COUNT 1 it sends one message of TOTAL_MIB.
//
// Each rank prints "pid <rank> <pid>" first, rank 1 "progress N" every 5000 messages so
// that a test can stop it mid-stream, and each rank ends with a line giving
// its peak resident memory.
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"log"
	"os"
	"strconv"
	"syscall"

	"github.com/decorun/decorun/comm"
)

var table = crc32.MakeTable(crc32.Castagnoli)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: stream COUNT TOTAL_MIB")
	}
	count, _ := strconv.Atoi(os.Args[1])
	totalMiB, _ := strconv.Atoi(os.Args[2])
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if c.Size() != 2 {
		log.Fatalf("stream needs 2 ranks, got %d", c.Size())
	}
	// Every 1000th message is big; the rest share what is left, 0..2x avg.
	big := count / 1000
	bigSize := (totalMiB << 20) * 4 / 5 / max(big, 1)
	small := (totalMiB << 20) / 5 / max(count-big, 1)
	if count == 1 { // one message of TOTAL_MIB
		bigSize = totalMiB << 20
	}
	size := func(i int) int {
		if count == 1 || i%1000 == 999 {
			return bigSize
		}
		return 12 + (i*7919)%(2*small)
	}
	var bytes int64
	fmt.Printf("pid %d %d\n", c.Rank(), os.Getpid())
	if c.Rank() == 0 {
		buf := make([]byte, bigSize+16)
		for i := 0; i < count; i++ {
			n := size(i)
			b := buf[:n]
			fill(b[12:], uint64(i))
			binary.LittleEndian.PutUint64(b, uint64(i))
			binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[12:], table))
			if err := c.Send(ctx, 1, 0, b); err != nil {
				log.Fatalf("send %d: %v", i, err)
			}
			bytes += int64(n)
		}
	} else {
		buf := make([]byte, bigSize+16)
		for i := 0; i < count; i++ {
			st, err := c.RecvInto(ctx, buf, 0, 0)
			if err != nil {
				log.Fatalf("recv %d: %v", i, err)
			}
			b := buf[:st.Size]
			if st.Size != size(i) {
				log.Fatalf("message %d: %d bytes, want %d", i, st.Size, size(i))
			}
			if seq := binary.LittleEndian.Uint64(b); seq != uint64(i) {
				log.Fatalf("message %d arrived as number %d: out of order or lost", i, seq)
			}
			if crc32.Checksum(b[12:], table) != binary.LittleEndian.Uint32(b[8:]) {
				log.Fatalf("message %d: checksum mismatch", i)
			}
			bytes += int64(st.Size)
			if (i+1)%5000 == 0 {
				fmt.Printf("progress %d\n", i+1)
			}
		}
		fmt.Printf("stream ok: %d messages, %d bytes\n", count, bytes)
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("rank %d maxrss %d KiB\n", c.Rank(), ru.Maxrss)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
}

// fill writes a cheap pseudo-random pattern that differs per message.
func fill(b []byte, seed uint64) {
	x := seed*0x9E3779B97F4A7C15 + 1
	for len(b) >= 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b, x)
		b = b[8:]
	}
	for i := range b {
		b[i] = byte(x >> (8 * i))
	}
}
