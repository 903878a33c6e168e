// Command relay is an ssh-like launch agent for cluster_test: a command's
// stdin and stdout travel over one TCP connection, so that cutting the
// link of the host it runs on stalls them without closing them, as an ssh
// connection's would, and killing the dialing side leaves the command
// running.
//
//	relay serve ADDR           run the command each connection sends
//	relay dial ADDR CMD ARG... run CMD ARG... where ADDR's server runs
//
// The dialer sends the command as one JSON line, then its stdin; the
// server runs it with the rest of the connection as stdin, its stdout to
// the connection and its stderr to the server's.
package main

import (
	"bufio"
	"encoding/json"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"time"
)

func main() {
	if len(os.Args) < 3 || (os.Args[1] == "dial") == (os.Args[1] == "serve") || (os.Args[1] == "dial" && len(os.Args) < 4) {
		log.Fatal("usage: relay serve ADDR | relay dial ADDR CMD [ARG...]")
	}
	if os.Args[1] == "serve" {
		serve(os.Args[2])
		return
	}
	c, err := net.Dial("tcp", os.Args[2])
	if err != nil {
		log.Fatal(err)
	}
	b, _ := json.Marshal(os.Args[3:])
	if _, err := c.Write(append(b, '\n')); err != nil {
		log.Fatal(err)
	}
	go func() {
		io.Copy(c, os.Stdin)
		c.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(os.Stdout, c)
}

func serve(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go run(c)
	}
}

func run(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	line, err := br.ReadBytes('\n')
	if len(line) == 0 {
		return // a probe: connected and closed
	}
	var argv []string
	if err == nil {
		err = json.Unmarshal(line, &argv)
	}
	if err != nil || len(argv) == 0 {
		log.Printf("relay: bad command %q: %v", line, err)
		return
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = br, c, os.Stderr
	cmd.WaitDelay = time.Second // stdin may never end
	if err := cmd.Run(); err != nil {
		log.Printf("relay: %v: %v", argv, err)
	}
}
