//go:build ignore

// sync-reqrate measures the floor of `mirror sync` on many small files: a
// bare Go HTTP client (keep-alive, J connections, like sync's pool) GETs
// every path of a listing from BASE once, reads each body to its end and
// does nothing else (no hashing, no verification, no disk). It prints the
// requests per second and the wall time: a sync of N packages with one
// signature each needs 2N such requests cold and N on a no-op.
//
//	go run scripts/bench/sync-reqrate.go -base http://127.0.0.1:8080/set/ -list LISTING [-j 8] [-suffix .minisig] [-fetch | -many]
//
// With -fetch, the requests go through mirror's own client
// (mirror/fetch.Client.Get, bodies bounded to 1 MiB) instead of the bare
// one: the difference is the fetch client's per-request cost. With -many,
// through mirror/fetch.Client.GetMany (HTTP/1.1 pipelining) in batches of
// 2,048, as sync asks for detached signatures.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirror-tool/mirror/mirror/fetch"
)

func main() {
	base := flag.String("base", "", "base URL (ends with /)")
	list := flag.String("list", "", "file with one path per line")
	jobs := flag.Int("j", 8, "parallel connections")
	suffix := flag.String("suffix", "", "appended to every path")
	viaFetch := flag.Bool("fetch", false, "use mirror/fetch.Client.Get instead of a bare net/http client")
	many := flag.Bool("many", false, "use mirror/fetch.Client.GetMany (pipelining), 2,048 paths at a time")
	flag.Parse()
	f, err := os.Open(*list)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var paths []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p := strings.TrimSpace(sc.Text()); p != "" {
			paths = append(paths, p+*suffix)
		}
	}
	f.Close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *jobs, DisableCompression: true}}
	fc, err := fetch.New(fetch.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	if *many {
		start := time.Now()
		var got, n int64
		for lo := 0; lo < len(paths); lo += 2048 {
			var urls []string
			for _, p := range paths[lo:min(lo+2048, len(paths))] {
				urls = append(urls, *base+p)
			}
			for _, b := range fc.GetMany(ctx, urls, 1<<20) {
				if b != nil {
					got++
					n += int64(len(b))
				}
			}
		}
		d := time.Since(start)
		fmt.Printf("mirror/fetch GetMany: %d requests in %.2f s: %.0f requests/s, %.1f MiB, %d left to Get\n",
			len(paths), d.Seconds(), float64(len(paths))/d.Seconds(), float64(n)/(1<<20), int64(len(paths))-got)
		if got != int64(len(paths)) {
			os.Exit(1)
		}
		return
	}
	ch := make(chan string)
	var errs, bytes atomic.Int64
	var wg sync.WaitGroup
	buf := func() []byte { return make([]byte, 64<<10) }
	start := time.Now()
	for range *jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := buf()
			for p := range ch {
				if *viaFetch {
					body, _, _, err := fc.Get(ctx, *base+p, 1<<20, fetch.Validators{})
					if err != nil {
						errs.Add(1)
					}
					bytes.Add(int64(len(body)))
					continue
				}
				resp, err := c.Get(*base + p)
				if err != nil {
					errs.Add(1)
					continue
				}
				n, err := io.CopyBuffer(io.Discard, resp.Body, b)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					errs.Add(1)
				}
				bytes.Add(n)
			}
		}()
	}
	for _, p := range paths {
		ch <- p
	}
	close(ch)
	wg.Wait()
	d := time.Since(start)
	client := "bare net/http"
	if *viaFetch {
		client = "mirror/fetch"
	}
	fmt.Printf("%s: %d requests in %.2f s: %.0f requests/s, %.1f MiB, %d errors\n", client,
		len(paths), d.Seconds(), float64(len(paths))/d.Seconds(), float64(bytes.Load())/(1<<20), errs.Load())
	if errs.Load() > 0 {
		os.Exit(1)
	}
}
