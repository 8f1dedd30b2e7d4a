package mirror

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/mirror-tool/mirror/mirror/fetch"
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
// connections of their own, each once; `pipelining = false` fetches them
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
