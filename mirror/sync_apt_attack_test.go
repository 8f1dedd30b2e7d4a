package mirror

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
			cfg, err := LoadConfig(e.cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Sync(context.Background(), cfg, SyncOptions{Fetch: testFetchOptions()})
			if !errors.Is(err, ErrUpstreamRollback) {
				t.Fatalf("older release after a rewritten newer one: err = %v (bundle %v), want ErrUpstreamRollback", err, res != nil && res.Bundle != nil)
			}
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
