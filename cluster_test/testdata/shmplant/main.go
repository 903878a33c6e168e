// Command shmplant is cluster_test's forged-segment check. Before it
// joins, rank 1 has another user (uid 65534, through /bin/sh) plant a file
// in /dev/shm under a name of the job, with a header that looks like rank
// 1's segment and a ring for rank 0; then every rank sends SIZE bytes to
// every other rank, checks what it receives and prints the paths its frames
// take, and rank 1 checks that the planted file is unchanged:
//
//	planted PATH
//	R: 0=self 1=nats ...
//	intact PATH            (or: changed PATH: N bytes differ)
//
// $SHMPLANT says which name: "observed" derives it from what any user sees
// in /dev/shm (rank 0's file name, with rank 1's number); "secret" is rank
// 1's own name, computed from the job's secret (the worst case: an attacker
// that knows the name).
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/shm"
)

const size = 1 << 20

func main() {
	rank, _ := strconv.Atoi(os.Getenv(jobenv.EnvRank))
	var planted string
	var want []byte
	if rank == 1 {
		planted, want = plant(os.Getenv("SHMPLANT"))
		fmt.Printf("planted %s\n", planted)
	}
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	me, n := c.Rank(), c.Size()
	msg := func(from, to int) []byte { return bytes.Repeat([]byte{byte(from*31 + to + 1)}, size) }
	var reqs []*comm.Request
	for p := range n {
		if p != me {
			r, err := c.Isend(p, 1, msg(me, p))
			if err != nil {
				log.Fatal(err)
			}
			reqs = append(reqs, r)
		}
	}
	for p := range n {
		if p == me {
			continue
		}
		b, _, err := c.Recv(ctx, p, 1)
		if err != nil {
			log.Fatal(err)
		}
		if !bytes.Equal(b, msg(p, me)) {
			log.Fatalf("rank %d: the message from rank %d has %d bytes or other content", me, p, len(b))
		}
	}
	if err := comm.WaitAll(ctx, reqs...); err != nil {
		log.Fatal(err)
	}
	var paths []string
	for p := range n {
		paths = append(paths, fmt.Sprintf("%d=%s", p, c.Path(p)))
	}
	fmt.Printf("%d: %s\n", me, strings.Join(paths, " "))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	if rank == 1 {
		got, err := os.ReadFile(planted)
		switch {
		case err != nil:
			fmt.Printf("changed %s: %v\n", planted, err)
		case !bytes.Equal(got, want):
			d := 0
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					d++
				}
			}
			fmt.Printf("changed %s: %d bytes differ, %d bytes long (planted %d)\n", planted, d, len(got), len(want))
		default:
			fmt.Printf("intact %s\n", planted)
		}
	}
}

// plant makes another user create the file and returns its path and
// content.
func plant(mode string) (string, []byte) {
	job := os.Getenv(jobenv.EnvJob)
	var path, keyHex string
	switch mode {
	case "observed":
		// Rank 0 waits at the start-up barrier for rank 1, its segment made.
		deadline := time.Now().Add(20 * time.Second)
		for {
			// Rank 0's files: its segment and then its file of the
			// world's collectives region, told apart by size (which
			// anyone can see): the segment holds the rings.
			names, _ := filepath.Glob(filepath.Join(shm.DefaultDir, "decorun-"+job+"-*-0"))
			var seg string
			var size int64
			for _, n := range names {
				if fi, err := os.Stat(n); err == nil && fi.Size() > size {
					seg, size = n, fi.Size()
				}
			}
			if seg != "" {
				path = strings.TrimSuffix(seg, "-0") + "-1"
				break
			}
			if time.Now().After(deadline) {
				log.Fatalf("rank 1: no segment of rank 0 in %s after 20 s", shm.DefaultDir)
			}
			time.Sleep(5 * time.Millisecond)
		}
	case "secret":
		path = secretName()
	default:
		log.Fatalf("SHMPLANT=%q: want observed or secret", mode)
	}
	parts := strings.Split(filepath.Base(path), "-")
	keyHex = parts[len(parts)-2]
	content := forged(keyHex)
	cmd := exec.Command("/bin/sh", "-c", `umask 0 && cat > "$1"`, "sh", path)
	cmd.Stdin = bytes.NewReader(content)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	if err := cmd.Run(); err != nil {
		log.Fatalf("rank 1: planting %s as uid 65534: %v", path, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil || st.Uid != 65534 {
		log.Fatalf("rank 1: %s is not uid 65534's (%v)", path, err)
	}
	return path, content
}

// forged is an old-layout segment header that claims to be rank 1 of 2,
// owned by pid 1 in this pid namespace, with the job key the name shows,
// and a 1 MiB ring for rank 0; what an attacker writes.
func forged(keyHex string) []byte {
	const ring = 1 << 20
	b := make([]byte, 4096+256+ring)
	le := binary.LittleEndian
	copy(b, "DCRSHM01")
	le.PutUint64(b[8:], 1)
	l, _ := os.Readlink("/proc/self/ns/pid")
	ns, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(l, "pid:["), "]"), 10, 64)
	le.PutUint64(b[16:], ns)
	key, _ := hex.DecodeString(keyHex)
	if len(key) == 8 {
		copy(b[24:], key)
	}
	le.PutUint64(b[32:], 1)
	le.PutUint64(b[40:], 2)
	le.PutUint64(b[48:], ring)
	le.PutUint64(b[256:], 4096) // rank 0's ring
	return b
}

// secretName is rank 1's segment name, computed as comm does from the
// job's secret key.
func secretName() string {
	job, _, err := jobenv.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	if job.JobKey == "" {
		log.Fatalf("rank 1: no %s", jobenv.EnvJobKey)
	}
	nameKey, _ := job.SHMKeys()
	return filepath.Join(shm.DefaultDir, shm.Name(job.ID, nameKey, 1))
}
