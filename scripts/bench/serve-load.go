//go:build ignore

// serve-load is a loopback HTTP load generator for the serve benchmark:
// C workers download random paths of a URLS file ("path size sha256" per
// line, as import-gen writes it) from BASE for D, read every body to its
// end, check its size (and the SHA-256 of every 10th), and report
// requests/s, MiB/s, latency percentiles and errors.
//
//	go run scripts/bench/serve-load.go -base http://127.0.0.1:8080/ -urls URLS [-c 50] [-d 10s]
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

type target struct {
	path string
	size int64
	sum  string
}

func main() {
	base := flag.String("base", "http://127.0.0.1:8080/", "server")
	urls := flag.String("urls", "", "file of `path size sha256` lines")
	conc := flag.Int("c", 50, "concurrent downloads")
	dur := flag.Duration("d", 10*time.Second, "duration")
	name := flag.String("name", "server", "label for the result line")
	flag.Parse()
	targets, err := load(*urls)
	if err != nil || len(targets) == 0 {
		fmt.Fprintln(os.Stderr, "serve-load: urls:", err)
		os.Exit(2)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	deadline := time.Now().Add(*dur)
	var (
		mu     sync.Mutex
		lat    []time.Duration
		errs   int
		bytes  int64
		wg     sync.WaitGroup
		errMsg string
	)
	start := time.Now()
	for w := range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			buf := make([]byte, 64<<10)
			var my []time.Duration
			var myErr int
			var myBytes int64
			var msg string
			for i := 0; time.Now().Before(deadline); i++ {
				t := targets[rng.IntN(len(targets))]
				t0 := time.Now()
				n, err := fetch(client, *base+t.path, t, i%10 == 0, buf)
				my = append(my, time.Since(t0))
				myBytes += n
				if err != nil {
					myErr++
					msg = err.Error()
				}
			}
			mu.Lock()
			lat = append(lat, my...)
			errs += myErr
			bytes += myBytes
			if msg != "" {
				errMsg = msg
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("%-14s %d concurrent, %s: %d requests, %.0f req/s, %.0f MiB/s, latency p50 %s p99 %s max %s, errors %d\n",
		*name, *conc, el.Round(time.Millisecond), len(lat), float64(len(lat))/el.Seconds(), float64(bytes)/el.Seconds()/(1<<20),
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond), errs)
	if errs > 0 {
		fmt.Println("last error:", errMsg)
		os.Exit(1)
	}
}

func fetch(c *http.Client, url string, t target, hash bool, buf []byte) (int64, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var w io.Writer = io.Discard
	h := sha256.New()
	if hash {
		w = h
	}
	n, err := io.CopyBuffer(w, resp.Body, buf)
	if err != nil {
		return n, err
	}
	if resp.StatusCode != 200 {
		return n, fmt.Errorf("%s: %s", url, resp.Status)
	}
	if n != t.size {
		return n, fmt.Errorf("%s: %d bytes, want %d", url, n, t.size)
	}
	if hash && hex.EncodeToString(h.Sum(nil)) != t.sum {
		return n, fmt.Errorf("%s: wrong SHA-256", url)
	}
	return n, nil
}

func load(path string) ([]target, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []target
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 3 {
			continue
		}
		n, _ := strconv.ParseInt(fs[1], 10, 64)
		out = append(out, target{fs[0], n, fs[2]})
	}
	return out, sc.Err()
}
