package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mirror-tool/mirror/mirror/repo"
	"github.com/mirror-tool/mirror/mirror/serve"
)

// TestEndToEndImport is the README's main job through the command line:
// keygen -> sync (a loopback upstream over fixtures/demo) -> verify ->
// import -> serve -> download, compared with the upstream's file; then a
// delta sync adds a package: import -> the new one is served and the old
// one still is; the receipt drives `sync --since`.
func TestEndToEndImport(t *testing.T) {
	up := filepath.Join(demoFixtures, "upstream")
	upstream := httptest.NewServer(http.FileServer(http.Dir(up)))
	defer upstream.Close()
	work := t.TempDir()
	keys, rdir := filepath.Join(work, "keys"), filepath.Join(work, "repo")
	pub := filepath.Join(keys, "operator.pub")

	mustRun := func(want int, args ...string) string {
		t.Helper()
		code, out, errs := runCLI(args...)
		if code != want {
			t.Fatalf("mirror %s: exit %d, want %d\n%s\n%s", strings.Join(args, " "), code, want, out, errs)
		}
		return out
	}
	mustRun(exitOK, "keygen", "--out", keys, "--unencrypted")

	os.MkdirAll(filepath.Join(work, "trust"), 0o755)
	for _, k := range []string{"hello-release.pub", "jq-release.pub"} {
		b, err := os.ReadFile(filepath.Join(demoFixtures, "keys", k))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(work, "trust", k), b, 0o644)
	}
	tmpl, err := os.ReadFile(filepath.Join(demoFixtures, "mirror.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfgText := strings.Replace(string(tmpl), "UPSTREAM_URL", upstream.URL+"/", 1)
	cfgText = strings.Replace(cfgText, `, "jq/jq-1.7.tar.gz", "jq/jq-evil.tar.gz"`, "", 1)
	cfg := filepath.Join(work, "mirror.toml")
	os.WriteFile(cfg, []byte(cfgText), 0o644)

	mustRun(exitOK, "sync", "--config", cfg)
	b1 := filepath.Join(work, "bundles", "mirror-000001.tar.zst")
	mustRun(exitOK, "verify", "--pub", pub, b1)
	out := mustRun(exitOK, "import", "--pub", pub, "--repo", rdir, b1)
	if !strings.Contains(out, "imported sequence 1") {
		t.Fatalf("import said %q", out)
	}

	srv := httptest.NewServer(serve.NewHandler(rdir))
	defer srv.Close()
	hello := servedPath(t, rdir, "hello-2.12.tar.gz")
	checkServed(t, srv.URL, hello, filepath.Join(up, "hello", "hello-2.12.tar.gz"))

	// The operator adds jq: the next sync is a delta on sequence 1.
	os.WriteFile(cfg, []byte(strings.Replace(cfgText, `files = ["hello/hello-2.12.tar.gz"`, `files = ["hello/hello-2.12.tar.gz", "jq/jq-1.7.tar.gz"`, 1)), 0o644)
	mustRun(exitOK, "sync", "--config", cfg, "--since", filepath.Join(rdir, repo.ReceiptFile))
	b2 := filepath.Join(work, "bundles", "mirror-000002.tar.zst")
	mustRun(exitOK, "verify", "--pub", pub, b2)
	out = mustRun(exitOK, "import", "--pub", pub, "--repo", rdir, b2)
	if !strings.Contains(out, "imported sequence 2") {
		t.Fatalf("import said %q", out)
	}
	st, err := repo.ReadRecord(rdir, 2)
	if err != nil || st.BaseSequence != 1 {
		t.Fatalf("sequence 2 is not a delta on 1: %+v %v", st, err)
	}
	checkServed(t, srv.URL, servedPath(t, rdir, "jq-1.7.tar.gz"), filepath.Join(up, "jq", "jq-1.7.tar.gz"))
	checkServed(t, srv.URL, hello, filepath.Join(up, "hello", "hello-2.12.tar.gz"))
	if out := mustRun(exitOK, "status", "--repo", rdir); !strings.Contains(out, "sequence 2 (delta on 1)") {
		t.Fatalf("status:\n%s", out)
	}
}

// servedPath finds the publish path of a file name in the current tree.
func servedPath(t *testing.T, rdir, name string) string {
	t.Helper()
	n, err := repo.Current(rdir)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := repo.ReadRecord(rdir, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rec.Tree {
		if filepath.Base(e.Path) == name {
			return e.Path
		}
	}
	t.Fatalf("%s is not in the published tree", name)
	return ""
}

func checkServed(t *testing.T, base, p, upstreamFile string) {
	t.Helper()
	want, err := os.ReadFile(upstreamFile)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(base + "/" + p)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	ws, gs := sha256.Sum256(want), sha256.Sum256(got)
	if resp.StatusCode != 200 || !bytes.Equal(ws[:], gs[:]) || resp.Header.Get("ETag") != `"`+hex.EncodeToString(ws[:])+`"` {
		t.Fatalf("GET /%s: %d, sha256 %x, want the upstream's %x", p, resp.StatusCode, gs, ws)
	}
}
