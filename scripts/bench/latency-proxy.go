//go:build ignore

// latency-proxy forwards TCP connections from LISTEN to TARGET, holding
// every chunk of bytes for DELAY in each direction, so that a loopback
// upstream answers as a distant one would (a round trip of 2*DELAY, no
// bandwidth limit). Requests written ahead on a connection stay written
// ahead: the delay is per chunk, not per request.
//
//	go run scripts/bench/latency-proxy.go -listen 127.0.0.1:18080 -target 127.0.0.1:8080 -delay 10ms
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"time"
)

type chunk struct {
	at   time.Time
	data []byte
}

func main() {
	listen := flag.String("listen", "127.0.0.1:18080", "address to listen on")
	target := flag.String("target", "", "address to forward to")
	delay := flag.Duration("delay", 10*time.Millisecond, "one-way delay")
	flag.Parse()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			u, err := net.Dial("tcp", *target)
			if err != nil {
				c.Close()
				return
			}
			go pipe(u, c, *delay)
			pipe(c, u, *delay)
		}()
	}
}

// pipe copies src to dst, each chunk delay after it was read.
func pipe(dst, src net.Conn, delay time.Duration) {
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 64<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{time.Now().Add(delay), b[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	io.Copy(io.Discard, src)
}
