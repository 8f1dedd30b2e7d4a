package mirror

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror/fetch"
	"github.com/mirror-tool/mirror/mirror/source/files"
)

// signatureConns sorts the connections the upstream saw since the last
// call: those that carried signature requests only, and those that carried
// signatures and files both.
func (e *syncEnv) signatureConns() (sigOnly, mixed int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for addr, paths := range e.conns {
		sigs := 0
		for _, p := range paths {
			if strings.HasSuffix(p, ".minisig") {
				sigs++
			}
		}
		switch {
		case sigs == len(paths):
			sigOnly++
		case sigs > 0:
			mixed++
		}
		delete(e.conns, addr)
	}
	return sigOnly, mixed
}

// TestSyncPipelinesSignatures: the detached signatures of a files source
// are fetched with HTTP/1.1 pipelining, on at most fetch.PipelineConns
// connections of their own (one chunk of prefetch here), each once; `pipelining = false` fetches them
// one request at a time beside the files; a server that closes the
// connection after every signature still gives a complete, correct run.
func TestSyncPipelinesSignatures(t *testing.T) {
	e := newSyncEnv(t)
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.put("b/two.tar.gz", "two", "rel-b")
	const n = 40
	for i := range n {
		e.put(fmt.Sprintf("a/p%02d.tar.gz", i), fmt.Sprintf("package %d", i), "rel-a")
	}
	e.signatureConns()
	res := e.mustSync(SyncOptions{})
	if res.New < n || res.Rejected != 0 {
		t.Fatalf("first run: %d new, %d rejected: %v", res.New, res.Rejected, rejectedOf(res))
	}
	if sigOnly, mixed := e.signatureConns(); sigOnly < 1 || sigOnly > fetch.PipelineConns || mixed != 0 {
		t.Fatalf("signatures came on %d connections of their own and %d shared with files; want 1 to %d and 0", sigOnly, mixed, fetch.PipelineConns)
	}
	for i := range n {
		if h := e.hitsOf(fmt.Sprintf("/tools/a/p%02d.tar.gz.minisig", i)); h != 1 {
			t.Fatalf("signature %d asked %d times", i, h)
		}
	}

	// Off: one request at a time, beside the files.
	raw, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	off := strings.Replace(string(raw), `signatures = ["{file}.minisig"]`, "signatures = [\"{file}.minisig\"]\npipelining = false", 1)
	if err := os.WriteFile(e.cfgPath, []byte(off), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e.put(fmt.Sprintf("a/p%02d.tar.gz", i), fmt.Sprintf("package %d, second release", i), "rel-a")
	}
	res = e.mustSync(SyncOptions{})
	if res.New < n || res.Rejected != 0 {
		t.Fatalf("run without pipelining: %d new, %d rejected", res.New, res.Rejected)
	}
	if _, mixed := e.signatureConns(); mixed == 0 {
		t.Fatal("with pipelining = false no connection carried both signatures and files")
	}
	if err := os.WriteFile(e.cfgPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	// A server that ends every connection after one signature: GetMany
	// gives up on it and Get fetches the rest.
	for i := range n {
		name := fmt.Sprintf("a/p%02d.tar.gz", i)
		e.put(name, fmt.Sprintf("package %d, third release", i), "rel-a")
		sig, err := os.ReadFile(e.up + "/tools/" + name + ".minisig")
		if err != nil {
			t.Fatal(err)
		}
		e.fault("/tools/"+name+".minisig", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			w.Write(sig)
		})
	}
	res = e.mustSync(SyncOptions{})
	if res.New < n || res.Rejected != 0 {
		t.Fatalf("run against a server closing every connection: %d new, %d rejected", res.New, res.Rejected)
	}
	m, blobs := e.openBundle(res.Bundle)
	got := 0
	for _, p := range m.Packages {
		var i int
		if _, err := fmt.Sscanf(p.Name, "a/p%02d.tar.gz", &i); err != nil {
			continue
		}
		if want := fmt.Sprintf("package %d, third release", i); string(blobs[p.SHA256]) != want {
			t.Fatalf("%s: bundle carries %q, want %q", p.Name, blobs[p.SHA256], want)
		}
		got++
	}
	if got != n {
		t.Fatalf("bundle carries %d of the %d packages", got, n)
	}
}

// TestPrefetchOverlapsChunks: prefetch fetches the next chunk's signatures
// while the answers of the one before are still coming (the upstream holds
// the first chunk's last answer until a request of the second has come:
// one call at a time would stall there until the timeout), never more than
// two chunks at once (no request of chunk k+2 before the last answer of
// chunk k), and hands every chunk over in order, each item with its
// own signature.
func TestPrefetchOverlapsChunks(t *testing.T) {
	bounds := []int{0, 128, 128 + 256, 128 + 256 + 512, 128 + 256 + 512 + 300} // the chunks prefetch makes
	n := bounds[len(bounds)-1]
	chunkOf := func(i int) int {
		k := 0
		for i >= bounds[k+1] {
			k++
		}
		return k
	}
	var mu sync.Mutex
	seq := 0
	first, last := map[int]int{}, map[int]int{} // chunk -> order of its first request's arrival, of its last answer
	second := make(chan struct{})
	var secondOnce sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var i int
		fmt.Sscanf(r.URL.Path, "/p%d.minisig", &i)
		k := chunkOf(i)
		mu.Lock()
		seq++
		if _, ok := first[k]; !ok {
			first[k] = seq
		}
		mu.Unlock()
		if k == 1 {
			secondOnce.Do(func() { close(second) })
		}
		if i == bounds[1]-1 {
			select {
			case <-second:
			case <-time.After(5 * time.Second):
				http.Error(w, "the second chunk never came", http.StatusServiceUnavailable)
				return
			}
		}
		mu.Lock()
		seq++
		last[k] = seq
		mu.Unlock()
		fmt.Fprintf(w, "signature %d", i)
	}))
	defer srv.Close()
	client, err := fetch.New(fetch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := &SourceConfig{Name: "s"}
	items := make([]*item, n)
	for i := range items {
		u := fmt.Sprintf("%s/p%d", srv.URL, i)
		items[i] = &item{src: src, client: client, pkg: files.Package{Name: fmt.Sprintf("p%d", i), URL: u,
			Signatures: []files.Signature{{URL: u + ".minisig"}}}}
	}
	chunks := make(chan []*item)
	r := &run{}
	go r.prefetch(context.Background(), items, chunks)
	next := 0
	for chunk := range chunks {
		if next+len(chunk) != bounds[chunkOf(next)+1] {
			t.Fatalf("a chunk of %d items from item %d; want the chunks %v", len(chunk), next, bounds)
		}
		for _, it := range chunk {
			if it != items[next] {
				t.Fatalf("item %s handed over in place %d", it.pkg.Name, next)
			}
			if want := fmt.Sprintf("signature %d", next); len(it.presigs) != 1 || string(it.presigs[0]) != want {
				t.Fatalf("item %d: prefetched %q, want %q", next, it.presigs, want)
			}
			next++
		}
	}
	if next != n {
		t.Fatalf("%d of %d items handed over", next, n)
	}
	mu.Lock()
	defer mu.Unlock()
	for k := 0; k+2 < len(bounds)-1; k++ {
		if first[k+2] < last[k] {
			t.Errorf("chunk %d was asked for (event %d) before chunk %d was answered (event %d): more than two at once", k+2, first[k+2], k, last[k])
		}
	}
}
