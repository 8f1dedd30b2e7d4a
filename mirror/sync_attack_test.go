package mirror

// Attacks on `mirror sync` from a hostile upstream or a hostile host
// (issue 7, docs/SECURITY.md): keys offered by the upstream, rollback and
// substitution of validly signed files, mix-and-match, a full disk, and two
// runs at once. The fake upstream and the real minisign/gpg keys come from
// syncEnv (sync_env_test.go).

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/internal/minisign"
	"github.com/mirror-tool/mirror/internal/operator"
	"github.com/mirror-tool/mirror/mirror/lock"
	"github.com/mirror-tool/mirror/mirror/repo"
	"github.com/mirror-tool/mirror/mirror/state"
	"github.com/mirror-tool/mirror/mirror/store"
	"github.com/mirror-tool/mirror/verify"
)

// TestAttackUpstreamKeysIgnored: the upstream offers its own keys (a KEYS
// file at the top, a KEYS file beside the packages, a .pub inside the
// repository) and signs a package with one of them. Sync never requests
// them, the package is rejected as signed by an unknown key, and the
// offered key appears nowhere in the bundle.
func TestAttackUpstreamKeysIgnored(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one", "rel-a")
	e.put("b/two.tar.gz", "two", "rel-b")
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)

	// The attacker's key, made by the real minisign, offered three ways.
	runTool(t, nil, "minisign", "-G", "-W", "-p", filepath.Join(e.dir, "secret", "evil.pub"), "-s", filepath.Join(e.dir, "secret", "evil.key"))
	evilPub, err := os.ReadFile(filepath.Join(e.dir, "secret", "evil.pub"))
	if err != nil {
		t.Fatal(err)
	}
	evilLine := strings.TrimSpace(strings.Split(string(evilPub), "\n")[1])
	for _, p := range []string{"KEYS", "tools/KEYS", "tools/a/KEYS", "tools/a/evil.pub", "rel/v1/KEYS"} {
		if err := os.WriteFile(filepath.Join(e.up, p), evilPub, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.put("a/evil.tar.gz", "evil payload", "evil")

	res := e.mustSync(SyncOptions{})
	rej := rejectedOf(res)
	if len(rej) != 1 || !strings.Contains(rej["tools:a/evil.tar.gz"], "unknown key") {
		t.Fatalf("rejected = %v; want tools:a/evil.tar.gz refused for an unknown key", rej)
	}
	e.mu.Lock()
	for p, n := range e.hits {
		if strings.HasSuffix(p, "/KEYS") || strings.HasSuffix(p, ".pub") {
			t.Errorf("sync requested the upstream's key %s (%d times)", p, n)
		}
	}
	e.mu.Unlock()
	m, blobs := e.openBundle(res.Bundle)
	if strings.Contains(m.Trust.File, evilLine) {
		t.Fatal("the upstream's key is in the bundle's trust file")
	}
	for _, en := range m.Tree {
		if strings.HasSuffix(en.Path, "KEYS") || strings.HasSuffix(en.Path, ".pub") || strings.Contains(en.Path, "evil") {
			t.Errorf("published tree holds %s", en.Path)
		}
	}
	if blobs[sumOf("evil payload")] != nil {
		t.Fatal("the package signed by the upstream's key is in the bundle")
	}
}

// TestAttackDemoKEYSNeverFetched runs sync over fixtures/demo/upstream,
// whose KEYS file holds a release key: sync never requests KEYS (nor any
// path outside the configured files and signatures), and jq-evil, signed
// by the key that KEYS offers, is still refused for the tools:jq/* scope.
func TestAttackDemoKEYSNeverFetched(t *testing.T) {
	needTools(t, "minisign")
	up := filepath.Join("..", "fixtures", "demo", "upstream")
	if _, err := os.Stat(filepath.Join(up, "KEYS")); err != nil {
		t.Fatalf("the demo upstream must offer a KEYS file for this test: %v", err)
	}
	hits := map[string]int{}
	var mu sync.Mutex
	fs := http.FileServer(http.Dir(up))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		fs.ServeHTTP(w, r)
	}))
	defer srv.Close()

	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join("..", "fixtures", "demo", "mirror.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfgText := strings.ReplaceAll(string(raw), "UPSTREAM_URL", srv.URL+"/")
	os.MkdirAll(filepath.Join(dir, "trust"), 0o755)
	for _, k := range []string{"hello-release.pub", "jq-release.pub"} {
		b, err := os.ReadFile(filepath.Join("..", "fixtures", "demo", "keys", k))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "trust", k), b, 0o644)
	}
	op, err := operator.Generate(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Write(filepath.Join(dir, "keys"), nil); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "mirror.toml")
	os.WriteFile(cfgPath, []byte(cfgText), 0o644)
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Sync(context.Background(), cfg, SyncOptions{Fetch: testFetchOptions()})
	if err != nil {
		t.Fatal(err)
	}
	rej := rejectedOf(res)
	if len(rej) != 1 || !strings.Contains(rej["tools:jq/jq-evil.tar.gz"], "not allowed") {
		t.Fatalf("rejected = %v; want jq-evil refused as out of scope", rej)
	}
	allowed := map[string]bool{}
	for _, f := range []string{"hello/hello-2.12.tar.gz", "jq/jq-1.7.tar.gz", "jq/jq-evil.tar.gz"} {
		allowed["/"+f], allowed["/"+f+".minisig"] = true, true
	}
	mu.Lock()
	defer mu.Unlock()
	if hits["/KEYS"] != 0 {
		t.Fatalf("sync fetched /KEYS %d times", hits["/KEYS"])
	}
	for p := range hits {
		if !allowed[p] {
			t.Errorf("sync requested %s, which the configuration does not name", p)
		}
	}
	if len(hits) == 0 {
		t.Fatal("no request reached the upstream")
	}
}

// TestAttackRollbackFilesSource pins down what the files source can and
// cannot tell about a hostile upstream serving OLD but validly signed files
// (docs/SECURITY.md, "rollback and freeze"):
//
//   - cannot: a per-file signature says nothing about time or name, so an
//     older release put back under the same name with its own (valid)
//     signature is accepted and published again, and so is a validly signed
//     file of another release served under this name;
//   - can: with a signed checksum list, a file that is not the one the
//     current list names (an old file mixed with a new list) is refused.
//
// If sync learns to refuse the first two, this test must change together
// with docs/SECURITY.md.
func TestAttackRollbackFilesSource(t *testing.T) {
	e := newSyncEnv(t)
	e.putRel("x.tar.gz", "x v1")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.put("a/one.tar.gz", "one v1", "rel-a")
	e.put("a/two.tar.gz", "two v1", "rel-a")
	e.put("b/three.tar.gz", "three v1", "rel-b")
	oldOne, _ := os.ReadFile(filepath.Join(e.up, "tools/a/one.tar.gz"))
	oldSig, _ := os.ReadFile(filepath.Join(e.up, "tools/a/one.tar.gz.minisig"))
	if res := e.mustSync(SyncOptions{}); res.Rejected != 0 || res.Bundle == nil {
		t.Fatalf("first sync %+v", res)
	}
	e.put("a/one.tar.gz", "one v2", "rel-a")
	res := e.mustSync(SyncOptions{})
	if m, _ := e.openBundle(res.Bundle); treeOf(m)["tools/a/one.tar.gz"] != sumOf("one v2") {
		t.Fatal("the new release was not published")
	}
	oldList, _ := os.ReadFile(filepath.Join(e.up, "rel/v1/SHA256SUMS.asc"))

	// Rollback: the old file and its old signature, back under the name.
	os.WriteFile(filepath.Join(e.up, "tools/a/one.tar.gz"), oldOne, 0o644)
	os.WriteFile(filepath.Join(e.up, "tools/a/one.tar.gz.minisig"), oldSig, 0o644)
	e.touch(filepath.Join(e.up, "tools/a/one.tar.gz"), filepath.Join(e.up, "tools/a/one.tar.gz.minisig"))
	// Substitution: two's name now serves one v1, with one v1's signature.
	os.WriteFile(filepath.Join(e.up, "tools/a/two.tar.gz"), oldOne, 0o644)
	os.WriteFile(filepath.Join(e.up, "tools/a/two.tar.gz.minisig"), oldSig, 0o644)
	e.touch(filepath.Join(e.up, "tools/a/two.tar.gz"), filepath.Join(e.up, "tools/a/two.tar.gz.minisig"))
	res = e.mustSync(SyncOptions{})
	if res.Rejected != 0 || res.Bundle == nil {
		t.Fatalf("rollback sync = %+v", res)
	}
	for _, p := range res.Packages {
		if p.Source+":"+p.Name == "tools:a/one.tar.gz" && p.Status != StatusUnchanged {
			t.Errorf("rolled-back package reported as %q; docs/SECURITY.md says it counts as unchanged", p.Status)
		}
	}
	m, _ := e.openBundle(res.Bundle)
	tree := treeOf(m)
	if tree["tools/a/one.tar.gz"] != sumOf("one v1") || tree["tools/a/two.tar.gz"] != sumOf("one v1") {
		t.Fatalf("the files source now detects rollback/substitution (one=%s two=%s): update this test and docs/SECURITY.md",
			tree["tools/a/one.tar.gz"], tree["tools/a/two.tar.gz"])
	}

	// Mix and match against a signed list: the list moves to x v2; an
	// upstream that keeps serving x v1 under it is refused.
	e.putRel("x.tar.gz", "x v2")
	e.sums("x.tar.gz")
	e.putRel("x.tar.gz", "x v1")
	res = e.mustSync(SyncOptions{})
	rej := rejectedOf(res)
	if !strings.Contains(rej["rel:v1/x.tar.gz"], "differs") {
		t.Fatalf("old file under the new list: rejected = %v", rej)
	}
	// The new list is shipped (it changed); the refused file is not in
	// the tree it publishes.
	m, _ = e.openBundle(res.Bundle)
	if h, ok := treeOf(m)["rel/v1/x.tar.gz"]; ok {
		t.Fatalf("rel/v1/x.tar.gz is published (%s) though the current list names other content", h)
	}
	// And the old list itself, with the old file, is a consistent old
	// state, but its OpenPGP signature is older than the list mirrored
	// last: refused as a rollback, none of its files taken.
	os.WriteFile(filepath.Join(e.up, "rel/v1/SHA256SUMS.asc"), oldList, 0o644)
	e.touch(filepath.Join(e.up, "rel/v1/SHA256SUMS.asc"))
	res = e.mustSync(SyncOptions{})
	if rej := rejectedOf(res); !strings.Contains(rej["rel:v1/SHA256SUMS.asc"], ErrUpstreamRollback.Error()) || len(rej) != 1 {
		t.Fatalf("old list with its own file: rejected = %v", rej)
	}
	// Refused again on the next run: the mark survives a refusal.
	if rej := rejectedOf(e.mustSync(SyncOptions{})); !strings.Contains(rej["rel:v1/SHA256SUMS.asc"], ErrUpstreamRollback.Error()) {
		t.Fatalf("second run on the old list: rejected = %v", rej)
	}
}

// TestAttackRollbackListOutOfScopeKey: the rollback mark of a checksum list
// comes only from signatures whose keys passed for a file taken from it. A
// key trusted for other packages only (tools:b/*) adding a fresh signature
// to an old rel list must not make the old list look new.
func TestAttackRollbackListOutOfScopeKey(t *testing.T) {
	e := newSyncEnv(t)
	gpg := func(args ...string) []byte {
		return runTool(t, e.gpgEnv(), "gpg", append([]string{"--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	}
	gpg("--quick-gen-key", "Other <other@example.org>", "ed25519", "sign", "never")
	os.WriteFile(filepath.Join(e.dir, "keys", "other.asc"), gpg("--armor", "--export", "other@example.org"), 0o644)
	v1 := filepath.Join(e.up, "rel", "v1")
	list := filepath.Join(v1, "SHA256SUMS")
	sig := filepath.Join(v1, "SHA256SUMS.sig")
	release := func(content string) (l, s []byte) {
		e.putRel("x.tar.gz", content)
		os.WriteFile(list, []byte(sumOf(content)+"  x.tar.gz\n"), 0o644)
		os.Remove(sig)
		e.nextSecond()
		gpg("--local-user", "sums@example.org", "--detach-sign", "--output", sig, list)
		e.lastSigned = time.Now().Unix()
		e.touch(list, sig)
		l, _ = os.ReadFile(list)
		s, _ = os.ReadFile(sig)
		return
	}
	e.put("a/one.tar.gz", "one", "rel-a")
	e.put("b/two.tar.gz", "two", "rel-b")
	oldList, oldSig := release("x v1")
	release("x v2")
	e.writeConfig("files = [\"v1/*.tar.gz\"]\nchecksums = \"v1/SHA256SUMS\"\nchecksums_signature = \"v1/SHA256SUMS.sig\"")
	cfg, _ := os.ReadFile(e.cfgPath)
	os.WriteFile(e.cfgPath, []byte(strings.Replace(string(cfg), "[[source]]",
		"[[trust.key]]\nname = \"other\"\nfile = \"keys/other.asc\"\nallow = [\"tools:b/*\"]\n\n[[source]]", 1)), 0o644)
	if res := e.mustSync(SyncOptions{}); res.Rejected != 0 {
		t.Fatalf("v2: %v", rejectedOf(res))
	}

	serveOld := func(sigBytes []byte) {
		e.putRel("x.tar.gz", "x v1")
		os.WriteFile(list, oldList, 0o644)
		os.WriteFile(sig, sigBytes, 0o644)
		e.touch(list, sig)
	}
	// Control: the old list with its own signature is refused.
	serveOld(oldSig)
	if rej := rejectedOf(e.mustSync(SyncOptions{})); !strings.Contains(rej["rel:v1/SHA256SUMS"], ErrUpstreamRollback.Error()) {
		t.Fatalf("control: old list not refused: %v", rej)
	}
	// Attack: the same old list and old sums signature, plus a fresh
	// signature by "other" (allowed only for tools:b/*) in the same file.
	e.nextSecond()
	fresh := filepath.Join(e.dir, "fresh.sig")
	gpg("--local-user", "other@example.org", "--detach-sign", "--output", fresh, list)
	extra, _ := os.ReadFile(fresh)
	serveOld(append(append([]byte{}, oldSig...), extra...))
	res := e.mustSync(SyncOptions{})
	if rej := rejectedOf(res); !strings.Contains(rej["rel:v1/SHA256SUMS"], ErrUpstreamRollback.Error()) {
		t.Errorf("old list with a fresh signature by a key allowed only for tools:b/*: rejected %v, want the list refused as a rollback", rej)
	}
	if res.Bundle != nil {
		m, blobs := e.openBundle(res.Bundle)
		if got := string(blobs[treeOf(m)["rel/v1/x.tar.gz"]]); got == "x v1" {
			t.Errorf("rolled-back rel:v1/x.tar.gz published: %q", got)
		}
	}
}

// TestAttackRollbackAfterListingOmits: a listing fetched by URL is not
// signed, so the upstream can leave a package out of it for one run. The
// package's rollback mark must survive that run (carryMarks): when it is
// back with an old, validly signed release, that release is refused.
func TestAttackRollbackAfterListingOmits(t *testing.T) {
	e := newSyncEnv(t)
	e.putStock("a/one.tar.gz", "one v1", "rel-a")
	e.putStock("b/two.tar.gz", "two", "rel-b")
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.listingByURL()
	publishListing := func(omit string) {
		l, _ := os.ReadFile(filepath.Join(e.dir, "listing.txt"))
		var keep []string
		for _, line := range strings.Split(string(l), "\n") {
			if omit == "" || !strings.HasPrefix(line, omit) {
				keep = append(keep, line)
			}
		}
		os.WriteFile(filepath.Join(e.up, "listing.txt"), []byte(strings.Join(keep, "\n")), 0o644)
	}
	read := func(p string) []byte { b, _ := os.ReadFile(filepath.Join(e.up, "tools", p)); return b }
	oldOne, oldSig := read("a/one.tar.gz"), read("a/one.tar.gz.minisig")
	publishListing("")
	e.mustSync(SyncOptions{})
	e.putStock("a/one.tar.gz", "one v2", "rel-a")
	publishListing("")
	if res := e.mustSync(SyncOptions{}); res.Rejected != 0 {
		t.Fatalf("v2: %v", rejectedOf(res))
	}
	serveOld := func() {
		p := filepath.Join(e.up, "tools", "a/one.tar.gz")
		os.WriteFile(p, oldOne, 0o644)
		os.WriteFile(p+".minisig", oldSig, 0o644)
		e.touch(p, p+".minisig")
	}
	// Control: the rollback is refused.
	serveOld()
	if rej := rejectedOf(e.mustSync(SyncOptions{})); !strings.Contains(rej["tools:a/one.tar.gz"], ErrUpstreamRollback.Error()) {
		t.Fatalf("control: %v", rej)
	}
	// Attack: one run without a/one.tar.gz in the listing...
	publishListing("a/one.tar.gz")
	e.mustSync(SyncOptions{})
	// ...then it is back, with the old release.
	publishListing("")
	res := e.mustSync(SyncOptions{})
	if rej := rejectedOf(res); !strings.Contains(rej["tools:a/one.tar.gz"], ErrUpstreamRollback.Error()) {
		t.Errorf("old tools:a/one.tar.gz after one run in which the listing left it out: rejected %v, want it refused as a rollback", rej)
	}
	if res.Bundle != nil {
		if m, _ := e.openBundle(res.Bundle); treeOf(m)["tools/a/one.tar.gz"] == sumOf("one v1") {
			t.Error("the rolled-back version is in the bundle's publish tree")
		}
	}
}

// TestAttackForgedStateVerdict: a state folder edited between runs (the
// verdict and upstream record of a package in sync.state pointed at a blob
// put in the cache) must not make sync bundle, under the operator's
// signature, a file no trusted key signed: a remembered verdict spares the
// check only of a file an earlier bundle carried.
func TestAttackForgedStateVerdict(t *testing.T) {
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("full=%v", full), func(t *testing.T) { forgedStateVerdict(t, full) })
	}
}

// forgedStateVerdict forges the state; with full, it also records the
// forged blob as shipped, and the next run is a --full one, which carries
// every blob.
func forgedStateVerdict(t *testing.T, full bool) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one", "rel-a")
	e.put("b/two.tar.gz", "two", "rel-b")
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	first := e.mustSync(SyncOptions{})

	sdir := filepath.Join(e.dir, "state")
	st, err := state.Load(sdir)
	if err != nil {
		t.Fatal(err)
	}
	evil := []byte("EVIL, never signed")
	cache, _ := store.Open(filepath.Join(sdir, CacheDir))
	if err := cache.Put(context.Background(), bytes.NewReader(evil), sumOf(string(evil)), int64(len(evil))); err != nil {
		t.Fatal(err)
	}
	u := e.srv.URL + "/tools/a/one.tar.gz"
	st.Upstreams[u] = state.Upstream{SHA256: sumOf(string(evil)), Size: int64(len(evil))}
	v := st.Verified["tools:a/one.tar.gz"]
	v.File = sumOf(string(evil))
	st.Verified["tools:a/one.tar.gz"] = v
	if full {
		st.Shipped[sumOf(string(evil))] = st.Sequence
	}
	if err := st.Save(sdir); err != nil {
		t.Fatal(err)
	}

	res := e.mustSync(SyncOptions{Full: full})
	if why := rejectedOf(res)["tools:a/one.tar.gz"]; why == "" {
		t.Errorf("the forged verdict was taken: tools:a/one.tar.gz not refused")
	}
	if res.Bundle == nil {
		return // nothing carried: nothing reached a bundle
	}
	inside := t.TempDir()
	bundles := []string{first.Bundle.Path, res.Bundle.Path}
	if full {
		bundles = bundles[1:]
	}
	if _, err := Import(context.Background(), ImportOptions{Repo: inside, Pub: e.pub}, bundles); err != nil {
		t.Fatalf("import: %v", err)
	}
	got, _ := os.ReadFile(filepath.Join(inside, repo.CurrentLink, "tools/a/one.tar.gz"))
	if bytes.Equal(got, evil) {
		t.Errorf("the inside serves %q as tools/a/one.tar.gz, in a bundle signed by the operator; upstream still serves %q", got, "one")
	}
}

// TestAttackRollbackSignedTime: with signatures that state when they were
// made (the stock minisign's default trusted comment, OpenPGP), a hostile
// mirror can no longer put an old release back under its name, nor serve
// one validly signed file under another's name; the operator can accept a
// real upstream rollback for one run with AcceptRollback.
func TestAttackRollbackSignedTime(t *testing.T) {
	e := newSyncEnv(t)
	e.putRel("x.tar.gz", "x v1")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.putStock("a/one.tar.gz", "one v1", "rel-a")
	e.putStock("a/two.tar.gz", "two v1", "rel-a")
	e.putStock("b/three.tar.gz", "three v1", "rel-b")
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(e.up, "tools", p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	serve := func(name string, body, sig []byte) {
		p := filepath.Join(e.up, "tools", name)
		os.WriteFile(p, body, 0o644)
		os.WriteFile(p+".minisig", sig, 0o644)
		e.touch(p, p+".minisig")
	}
	oldOne, oldSig := read("a/one.tar.gz"), read("a/one.tar.gz.minisig")
	if res := e.mustSync(SyncOptions{}); res.Rejected != 0 || res.Bundle == nil {
		t.Fatalf("first sync %+v", res)
	}
	e.putStock("a/one.tar.gz", "one v2", "rel-a")
	if res := e.mustSync(SyncOptions{}); res.Rejected != 0 {
		t.Fatalf("v2 sync: %v", rejectedOf(res))
	}
	newOne, newSig := read("a/one.tar.gz"), read("a/one.tar.gz.minisig")

	// Rollback: one v1 with its own valid signature, back under its name.
	// Substitution: two's name serves one v2 with one v2's signature.
	serve("a/one.tar.gz", oldOne, oldSig)
	serve("a/two.tar.gz", newOne, newSig)
	for run := 1; run <= 2; run++ { // the second run: still refused
		res := e.mustSync(SyncOptions{})
		rej := rejectedOf(res)
		if !strings.Contains(rej["tools:a/one.tar.gz"], ErrUpstreamRollback.Error()) ||
			!strings.Contains(rej["tools:a/two.tar.gz"], verify.ErrWrongFile.Error()) || len(rej) != 2 {
			t.Fatalf("run %d: rejected = %v", run, rej)
		}
		if res.Bundle != nil {
			m, _ := e.openBundle(res.Bundle)
			tree := treeOf(m)
			if _, ok := tree["tools/a/one.tar.gz"]; ok {
				t.Fatalf("run %d: the rolled-back file is published", run)
			}
			if _, ok := tree["tools/a/two.tar.gz"]; ok {
				t.Fatalf("run %d: the substituted file is published", run)
			}
		}
	}

	// The upstream really goes back to v1: the operator says so for one
	// run; v1 is then the mark, and v2 (newer) is accepted again later.
	serve("a/two.tar.gz", []byte("two v1"), nil)
	e.putStock("a/two.tar.gz", "two v1", "rel-a")
	res := e.mustSync(SyncOptions{AcceptRollback: []string{"tools:a/one.*"}})
	if rej := rejectedOf(res); len(rej) != 0 {
		t.Fatalf("accepted rollback: rejected = %v", rej)
	}
	if m, _ := e.openBundle(res.Bundle); treeOf(m)["tools/a/one.tar.gz"] != sumOf("one v1") {
		t.Fatal("the accepted rollback is not published")
	}
	serve("a/one.tar.gz", newOne, newSig)
	if rej := rejectedOf(e.mustSync(SyncOptions{})); len(rej) != 0 {
		t.Fatalf("v2 again after the accepted rollback: rejected = %v", rej)
	}

	// The checksum list: an older clearsigned list (OpenPGP creation
	// time) is refused; the list newer than the mark is taken.
	oldList, _ := os.ReadFile(filepath.Join(e.up, "rel/v1/SHA256SUMS.asc"))
	e.putRel("x.tar.gz", "x v2")
	e.sums("x.tar.gz")
	if rej := rejectedOf(e.mustSync(SyncOptions{})); len(rej) != 0 {
		t.Fatalf("new list: rejected = %v", rej)
	}
	os.WriteFile(filepath.Join(e.up, "rel/v1/SHA256SUMS.asc"), oldList, 0o644)
	e.putRel("x.tar.gz", "x v1")
	e.touch(filepath.Join(e.up, "rel/v1/SHA256SUMS.asc"))
	if rej := rejectedOf(e.mustSync(SyncOptions{})); !strings.Contains(rej["rel:v1/SHA256SUMS.asc"], ErrUpstreamRollback.Error()) {
		t.Fatalf("old list: rejected = %v", rej)
	}
}

// TestHelperSyncFullDisk is not a test: it is a `mirror sync` process run
// by TestAttackFullDiskSync with RLIMIT_FSIZE set, so that every write past
// the limit fails with EFBIG as on a full disk. It does nothing unless
// MIRROR_ATTACK_FSIZE is set.
func TestHelperSyncFullDisk(t *testing.T) {
	limit := os.Getenv("MIRROR_ATTACK_FSIZE")
	if limit == "" {
		return
	}
	n, err := strconv.ParseUint(limit, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	signal.Ignore(syscall.SIGXFSZ) // a write past the limit returns EFBIG
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(os.Getenv("MIRROR_ATTACK_CONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	opt := SyncOptions{Fetch: testFetchOptions()}
	opt.Fetch.Retries = 1
	if _, err := Sync(context.Background(), cfg, opt); err != nil {
		fmt.Fprintf(os.Stderr, "SYNC-ERROR: %v\n", err)
		os.Exit(7)
	}
}

// TestAttackFullDiskSync: the disk fills up while a package downloads, and
// again while the bundle is written. Each failed run exits with an error,
// records nothing, leaves no bundle visible; the next run on a disk with
// room makes sequence 1 holding every package, and it verifies.
func TestAttackFullDiskSync(t *testing.T) {
	e := newSyncEnv(t)
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	random := func(n int) string {
		b := make([]byte, n)
		rand.Read(b)
		return string(b)
	}
	// Incompressible, so that the bundle is larger than any one file.
	e.put("a/p1.tar.gz", random(60<<10), "rel-a")
	e.put("a/p2.tar.gz", random(60<<10), "rel-a")
	e.put("b/p3.tar.gz", random(60<<10), "rel-b")
	e.put("b/big.tar.gz", random(100<<10), "rel-b")
	stateDir := filepath.Join(e.dir, "state")
	bundles := filepath.Join(e.dir, "bundles")

	for _, c := range []struct {
		name  string
		limit int
	}{
		{"while downloading", 80 << 10},              // big.tar.gz cannot be stored
		{"while writing the bundle", 200 << 10},      // every file fits, the ~280 KiB bundle does not
		{"while downloading, second time", 80 << 10}, // on top of what the runs before left
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSyncFullDisk$", "-test.count=1")
			cmd.Env = append(os.Environ(), "MIRROR_ATTACK_FSIZE="+strconv.Itoa(c.limit), "MIRROR_ATTACK_CONFIG="+e.cfgPath)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				t.Fatalf("the run on a full disk did not fail as a sync error: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "file too large") {
				t.Fatalf("the failure is not the full disk:\n%s", out)
			}
			t.Logf("%s", strings.TrimSpace(string(out)))
			st, err := state.Load(stateDir)
			if err != nil || st.Sequence != 0 || len(st.Shipped) != 0 {
				t.Fatalf("state after the failed run: %+v %v", st, err)
			}
			ents, _ := os.ReadDir(bundles)
			for _, en := range ents {
				if strings.HasSuffix(en.Name(), ".tar.zst") || strings.HasSuffix(en.Name(), ".minisig") || strings.Contains(en.Name(), ".part-") {
					t.Fatalf("a failed run left a visible bundle file %s", en.Name())
				}
			}
		})
	}
	res := e.mustSync(SyncOptions{})
	if res.Bundle == nil || res.Bundle.Sequence != 1 || res.Rejected != 0 {
		t.Fatalf("run with room = %+v", res)
	}
	_, blobs := e.openBundle(res.Bundle)
	for _, p := range []string{"a/p1.tar.gz", "a/p2.tar.gz", "b/p3.tar.gz", "b/big.tar.gz"} {
		want, _ := os.ReadFile(filepath.Join(e.up, "tools", p))
		if string(blobs[sumOf(string(want))]) != string(want) {
			t.Errorf("%s: not in the bundle after the disk had room", p)
		}
	}
}

// TestAttackTwoSyncsAtOnce: a second `mirror sync` (another process, as
// from an overlapping cron job) while the first is downloading stops at
// once with the lock error naming the holder, touches neither upstream nor
// state, and the first run completes normally.
func TestAttackTwoSyncsAtOnce(t *testing.T) {
	e := newSyncEnv(t)
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.put("a/one.tar.gz", "one", "rel-a")
	e.put("a/slow.tar.gz", strings.Repeat("slow ", 4000), "rel-a")
	started := make(chan struct{}, 1)
	e.fault("/tools/a/slow.tar.gz", func(w http.ResponseWriter, r *http.Request) {
		body, _ := os.ReadFile(filepath.Join(e.up, "tools/a/slow.tar.gz"))
		select {
		case started <- struct{}{}:
		default:
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		for i := 0; i < len(body); i += 1000 {
			if _, err := w.Write(body[i:min(i+1000, len(body))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	first := exec.Command(os.Args[0], "-test.run=^TestHelperSyncChild$", "-test.count=1")
	first.Env = append(os.Environ(), "MIRROR_SYNC_CHILD_CONFIG="+e.cfgPath)
	var out strings.Builder
	first.Stdout, first.Stderr = &out, &out
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(60 * time.Second):
		first.Process.Kill()
		t.Fatal("the first run never reached the upstream")
	}
	// The second run reads a copy of the config (same state directory)
	// whose upstream is a server of its own: the first run keeps making
	// requests of e.srv concurrently, so only a separate server can tell
	// whether the second touched an upstream.
	var secondHits atomic.Int32
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secondHits.Add(1)
		http.FileServer(http.Dir(e.up)).ServeHTTP(w, r)
	}))
	defer second.Close()
	cfgText, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	secondCfg := filepath.Join(filepath.Dir(e.cfgPath), "second.toml")
	if err := os.WriteFile(secondCfg, []byte(strings.ReplaceAll(string(cfgText), e.srv.URL, second.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(secondCfg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err = Sync(context.Background(), cfg, SyncOptions{Fetch: testFetchOptions()})
	var le *lock.LockedError
	if !errors.As(err, &le) || le.PID != first.Process.Pid {
		first.Process.Kill()
		t.Fatalf("second run: %v; want the lock error naming pid %d", err, first.Process.Pid)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("the second run waited %v", d)
	}
	if n := secondHits.Load(); n != 0 {
		t.Errorf("the second run made %d requests of its upstream", n)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first run: %v\n%s", err, out.String())
	}
	st, err := state.Load(filepath.Join(e.dir, "state"))
	if err != nil || st.Sequence != 1 {
		t.Fatalf("state after both runs: %+v %v", st, err)
	}
}

// TestRollbackMarkNotInTheFuture: a release whose minisign timestamp lies
// years ahead (the signer's clock was wrong) does not set a mark that the
// next, correctly dated release cannot pass; an older release is still
// refused after it.
func TestRollbackMarkNotInTheFuture(t *testing.T) {
	e := newSyncEnv(t)
	e.putRel("x.tar.gz", "x v1")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.putStock("a/one.tar.gz", "one v1", "rel-a")
	e.putStock("b/three.tar.gz", "three v1", "rel-b")
	oldOne, _ := os.ReadFile(filepath.Join(e.up, "tools/a/one.tar.gz"))
	oldSig, _ := os.ReadFile(filepath.Join(e.up, "tools/a/one.tar.gz.minisig"))
	if res := e.mustSync(SyncOptions{}); res.Rejected != 0 {
		t.Fatalf("first sync: %v", rejectedOf(res))
	}
	// v2, signed with the same key by a clock in 2030.
	keyData, err := os.ReadFile(filepath.Join(e.dir, "secret", "rel-a.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := minisign.ParsePrivateKey(keyData, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(e.up, "tools/a/one.tar.gz")
	os.WriteFile(p, []byte("one v2"), 0o644)
	future := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	sig, err := key.Sign(strings.NewReader("one v2"), fmt.Sprintf("timestamp:%d\tfile:one.tar.gz\thashed", future.Unix()), "signature from minisign secret key")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p+".minisig", sig.Marshal(), 0o644)
	e.touch(p, p+".minisig")
	if res := e.mustSync(SyncOptions{}); res.Rejected != 0 {
		t.Fatalf("future-dated v2: %v", rejectedOf(res))
	}
	// v3, signed now: newer than the mark (this run's time), accepted.
	e.putStock("a/one.tar.gz", "one v3", "rel-a")
	if res := e.mustSync(SyncOptions{}); res.Rejected != 0 {
		t.Fatalf("correctly dated v3 after a future-dated v2: %v", rejectedOf(res))
	}
	// v1 again: older than the mark, refused.
	os.WriteFile(p, oldOne, 0o644)
	os.WriteFile(p+".minisig", oldSig, 0o644)
	e.touch(p, p+".minisig")
	if rej := rejectedOf(e.mustSync(SyncOptions{})); !strings.Contains(rej["tools:a/one.tar.gz"], ErrUpstreamRollback.Error()) {
		t.Fatalf("v1 after v3: rejected = %v", rej)
	}
}
