package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/mirror/serve"
	"github.com/mirror-tool/mirror/mirror/source/apt"
	"github.com/mirror-tool/mirror/mirror/state"
)

// TestAttackAptRollbackInsideValidUntil: a hostile or stale mirror serves an
// OLDER but validly signed InRelease (docs/SECURITY.md, rollback): the
// archive key (made here with the real gpg, since the fixtures keep no secret
// key) signs two releases of the same suite, one dated a month before the
// other, both inside Valid-Until. After a run took the newer one, a run
// offered the older one fails with ErrUpstreamRollback, writes no bundle and
// leaves the state as it was; when the newer release is back, sync goes on.
func TestAttackAptRollbackInsideValidUntil(t *testing.T) {
	e, newer, older, serve, now := rollbackAptEnv(t)
	serve(newer, now.Add(-time.Hour))
	res := e.sync()
	if rej := rejectedOf(res); len(rej) != 0 || res.Bundle == nil {
		t.Fatalf("newer release: rejected %v, bundle %v", rej, res.Bundle)
	}
	m, blobs := e.bundle(res)
	if !bytes.Equal(blobs[treeOf(m)["debian/_upstream/dists/stable/InRelease"]], newer) {
		t.Fatal("the newer InRelease is not the evidence carried")
	}

	serve(older, now) // replaced later: a fresh Last-Modified
	state0 := stateBytes(t, filepath.Join(e.dir, "state"))
	cfg2, err := LoadConfig(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err = Sync(context.Background(), cfg2, SyncOptions{Fetch: testFetchOptions()})
	if !errors.Is(err, ErrUpstreamRollback) || !strings.Contains(err.Error(), "stable") {
		t.Fatalf("older, validly signed release inside Valid-Until: err = %v, want ErrUpstreamRollback naming the suite", err)
	}
	t.Log(err)
	if res != nil && res.Bundle != nil {
		t.Fatal("a bundle was written from the older release")
	}
	if got := stateBytes(t, filepath.Join(e.dir, "state")); got != state0 {
		t.Fatal("the refused run changed the state")
	}

	// When the upstream catches up again, sync goes on.
	serve(newer, now.Add(time.Minute))
	e.sync()
}

// rollbackAptEnv is an apt env whose archive key is made here with the real
// gpg (the fixtures keep no secret key), and two InRelease files of suite
// stable signed by it: newer dated an hour ago, older a month before, both
// inside Valid-Until. serve puts one at the upstream with the given mtime.
func rollbackAptEnv(t *testing.T) (e *aptEnv, newer, older []byte, serve func([]byte, time.Time), now time.Time) {
	t.Helper()
	e = newAptEnv(t, []string{"debian:*"}, "stable")
	env, public := gpgSigner(t, "Archive Signer <archive@example.org>", "archive@example.org")
	keyFile := filepath.Join(e.dir, "archive-mine.asc")
	if err := os.WriteFile(keyFile, public, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(e.cfgPath)
	fxKey := filepath.Join(aptFixtures(t), "keys", "archive.asc")
	if !bytes.Contains(cfg, []byte(fxKey)) {
		t.Fatalf("config does not name the fixture archive key %s", fxKey)
	}
	os.WriteFile(e.cfgPath, bytes.Replace(cfg, []byte(fxKey), []byte(keyFile), 1), 0o644)

	release, err := os.ReadFile(filepath.Join(e.repo, "dists", "stable", "Release"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(release, []byte("\nValid-Until: ")) {
		t.Fatal("the fixture Release has no Valid-Until; this test needs one")
	}
	dateRe := regexp.MustCompile(`(?m)^Date: .*$`)
	sign := func(date time.Time) []byte {
		text := dateRe.ReplaceAll(release, []byte("Date: "+date.UTC().Format("Mon, 02 Jan 2006 15:04:05 +0000")))
		in := filepath.Join(e.dir, "Release.tosign")
		out := filepath.Join(e.dir, "InRelease.signed")
		os.WriteFile(in, text, 0o644)
		os.Remove(out)
		runTool(t, env, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--local-user", "archive@example.org",
			"--clearsign", "--output", out, in)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	now = time.Now()
	newer, older = sign(now.Add(-time.Hour)), sign(now.Add(-31*24*time.Hour))
	inRelease := filepath.Join(e.repo, "dists", "stable", "InRelease")
	serve = func(b []byte, mtime time.Time) {
		if err := os.WriteFile(inRelease, b, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(inRelease, mtime, mtime)
	}

	return e, newer, older, serve, now
}

// gpgSigner makes a throwaway gpg home (a short path: gpg-agent's socket
// lives there) with an Ed25519 signing key for uid, and returns the
// environment that runs gpg with it and the armored public key.
func gpgSigner(t *testing.T, uid, email string) (env []string, public []byte) {
	t.Helper()
	needTools(t, "gpg")
	gh, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", gh, "--kill", "all").Run()
		os.RemoveAll(gh)
	})
	env = []string{"GNUPGHOME=" + gh}
	runTool(t, env, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
	return env, runTool(t, env, "gpg", "--batch", "--armor", "--export", email)
}

// vendorApt is a second apt upstream, "vendor" (suite stable, main,
// amd64), beside the fixture's debian source, signed by a gpg key of its
// own that the trust file allows for vendor:* only. A test writes its
// Packages, .deb files and InRelease itself.
type vendorApt struct {
	t    *testing.T
	e    *aptEnv
	root string
	env  []string
}

// newVendorApt adds the vendor source, taking packages, to a new aptEnv
// (debian: hello with its dependencies).
func newVendorApt(t *testing.T, packages []string) *vendorApt {
	t.Helper()
	e := newAptEnv(t, []string{"debian:*"}, "stable")
	v := &vendorApt{t: t, e: e, root: filepath.Join(e.dir, "vendor-upstream")}
	if err := os.MkdirAll(v.root, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(v.root)))
	t.Cleanup(srv.Close)
	env, public := gpgSigner(t, "Vendor <vendor@example.org>", "vendor@example.org")
	v.env = env
	keyFile := filepath.Join(e.dir, "vendor.asc")
	if err := os.WriteFile(keyFile, public, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = fmt.Appendf(cfg, `
[[source]]
name = "vendor"
type = "apt"
url = %q
suites = ["stable"]
components = ["main"]
architectures = ["amd64"]
packages = %s

[[trust.key]]
name = "vendor"
file = %q
allow = ["vendor:*"]
`, srv.URL+"/", tomlList(packages), keyFile)
	if err := os.WriteFile(e.cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return v
}

// deb writes a .deb (any bytes: only its hash matters to sync) at
// filename and returns its Packages paragraph.
func (v *vendorApt) deb(name, filename string, content []byte) string {
	v.t.Helper()
	p := filepath.Join(v.root, filepath.FromSlash(filename))
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		v.t.Fatal(err)
	}
	return fmt.Sprintf("Package: %s\nVersion: 1.0\nArchitecture: amd64\nMaintainer: x <x@example.org>\nFilename: %s\nSize: %d\nSHA256: %s\nDescription: %s\n",
		name, filename, len(content), sumOf(string(content)), name)
}

// publish writes dists/stable with the given Packages paragraphs, a
// Release dated date (Valid-Until a year later) listing it, and its
// InRelease clearsigned by the vendor key, last modified at date (a fresh
// Last-Modified for each release).
func (v *vendorApt) publish(date time.Time, paragraphs ...string) {
	v.t.Helper()
	dists := filepath.Join(v.root, "dists", "stable")
	os.MkdirAll(filepath.Join(dists, "main", "binary-amd64"), 0o755)
	pkgs := strings.Join(paragraphs, "\n")
	if err := os.WriteFile(filepath.Join(dists, "main", "binary-amd64", "Packages"), []byte(pkgs), 0o644); err != nil {
		v.t.Fatal(err)
	}
	rel := fmt.Sprintf("Origin: Vendor\nLabel: Vendor\nSuite: stable\nCodename: stable\nDate: %s\nValid-Until: %s\nArchitectures: amd64\nComponents: main\nSHA256:\n %s %d main/binary-amd64/Packages\n",
		apt.FormatDate(date), apt.FormatDate(date.Add(365*24*time.Hour)), sumOf(pkgs), len(pkgs))
	in := filepath.Join(v.e.dir, "vendor-Release")
	os.WriteFile(in, []byte(rel), 0o644)
	out := filepath.Join(dists, "InRelease")
	os.Remove(out)
	runTool(v.t, v.env, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--local-user", "vendor@example.org", "--clearsign", "--output", out, in)
	os.Chtimes(out, date, date)
}

// sync runs sync and returns its result and error.
func (v *vendorApt) sync() (*SyncResult, error) {
	v.t.Helper()
	cfg, err := LoadConfig(v.e.cfgPath)
	if err != nil {
		v.t.Fatal(err)
	}
	return Sync(context.Background(), cfg, SyncOptions{Fetch: testFetchOptions()})
}

// TestAttackAptFutureDate: the vendor's signer clock runs ahead. A release
// dated three years ahead is refused (ErrNotYetValid) as a suite, and the
// run goes on for the other source; one dated within apt.MaxDateSkew is
// taken, but the operator's Release is dated (and signed) no later than
// the run's start, and its mark goes no later either, so the next,
// correctly dated release is not refused as a rollback.
func TestAttackAptFutureDate(t *testing.T) {
	v := newVendorApt(t, []string{"tool"})
	now := time.Now()
	v.publish(now.Add(3*365*24*time.Hour), v.deb("tool", "pool/main/t/tool_1.0_amd64.deb", []byte("tool 1.0")))
	res, err := v.sync()
	if err != nil {
		t.Fatalf("a future-dated vendor release fails the whole run: %v", err)
	}
	rej := rejectedOf(res)
	if len(rej) != 1 || !strings.Contains(rej["vendor:dists/stable"], apt.ErrNotYetValid.Error()) {
		t.Fatalf("rejected %v, want only vendor:dists/stable, not valid yet", rej)
	}
	if m, _ := v.e.bundle(res); !slices.Contains(debPaths(m), "debian/pool/main/h/hello/hello_1.0_amd64.deb") || treeOf(m)["vendor/dists/stable/Release"] != "" {
		t.Fatalf("bundle: %v, vendor Release %q; want debian's packages and nothing of vendor", debPaths(m), treeOf(m)["vendor/dists/stable/Release"])
	}

	// Within the skew: taken, signed at the run's start at the latest.
	v.publish(now.Add(apt.MaxDateSkew/2), v.deb("tool", "pool/main/t/tool_1.1_amd64.deb", []byte("tool 1.1")))
	start := time.Now()
	res, err = v.sync()
	if err != nil || len(rejectedOf(res)) != 0 {
		t.Fatalf("a release dated %v ahead: %v, rejected %v", apt.MaxDateSkew/2, err, rejectedOf(res))
	}
	m, blobs := v.e.bundle(res)
	rel, err := apt.ParseRelease(blobs[treeOf(m)["vendor/dists/stable/Release"]])
	if err != nil {
		t.Fatal(err)
	}
	if rel.Date.After(start) {
		t.Fatalf("the operator's Release is dated %v, after the run started (%v): apt clients refuse it as not valid yet", rel.Date, start)
	}

	// The vendor's next release, dated correctly (before the last one's
	// Date), is no rollback.
	v.publish(time.Now(), v.deb("tool", "pool/main/t/tool_1.2_amd64.deb", []byte("tool 1.2")))
	if res, err := v.sync(); err != nil || len(rejectedOf(res)) != 0 {
		t.Fatalf("correctly dated release after one dated ahead: %v, rejected %v", err, rejectedOf(res))
	}
}

// TestAptGetFutureDatedUpstream: a vendor release dated within
// apt.MaxDateSkew ahead is mirrored, and the real apt-get accepts the
// operator's InRelease made from it (it refuses one dated in its future:
// "not valid yet").
func TestAptGetFutureDatedUpstream(t *testing.T) {
	needTools(t, "apt-get", "gpgv")
	v := newVendorApt(t, []string{"tool"})
	v.publish(time.Now().Add(apt.MaxDateSkew/2), v.deb("tool", "pool/main/t/tool_1.0_amd64.deb", []byte("tool 1.0")))
	res, err := v.sync()
	if err != nil || res.Bundle == nil {
		t.Fatalf("sync: %v", err)
	}
	repoDir := filepath.Join(v.e.dir, "repo")
	if _, err := Import(context.Background(), ImportOptions{Repo: repoDir, Pub: v.e.op.Public(), Recheck: true}, res.Bundle.Paths[:len(res.Bundle.Paths)-1]); err != nil {
		t.Fatalf("import: %v", err)
	}
	srv := httptest.NewServer(serve.NewHandler(repoDir))
	defer srv.Close()
	newAptClient(t, srv.URL+"/vendor", v.e.op.ArmoredPublic()).run(t, true, "update")
}

// TestAptOneFileTwoNamesRechecks: an index that lists one .deb under two
// package names, both in the key's scope, is mirrored by sync and passes
// import --recheck: the two sides read such an index alike.
func TestAptOneFileTwoNamesRechecks(t *testing.T) {
	v := newVendorApt(t, []string{"tool", "tool-alias"})
	content := []byte("tool 1.0")
	v.publish(time.Now().Add(-time.Hour), v.deb("tool", "pool/main/t/tool_1.0_amd64.deb", content), v.deb("tool-alias", "pool/main/t/tool_1.0_amd64.deb", content))
	res, err := v.sync()
	if err != nil || res.Bundle == nil || len(rejectedOf(res)) != 0 {
		t.Fatalf("sync: %v, rejected %v", err, rejectedOf(res))
	}
	if _, err := Import(context.Background(), ImportOptions{Repo: filepath.Join(v.e.dir, "repo"), Pub: v.e.op.Public(), Recheck: true}, res.Bundle.Paths[:len(res.Bundle.Paths)-1]); err != nil {
		t.Fatalf("import --recheck of what sync accepted: %v", err)
	}
}

// TestAptRefusedParagraphStaysOut: a package refused for its own path
// stays out of the generated Packages index even when another package's
// .deb has the same bytes (the index lists what passed by path and hash,
// not by hash alone).
func TestAptRefusedParagraphStaysOut(t *testing.T) {
	v := newVendorApt(t, []string{"tool", "evil"})
	content := []byte("tool 1.0")
	v.publish(time.Now().Add(-time.Hour), v.deb("tool", "pool/main/t/tool_1.0_amd64.deb", content), v.deb("evil", "dists/stable/Release", content))
	res, err := v.sync()
	if err != nil || res.Bundle == nil {
		t.Fatalf("sync: %v", err)
	}
	if rej := rejectedOf(res); len(rej) != 1 {
		t.Fatalf("rejected %v, want vendor:evil", rej)
	}
	m, blobs := v.e.bundle(res)
	idx := string(blobs[treeOf(m)["vendor/dists/stable/main/binary-amd64/Packages"]])
	if !strings.Contains(idx, "Package: tool\n") || strings.Contains(idx, "Package: evil") {
		t.Fatalf("the generated Packages index:\n%s\nwant tool listed and evil not", idx)
	}
}

// TestAptListedTwiceLeftOut: an index that lists one Filename twice with
// different hashes proves nothing about it, so sync leaves out every name
// it is listed under, whichever comes first, and import --recheck accepts
// what sync bundled (before, sync took the first entry and recheck refused
// the whole bundle).
func TestAptListedTwiceLeftOut(t *testing.T) {
	v := newVendorApt(t, []string{"tool", "tool-x", "other"})
	content := []byte("tool 1.0")
	good := v.deb("tool", "pool/main/t/tool_1.0_amd64.deb", content)
	clash := strings.Replace(strings.Replace(good, "Package: tool\n", "Package: tool-x\n", 1), sumOf(string(content)), sumOf("something else"), 1)
	v.publish(time.Now().Add(-time.Hour), good, clash, v.deb("other", "pool/main/o/other_1.0_amd64.deb", []byte("other 1.0")))
	res, err := v.sync()
	if err != nil || res.Bundle == nil {
		t.Fatalf("sync: %v", err)
	}
	rej := rejectedOf(res)
	if len(rej) != 2 || !strings.Contains(rej["vendor:tool"], "listed twice") || !strings.Contains(rej["vendor:tool-x"], "listed twice") {
		t.Fatalf("rejected %v, want vendor:tool and vendor:tool-x, both for the file listed twice", rej)
	}
	if _, err := Import(context.Background(), ImportOptions{Repo: filepath.Join(v.e.dir, "repo"), Pub: v.e.op.Public(), Recheck: true}, res.Bundle.Paths[:len(res.Bundle.Paths)-1]); err != nil {
		t.Fatalf("import --recheck of what sync bundled: %v", err)
	}
}

// TestAttackAptFilenameOnGeneratedPath: a vendor archive (its key allowed
// for vendor:* only) lists a package whose Filename is a path the mirror
// generates under vendor/ itself: the operator-signed Release, a case
// variant of InRelease (ASCII or Unicode folding), the _upstream evidence,
// a file where by-hash needs a folder. That package is rejected by name;
// the vendor's other package and the debian source are mirrored.
func TestAttackAptFilenameOnGeneratedPath(t *testing.T) {
	for _, fn := range []string{
		"dists/stable/Release",
		"Dists/stable/InRelease",
		"di\u017fts/stable/InRelease", // U+017F LATIN SMALL LETTER LONG S folds to s
		"_upstream/dists/stable/InRelease",
		"_UPSTREAM/dists/stable/Release",
		"dists/stable/main/binary-amd64/by-hash",
	} {
		t.Run(fn, func(t *testing.T) {
			v := newVendorApt(t, []string{"tool", "evil"})
			v.publish(time.Now().Add(-time.Hour),
				v.deb("tool", "pool/main/t/tool_1.0_amd64.deb", []byte("tool 1.0")),
				v.deb("evil", fn, []byte("not a release")))
			res, err := v.sync()
			if err != nil {
				t.Fatalf("one vendor package with Filename %q fails the whole run: %v", fn, err)
			}
			rej := rejectedOf(res)
			if len(rej) != 1 || !strings.Contains(rej["vendor:evil"], fn) {
				t.Fatalf("rejected %v, want only vendor:evil, naming its file", rej)
			}
			m, _ := v.e.bundle(res)
			for _, p := range []string{"vendor/pool/main/t/tool_1.0_amd64.deb", "debian/pool/main/h/hello/hello_1.0_amd64.deb"} {
				if !slices.Contains(debPaths(m), p) {
					t.Errorf("%s not bundled: %v", p, debPaths(m))
				}
			}
		})
	}
}

// TestOnGeneratedPath: which index paths fall on the folders the mirror
// writes under SOURCE/.
func TestOnGeneratedPath(t *testing.T) {
	for p, refused := range map[string]bool{
		"pool/main/h/hello/hello_1.0_amd64.deb": false,
		"pool/main/h/hello/hello_1.0.dsc":       false,
		"pool/dists/x.deb":                      false,
		"distsx/x.deb":                          false,
		"dists":                                 true,
		"dists/stable/Release":                  true,
		"DISTS/stable/Release":                  true,
		"di\u017fts/stable/Release":             true,
		"_upstream/x":                           true,
		"_Upstream/x":                           true,
	} {
		if got := onGeneratedPath(p) != ""; got != refused {
			t.Errorf("onGeneratedPath(%q) refuses: %v, want %v", p, got, refused)
		}
	}
}

// TestAttackAptRollbackAfterRefusedRun: one run in which the upstream serves
// a broken InRelease (the suite is refused, the run exits 3 and saves its
// state) must not erase the rollback mark: the next run, offered an older
// but validly signed release, still refuses it.
func TestAttackAptRollbackAfterRefusedRun(t *testing.T) {
	e, newer, older, serve, now := rollbackAptEnv(t)
	serve(newer, now.Add(-time.Hour))
	if res := e.sync(); len(rejectedOf(res)) != 0 || res.Bundle == nil {
		t.Fatalf("newer release: rejected %v, bundle %v", rejectedOf(res), res.Bundle)
	}
	serve([]byte("garbage, not clearsigned\n"), now.Add(-30*time.Minute))
	if res := e.sync(); len(rejectedOf(res)) == 0 {
		t.Fatal("a broken InRelease was not refused")
	}
	serve(older, now)
	wantAptRollback(t, e, "older release after one refused run")
}

// wantAptRollback runs a sync that must be refused as ErrUpstreamRollback.
func wantAptRollback(t *testing.T, e *aptEnv, what string) {
	t.Helper()
	cfg, err := LoadConfig(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Sync(context.Background(), cfg, SyncOptions{Fetch: testFetchOptions()})
	if !errors.Is(err, ErrUpstreamRollback) {
		t.Fatalf("%s: err = %v (bundle %v), want ErrUpstreamRollback", what, err, res != nil && res.Bundle != nil)
	}
}

// TestAttackAptRollbackRewrittenMark: a hostile mirror (it holds no key)
// serves the newest InRelease rewritten in a form whose signature still
// verifies: CRLF line endings, or its first line dash-escaped. Sync takes
// it, and the next run, offered an older but validly signed release, must
// still refuse it: the mark is the Date of the text that was verified, not
// a second reading of the bytes as served.
func TestAttackAptRollbackRewrittenMark(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rewrite func([]byte) []byte
	}{
		{"CRLF", func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) }},
		{"dash-escaped", func(b []byte) []byte { return bytes.Replace(b, []byte("\n\n"), []byte("\n\n- "), 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, newer, older, serve, now := rollbackAptEnv(t)
			serve(tc.rewrite(newer), now.Add(-time.Hour))
			if res := e.sync(); len(rejectedOf(res)) != 0 || res.Bundle == nil {
				t.Fatalf("newer release, rewritten: rejected %v, bundle %v", rejectedOf(res), res.Bundle)
			}
			serve(older, now)
			wantAptRollback(t, e, "older release after a rewritten newer one")
		})
	}
}

// TestAptRollbackMarkUnreadable: a state written before release marks were
// kept among the verdicts compares with the release it recorded, read back
// from the cache. When that copy is gone, the suite is refused with
// ErrRollbackMark (never compared with nothing), until the operator takes
// the release as the new mark with --accept-rollback SOURCE:dists/SUITE.
func TestAptRollbackMarkUnreadable(t *testing.T) {
	e, newer, older, serve, now := rollbackAptEnv(t)
	serve(newer, now.Add(-time.Hour))
	if res := e.sync(); len(rejectedOf(res)) != 0 || res.Bundle == nil {
		t.Fatalf("newer release: rejected %v, bundle %v", rejectedOf(res), res.Bundle)
	}
	// The state as an earlier version wrote it (no mark among the
	// verdicts), and the cache without its copy of the release.
	dir := filepath.Join(e.dir, "state")
	st, err := state.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Verified["debian:dists/stable"]; !ok {
		t.Fatalf("no mark for debian:dists/stable among the verdicts %v", st.Verified)
	}
	delete(st.Verified, "debian:dists/stable")
	if err := st.Save(dir); err != nil {
		t.Fatal(err)
	}
	sum := sumOf(string(newer))
	if err := os.Remove(filepath.Join(dir, CacheDir, "sha256", sum[:2], sum)); err != nil {
		t.Fatal(err)
	}

	serve(older, now)
	cfg, err := LoadConfig(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Sync(context.Background(), cfg, SyncOptions{Fetch: testFetchOptions()})
	if !errors.Is(err, ErrRollbackMark) || !strings.Contains(err.Error(), "--accept-rollback 'debian:dists/stable'") {
		t.Fatalf("older release, the mark's copy lost: err = %v (bundle %v), want ErrRollbackMark with its hint", err, res != nil && res.Bundle != nil)
	}
	t.Log(err)
	res, err = Sync(context.Background(), cfg, SyncOptions{Fetch: testFetchOptions(), AcceptRollback: []string{"debian:dists/stable"}})
	if err != nil || res.Bundle == nil {
		t.Fatalf("with --accept-rollback: %v", err)
	}
}

// TestAptReleaseMark: the mark an apt suite leaves among the verdicts, and
// what notOlder does with it: an older release, or one without a Date after
// one with a Date, is refused (unless the operator accepts it); the same
// release keeps its mark as it was.
func TestAptReleaseMark(t *testing.T) {
	now := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	src := &SourceConfig{Name: "debian", Apt: &apt.Config{Name: "debian", URL: "http://deb.example.org/debian/"}}
	suite := func(text string, date time.Time) *apt.Suite {
		return &apt.Suite{Name: "stable", Release: &apt.Release{Date: date}, Signed: []apt.File{{Path: "InRelease", Data: []byte(text)}}}
	}
	prev := state.Verified{File: sumOf("v1"), Trust: "t", At: now.Add(-day), Signed: now.Add(-2 * day)}
	for _, tc := range []struct {
		name   string
		marks  map[string]state.Verified
		accept []string
		s      *apt.Suite
		want   time.Time // the new mark's date
		err    error
	}{
		{"first release", nil, nil, suite("v2", now.Add(-time.Hour)), now.Add(-time.Hour), nil},
		{"newer", map[string]state.Verified{"debian:dists/stable": prev}, nil, suite("v2", now.Add(-time.Hour)), now.Add(-time.Hour), nil},
		{"same date", map[string]state.Verified{"debian:dists/stable": prev}, nil, suite("v2", prev.Signed), prev.Signed, nil},
		{"same release", map[string]state.Verified{"debian:dists/stable": prev}, nil, suite("v1", prev.Signed), prev.Signed, nil},
		{"older", map[string]state.Verified{"debian:dists/stable": prev}, nil, suite("v0", now.Add(-3*day)), time.Time{}, ErrUpstreamRollback},
		{"no Date after a Date", map[string]state.Verified{"debian:dists/stable": prev}, nil, suite("v0", time.Time{}), time.Time{}, ErrUpstreamRollback},
		{"no Date after no Date", map[string]state.Verified{"debian:dists/stable": {File: sumOf("v1"), At: now}}, nil, suite("v2", time.Time{}), time.Time{}, nil},
		{"ahead of the clock: the mark is the run's second", map[string]state.Verified{"debian:dists/stable": prev}, nil, suite("v2", now.Add(apt.MaxDateSkew)), now, nil},
		{"older, accepted", map[string]state.Verified{"debian:dists/stable": prev}, []string{"debian:dists/*"}, suite("v0", now.Add(-3*day)), now.Add(-3 * day), nil},
		{"another suite's mark", map[string]state.Verified{"debian:dists/testing": prev}, nil, suite("v0", now.Add(-3*day)), now.Add(-3 * day), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := state.New()
			maps.Copy(st.Verified, tc.marks)
			r := &run{st: st, now: now, trustSHA: "t", opt: SyncOptions{AcceptRollback: tc.accept}}
			mark, err := r.notOlder(src, tc.s)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && (!mark.Signed.Equal(tc.want) || mark.File != sumOf(string(tc.s.Signed[0].Data))) {
				t.Fatalf("mark %+v, want date %v for file %s", mark, tc.want, string(tc.s.Signed[0].Data))
			}
		})
	}
}

// stateBytes returns the sync state file's bytes, to show a run left it as it was.
func stateBytes(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, state.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
