package mirror

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/minisign"
	"github.com/mirror-tool/mirror/internal/operator"
	"github.com/mirror-tool/mirror/mirror/fetch"
)

// syncEnv is a fake upstream (httptest, over a folder) with release keys
// made by the real minisign and gpg, an operator key, and a mirror.toml.
//
// Sources in the config:
//
//	tools: files signed per file with minisign ({file}.minisig), chosen by
//	       globs over a local listing; rel-a may sign tools:a/*, rel-b
//	       tools:b/*.
//	rel:   files covered by a clearsigned SHA256SUMS.asc (gpg key "sums",
//	       allowed for rel:v1/*), chosen by a glob over the list plus one
//	       file by name.
type syncEnv struct {
	t       *testing.T
	dir     string
	up      string
	srv     *httptest.Server
	gnupg   string
	cfgPath string
	pub     minisign.PublicKey

	clock time.Time // upstream mtimes: every write moves it on by 2s

	lastSigned int64 // unix second of the last timed signature (nextSecond)

	mu      sync.Mutex
	faults  map[string]http.HandlerFunc
	hits    map[string]int
	conns   map[string][]string // client address (one per connection) -> paths asked on it
	listing map[string]bool
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for this test (scripts/test installs it): %v", tool, err)
		}
	}
}

func runTool(t *testing.T, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func newSyncEnv(t *testing.T) *syncEnv {
	t.Helper()
	needTools(t, "minisign", "gpg", "sha256sum")
	dir := t.TempDir()
	e := &syncEnv{t: t, dir: dir, clock: time.Now().Add(-time.Hour), up: filepath.Join(dir, "upstream"), faults: map[string]http.HandlerFunc{},
		hits: map[string]int{}, conns: map[string][]string{}, listing: map[string]bool{}}
	for _, d := range []string{"keys", "secret", "upstream/tools", "upstream/rel/v1"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"rel-a", "rel-b"} {
		runTool(t, nil, "minisign", "-G", "-W", "-p", filepath.Join(dir, "keys", k+".pub"), "-s", filepath.Join(dir, "secret", k+".key"))
	}
	// A short GNUPGHOME keeps gpg-agent's socket path within limits.
	gh, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", gh, "--kill", "all").Run()
		os.RemoveAll(gh)
	})
	os.Chmod(gh, 0o700)
	e.gnupg = gh
	runTool(t, e.gpgEnv(), "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", "Sums Signer <sums@example.org>", "ed25519", "sign", "never")
	asc := runTool(t, e.gpgEnv(), "gpg", "--batch", "--armor", "--export", "sums@example.org")
	if err := os.WriteFile(filepath.Join(dir, "keys", "sums.asc"), asc, 0o644); err != nil {
		t.Fatal(err)
	}
	op, err := operator.Generate(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Write(filepath.Join(dir, "op"), nil); err != nil {
		t.Fatal(err)
	}
	e.pub = op.Public()

	fs := http.FileServer(http.Dir(e.up))
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.hits[r.URL.Path]++
		e.conns[r.RemoteAddr] = append(e.conns[r.RemoteAddr], r.URL.Path)
		f := e.faults[r.URL.Path]
		e.mu.Unlock()
		if f != nil {
			f(w, r)
			return
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)

	e.cfgPath = filepath.Join(dir, "mirror.toml")
	e.writeConfig(`files = ["v1/*.tar.gz", "v1/extra.tar.gz"]`)
	return e
}

func (e *syncEnv) gpgEnv() []string { return []string{"GNUPGHOME=" + e.gnupg} }

func (e *syncEnv) writeConfig(relFiles string) {
	cfg := fmt.Sprintf(`jobs = 4

[operator]
key = "op/operator.key"

[output]
dir = "bundles"
state = "state"
expires = "240h"

[[trust.key]]
name = "rel-a"
file = "keys/rel-a.pub"
allow = ["tools:a/*"]

[[trust.key]]
name = "rel-b"
file = "keys/rel-b.pub"
allow = ["tools:b/*"]

[[trust.key]]
name = "sums"
file = "keys/sums.asc"
allow = ["rel:v1/*"]

[[source]]
name = "tools"
type = "files"
url = "%s/tools/"
files = ["a/*.tar.gz", "b/*.tar.gz"]
listing = "listing.txt"
signatures = ["{file}.minisig"]

[[source]]
name = "rel"
type = "files"
url = "%s/rel/"
%s
`, e.srv.URL, e.srv.URL, relFiles)
	if !strings.Contains(relFiles, "checksums") {
		cfg += "checksums = \"v1/SHA256SUMS.asc\"\n"
	}
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// put writes tools/NAME upstream, signed by key with the real minisign
// (key "" leaves the old signature), and lists it. The trusted comment is
// the file's name alone (-t): no signing time, no `file:` field.
func (e *syncEnv) put(name, content, key string) { e.putSigned(name, content, key, false) }

// putStock is put with the stock minisign's default trusted comment
// ("timestamp:...\tfile:NAME"), signed at a later second than the last
// timed signature.
func (e *syncEnv) putStock(name, content, key string) { e.putSigned(name, content, key, true) }

func (e *syncEnv) putSigned(name, content, key string, stock bool) {
	e.t.Helper()
	p := filepath.Join(e.up, "tools", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		os.Remove(p + ".minisig")
		args := []string{"-S", "-s", filepath.Join(e.dir, "secret", key+".key"), "-m", p, "-x", p + ".minisig"}
		if stock {
			e.nextSecond()
		} else {
			args = append(args, "-t", filepath.Base(p))
		}
		runTool(e.t, nil, "minisign", args...)
		if stock {
			e.lastSigned = time.Now().Unix()
		}
	}
	e.touch(p)
	if key != "" {
		e.touch(p + ".minisig")
	}
	e.listing[name] = true
	e.writeListing()
}

// cachedBlob is where the state's cache keeps content.
func (e *syncEnv) cachedBlob(content string) string {
	return filepath.Join(e.dir, "state", CacheDir, "sha256", sumOf(content)[:2], sumOf(content))
}

// listingByURL makes the tools source fetch its listing from the upstream
// (listing.txt there) instead of reading the local file.
func (e *syncEnv) listingByURL() {
	e.t.Helper()
	b, err := os.ReadFile(e.cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	c := strings.Replace(string(b), `listing = "listing.txt"`, `listing = "`+e.srv.URL+`/listing.txt"`, 1)
	if c == string(b) {
		e.t.Fatal("the config has no local listing to replace")
	}
	if err := os.WriteFile(e.cfgPath, []byte(c), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// touch gives an upstream file a later mtime, as a real upstream's file has
// after it was replaced (Last-Modified has one-second resolution).
func (e *syncEnv) touch(paths ...string) {
	e.clock = e.clock.Add(2 * time.Second)
	for _, p := range paths {
		if err := os.Chtimes(p, e.clock, e.clock); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *syncEnv) remove(name string) {
	os.Remove(filepath.Join(e.up, "tools", name))
	os.Remove(filepath.Join(e.up, "tools", name+".minisig"))
	delete(e.listing, name)
	e.writeListing()
}

func (e *syncEnv) writeListing() {
	var names []string
	for n := range e.listing {
		names = append(names, n, n+".minisig")
	}
	sort.Strings(names)
	if err := os.WriteFile(filepath.Join(e.dir, "listing.txt"), []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// putRel writes rel/v1/NAME upstream (not listed until sums is called).
func (e *syncEnv) putRel(name, content string) {
	p := filepath.Join(e.up, "rel", "v1", name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.touch(p)
}

// sums writes v1/SHA256SUMS with the real sha256sum over names and
// clearsigns it with the real gpg.
func (e *syncEnv) sums(names ...string) {
	e.t.Helper()
	v1 := filepath.Join(e.up, "rel", "v1")
	cmd := exec.Command("sha256sum", names...)
	cmd.Dir = v1
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatal(err)
	}
	list := filepath.Join(e.dir, "SHA256SUMS")
	os.WriteFile(list, out, 0o644)
	os.Remove(filepath.Join(v1, "SHA256SUMS.asc"))
	e.nextSecond()
	runTool(e.t, e.gpgEnv(), "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--local-user", "sums@example.org",
		"--clearsign", "--output", filepath.Join(v1, "SHA256SUMS.asc"), list)
	e.lastSigned = time.Now().Unix()
	e.touch(filepath.Join(v1, "SHA256SUMS.asc"))
}

// nextSecond waits, when needed, until the wall clock is past the second of
// the last timed signature: signature times have one-second resolution, and
// a newer release must be signed at a later second than the older one, as
// it is upstream.
func (e *syncEnv) nextSecond() {
	for time.Now().Unix() <= e.lastSigned {
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *syncEnv) fault(path string, h http.HandlerFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if h == nil {
		delete(e.faults, path)
	} else {
		e.faults[path] = h
	}
}

func testFetchOptions() fetch.Options {
	return fetch.Options{Timeout: 5 * time.Second, Retries: 3, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		StallTimeout: 2 * time.Second, LowSpeedLimit: 1}
}

func (e *syncEnv) sync(opt SyncOptions) (*SyncResult, error) {
	e.t.Helper()
	cfg, err := LoadConfig(e.cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	if opt.Fetch.Timeout == 0 {
		opt.Fetch = testFetchOptions()
	}
	return Sync(context.Background(), cfg, opt)
}

func (e *syncEnv) mustSync(opt SyncOptions) *SyncResult {
	e.t.Helper()
	res, err := e.sync(opt)
	if err != nil {
		e.t.Fatalf("sync: %v", err)
	}
	return res
}

func sumOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// openBundle checks a written bundle with the real minisign tool and with
// bundle.Open against the operator public key, reads every blob (each hash
// checked by the reader) and returns the manifest and the blobs.
func (e *syncEnv) openBundle(b *BundleResult) (*bundle.Manifest, map[string][]byte) {
	e.t.Helper()
	if b == nil {
		e.t.Fatal("no bundle was written")
	}
	runTool(e.t, nil, "minisign", "-V", "-q", "-p", filepath.Join(e.dir, "op", "operator.pub"), "-m", b.Path)
	paths := b.Paths[:len(b.Paths)-1]
	r, err := bundle.Open(context.Background(), paths, e.pub, bundle.Limits{})
	if err != nil {
		e.t.Fatalf("bundle.Open: %v", err)
	}
	defer r.Close()
	blobs := map[string][]byte{}
	for {
		info, rd, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			e.t.Fatalf("bundle blob: %v", err)
		}
		data, err := io.ReadAll(rd)
		if err != nil {
			e.t.Fatalf("bundle blob %s: %v", info.SHA256, err)
		}
		blobs[info.SHA256] = data
	}
	return r.Manifest(), blobs
}

func packageNames(m *bundle.Manifest) []string {
	var out []string
	for _, p := range m.Packages {
		out = append(out, p.Source+":"+p.Name)
	}
	sort.Strings(out)
	return out
}

func treeOf(m *bundle.Manifest) map[string]string {
	out := map[string]string{}
	for _, e := range m.Tree {
		out[e.Path] = e.SHA256
	}
	return out
}

// newOneFileSyncEnv is a syncEnv with one file signed on its own
// (tools:a/one.tar.gz, key rel-a) and one from a signed checksum list
// (rel:v1/x.tar.gz), configured, not yet synced.
func newOneFileSyncEnv(t *testing.T) *syncEnv {
	t.Helper()
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one v1", "rel-a")
	e.putRel("x.tar.gz", "x v1")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	return e
}

func rejectedOf(res *SyncResult) map[string]string {
	out := map[string]string{}
	for _, p := range res.Packages {
		if p.Status == StatusRejected {
			out[p.Source+":"+p.Name] = p.Reason
		}
	}
	return out
}

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

// requests is how many requests the upstream answered so far.
func (e *syncEnv) requests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.hits {
		n += c
	}
	return n
}

func (e *syncEnv) hitsOf(path string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hits[path]
}
