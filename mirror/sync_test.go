package mirror

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/minisign"
	"github.com/mirror-tool/mirror/internal/operator"
	"github.com/mirror-tool/mirror/mirror/lock"
	"github.com/mirror-tool/mirror/mirror/source/files"
	"github.com/mirror-tool/mirror/mirror/state"
)

// TestSyncEndToEnd walks a mirror through its life against a fake upstream
// signed with the real minisign and gpg: a first full bundle with an
// out-of-scope signature and a file the signed list omits (both rejected),
// a run with nothing new, a delta with one new and one changed package, a
// tampered file, --full, and --since with a receipt.
func TestSyncEndToEnd(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one v1", "rel-a")
	e.put("b/two.tar.gz", "two v1", "rel-b")
	e.put("a/evil.tar.gz", "evil", "rel-b") // valid signature, key not allowed for tools:a/*
	e.putRel("x.tar.gz", "x v1")
	e.putRel("y.tar.gz", "y v1")
	e.putRel("extra.tar.gz", "not in the list")
	e.sums("x.tar.gz", "y.tar.gz")

	// 1. First sync: a full bundle; two rejections.
	res := e.mustSync(SyncOptions{ToolVersion: "test"})
	rej := rejectedOf(res)
	if len(rej) != 2 || !strings.Contains(rej["tools:a/evil.tar.gz"], "not allowed") || !strings.Contains(rej["rel:v1/extra.tar.gz"], "not listed") {
		t.Fatalf("rejected = %v", rej)
	}
	if res.New != 4 || res.Unchanged != 0 || res.Rejected != 2 || res.Bundle == nil || res.Bundle.Sequence != 1 || res.Bundle.BaseSequence != 0 {
		t.Fatalf("first sync = %+v, bundle %+v", res, res.Bundle)
	}
	m, blobs := e.openBundle(res.Bundle)
	wantPkgs := []string{"rel:v1/x.tar.gz", "rel:v1/y.tar.gz", "tools:a/one.tar.gz", "tools:b/two.tar.gz"}
	if got := packageNames(m); !reflect.DeepEqual(got, wantPkgs) {
		t.Fatalf("packages = %v, want %v", got, wantPkgs)
	}
	tree := treeOf(m)
	for p, content := range map[string]string{"tools/a/one.tar.gz": "one v1", "tools/b/two.tar.gz": "two v1", "rel/v1/x.tar.gz": "x v1", "rel/v1/y.tar.gz": "y v1"} {
		if tree[p] != sumOf(content) || string(blobs[tree[p]]) != content {
			t.Errorf("tree %s = %s (blob %q), want the content %q", p, tree[p], blobs[tree[p]], content)
		}
	}
	for _, p := range []string{"tools/a/one.tar.gz.minisig", "tools/b/two.tar.gz.minisig", "rel/v1/SHA256SUMS.asc"} {
		data, err := os.ReadFile(filepath.Join(e.up, p))
		if err != nil || tree[p] != sumOf(string(data)) || !reflect.DeepEqual(blobs[tree[p]], data) {
			t.Errorf("tree %s: the upstream signature is not carried as published (%v)", p, err)
		}
	}
	if _, ok := tree["tools/a/evil.tar.gz"]; ok || blobs[sumOf("evil")] != nil || blobs[sumOf("not in the list")] != nil {
		t.Fatal("a rejected package is in the bundle")
	}
	if len(m.Rejected) != 2 || len(blobs) != len(m.Blobs) || len(m.Blobs) != 7 {
		t.Fatalf("manifest rejected %+v, %d blobs", m.Rejected, len(m.Blobs))
	}
	for _, p := range m.Packages {
		if len(p.Keys) != 1 || len(p.Signatures) == 0 {
			t.Errorf("package %s: keys %v, signatures %+v", p.Name, p.Keys, p.Signatures)
		}
	}
	if !strings.Contains(m.Trust.File, "rel-a") || strings.Contains(m.Trust.File, "keys/rel-a.pub") || m.Trust.SHA256 != sumOf(m.Trust.File) {
		t.Fatalf("trust file in the manifest is not self-contained:\n%s", m.Trust.File)
	}
	firstBlobs := blobsOf(m)

	// 2. The bad files are gone upstream; nothing else changed: no bundle.
	e.remove("a/evil.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	res = e.mustSync(SyncOptions{})
	if !res.NothingNew || res.Bundle != nil || res.Rejected != 0 || res.Unchanged != 4 || res.New != 0 || res.BytesDownloaded != 0 {
		t.Fatalf("nothing-new sync = %+v", res)
	}
	if st, _ := state.Load(filepath.Join(e.dir, "state")); st.Sequence != 1 {
		t.Fatalf("state sequence after nothing new = %d", st.Sequence)
	}

	// 3. One new and one changed package: a delta on 1 that carries only
	// them, while its manifest lists the whole set.
	e.put("a/three.tar.gz", "three v1", "rel-a")
	e.put("b/two.tar.gz", "two v2", "rel-b")
	res = e.mustSync(SyncOptions{})
	if res.Bundle == nil || res.Bundle.Sequence != 2 || res.Bundle.BaseSequence != 1 || res.New != 2 || res.Unchanged != 3 || res.Rejected != 0 {
		t.Fatalf("delta sync = %+v bundle %+v", res, res.Bundle)
	}
	m, blobs = e.openBundle(res.Bundle)
	if got := packageNames(m); len(got) != 5 {
		t.Fatalf("delta lists %v, want the whole set of 5", got)
	}
	tree = treeOf(m)
	if tree["tools/b/two.tar.gz"] != sumOf("two v2") || tree["tools/a/one.tar.gz"] != sumOf("one v1") {
		t.Fatalf("delta tree = %v", tree)
	}
	for sum := range blobs {
		if firstBlobs[sum] {
			t.Errorf("delta carries blob %s that bundle 1 shipped", sum)
		}
	}
	if string(blobs[sumOf("three v1")]) != "three v1" || string(blobs[sumOf("two v2")]) != "two v2" || len(blobs) != 4 {
		t.Fatalf("delta carries %d blobs; want the two packages and their two signatures", len(blobs))
	}

	// 4. A tampered file (signature of other content) and a file whose
	// bytes differ from the signed list: both rejected, nothing shipped,
	// nothing cached.
	e.put("a/four.tar.gz", "four as signed", "rel-a")
	os.WriteFile(filepath.Join(e.up, "tools/a/four.tar.gz"), []byte("four TAMPERED"), 0o644)
	e.putRel("z.tar.gz", "z as listed")
	e.sums("x.tar.gz", "y.tar.gz", "z.tar.gz")
	e.putRel("z.tar.gz", "z TAMPERED")
	res = e.mustSync(SyncOptions{})
	rej = rejectedOf(res)
	if len(rej) != 2 || !strings.Contains(rej["tools:a/four.tar.gz"], "signature") || !strings.Contains(rej["rel:v1/z.tar.gz"], "differs") {
		t.Fatalf("tamper rejections = %v", rej)
	}
	// The list changed (new signature bytes), so a delta with it is made;
	// the tampered files are in neither tree nor blobs.
	m, blobs = e.openBundle(res.Bundle)
	if _, ok := treeOf(m)["tools/a/four.tar.gz"]; ok || blobs[sumOf("four TAMPERED")] != nil || blobs[sumOf("z TAMPERED")] != nil {
		t.Fatal("a tampered file is in the bundle")
	}
	cache := filepath.Join(e.dir, "state", CacheDir, "sha256")
	for _, bad := range []string{"four TAMPERED", "z TAMPERED"} {
		if _, err := os.Stat(filepath.Join(cache, sumOf(bad)[:2], sumOf(bad))); err == nil {
			t.Errorf("tampered content %q entered the cache", bad)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(e.dir, "state", PartialDir)); len(ents) != 0 {
		t.Errorf("partial files left: %v", ents)
	}
	seq := res.Bundle.Sequence
	e.remove("a/four.tar.gz")
	e.sums("x.tar.gz", "y.tar.gz")

	// 5. --full carries every blob of the tree.
	res = e.mustSync(SyncOptions{Full: true})
	if res.Bundle == nil || res.Bundle.Sequence != seq+1 || res.Bundle.BaseSequence != 0 {
		t.Fatalf("full sync bundle = %+v", res.Bundle)
	}
	m, blobs = e.openBundle(res.Bundle)
	for p, sum := range treeOf(m) {
		if blobs[sum] == nil {
			t.Errorf("full bundle misses the blob of %s", p)
		}
	}

	// 6. --since: the inside holds only bundle 1; the bundle carries
	// exactly what it misses, on base 1.
	rc, _ := json.Marshal(map[string]any{"format": "mirror-receipt/v1", "sequence": 1, "bundle_id": "00112233445566778899aabbccddeeff", "blobs": keys(firstBlobs)})
	rcPath := filepath.Join(e.dir, "receipt.json")
	os.WriteFile(rcPath, rc, 0o644)
	res = e.mustSync(SyncOptions{Since: rcPath})
	if res.Bundle == nil || res.Bundle.Sequence != seq+2 || res.Bundle.BaseSequence != 1 {
		t.Fatalf("since sync bundle = %+v", res.Bundle)
	}
	m2, blobs := e.openBundle(res.Bundle)
	for p, sum := range treeOf(m2) {
		if firstBlobs[sum] == (blobs[sum] != nil) {
			t.Errorf("--since: %s blob carried=%v, inside has it=%v", p, blobs[sum] != nil, firstBlobs[sum])
		}
	}

	// The state records every sequence with no gap, and all bundles exist.
	st, err := state.Load(filepath.Join(e.dir, "state"))
	if err != nil || st.Sequence != seq+2 {
		t.Fatalf("state = %+v, %v", st, err)
	}
	for s := uint64(1); s <= st.Sequence; s++ {
		if _, err := os.Stat(filepath.Join(e.dir, "bundles", BundleName(s)+".tar.zst.minisig")); err != nil {
			t.Errorf("bundle %d: %v", s, err)
		}
	}
}

func blobsOf(m *bundle.Manifest) map[string]bool {
	out := map[string]bool{}
	for _, b := range m.Blobs {
		out[b.SHA256] = true
	}
	return out
}

func keys(m map[string]bool) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestSyncDryRun: the plan names what would be fetched; no package is
// downloaded, no bundle written, no sequence taken.
func TestSyncDryRun(t *testing.T) {
	e := newOneFileSyncEnv(t)
	res := e.mustSync(SyncOptions{DryRun: true})
	if !res.DryRun || res.Bundle != nil || res.ToFetch != 2 || res.BytesDownloaded != 0 || res.New != 2 {
		t.Fatalf("dry run = %+v", res)
	}
	e.mu.Lock()
	hitsPkg := e.hits["/tools/a/one.tar.gz"] + e.hits["/rel/v1/x.tar.gz"]
	hitsSig := e.hits["/tools/a/one.tar.gz.minisig"]
	e.mu.Unlock()
	if hitsPkg != 0 || hitsSig != 1 {
		t.Fatalf("dry run fetched packages %d times, signatures %d times", hitsPkg, hitsSig)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.dir, "bundles")); len(ents) != 0 {
		t.Fatalf("dry run wrote %v", ents)
	}
	// A real run after the dry run is sequence 1.
	if res := e.mustSync(SyncOptions{}); res.Bundle == nil || res.Bundle.Sequence != 1 {
		t.Fatalf("sync after dry run = %+v", res.Bundle)
	}
}

// TestSyncLocked: a second run on the same state exits at once.
func TestSyncLocked(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one", "rel-a")
	stateDir := filepath.Join(e.dir, "state")
	os.MkdirAll(stateDir, 0o755)
	l, err := lock.Acquire(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	_, err = e.sync(SyncOptions{})
	if !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("second run: %v, want ErrLocked", err)
	}
	if e.hits["/tools/a/one.tar.gz.minisig"] != 0 {
		t.Fatal("a locked run touched the upstream")
	}
}

// TestSyncKeyCheckedFirst: what would stop a run only when it signs is
// found before the upstream is asked anything: a missing key file, an
// unencrypted key without its operator.asc, an encrypted key whose
// passphrase file cannot be read or that has no passphrase source and no
// terminal to ask (SyncOptions.Passphrase nil). A dry run needs no key and
// reports the problem. With no passphrase file or variable, an encrypted
// key's passphrase is still asked for only when a bundle is to be signed:
// never on a run with nothing new.
func TestSyncKeyCheckedFirst(t *testing.T) {
	t.Cleanup(minisign.SetKDFLimitsForTest(32768, 1<<20))
	t.Setenv(operator.EnvPassphrase, "")
	t.Setenv(operator.EnvPassphraseFile, "")
	e := newOneFileSyncEnv(t)
	keyDir := filepath.Join(e.dir, "op")
	keyFile, ascFile := filepath.Join(keyDir, operator.KeyFile), filepath.Join(keyDir, operator.AscFile)
	aside := filepath.Join(e.dir, "aside")

	os.Rename(keyFile, aside)
	if _, err := e.sync(SyncOptions{}); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), keyFile) || e.requests() != 0 {
		t.Fatalf("no key file: %v, %d requests", err, e.requests())
	}
	if res := e.mustSync(SyncOptions{DryRun: true}); res.ToFetch != 2 || !strings.Contains(res.KeyProblem, keyFile) {
		t.Fatalf("dry run without a key: %+v", res)
	}
	before := e.requests()
	os.Rename(aside, keyFile)
	os.Rename(ascFile, aside)
	if _, err := e.sync(SyncOptions{}); err == nil || !strings.Contains(err.Error(), ascFile) || e.requests() != before {
		t.Fatalf("no operator.asc: %v, %d requests", err, e.requests()-before)
	}

	// An encrypted key, and a passphrase_file that is not there.
	os.RemoveAll(keyDir)
	k, err := operator.Generate(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Write(keyDir, []byte("the passphrase")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sync(SyncOptions{}); !errors.Is(err, operator.ErrNoPassphrase) || !strings.Contains(err.Error(), keyFile) || e.requests() != before {
		t.Fatalf("no passphrase source and none to ask: %v, %d requests", err, e.requests()-before)
	}
	cfg, _ := os.ReadFile(e.cfgPath)
	withFile := strings.Replace(string(cfg), "[operator]\n", "[operator]\npassphrase_file = \"pass\"\n", 1)
	if withFile == string(cfg) {
		t.Fatal("no [operator] table in the test config")
	}
	os.WriteFile(e.cfgPath, []byte(withFile), 0o644)
	passFile := filepath.Join(e.dir, "pass")
	asked := 0
	ask := SyncOptions{Passphrase: func() ([]byte, error) { asked++; return []byte("the passphrase"), nil }}
	if _, err := e.sync(ask); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), passFile) || e.requests() != before || asked != 0 {
		t.Fatalf("missing passphrase file: %v, %d requests, asked %d times", err, e.requests()-before, asked)
	}
	os.WriteFile(passFile, []byte("the passphrase\n"), 0o600)
	if res := e.mustSync(ask); res.Bundle == nil || res.Bundle.Sequence != 1 || asked != 0 || res.KeyProblem != "" {
		t.Fatalf("passphrase file: bundle %+v, asked %d times", res.Bundle, asked)
	}

	// No file or variable: asked only when there is something to sign.
	os.WriteFile(e.cfgPath, cfg, 0o644)
	if res := e.mustSync(ask); !res.NothingNew || asked != 0 {
		t.Fatalf("nothing new: %+v, asked %d times", res, asked)
	}
	e.put("a/two.tar.gz", "two v1", "rel-a")
	if res := e.mustSync(ask); res.Bundle == nil || res.Bundle.Sequence != 2 || asked != 1 {
		t.Fatalf("something new: bundle %+v, asked %d times", res.Bundle, asked)
	}
}

// TestSyncEncryptedKeyAscCheckedFirst: beside an encrypted key, a missing,
// damaged or foreign operator.asc stops a run before the upstream is asked
// anything (it used to show only when the bundle was signed, after every
// download), and a dry run reports it, without the passphrase being used.
func TestSyncEncryptedKeyAscCheckedFirst(t *testing.T) {
	t.Cleanup(minisign.SetKDFLimitsForTest(32768, 1<<20))
	t.Setenv(operator.EnvPassphrase, "the passphrase")
	t.Setenv(operator.EnvPassphraseFile, "")
	e := newOneFileSyncEnv(t)
	keyDir := filepath.Join(e.dir, "op")
	ascFile := filepath.Join(keyDir, operator.AscFile)
	os.RemoveAll(keyDir)
	k, err := operator.Generate(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Write(keyDir, []byte("the passphrase")); err != nil {
		t.Fatal(err)
	}
	own, _ := os.ReadFile(ascFile)
	other, err := operator.Generate(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		asc  []byte // nil: no operator.asc
		want error
	}{
		{"missing", nil, fs.ErrNotExist},
		{"damaged", own[:len(own)/2], operator.ErrMalformedPublic},
		{"another key's", other.ArmoredPublic(), operator.ErrMismatch},
	} {
		os.Remove(ascFile)
		if c.asc != nil {
			os.WriteFile(ascFile, c.asc, 0o644)
		}
		before := e.requests()
		if _, err := e.sync(SyncOptions{}); !errors.Is(err, c.want) || !strings.Contains(err.Error(), ascFile) || e.requests() != before {
			t.Fatalf("%s operator.asc: %v, %d requests; want %v naming %s before any request", c.name, err, e.requests()-before, c.want, ascFile)
		}
		if res := e.mustSync(SyncOptions{DryRun: true}); res.ToFetch != 2 || !strings.Contains(res.KeyProblem, ascFile) {
			t.Fatalf("dry run, %s operator.asc: key problem %q", c.name, res.KeyProblem)
		}
	}
	os.WriteFile(ascFile, own, 0o644)
	if res := e.mustSync(SyncOptions{}); res.Bundle == nil || res.Bundle.Sequence != 1 {
		t.Fatalf("keygen's operator.asc again: bundle %+v", res.Bundle)
	}
}

// TestSyncWrongPassphraseBeforeDownloads: a wrong passphrase from a file or
// variable stops the run before it downloads a package (it used to show
// when the bundle was signed, after every download, and the next run
// downloaded them again); a run with nothing to download never decrypts
// the key, so a no-op still passes with it.
func TestSyncWrongPassphraseBeforeDownloads(t *testing.T) {
	t.Cleanup(minisign.SetKDFLimitsForTest(32768, 1<<20))
	t.Setenv(operator.EnvPassphraseFile, "")
	e := newOneFileSyncEnv(t)
	keyDir := filepath.Join(e.dir, "op")
	os.RemoveAll(keyDir)
	k, err := operator.Generate(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Write(keyDir, []byte("the passphrase")); err != nil {
		t.Fatal(err)
	}
	e.pub = k.Public()
	packages := func() int { return e.hitsOf("/tools/a/one.tar.gz") + e.hitsOf("/rel/v1/x.tar.gz") }

	t.Setenv(operator.EnvPassphrase, "not the passphrase")
	if _, err := e.sync(SyncOptions{}); !errors.Is(err, operator.ErrPassphrase) || packages() != 0 {
		t.Fatalf("wrong passphrase: %v, %d package downloads; want ErrPassphrase before any", err, packages())
	}
	t.Setenv(operator.EnvPassphrase, "the passphrase")
	if res := e.mustSync(SyncOptions{}); res.Bundle == nil || packages() != 2 {
		t.Fatalf("right passphrase: bundle %+v, %d package downloads", res.Bundle, packages())
	}
	t.Setenv(operator.EnvPassphrase, "not the passphrase")
	if res := e.mustSync(SyncOptions{}); !res.NothingNew || packages() != 2 {
		t.Fatalf("nothing new with a wrong passphrase: %+v, %d package downloads", res, packages())
	}
}

// TestSyncTrustWindow: a verdict remembered for an unchanged cached file is
// not reused once a trust-table window closed: at a later clock, the key's
// not_after has passed and the same cached file is rejected.
func TestSyncTrustWindow(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one", "rel-a")
	e.put("b/two.tar.gz", "two", "rel-b")
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	b, _ := os.ReadFile(e.cfgPath)
	os.WriteFile(e.cfgPath, []byte(strings.Replace(string(b), `allow = ["tools:a/*"]`, "allow = [\"tools:a/*\"]\nnot_after = 2030-01-01T00:00:00Z", 1)), 0o644)

	t0 := time.Date(2029, 12, 31, 0, 0, 0, 0, time.UTC)
	res := e.mustSync(SyncOptions{Now: func() time.Time { return t0 }})
	if res.Rejected != 0 || res.Bundle == nil {
		t.Fatalf("first run = %+v", res)
	}
	// Same day: nothing new, the remembered verdicts hold.
	res = e.mustSync(SyncOptions{Now: func() time.Time { return t0.Add(time.Hour) }})
	if !res.NothingNew || res.Rejected != 0 {
		t.Fatalf("second run = %+v", res)
	}
	st, _ := state.Load(filepath.Join(e.dir, "state"))
	if v := st.Verified["tools:a/one.tar.gz"]; v.File != sumOf("one") || len(v.Keys) != 1 || v.Keys[0] != "rel-a" {
		t.Fatalf("remembered verdict = %+v", v)
	}
	// After not_after: the cached, unchanged file is rejected now.
	res = e.mustSync(SyncOptions{Now: func() time.Time { return t0.Add(48 * time.Hour) }})
	rej := rejectedOf(res)
	if len(rej) != 1 || !strings.Contains(rej["tools:a/one.tar.gz"], "until") {
		t.Fatalf("after not_after: rejected = %v", rej)
	}
}

// TestSyncDetachedChecksums: SHA256SUMS with a detached signature. Signed
// with gpg (binary .sig) by a key allowed for the files: taken, the list
// and its signature published beside them. Signed with minisign by a key
// that is trusted but not allowed for these files: every file rejected.
func TestSyncDetachedChecksums(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one", "rel-a")
	e.put("b/two.tar.gz", "two", "rel-b")
	e.putRel("x.tar.gz", "x v1")
	e.putRel("y.tar.gz", "y v1")
	v1 := filepath.Join(e.up, "rel", "v1")
	cmd := exec.Command("sha256sum", "x.tar.gz", "y.tar.gz")
	cmd.Dir = v1
	list, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(v1, "SHA256SUMS"), list, 0o644)
	runTool(t, e.gpgEnv(), "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--local-user", "sums@example.org",
		"--detach-sign", "--output", filepath.Join(v1, "SHA256SUMS.sig"), filepath.Join(v1, "SHA256SUMS"))
	runTool(t, nil, "minisign", "-S", "-s", filepath.Join(e.dir, "secret", "rel-a.key"), "-m", filepath.Join(v1, "SHA256SUMS"), "-x", filepath.Join(v1, "SHA256SUMS.minisig"))

	e.writeConfig("files = [\"v1/*.tar.gz\"]\nchecksums = \"v1/SHA256SUMS\"\nchecksums_signature = \"v1/SHA256SUMS.sig\"")
	res := e.mustSync(SyncOptions{})
	if res.Rejected != 0 || res.Bundle == nil {
		t.Fatalf("gpg-signed list: %+v", res.Packages)
	}
	m, blobs := e.openBundle(res.Bundle)
	tree := treeOf(m)
	sig, _ := os.ReadFile(filepath.Join(v1, "SHA256SUMS.sig"))
	if string(blobs[tree["rel/v1/x.tar.gz"]]) != "x v1" || tree["rel/v1/SHA256SUMS"] != sumOf(string(list)) || tree["rel/v1/SHA256SUMS.sig"] != sumOf(string(sig)) {
		t.Fatalf("tree = %v", tree)
	}
	for _, p := range m.Packages {
		if p.Source == "rel" && (len(p.Keys) != 1 || p.Keys[0] != "sums" || len(p.Signatures) != 2 || p.Signatures[1].Scheme != "openpgp") {
			t.Fatalf("package %+v", p)
		}
	}

	e.writeConfig("files = [\"v1/*.tar.gz\"]\nchecksums = \"v1/SHA256SUMS\"\nchecksums_signature = \"v1/SHA256SUMS.minisig\"")
	res = e.mustSync(SyncOptions{})
	rej := rejectedOf(res)
	if len(rej) != 2 || !strings.Contains(rej["rel:v1/x.tar.gz"], "not allowed") || !strings.Contains(rej["rel:v1/y.tar.gz"], "not allowed") {
		t.Fatalf("list signed by a key not allowed for its files: rejected = %v", rej)
	}
}

// TestSyncListingURL: the listing can be a URL; a hostile path in it fails
// the run (nothing fetched from it, no bundle).
func TestSyncListingURL(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one", "rel-a")
	e.put("b/two.tar.gz", "two", "rel-b")
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	listing, _ := os.ReadFile(filepath.Join(e.dir, "listing.txt"))
	os.WriteFile(filepath.Join(e.up, "listing.txt"), listing, 0o644)
	e.listingByURL()
	res := e.mustSync(SyncOptions{})
	if res.Bundle == nil || res.New != 3 || e.hitsOf("/listing.txt") != 1 {
		t.Fatalf("sync with a listing URL = %+v", res)
	}
	os.WriteFile(filepath.Join(e.up, "listing.txt"), append(listing, "a/../../etc/passwd\n"...), 0o644)
	if _, err := e.sync(SyncOptions{}); !errors.Is(err, files.ErrListing) || !strings.Contains(err.Error(), "..") {
		t.Fatalf("hostile listing: %v", err)
	}
	if e.hitsOf("/etc/passwd") != 0 {
		t.Fatal("a hostile listing path was fetched")
	}
}

// TestSyncChecksumsAndSignatures: with both a signed list and per-file
// signatures configured, a file must pass both: listed with the right hash
// AND signed by a key allowed for it.
func TestSyncChecksumsAndSignatures(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one", "rel-a")
	e.put("b/two.tar.gz", "two", "rel-b")
	e.putRel("x.tar.gz", "x")
	e.putRel("y.tar.gz", "y")
	e.sums("x.tar.gz", "y.tar.gz")
	v1 := filepath.Join(e.up, "rel", "v1")
	// x is signed by rel-a, which may sign tools:a/* only; y by nobody
	// trusted at all (a fresh key).
	runTool(t, nil, "minisign", "-S", "-s", filepath.Join(e.dir, "secret", "rel-a.key"), "-m", filepath.Join(v1, "x.tar.gz"))
	runTool(t, nil, "minisign", "-G", "-W", "-p", filepath.Join(e.dir, "other.pub"), "-s", filepath.Join(e.dir, "secret", "other.key"))
	runTool(t, nil, "minisign", "-S", "-s", filepath.Join(e.dir, "secret", "other.key"), "-m", filepath.Join(v1, "y.tar.gz"))
	e.writeConfig("files = [\"v1/*.tar.gz\"]\nsignatures = [\"{file}.minisig\"]")
	res := e.mustSync(SyncOptions{})
	rej := rejectedOf(res)
	if len(rej) != 2 || !strings.Contains(rej["rel:v1/x.tar.gz"], "not allowed") || rej["rel:v1/y.tar.gz"] == "" {
		t.Fatalf("rejected = %v", rej)
	}
	// Allow rel-a for rel:v1/x.tar.gz too: x passes both checks, with both
	// keys recorded.
	b, _ := os.ReadFile(e.cfgPath)
	os.WriteFile(e.cfgPath, []byte(strings.Replace(string(b), `allow = ["tools:a/*"]`, `allow = ["tools:a/*", "rel:v1/x.tar.gz"]`, 1)), 0o644)
	res = e.mustSync(SyncOptions{})
	rej = rejectedOf(res)
	if len(rej) != 1 || rej["rel:v1/y.tar.gz"] == "" {
		t.Fatalf("rejected = %v", rej)
	}
	m, _ := e.openBundle(res.Bundle)
	for _, p := range m.Packages {
		if p.Name == "v1/x.tar.gz" && (strings.Join(p.Keys, ",") != "sums,rel-a" || len(p.Signatures) != 2) {
			t.Fatalf("x: keys %v, signatures %+v", p.Keys, p.Signatures)
		}
	}
}

// TestSyncMigratesV1State: a state file in the JSON format of earlier
// versions is read, the run with nothing new still knows every verdict
// (nothing re-hashed, no bundle), and the state is written in the current
// format; the next run reads that.
func TestSyncMigratesV1State(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one", "rel-a")
	e.put("b/two.tar.gz", "two", "rel-b")
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	if res := e.mustSync(SyncOptions{}); res.Bundle == nil || res.Rejected != 0 {
		t.Fatalf("first run = %+v", res)
	}
	dir := filepath.Join(e.dir, "state")
	st, err := state.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The file as mirror-sync-state/v1 wrote it: compact JSON.
	st.Format = state.FormatV1
	v1, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, state.V1FileName), v1, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, state.FileName)); err != nil {
		t.Fatal(err)
	}
	res := e.mustSync(SyncOptions{})
	if !res.NothingNew || res.Bundle != nil || res.Unchanged != 3 {
		t.Fatalf("run on the v1 state = %+v", res)
	}
	raw, err := os.ReadFile(filepath.Join(dir, state.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(raw), state.Format+"\n") {
		t.Fatalf("state not migrated: starts with %.30q", raw)
	}
	if _, err := os.Stat(filepath.Join(dir, state.V1FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the v1 %s is still there after the migration: %v", state.V1FileName, err)
	}
	back, err := state.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Sequence != st.Sequence || back.Digest != st.Digest || len(back.Verified) != len(st.Verified) || !maps.Equal(back.Upstreams, st.Upstreams) || !maps.Equal(back.Shipped, st.Shipped) {
		t.Fatalf("migrated state differs:\n got %+v\nwant %+v", back, st)
	}
	if res := e.mustSync(SyncOptions{}); !res.NothingNew || res.Bundle != nil {
		t.Fatalf("run on the migrated state = %+v", res)
	}
}

// TestSyncSharedURL: two sources that fetch the same upstream URL (one file
// with per-file signatures, one from a shared checksum list) download it
// once per run, and both packages are accepted, each checked against its
// own source's signatures and policy: the two items used to share one
// partial file, and the second found it moved into the cache by the first
// (every run failed).
func TestSyncSharedURL(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one v1", "rel-a")
	e.put("b/two.tar.gz", "two v1", "rel-b")
	e.putRel("x.tar.gz", "x v1")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	cfg, _ := os.ReadFile(e.cfgPath)
	text := strings.Replace(string(cfg), `allow = ["tools:a/*"]`, `allow = ["tools:a/*", "tools2:*"]`, 1)
	text = strings.Replace(text, `allow = ["rel:v1/*"]`, `allow = ["rel:v1/*", "rel2:v1/*"]`, 1)
	text += fmt.Sprintf(`
[[source]]
name = "tools2"
type = "files"
url = "%s/tools/a/"
files = ["one.tar.gz"]
signatures = ["{file}.minisig"]

[[source]]
name = "rel2"
type = "files"
url = "%s/rel/"
files = ["v1/x.tar.gz"]
checksums = "v1/SHA256SUMS.asc"
`, e.srv.URL, e.srv.URL)
	os.WriteFile(e.cfgPath, []byte(text), 0o644)

	want := []string{"rel2:v1/x.tar.gz", "rel:v1/x.tar.gz", "tools2:one.tar.gz", "tools:a/one.tar.gz", "tools:b/two.tar.gz"}
	check := func(step string, res *SyncResult, one, x int) {
		t.Helper()
		if res.Rejected != 0 || res.Bundle == nil {
			t.Fatalf("%s: rejected %v, bundle %+v", step, rejectedOf(res), res.Bundle)
		}
		m, _ := e.openBundle(res.Bundle)
		if got := packageNames(m); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: packages %v, want %v", step, got, want)
		}
		if n := e.hitsOf("/tools/a/one.tar.gz"); n != one {
			t.Errorf("%s: one.tar.gz fetched %d times in all, want %d", step, n, one)
		}
		if n := e.hitsOf("/rel/v1/x.tar.gz"); n != x {
			t.Errorf("%s: x.tar.gz fetched %d times in all, want %d", step, n, x)
		}
	}
	check("fresh state", e.mustSync(SyncOptions{}), 1, 1)
	// New releases of both: each fetched once more, and both accepted.
	e.put("a/one.tar.gz", "one v2", "rel-a")
	e.putRel("x.tar.gz", "x v2")
	e.sums("x.tar.gz")
	check("new releases", e.mustSync(SyncOptions{}), 2, 2)
	if res := e.mustSync(SyncOptions{}); !res.NothingNew || res.Unchanged != 5 {
		t.Fatalf("nothing new: %+v", res)
	}
}
