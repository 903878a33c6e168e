// Command hello prints one line per rank.
//
//	go run ./cmd/decorun -n 4 ./examples/hello
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/decorun/decorun/comm"
)

func main() {
	c, err := comm.Init(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Printf("Hello from rank %d of %d on %s\n", c.Rank(), c.Size(), c.ProcessorName())
}
