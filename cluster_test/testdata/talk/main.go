// Command talk prints numbered lines for cluster_test's output tests.
//
//	talk RANK RATE COUNT
//
// Every process prints "pid <rank> <pid>" (its DECORUN_RANK); the one whose
// rank is RANK (every one with RANK -1) then prints COUNT lines (for ever
// with -1), "line <rank> <i> " padded with x to 300 bytes, i from 0, RATE a
// second, and exits 0.
package main

import (
	"bufio"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) != 4 {
		log.Fatal("usage: talk RANK RATE COUNT")
	}
	who, err1 := strconv.Atoi(os.Args[1])
	rate, err2 := strconv.Atoi(os.Args[2])
	count, err3 := strconv.Atoi(os.Args[3])
	me, err4 := strconv.Atoi(os.Getenv("DECORUN_RANK"))
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || rate <= 0 {
		log.Fatal("usage: talk RANK RATE COUNT (RATE > 0), with DECORUN_RANK set")
	}
	fmt.Printf("pid %d %d\n", me, os.Getpid())
	if who != -1 && who != me {
		return
	}
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	start := time.Now()
	for i := 0; count < 0 || i < count; {
		due := int(time.Since(start).Seconds() * float64(rate))
		for ; i < due && (count < 0 || i < count); i++ {
			l := fmt.Sprintf("line %d %d ", me, i)
			fmt.Fprintf(w, "%s%s\n", l, strings.Repeat("x", 299-len(l)))
		}
		if err := w.Flush(); err != nil {
			log.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
}
