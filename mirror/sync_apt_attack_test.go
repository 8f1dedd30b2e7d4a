package mirror

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
	needTools(t, "gpg")
	e = newAptEnv(t, []string{"debian:*"}, "stable")
	gh, err := os.MkdirTemp("", "gpg") // short: gpg-agent's socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", gh, "--kill", "all").Run()
		os.RemoveAll(gh)
	})
	env := []string{"GNUPGHOME=" + gh}
	runTool(t, env, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", "Archive Signer <archive@example.org>", "ed25519", "sign", "never")
	keyFile := filepath.Join(e.dir, "archive-mine.asc")
	if err := os.WriteFile(keyFile, runTool(t, env, "gpg", "--batch", "--armor", "--export", "archive@example.org"), 0o644); err != nil {
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
	cfg, err := LoadConfig(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Sync(context.Background(), cfg, SyncOptions{Fetch: testFetchOptions()})
	if !errors.Is(err, ErrUpstreamRollback) {
		t.Fatalf("older release after one refused run: err = %v (bundle %v), want ErrUpstreamRollback", err, res != nil && res.Bundle != nil)
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
