package mirror

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
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/internal/minisign"
	"github.com/mirror-tool/mirror/internal/operator"
	"github.com/mirror-tool/mirror/mirror/serve"
	"github.com/mirror-tool/mirror/mirror/source/apt"
	"github.com/mirror-tool/mirror/mirror/store"
)

// aptEnv is the fixture archive (fixtures/apt, made by
// scripts/gen-apt-fixtures) served over loopback from a copy a test may
// tamper with, an operator key and a mirror.toml with one apt source.
type aptEnv struct {
	t       *testing.T
	dir     string
	repo    string
	srv     *httptest.Server
	op      *operator.Key
	cfgPath string

	mu     sync.Mutex
	hits   map[string]int
	status map[string]int // last status code per path
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(c int) { w.code = c; w.ResponseWriter.WriteHeader(c) }

func aptFixtures(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "fixtures", "apt")
	if _, err := os.Stat(filepath.Join(dir, "repo", "dists", "stable", "InRelease")); err != nil {
		t.Fatalf("fixtures/apt missing (scripts/gen-apt-fixtures): %v", err)
	}
	return dir
}

// newAptEnv writes a config whose archive key is allowed for allow (nil:
// the archive key is not in the trust file at all) and whose source takes
// the given suites (amd64, main, hello with dependencies).
func newAptEnv(t *testing.T, allow []string, suites ...string) *aptEnv {
	t.Helper()
	fx := aptFixtures(t)
	dir := t.TempDir()
	e := &aptEnv{t: t, dir: dir, repo: filepath.Join(dir, "upstream"), hits: map[string]int{}, status: map[string]int{}}
	runTool(t, nil, "cp", "-a", filepath.Join(fx, "repo"), e.repo)
	op, err := operator.Generate(rand.Reader, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Write(filepath.Join(dir, "op"), nil); err != nil {
		t.Fatal(err)
	}
	e.op = op
	fs := http.FileServer(http.Dir(e.repo))
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		fs.ServeHTTP(sw, r)
		e.mu.Lock()
		e.hits[r.URL.Path]++
		e.status[r.URL.Path] = sw.code
		e.mu.Unlock()
	}))
	t.Cleanup(e.srv.Close)
	var trust strings.Builder
	if allow != nil {
		fmt.Fprintf(&trust, "[[trust.key]]\nname = \"archive\"\nfile = %q\nallow = %s\n\n", filepath.Join(fx, "keys", "archive.asc"), tomlList(allow))
	}
	fmt.Fprintf(&trust, "[[trust.key]]\nname = \"other\"\nfile = %q\nallow = [\"other:*\"]\n", filepath.Join(fx, "keys", "other.asc"))
	cfg := fmt.Sprintf(`[operator]
key = "op/operator.key"

[output]
dir = "bundles"
state = "state"

%s
[[source]]
name = "debian"
type = "apt"
url = %q
suites = %s
components = ["main"]
architectures = ["amd64"]
packages = ["hello"]
with_dependencies = true
`, trust.String(), e.srv.URL+"/", tomlList(suites))
	e.cfgPath = filepath.Join(dir, "mirror.toml")
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

func tomlList(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func (e *aptEnv) sync(dryRun ...bool) *SyncResult {
	e.t.Helper()
	cfg, err := LoadConfig(e.cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := Sync(context.Background(), cfg, SyncOptions{Fetch: testFetchOptions(), DryRun: len(dryRun) > 0 && dryRun[0]})
	if err != nil {
		e.t.Fatalf("sync: %v", err)
	}
	return res
}

func (e *aptEnv) resetHits() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.hits
	e.hits = map[string]int{}
	return h
}

// tamper flips one byte of an upstream file (and of its by-hash copy).
func (e *aptEnv) tamper(rel string) {
	e.t.Helper()
	p := filepath.Join(e.repo, rel)
	b, err := os.ReadFile(p)
	if err != nil {
		e.t.Fatal(err)
	}
	old := sumOf(string(b))
	b[len(b)-len(b)/3] ^= 0x20
	os.WriteFile(p, b, 0o644)
	if bh := filepath.Join(filepath.Dir(p), "by-hash", "SHA256", old); fileExists(bh) {
		os.WriteFile(bh, b, 0o644)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func (e *aptEnv) bundle(res *SyncResult) (*bundle.Manifest, map[string][]byte) {
	e.t.Helper()
	if res.Bundle == nil {
		e.t.Fatal("no bundle was written")
	}
	r, err := bundle.Open(context.Background(), res.Bundle.Paths[:len(res.Bundle.Paths)-1], e.op.Public(), bundle.Limits{})
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Close()
	blobs := map[string][]byte{}
	for {
		info, rd, err := r.Next()
		if err != nil {
			break
		}
		var b bytes.Buffer
		b.ReadFrom(rd)
		blobs[info.SHA256] = b.Bytes()
	}
	return r.Manifest(), blobs
}

func debPaths(m *bundle.Manifest) []string {
	var out []string
	for _, p := range m.Packages {
		out = append(out, p.Path)
	}
	sort.Strings(out)
	return out
}

// TestSyncApt: a filtered mirror of two suites: the closure of hello is
// bundled with operator-signed indexes (gpgv accepts them) and the
// upstream's release files as evidence; a re-run costs one conditional
// request per suite and makes no bundle.
func TestSyncApt(t *testing.T) {
	needTools(t, "gpg", "gpgv")
	e := newAptEnv(t, []string{"debian:*"}, "stable", "testing")
	// The dry run's plan knows every size from the signed indexes.
	plan := e.sync(true)
	if plan.ToFetch != 7 || plan.UnknownSize != 0 || plan.BytesToFetch < 7*800 || plan.Bundle != nil {
		t.Fatalf("dry run: %+v", plan)
	}
	e.resetHits()
	res := e.sync()
	if res.Rejected != 0 || res.BytesDownloaded != plan.BytesToFetch {
		t.Fatalf("downloaded %d bytes, the plan said %d", res.BytesDownloaded, plan.BytesToFetch)
	}
	if res.Rejected != 0 {
		t.Fatalf("rejected: %+v", rejectedOf(res))
	}
	m, blobs := e.bundle(res)
	want := []string{
		"debian/pool/main/g/greet-base/greet-base_1.0_amd64.deb", "debian/pool/main/g/greet-data/greet-data_1.0_all.deb",
		"debian/pool/main/h/hello/hello_1.0_amd64.deb", "debian/pool/main/h/hello/hello_2.0_amd64.deb",
		"debian/pool/main/l/libgreet1/libgreet1_1.0_amd64.deb", "debian/pool/main/l/libgreet1/libgreet1_2.0_amd64.deb",
		"debian/pool/main/t/tinymta/tinymta_1.0_amd64.deb",
	}
	if got := debPaths(m); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("packages:\n got %v\nwant %v", got, want)
	}
	tree := treeOf(m)
	fx := aptFixtures(t)
	for _, p := range m.Packages {
		if len(p.Keys) != 1 || p.Keys[0] != "archive" || len(p.Signatures) != 2 || p.Signatures[0].Scheme != "openpgp-clearsigned" {
			t.Fatalf("%s: keys %v signatures %+v", p.Path, p.Keys, p.Signatures)
		}
		b, _ := os.ReadFile(filepath.Join(fx, "repo", strings.TrimPrefix(p.Path, "debian/")))
		if !bytes.Equal(blobs[p.SHA256], b) {
			t.Fatalf("%s: bundled bytes differ from the upstream's", p.Path)
		}
	}
	// The upstream's InRelease travels as evidence, byte for byte.
	up, _ := os.ReadFile(filepath.Join(fx, "repo/dists/stable/InRelease"))
	if !bytes.Equal(blobs[tree["debian/_upstream/dists/stable/InRelease"]], up) {
		t.Fatal("upstream InRelease not carried under debian/_upstream/")
	}
	// The served InRelease is the operator's, and gpgv accepts it.
	gen := t.TempDir()
	for _, f := range []string{"InRelease", "Release", "Release.gpg"} {
		os.WriteFile(filepath.Join(gen, f), blobs[tree["debian/dists/stable/"+f]], 0o644)
	}
	os.WriteFile(filepath.Join(gen, "operator.asc"), e.op.ArmoredPublic(), 0o644)
	home := t.TempDir()
	runTool(t, nil, "gpg", "--homedir", home, "--batch", "-o", filepath.Join(gen, "op.gpg"), "--dearmor", filepath.Join(gen, "operator.asc"))
	runTool(t, nil, "gpgv", "--homedir", home, "--keyring", filepath.Join(gen, "op.gpg"), filepath.Join(gen, "InRelease"))
	runTool(t, nil, "gpgv", "--homedir", home, "--keyring", filepath.Join(gen, "op.gpg"), filepath.Join(gen, "Release.gpg"), filepath.Join(gen, "Release"))
	rel, err := apt.ParseRelease(blobs[tree["debian/dists/stable/Release"]])
	if err != nil {
		t.Fatal(err)
	}
	pk := rel.Files["main/binary-amd64/Packages"]
	pkgs, err := apt.ParsePackages(blobs[pk.SHA256])
	if err != nil || len(pkgs) != 5 {
		t.Fatalf("generated stable Packages: %d packages, %v", len(pkgs), err)
	}

	// Re-run: one conditional request per suite, nothing else, no bundle.
	e.resetHits()
	again := e.sync()
	hits := e.resetHits()
	if !again.NothingNew || again.Bundle != nil || again.Unchanged != 7 {
		t.Fatalf("re-run: nothing_new=%v bundle=%v unchanged=%d", again.NothingNew, again.Bundle, again.Unchanged)
	}
	if len(hits) != 2 || hits["/dists/stable/InRelease"] != 1 || hits["/dists/testing/InRelease"] != 1 {
		t.Fatalf("re-run requests: %v; want only the two InRelease files", hits)
	}
	e.mu.Lock()
	st := e.status["/dists/stable/InRelease"]
	e.mu.Unlock()
	if st != http.StatusNotModified {
		t.Fatalf("re-run: InRelease answered %d; want 304 to a conditional request", st)
	}

	// One more package asked for: only its .deb is downloaded, and the
	// delta bundle carries it with the new indexes.
	cfg, _ := os.ReadFile(e.cfgPath)
	os.WriteFile(e.cfgPath, bytes.Replace(cfg, []byte(`packages = ["hello"]`), []byte(`packages = ["hello", "greet-data-alt"]`), 1), 0o644)
	more := e.sync()
	hits = e.resetHits()
	if more.New != 1 || more.Bundle == nil || more.Bundle.BaseSequence != 1 {
		t.Fatalf("added package: new=%d bundle=%+v", more.New, more.Bundle)
	}
	if len(hits) != 3 || hits["/pool/main/g/greet-data-alt/greet-data-alt_1.0_all.deb"] != 1 {
		t.Fatalf("added package requests: %v; want the two InRelease files and one .deb", hits)
	}
}

// TestSyncAptRejects: each broken link is rejected with its reason and
// nothing of it is bundled.
func TestSyncAptRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		allow  []string
		suite  string
		change string // upstream file to tamper with
		grow   string // upstream file to make one byte larger
		reject string // rejected name
		want   string // in the reason
		debs   int    // .debs still bundled
	}{
		{name: "unknown key", allow: nil, suite: "stable", reject: "dists/stable", want: "unknown key"},
		{name: "key of another source", allow: []string{"other:*"}, suite: "stable", reject: "dists/stable", want: "not allowed"},
		{name: "expired", allow: []string{"debian:*"}, suite: "expired", reject: "dists/expired", want: "Valid-Until"},
		{name: "index hash", allow: []string{"debian:*"}, suite: "stable", change: "dists/stable/main/binary-amd64/Packages.gz", reject: "dists/stable", want: "hash mismatch"},
		{name: "deb hash", allow: []string{"debian:*"}, suite: "stable", change: "pool/main/l/libgreet1/libgreet1_1.0_amd64.deb", reject: "libgreet1", want: "in the Packages index debian/_upstream/dists/stable/main/binary-amd64/Packages.gz", debs: 4},
		{name: "deb larger", allow: []string{"debian:*"}, suite: "stable", grow: "pool/main/l/libgreet1/libgreet1_1.0_amd64.deb", reject: "libgreet1", want: "announces 833 bytes, limit 832", debs: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAptEnv(t, tc.allow, tc.suite)
			if tc.change != "" {
				e.tamper(tc.change)
			}
			if tc.grow != "" {
				f, err := os.OpenFile(filepath.Join(e.repo, tc.grow), os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write([]byte{0})
				f.Close()
			}
			res := e.sync()
			rej := rejectedOf(res)
			if len(rej) != 1 || !strings.Contains(rej["debian:"+tc.reject], tc.want) {
				t.Fatalf("rejected %v; want %s with %q", rej, tc.reject, tc.want)
			}
			if tc.debs == 0 {
				if res.Bundle != nil {
					m, _ := e.bundle(res)
					t.Fatalf("a bundle was written: %v", treeOf(m))
				}
				return
			}
			m, blobs := e.bundle(res)
			if len(m.Packages) != tc.debs {
				t.Fatalf("bundled %v", debPaths(m))
			}
			for p := range treeOf(m) {
				if strings.Contains(p, tc.reject+"_") {
					t.Fatalf("%s bundled", p)
				}
			}
			// The generated index does not list it either.
			plain := blobs[treeOf(m)["debian/dists/"+tc.suite+"/main/binary-amd64/Packages"]]
			if len(plain) == 0 || bytes.Contains(plain, []byte("Package: "+tc.reject+"\n")) {
				t.Fatalf("generated Packages lists %s (or is empty)", tc.reject)
			}
			if len(m.Rejected) != 1 || m.Rejected[0].Name != tc.reject {
				t.Fatalf("manifest rejected %+v", m.Rejected)
			}
		})
	}
}

// TestAptGetClient: the real apt-get, with its own state, cache, sources
// and keyring (no change to the machine), updates from `mirror serve` of
// an imported bundle and downloads hello with its dependencies; after the
// served tree is tampered with, it refuses it.
func TestAptGetClient(t *testing.T) {
	needTools(t, "apt-get", "gpg", "gpgv")
	e := newAptEnv(t, []string{"debian:*"}, "stable")
	cfg, _ := os.ReadFile(e.cfgPath)
	os.WriteFile(e.cfgPath, bytes.Replace(cfg, []byte("with_dependencies = true\n"), []byte("with_dependencies = true\nsource_packages = true\n"), 1), 0o644)
	res := e.sync()
	if res.Bundle == nil || res.Rejected != 0 || res.New != 5+10 {
		t.Fatalf("sync: %+v", res)
	}
	repoDir := filepath.Join(e.dir, "repo")
	if _, err := Import(context.Background(), ImportOptions{Repo: repoDir, Pub: e.op.Public(), Recheck: true}, res.Bundle.Paths[:len(res.Bundle.Paths)-1]); err != nil {
		t.Fatalf("import: %v", err)
	}
	srv := httptest.NewServer(serve.NewHandler(repoDir))
	defer srv.Close()

	client := newAptClient(t, srv.URL+"/debian", e.op.ArmoredPublic(), true)
	client.run(t, true, "update")
	client.run(t, true, "install", "--download-only", "-y", "--no-install-recommends", "hello")
	got := client.archives(t)
	want := "greet-base_1.0_amd64.deb greet-data_1.0_all.deb hello_1.0_amd64.deb libgreet1_1.0_amd64.deb tinymta_1.0_amd64.deb"
	if strings.Join(got, " ") != want {
		t.Fatalf("apt-get downloaded %v; want %s", got, want)
	}
	// The source package, checked by apt-get against the generated Sources.
	client.run(t, true, "source", "--download-only", "hello")
	srcs, _ := filepath.Glob(filepath.Join(client.dir, "src", "hello_1.0*"))
	if len(srcs) != 2 {
		t.Fatalf("apt-get source fetched %v", srcs)
	}

	// Tampering: a changed InRelease (signature no longer matches) and
	// a changed .deb are both refused by apt-get itself.
	cur, err := filepath.EvalSymlinks(filepath.Join(repoDir, "current"))
	if err != nil {
		t.Fatal(err)
	}
	replace := func(rel string, edit func([]byte) []byte) {
		p := filepath.Join(cur, rel)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Dir(p), 0o755)
		os.Remove(p) // the file may be a hard link into the store
		if err := os.WriteFile(p, edit(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	replace("debian/pool/main/h/hello/hello_1.0_amd64.deb", func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
	fresh := newAptClient(t, srv.URL+"/debian", e.op.ArmoredPublic())
	fresh.run(t, true, "update")
	out := fresh.run(t, false, "install", "--download-only", "-y", "hello")
	t.Logf("apt-get on a changed .deb:\n%s", out)
	if !strings.Contains(out, "Hash Sum mismatch") || !strings.Contains(out, "hello_1.0_amd64.deb") {
		t.Fatalf("apt-get on a changed .deb:\n%s", out)
	}
	replace("debian/dists/stable/InRelease", func(b []byte) []byte {
		return bytes.Replace(b, []byte("Suite: stable"), []byte("Suite: stablE"), 1)
	})
	third := newAptClient(t, srv.URL+"/debian", e.op.ArmoredPublic())
	out = third.run(t, false, "update")
	t.Logf("apt-get update on a changed InRelease:\n%s", out)
	if !strings.Contains(out, "BADSIG") || !strings.Contains(out, "is not signed") {
		t.Fatalf("apt-get update on a changed InRelease:\n%s", out)
	}
}

// aptClient is apt-get confined to a temporary folder by APT_CONFIG.
type aptClient struct {
	dir, conf string
}

func newAptClient(t *testing.T, url string, asc []byte, debSrc ...bool) *aptClient {
	t.Helper()
	d := t.TempDir()
	for _, sub := range []string{"state/lists/partial", "cache/archives/partial", "etc/sources.list.d", "etc/apt.conf.d", "etc/preferences.d", "etc/trusted.gpg.d", "log"} {
		os.MkdirAll(filepath.Join(d, sub), 0o755)
	}
	os.WriteFile(filepath.Join(d, "status"), nil, 0o644)
	os.WriteFile(filepath.Join(d, "operator.asc"), asc, 0o644)
	list := fmt.Sprintf("deb [signed-by=%s] %s stable main\n", filepath.Join(d, "operator.asc"), url)
	if len(debSrc) > 0 && debSrc[0] {
		list += fmt.Sprintf("deb-src [signed-by=%s] %s stable main\n", filepath.Join(d, "operator.asc"), url)
	}
	os.WriteFile(filepath.Join(d, "etc/sources.list"), []byte(list), 0o644)
	conf := fmt.Sprintf(`Dir::State "%[1]s/state";
Dir::State::status "%[1]s/status";
Dir::Cache "%[1]s/cache";
Dir::Log "%[1]s/log";
Dir::Etc "%[1]s/etc";
Dir::Etc::SourceList "%[1]s/etc/sources.list";
Dir::Etc::SourceParts "%[1]s/etc/sources.list.d";
Dir::Etc::Parts "%[1]s/etc/apt.conf.d";
Dir::Etc::Trusted "%[1]s/etc/trusted.gpg";
Dir::Etc::TrustedParts "%[1]s/etc/trusted.gpg.d";
Dir::Etc::Preferences "%[1]s/etc/preferences";
Dir::Etc::PreferencesParts "%[1]s/etc/preferences.d";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Debug::NoLocking "true";
Acquire::Languages "none";
Acquire::Retries "0";
`, d)
	os.WriteFile(filepath.Join(d, "apt.conf"), []byte(conf), 0o644)
	return &aptClient{dir: d, conf: filepath.Join(d, "apt.conf")}
}

// run runs apt-get; ok says whether it must succeed (else it must fail).
func (c *aptClient) run(t *testing.T, ok bool, args ...string) string {
	t.Helper()
	cmd := exec.Command("apt-get", args...)
	cmd.Dir = filepath.Join(c.dir, "src")
	os.MkdirAll(cmd.Dir, 0o755)
	cmd.Env = append(os.Environ(), "APT_CONFIG="+c.conf, "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if ok && err != nil {
		t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !ok && err == nil {
		t.Fatalf("apt-get %s succeeded; want a refusal\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

func (c *aptClient) archives(t *testing.T) []string {
	m, _ := filepath.Glob(filepath.Join(c.dir, "cache/archives/*.deb"))
	var out []string
	for _, p := range m {
		out = append(out, filepath.Base(p))
	}
	sort.Strings(out)
	return out
}

// TestAptGetKeepUpstream: an unfiltered source with
// keep_upstream_signatures serves the upstream's own InRelease and indexes,
// and apt-get verifies them with the archive's key, not the operator's.
func TestAptGetKeepUpstream(t *testing.T) {
	needTools(t, "apt-get", "gpg", "gpgv")
	e := newAptEnv(t, []string{"debian:*"}, "stable")
	cfg, _ := os.ReadFile(e.cfgPath)
	cfg = bytes.Replace(cfg, []byte("packages = [\"hello\"]\nwith_dependencies = true\n"), []byte("keep_upstream_signatures = true\n"), 1)
	if err := os.WriteFile(e.cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	res := e.sync()
	if res.Bundle == nil || res.Rejected != 0 || res.New != 7 {
		t.Fatalf("sync: %+v", res)
	}
	m, _ := e.bundle(res)
	tree := treeOf(m)
	up, _ := os.ReadFile(filepath.Join(aptFixtures(t), "repo/dists/stable/InRelease"))
	if tree["debian/dists/stable/InRelease"] != sumOf(string(up)) {
		t.Fatal("the served InRelease is not the upstream's")
	}
	repoDir := filepath.Join(e.dir, "repo")
	if _, err := Import(context.Background(), ImportOptions{Repo: repoDir, Pub: e.op.Public()}, res.Bundle.Paths[:len(res.Bundle.Paths)-1]); err != nil {
		t.Fatalf("import: %v", err)
	}
	srv := httptest.NewServer(serve.NewHandler(repoDir))
	defer srv.Close()
	archive, _ := os.ReadFile(filepath.Join(aptFixtures(t), "keys", "archive.asc"))
	c := newAptClient(t, srv.URL+"/debian", archive)
	c.run(t, true, "update")
	c.run(t, true, "install", "--download-only", "-y", "hello")
	if got := strings.Join(c.archives(t), " "); got != "greet-base_1.0_amd64.deb greet-data_1.0_all.deb hello_1.0_amd64.deb libgreet1_1.0_amd64.deb tinymta_1.0_amd64.deb" {
		t.Fatalf("apt-get downloaded %s", got)
	}
	// The operator's key does not sign these indexes.
	op := newAptClient(t, srv.URL+"/debian", e.op.ArmoredPublic())
	if out := op.run(t, false, "update"); !strings.Contains(out, "NO_PUBKEY") && !strings.Contains(out, "is not signed") {
		t.Fatalf("apt-get with the operator key:\n%s", out)
	}
}

// TestImportRecheckApt: `mirror import --recheck` re-derives every apt
// package from the carried InRelease and Packages index (before, it took
// the clearsigned InRelease for a detached signature and refused the
// bundle).
func TestImportRecheckApt(t *testing.T) {
	e := newAptEnv(t, []string{"debian:*"}, "stable", "testing")
	res := e.sync()
	if res.Bundle == nil || res.Rejected != 0 {
		t.Fatalf("sync: %+v", res)
	}
	out, err := Import(context.Background(), ImportOptions{Repo: filepath.Join(e.dir, "repo"), Pub: e.op.Public(), Recheck: true}, res.Bundle.Paths[:len(res.Bundle.Paths)-1])
	if err != nil || len(out) != 1 || out[0].Packages != 7 {
		t.Fatalf("import --recheck: %+v %v", out, err)
	}
}

// The release files and indexes of an apt source enter the cache like the
// downloads, without an fsync each (store.PutBatched), and are made durable
// by the run's one cache.Sync: a completed run leaves no batch marker. A run
// that died before that may leave one torn under its name: the next run
// drops it (cache.Recover), fetches it again and mirrors as before.
func TestSyncAptRecoversTornCache(t *testing.T) {
	needTools(t, "gpg", "gpgv")
	e := newAptEnv(t, []string{"debian:*"}, "stable")
	first := e.sync()
	if first.Bundle == nil || first.Rejected != 0 {
		t.Fatalf("first run: bundle %v, rejected %v", first.Bundle, rejectedOf(first))
	}
	cache := filepath.Join(e.dir, "state", CacheDir)
	marker := filepath.Join(cache, store.UnsyncedMarker)
	if _, err := os.Lstat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a completed run left the batch marker: %v", err)
	}
	inRelease, err := os.ReadFile(filepath.Join(e.repo, "dists", "stable", "InRelease"))
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(cache, "sha256", sumOf(string(inRelease))[:2], sumOf(string(inRelease)))
	if _, err := os.Lstat(blob); err != nil {
		t.Fatalf("the verified InRelease is not in the cache: %v", err)
	}
	// The crash: the batch marker on disk, the InRelease torn.
	os.Chmod(blob, 0o644)
	if err := os.Truncate(blob, 10); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.resetHits()
	cfg, err := LoadConfig(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Sync(context.Background(), cfg, SyncOptions{Fetch: testFetchOptions(), Full: true})
	if err != nil {
		t.Fatalf("run after the crash: %v", err)
	}
	if res.Bundle == nil || res.Rejected != 0 {
		t.Fatalf("run after the crash: bundle %v, rejected %v", res.Bundle, rejectedOf(res))
	}
	if hits := e.resetHits(); hits["/dists/stable/InRelease"] == 0 {
		t.Fatalf("the torn InRelease was not fetched again: %v", hits)
	}
	if got, err := os.ReadFile(blob); err != nil || !bytes.Equal(got, inRelease) {
		t.Fatalf("cached InRelease after recovery: %d bytes, %v; want the upstream's %d", len(got), err, len(inRelease))
	}
	if _, err := os.Lstat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker left after the run: %v", err)
	}
	m, blobs := e.bundle(res)
	if !bytes.Equal(blobs[treeOf(m)["debian/_upstream/dists/stable/InRelease"]], inRelease) {
		t.Fatal("the bundle does not carry the upstream InRelease as evidence")
	}
}

// TestAptNoopNeedsNoKey: with an encrypted operator key, a run with
// nothing new on an apt source reuses the operator's signatures of the
// unchanged releases, so it neither decrypts the key (a wrong passphrase
// does not fail it) nor asks for it; a kept signature that does not verify
// with operator.asc over the same text is not used: the release is signed
// again, with the key.
func TestAptNoopNeedsNoKey(t *testing.T) {
	t.Cleanup(minisign.SetKDFLimitsForTest(32768, 1<<20))
	t.Setenv(operator.EnvPassphrase, "")
	t.Setenv(operator.EnvPassphraseFile, "")
	e := newAptEnv(t, []string{"debian:*"}, "stable")
	keyDir := filepath.Join(e.dir, "op")
	os.RemoveAll(keyDir)
	if err := e.op.Write(keyDir, []byte("right")); err != nil {
		t.Fatal(err)
	}
	pass := filepath.Join(e.dir, "pass")
	os.WriteFile(pass, []byte("right\n"), 0o600)
	cfg, _ := os.ReadFile(e.cfgPath)
	os.WriteFile(e.cfgPath, bytes.Replace(cfg, []byte("key = \"op/operator.key\"\n"), []byte("key = \"op/operator.key\"\npassphrase_file = \"pass\"\n"), 1), 0o644)
	if res := e.sync(); res.Bundle == nil {
		t.Fatal("first run made no bundle")
	}
	sigDir := filepath.Join(e.dir, "state", AptSigDir)
	kept, err := os.ReadDir(sigDir)
	if err != nil || len(kept) != 2 { // InRelease and Release.gpg of one suite
		t.Fatalf("kept signatures: %v, %v; want 2", kept, err)
	}

	os.WriteFile(pass, []byte("wrong\n"), 0o600)
	ask := func() ([]byte, error) { t.Fatal("the terminal was asked"); return nil, nil }
	run := func() (*SyncResult, error) {
		c, err := LoadConfig(e.cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		return Sync(context.Background(), c, SyncOptions{Fetch: testFetchOptions(), Passphrase: ask})
	}
	if res, err := run(); err != nil || res.Bundle != nil {
		t.Fatalf("no-op with a wrong passphrase in the file: %+v, %v; want nothing new, the key not decrypted", res, err)
	}

	// A kept InRelease that does not verify (written by someone else) is
	// not used: the run must sign, and the wrong passphrase shows.
	forged := 0
	for _, k := range kept {
		name := filepath.Join(sigDir, k.Name())
		if b, _ := os.ReadFile(name); bytes.Contains(b, []byte("\nSuite: ")) { // the InRelease
			os.WriteFile(name, bytes.Replace(b, []byte("\nSuite: "), []byte("\nSuitf: "), 1), 0o644)
			forged++
		}
	}
	if forged != 1 {
		t.Fatalf("%d kept InRelease files, want 1", forged)
	}
	if _, err := run(); !errors.Is(err, operator.ErrPassphrase) {
		t.Fatalf("a forged kept signature: %v, want the key needed (ErrPassphrase)", err)
	}
	os.WriteFile(pass, []byte("right\n"), 0o600)
	if res, err := run(); err != nil || res.Bundle != nil {
		t.Fatalf("signed again with the key: %+v, %v; want nothing new (the same bytes)", res, err)
	}
}
