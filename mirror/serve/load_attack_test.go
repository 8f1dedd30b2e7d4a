//go:build slow

package serve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror/repo"
)

// Load and faults on serve (issue 7, docs/SECURITY.md "Load held"). The
// figures are logged (go test -tags=slow -run TestServeLoadAndFaults -v
// ./mirror/serve/).
const (
	loadClients       = 200 // well-behaved clients
	loadRequests      = 10  // requests per client
	loadSlowloris     = 100 // connections that never finish their headers
	loadStalledBodies = 20  // downloads of the big file that stop reading
	loadDisconnects   = 100 // downloads cut after 64 KiB
	loadSwitches      = 5   // generations published during the load
	loadDeadline      = 3 * time.Minute
)

// loadGen returns generation g's tree: 120 small, 30 medium and 4 large
// files, a big file for the stallers, and an index; every generation
// changes the index, a tenth of the small files and one large file.
func loadGen(g int) map[string][]byte {
	files := map[string][]byte{}
	data := func(seed string, n int) []byte {
		var s [32]byte
		copy(s[:], seed)
		b := make([]byte, n)
		rand.NewChaCha8(s).Read(b)
		return b
	}
	ver := func(i, every int) int {
		if i%every == 0 {
			return g
		}
		return 1
	}
	for i := range 120 {
		files[fmt.Sprintf("small/%03d.bin", i)] = data(fmt.Sprintf("s%d-%d", i, ver(i, 10)), 1<<10+i*128)
	}
	for i := range 30 {
		files[fmt.Sprintf("medium/%02d.bin", i)] = data(fmt.Sprintf("m%d", i), 64<<10+i*6<<10)
	}
	for i := range 4 {
		files[fmt.Sprintf("large/%d.bin", i)] = data(fmt.Sprintf("l%d-%d", i, ver(i, 4)), 2<<20)
	}
	files["big.bin"] = data("big", 16<<20) // more than the socket buffers hold
	files["index"] = []byte(fmt.Sprint("generation ", g, "\n"))
	return files
}

// publishGen is publish without t (it runs beside the test's goroutine).
func publishGen(ctx context.Context, dir string, seq uint64, files map[string][]byte, keep int) error {
	r, err := repo.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer r.Close()
	in := r.Ingest(ctx)
	now := time.Now().UTC()
	rec := &repo.Record{Sequence: seq, BundleID: fmt.Sprint("load", seq), Signer: "0123456789ABCDEF", Created: now, Expires: now.Add(time.Hour), Imported: now}
	for p, data := range files {
		if err := in.Add(sum(data), int64(len(data)), bytes.NewReader(data)); err != nil {
			in.Wait()
			return err
		}
		rec.Tree = append(rec.Tree, repo.Entry{Path: p, SHA256: sum(data), Size: int64(len(data))})
	}
	if err := in.Wait(); err != nil {
		return err
	}
	if err := r.Publish(ctx, rec, nil); err != nil {
		return err
	}
	_, _, err = r.Collect(ctx, keep)
	return err
}

type memSample struct{ heapInuse, sys uint64 }

func readMem(gc bool) memSample {
	if gc {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memSample{m.HeapInuse, m.Sys}
}

func procStatus(field string) string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// TestServeLoadAndFaults: 200 concurrent clients x 10 requests over
// loopback against Serve (the real server with its timeouts), mixed sizes,
// while 100 slowloris connections hold unfinished headers, 20 downloads of
// a 16 MiB file stop reading, 100 downloads are cut mid-body, and 5 new
// generations are published (and old ones collected) under the load.
// Every well-behaved request must succeed with a body whose SHA-256 is its
// ETag and a version of that path in some generation; the slowloris
// connections must be closed by the server after ReadHeaderTimeout; after
// everything closes, goroutines return to where they were.
func TestServeLoadAndFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), loadDeadline)
	defer cancel()
	dir := t.TempDir()
	valid := map[string]map[string]bool{} // path -> sha256 of every generation
	for g := 1; g <= loadSwitches+1; g++ {
		for p, b := range loadGen(g) {
			if valid[p] == nil {
				valid[p] = map[string]bool{}
			}
			valid[p][sum(b)] = true
		}
	}
	if err := publishGen(ctx, dir, 1, loadGen(1), 2); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for p := range valid {
		if p != "big.bin" {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	base := "http://" + addr + "/"
	srvCtx, stopSrv := context.WithCancel(ctx)
	srvDone := make(chan error, 1)
	go func() { srvDone <- Serve(srvCtx, l, dir) }()
	defer func() {
		stopSrv()
		<-srvDone
	}()

	goroutinesBefore := runtime.NumGoroutine()
	memBefore := readMem(true)
	var peak atomic.Uint64
	sampleDone := make(chan struct{})
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sampleDone:
				return
			case <-tick.C:
				if h := readMem(false).heapInuse; h > peak.Load() {
					peak.Store(h)
				}
			}
		}
	}()
	start := time.Now()

	// Slowloris: headers never finished.
	var slow []net.Conn
	for range loadSlowloris {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /index HTTP/1.1\r\nHost: mirror\r\nX-Slow: ")
		slow = append(slow, c)
	}
	slowStart := time.Now()
	// Downloads of big.bin that read nothing after the headers.
	var stalled []net.Conn
	for range loadStalledBodies {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /big.bin HTTP/1.1\r\nHost: mirror\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Fatalf("stalled download: %v", err)
		}
		stalled = append(stalled, c)
	}

	var wg sync.WaitGroup
	var served, failed, bytesIn, cut atomic.Int64
	var errMu sync.Mutex
	var errs []string
	fail := func(format string, args ...any) {
		failed.Add(1)
		errMu.Lock()
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
		errMu.Unlock()
	}
	tr := &http.Transport{MaxIdleConnsPerHost: loadClients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}

	// Well-behaved clients.
	for c := range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for range loadRequests {
				p := paths[rng.IntN(len(paths))]
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+p, nil)
				resp, err := client.Do(req)
				if err != nil {
					fail("GET %s: %v", p, err)
					continue
				}
				h := sha256.New()
				n, err := io.Copy(h, resp.Body)
				resp.Body.Close()
				got := hex.EncodeToString(h.Sum(nil))
				switch {
				case err != nil:
					fail("GET %s: body: %v", p, err)
				case resp.StatusCode != 200:
					fail("GET %s: status %d", p, resp.StatusCode)
				case !valid[p][got]:
					fail("GET %s: body of %d bytes is no generation's version", p, n)
				case strings.Trim(resp.Header.Get("ETag"), `"`) != got:
					fail("GET %s: ETag %s for a body with SHA-256 %s", p, resp.Header.Get("ETag"), got)
				default:
					served.Add(1)
					bytesIn.Add(n)
				}
			}
		}()
	}
	// Clients that disconnect mid-body.
	for i := range loadDisconnects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("large/%d.bin", i%4)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+p, nil)
			resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
			if err != nil {
				fail("cut GET %s: %v", p, err)
				return
			}
			io.CopyN(io.Discard, resp.Body, 64<<10)
			resp.Body.Close() // closes the connection mid-body
			cut.Add(1)
		}()
	}
	// Generation switches under the load.
	var switched atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for g := 2; g <= loadSwitches+1; g++ {
			time.Sleep(300 * time.Millisecond)
			if err := publishGen(ctx, dir, uint64(g), loadGen(g), 2); err != nil {
				fail("publish generation %d: %v", g, err)
				return
			}
			switched.Add(1)
		}
	}()
	wg.Wait()
	loadTime := time.Since(start)

	// The server still answers at once while the stallers hold on.
	t0 := time.Now()
	resp, err := client.Get(base + "index")
	if err != nil {
		t.Fatalf("after the load: %v", err)
	}
	idx, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(idx) != fmt.Sprint("generation ", loadSwitches+1, "\n") {
		t.Errorf("after the switches the index is %q", idx)
	}
	answerAfter := time.Since(t0)

	// The slowloris connections are closed by the server.
	slowClosed := 0
	for _, c := range slow {
		c.SetReadDeadline(slowStart.Add(ReadHeaderTimeout + 10*time.Second))
		if _, err := io.ReadAll(c); err == nil {
			slowClosed++ // EOF: the server hung up
		}
		c.Close()
	}
	for _, c := range stalled {
		c.Close()
	}
	tr.CloseIdleConnections()
	close(sampleDone)
	// Goroutines of closed connections wind down.
	var goroutinesAfter int
	for range 100 {
		if goroutinesAfter = runtime.NumGoroutine(); goroutinesAfter <= goroutinesBefore+5 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	memAfter := readMem(true)

	t.Logf("load: %d clients x %d requests: served %d, errors %d, %.1f MiB in %v (%.0f req/s); %d downloads cut mid-body; %d generation switches",
		loadClients, loadRequests, served.Load(), failed.Load(), float64(bytesIn.Load())/(1<<20), loadTime.Round(time.Millisecond),
		float64(served.Load())/loadTime.Seconds(), cut.Load(), switched.Load())
	t.Logf("faults: %d slowloris connections, %d closed by the server within ReadHeaderTimeout (%v) + 10s; %d stalled 16 MiB downloads; index answered in %v while they stalled",
		loadSlowloris, slowClosed, ReadHeaderTimeout, loadStalledBodies, answerAfter.Round(time.Microsecond))
	t.Logf("memory (server and clients in one process): HeapInuse %.1f MiB before, %.1f MiB peak, %.1f MiB after (after GC); Sys %.1f MiB; VmHWM %s; goroutines %d before, %d after",
		float64(memBefore.heapInuse)/(1<<20), float64(peak.Load())/(1<<20), float64(memAfter.heapInuse)/(1<<20), float64(memAfter.sys)/(1<<20),
		procStatus("VmHWM"), goroutinesBefore, goroutinesAfter)

	if failed.Load() != 0 || served.Load() != loadClients*loadRequests {
		t.Fatalf("well-behaved requests: %d served, %d failed: %v", served.Load(), failed.Load(), errs)
	}
	if cut.Load() != loadDisconnects || switched.Load() != loadSwitches {
		t.Fatalf("faults not all exercised: %d cut, %d switches", cut.Load(), switched.Load())
	}
	if slowClosed != loadSlowloris {
		t.Fatalf("%d of %d slowloris connections were not closed by the server", loadSlowloris-slowClosed, loadSlowloris)
	}
	if answerAfter > 5*time.Second {
		t.Fatalf("the server took %v to answer while downloads stalled", answerAfter)
	}
	if goroutinesAfter > goroutinesBefore+5 {
		t.Fatalf("goroutines: %d before, %d after everything closed", goroutinesBefore, goroutinesAfter)
	}
	if memAfter.heapInuse > memBefore.heapInuse+64<<20 {
		t.Fatalf("HeapInuse grew from %d to %d bytes", memBefore.heapInuse, memAfter.heapInuse)
	}
}
