// Command upstream serves a folder read-only on a loopback port, as a stand-in
// upstream for the demo and the benchmarks (never for production). It prints
// its base URL on the first line of stdout and serves until killed, or until
// -for has passed.
//
//	go run ./scripts/upstream -dir fixtures/demo/upstream [-listen 127.0.0.1:0] [-for 10m]
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	dir := flag.String("dir", ".", "folder to serve")
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	life := flag.Duration("for", 30*time.Minute, "stop serving after this long")
	flag.Parse()

	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		log.Fatalf("upstream: bad -listen %q: %v", *listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		log.Fatalf("upstream: -listen must be a loopback address, got %q", *listen)
	}
	if fi, err := os.Stat(*dir); err != nil || !fi.IsDir() {
		log.Fatalf("upstream: -dir %q is not a folder", *dir)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("upstream: %v", err)
	}
	fmt.Printf("http://%s/\n", ln.Addr())
	os.Stdout.Sync()
	time.AfterFunc(*life, func() { os.Exit(0) })
	srv := &http.Server{
		Handler:           http.FileServer(http.Dir(*dir)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Fatal(srv.Serve(ln))
}
