package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/internal/minisign"
	"github.com/mirror-tool/mirror/internal/operator"
	"github.com/mirror-tool/mirror/mirror"
	"github.com/mirror-tool/mirror/mirror/lock"
)

const demoFixtures = "../../fixtures/demo"

// syncCLIEnv sets up fixtures/demo (minisign-signed by scripts/gen-demo-fixtures,
// with one out-of-scope signature) behind an httptest upstream, an operator
// key and the demo's mirror.toml. The key is unencrypted: decrypting an
// encrypted one costs minutes under -race (scrypt with a 1 GiB memory limit),
// and internal/operator tests passphrases.
func syncCLIEnv(t *testing.T) (cfgPath string) {
	t.Helper()
	return syncCLIEnvWrap(t, nil)
}

// syncCLIEnvWrap is syncCLIEnv with the upstream's handler wrapped by wrap.
func syncCLIEnvWrap(t *testing.T, wrap func(http.Handler) http.Handler) (cfgPath string) {
	t.Helper()
	dir := t.TempDir()
	var h http.Handler = http.FileServer(http.Dir(filepath.Join(demoFixtures, "upstream")))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	os.MkdirAll(filepath.Join(dir, "trust"), 0o755)
	for _, k := range []string{"hello-release.pub", "jq-release.pub"} {
		b, err := os.ReadFile(filepath.Join(demoFixtures, "keys", k))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "trust", k), b, 0o644)
	}
	k, err := operator.Generate(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Write(filepath.Join(dir, "keys"), nil); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join(demoFixtures, "mirror.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(tmpl), "UPSTREAM_URL", srv.URL+"/", 1)
	cfgPath = filepath.Join(dir, "mirror.toml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	return cfgPath
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"mirror"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSyncCLI(t *testing.T) {
	cfg := syncCLIEnv(t)

	// The plan: a dry run checks no package, so nothing is rejected yet.
	code, out, errs := runCLI("sync", "--config", cfg, "--dry-run")
	if code != 0 || !strings.Contains(out, "fetch     tools:jq/jq-evil.tar.gz") || !strings.Contains(out, "plan: 3 to fetch") || !strings.Contains(out, "dry run, no bundle") || strings.Contains(errs, "would stop") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errs)
	}

	// First run: two accepted, the out-of-scope one rejected: exit 3.
	code, out, errs = runCLI("sync", "--config", cfg)
	if code != exitRejected || !strings.Contains(out, "sync: 2 new, 0 unchanged, 1 rejected") || !strings.Contains(out, "mirror-000001.tar.zst (sequence 1, full") {
		t.Fatalf("first run: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "mirror: rejected tools:jq/jq-evil.tar.gz:") || !strings.Contains(errs, "not allowed") {
		t.Fatalf("rejection not reported by name and reason:\n%s", errs)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "bundles", "mirror-000001.tar.zst.minisig")); err != nil {
		t.Fatal(err)
	}

	// The operator drops the bad file: nothing new, no bundle, exit 0.
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(b, []byte(`, "jq/jq-evil.tar.gz"`), nil, 1), 0o644)
	code, out, errs = runCLI("sync", "--config", cfg, "--log-format", "json")
	if code != 0 {
		t.Fatalf("nothing new: exit %d\n%s\n%s", code, out, errs)
	}
	var sum struct {
		Event  string
		Result struct {
			NothingNew bool `json:"nothing_new"`
			Unchanged  int
			Bundle     any
		}
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &sum); err != nil || sum.Event != "summary" || !sum.Result.NothingNew || sum.Result.Unchanged != 2 || sum.Result.Bundle != nil {
		t.Fatalf("json summary %q: %+v %v", out, sum, err)
	}
	for _, l := range strings.Split(strings.TrimSpace(errs), "\n") {
		if l != "" && !json.Valid([]byte(l)) {
			t.Fatalf("--log-format json wrote a non-JSON line to stderr: %q", l)
		}
	}

	// --full makes sequence 2.
	code, out, errs = runCLI("sync", "--config", cfg, "--full")
	if code != 0 || !strings.Contains(out, "mirror-000002.tar.zst (sequence 2, full") {
		t.Fatalf("--full: exit %d\n%s\n%s", code, out, errs)
	}

	// The JSON summary names the bundle by the digest its .minisig signs,
	// which b2sum prints.
	code, out, errs = runCLI("sync", "--config", cfg, "--full", "--log-format", "json")
	var full struct {
		Result struct {
			Bundle struct {
				Path       string
				Sequence   uint64
				BLAKE2b512 string `json:"blake2b512"`
				SHA256     *string
			}
		}
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &full); code != 0 || err != nil || full.Result.Bundle.Sequence != 3 {
		t.Fatalf("--full --log-format json: exit %d, %v\n%s\n%s", code, err, out, errs)
	}
	b2, err := exec.Command("b2sum", full.Result.Bundle.Path).Output()
	if err != nil {
		t.Fatalf("b2sum: %v", err)
	}
	if got := strings.Fields(string(b2))[0]; got != full.Result.Bundle.BLAKE2b512 {
		t.Errorf("summary says blake2b512 %q, b2sum %s", full.Result.Bundle.BLAKE2b512, got)
	}
	if full.Result.Bundle.SHA256 != nil {
		t.Errorf("summary of an unsplit bundle has sha256 %q", *full.Result.Bundle.SHA256)
	}

	// A second run while one holds the lock exits at once.
	l, err := lock.Acquire(filepath.Join(filepath.Dir(cfg), "state"))
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCLI("sync", "--config", cfg)
	l.Release()
	if code != exitFailed || !strings.Contains(errs, "holds the lock") || !strings.Contains(errs, "hint: another mirror sync is running") {
		t.Fatalf("locked: exit %d\n%s", code, errs)
	}
}

func TestSyncCLIUsage(t *testing.T) {
	for _, args := range [][]string{
		{"sync", "--jobs", "0"},
		{"sync", "--log-format", "xml"},
		{"sync", "extra"},
		{"sync", "--since", "r.json", "--full"},
		{"sync", "--no-such-flag"},
		{"sync", "--accept-rollback", "no-source-part"},
		{"sync", "--accept-rollback", "tools:[bad"},
	} {
		if code, _, errs := runCLI(args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, errs)
		}
	}
	code, _, errs := runCLI("sync", "--config", filepath.Join(t.TempDir(), "none.toml"))
	if code != exitFailed || !strings.Contains(errs, "none.toml") || !strings.Contains(errs, "hint:") {
		t.Fatalf("missing config: exit %d\n%s", code, errs)
	}
}

func TestSummaryAndBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := fmtBytes(n); got != want {
			t.Errorf("fmtBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestSyncCLIWrongPassphrase: a run whose passphrase does not open the
// operator key fails (exit 1), names the key file once, and the hint says
// which source this run took the passphrase from (the classic cron mistake:
// a MIRROR_PASSPHRASE left in the environment overrides the config's file).
func TestSyncCLIWrongPassphrase(t *testing.T) {
	t.Cleanup(minisign.SetKDFLimitsForTest(32768, 1<<20))
	cfg := syncCLIEnv(t)
	keys := filepath.Join(filepath.Dir(cfg), "keys")
	k, err := operator.Generate(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(keys)
	if err := k.Write(keys, []byte("the right one")); err != nil {
		t.Fatal(err)
	}
	// No passphrase source and no terminal (cron): the run stops before it
	// fetches anything, with the hint for cron.
	oldTerm := haveTerminal
	haveTerminal = func() bool { return false }
	t.Cleanup(func() { haveTerminal = oldTerm })
	t.Setenv(operator.EnvPassphrase, "")
	t.Setenv(operator.EnvPassphraseFile, "")
	code, out, errs := runCLI("sync", "--config", cfg)
	if code != exitFailed || !strings.Contains(errs, "no passphrase source") || !strings.Contains(errs, "hint: for cron, set operator.passphrase_file") || strings.Contains(out+errs, "sync: ") {
		t.Fatalf("no passphrase source: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "state", "cache")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the run stopped by a missing passphrase made a cache: %v", err)
	}
	// A dry run makes its plan and says what a real run would stop at.
	code, out, errs = runCLI("sync", "--config", cfg, "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run, no bundle") || !strings.Contains(errs, "mirror: warning: a run without --dry-run would stop at its start: ") || !strings.Contains(errs, "no passphrase source") {
		t.Fatalf("dry run, no passphrase source: exit %d\n%s\n%s", code, out, errs)
	}

	passFile := filepath.Join(filepath.Dir(cfg), "passphrase")
	os.WriteFile(passFile, []byte("the right one\n"), 0o600)
	orig, _ := os.ReadFile(cfg)
	b := bytes.Replace(orig, []byte("[operator]\n"), []byte("[operator]\npassphrase_file = \"passphrase\"\n"), 1)
	if bytes.Equal(b, orig) {
		t.Fatalf("no [operator] table in the demo config:\n%s", orig)
	}
	os.WriteFile(cfg, b, 0o644)
	keyFile := filepath.Join(keys, operator.KeyFile)

	t.Setenv(operator.EnvPassphrase, "a wrong one")
	code, _, errs = runCLI("sync", "--config", cfg)
	if code != exitFailed || !strings.Contains(errs, "wrong passphrase") || strings.Count(errs, keyFile) != 1 ||
		!strings.Contains(errs, "hint: this run took the passphrase from MIRROR_PASSPHRASE;") {
		t.Fatalf("wrong passphrase from the environment: exit %d\n%s", code, errs)
	}

	wrongFile := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrongFile, []byte("also wrong\n"), 0o600)
	t.Setenv(operator.EnvPassphraseFile, wrongFile)
	code, _, errs = runCLI("sync", "--config", cfg)
	if code != exitFailed || !strings.Contains(errs, "hint: this run took the passphrase from MIRROR_PASSPHRASE_FILE ("+wrongFile+");") {
		t.Fatalf("wrong passphrase file: exit %d\n%s", code, errs)
	}

	// A passphrase file that is not there: the message says who named it,
	// and the hint what to do.
	nope := filepath.Join(t.TempDir(), "nope")
	t.Setenv(operator.EnvPassphraseFile, nope)
	code, _, errs = runCLI("sync", "--config", cfg)
	if code != exitFailed || !strings.Contains(errs, "passphrase file "+nope+" (named by MIRROR_PASSPHRASE_FILE): no such file") ||
		!strings.Contains(errs, "mirror: hint: the file named by MIRROR_PASSPHRASE_FILE must be readable") {
		t.Fatalf("missing MIRROR_PASSPHRASE_FILE: exit %d\n%s", code, errs)
	}
	t.Setenv(operator.EnvPassphraseFile, "")
	t.Setenv(operator.EnvPassphrase, "")
	os.Rename(passFile, passFile+".away")
	code, _, errs = runCLI("sync", "--config", cfg)
	if code != exitFailed || !strings.Contains(errs, "passphrase file "+passFile+" (named by operator.passphrase_file): no such file") ||
		!strings.Contains(errs, "mirror: hint: the file named by operator.passphrase_file must be readable") {
		t.Fatalf("missing operator.passphrase_file: exit %d\n%s", code, errs)
	}
	os.Rename(passFile+".away", passFile)

	// With the environment cleared, the config's file opens the key.
	t.Setenv(operator.EnvPassphraseFile, "")
	t.Setenv(operator.EnvPassphrase, "")
	code, out, errs = runCLI("sync", "--config", cfg)
	if code != exitRejected || !strings.Contains(out, "mirror-000001.tar.zst (sequence 1, full") {
		t.Fatalf("right passphrase from operator.passphrase_file: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestSyncCLIJSONLog: with --log-format json every line the run writes, on
// stdout and stderr, is a JSON object, and stdout ends with the summary
// (with the exit code), whether the run finished with rejections or
// stopped at its start (a config error, the lock held, a bad flag).
func TestSyncCLIJSONLog(t *testing.T) {
	cfg := syncCLIEnv(t)
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("jobs = \"many\"\n"), 0o644)
	check := func(name string, wantCode int, args ...string) map[string]any {
		t.Helper()
		code, out, errs := runCLI(append([]string{"sync"}, args...)...)
		if code != wantCode {
			t.Fatalf("%s: exit %d, want %d\n%s\n%s", name, code, wantCode, out, errs)
		}
		var last map[string]any
		for _, l := range strings.Split(strings.TrimSpace(out+"\n"+errs), "\n") {
			if l != "" && !json.Valid([]byte(l)) {
				t.Errorf("%s: a line is not JSON: %q\nstdout:\n%s\nstderr:\n%s", name, l, out, errs)
			}
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last["event"] != "summary" || last["exit"] != float64(wantCode) {
			t.Errorf("%s: stdout does not end with a summary with exit %d: %v\n%s", name, wantCode, err, out)
		}
		return last
	}
	check("rejections", exitRejected, "--config", cfg, "--log-format", "json")
	if sum := check("config error", exitFailed, "--config", bad, "--log-format=json"); sum["result"] != nil {
		t.Errorf("config error: summary has a result: %v", sum)
	}
	check("missing config", exitFailed, "--config", filepath.Join(t.TempDir(), "none.toml"), "--log-format", "json")
	check("usage", exitUsage, "--config", cfg, "--log-format", "json", "--jobs", "0")
	check("unknown flag", exitUsage, "--log-format", "json", "--frobnicate")
	l, err := lock.Acquire(filepath.Join(filepath.Dir(cfg), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	code, _, errs := runCLI("sync", "--config", cfg, "--log-format", "json")
	var ev struct{ Event, Message, Hint string }
	if err := json.Unmarshal([]byte(strings.TrimSpace(errs)), &ev); code != exitFailed || err != nil || ev.Event != "error" ||
		!strings.Contains(ev.Message, "holds the lock") || !strings.Contains(ev.Hint, "another mirror sync is running") {
		t.Fatalf("locked: exit %d, %v\n%s", code, err, errs)
	}
	check("locked", exitFailed, "--config", cfg, "--log-format", "json")
}

// TestSyncCLIInterrupted: a run stopped by SIGTERM (the run's context
// cancelled with that cause, as main does) says so, and that nothing was
// recorded, instead of "context canceled"; and it is true: no state saved,
// no bundle written.
func TestSyncCLIInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	cfg := syncCLIEnvWrap(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, ".tar.gz") {
				cancel(&interruptedError{sig: syscall.SIGTERM}) // the package downloads have begun
			}
			h.ServeHTTP(w, r)
		})
	})
	for _, format := range []string{"text", "json"} {
		var out, errb bytes.Buffer
		code := run(ctx, []string{"mirror", "sync", "--config", cfg, "--log-format", format}, &out, &errb)
		want := "interrupted (SIGTERM); nothing was recorded, the next run resumes"
		if code != exitFailed || !strings.Contains(errb.String(), want) || strings.Contains(errb.String(), "context canceled") {
			t.Fatalf("%s: exit %d, want 1 and %q\n%s\n%s", format, code, want, out.String(), errb.String())
		}
		if format == "text" && !strings.Contains(errb.String(), "mirror: "+want+"\n") {
			t.Errorf("text: the message is not one mirror: line:\n%s", errb.String())
		}
	}
	for _, p := range []string{"state/sync.state", "bundles/mirror-000001.tar.zst"} {
		if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("an interrupted run left %s: %v", p, err)
		}
	}
}

// TestSwappedKeyFilesCLI: the operator's secret key given as --pub, or its
// public key as [operator] key, is named for what it is.
func TestSwappedKeyFilesCLI(t *testing.T) {
	cfg := syncCLIEnv(t)
	keys := filepath.Join(filepath.Dir(cfg), "keys")
	code, _, errs := runCLI("import", "--pub", filepath.Join(keys, operator.KeyFile), "--repo", t.TempDir(), "x.tar.zst")
	if code != exitFailed || !strings.Contains(errs, "this is a minisign secret key, not a public key") {
		t.Errorf("import --pub operator.key: exit %d\n%s", code, errs)
	}
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(b, []byte(`keys/operator.key`), []byte(`keys/operator.pub`), 1), 0o644)
	code, _, errs = runCLI("sync", "--config", cfg)
	if code != exitFailed || !strings.Contains(errs, "this is a minisign public key, not a secret key") {
		t.Errorf("[operator] key = operator.pub: exit %d\n%s", code, errs)
	}
}

// TestSyncCLIRejectedLine: a rejection line names the package once, even
// when the verdict's reason starts with it (a bad signature's does).
func TestSyncCLIRejectedLine(t *testing.T) {
	cfg := syncCLIEnvWrap(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/hello-2.12.tar.gz") {
				w.Write([]byte("not the signed bytes"))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	code, out, errs := runCLI("sync", "--config", cfg)
	const name = "tools:hello/hello-2.12.tar.gz"
	var line string
	for _, l := range strings.Split(errs, "\n") {
		if strings.HasPrefix(l, "mirror: rejected "+name) {
			line = l
		}
	}
	if code != exitRejected || line == "" || strings.Count(line, name) != 1 || !strings.Contains(line, "signature") {
		t.Fatalf("exit %d, rejection line %q\n%s\n%s", code, line, out, errs)
	}
}

// TestCountsInWords: counts of one are singular, in the plan, the
// progress lines, the end of a run with rejections and trust check.
func TestCountsInWords(t *testing.T) {
	for n, want := range map[int]string{0: "0 packages", 1: "1 package", 2: "2 packages"} {
		if got := plural(n, "package"); got != want {
			t.Errorf("plural(%d) = %q, want %q", n, got, want)
		}
	}
	var b bytes.Buffer
	printPlan(&b, &mirror.SyncResult{ToFetch: 1, UnknownSize: 1})
	if !strings.Contains(b.String(), "(+ 1 file of unknown size)") {
		t.Errorf("plan: %q", b.String())
	}
	b.Reset()
	p := newSyncProgress(&b, "text")
	p.Stage("resolve", 1)
	p.Stage("fetch", 1)
	p.Stop()
	if !strings.Contains(b.String(), "resolve 1 source,") || !strings.Contains(b.String(), "fetch 0/1 package,") {
		t.Errorf("progress: %q", b.String())
	}

	cfg := syncCLIEnv(t)
	code, _, errs := runCLI("sync", "--config", cfg)
	if code != exitRejected || !strings.HasSuffix(errs, "mirror: 1 package was rejected\n") {
		t.Errorf("sync: exit %d\n%s", code, errs)
	}
	code, out, errs := runTrust(t, "--config", fx("trust.toml"), "--package", "tools:hello", "--at=2026-01-01T00:00:00Z", fx("hello.txt"), fx("openpgp/ed25519.hello.txt.asc"))
	if code != exitOK || !strings.Contains(out, "signed by 1 distinct allowed key, 1 required") {
		t.Errorf("trust check, accepted: exit %d\n%s", code, out)
	}
	code, out, errs = runTrust(t, "--config", fx("trust.toml"), "--package", "tools:hello", fx("hello.txt.tampered"), fx("ssh/ed25519.hello.txt.sig"))
	if code != exitRejected || strings.Contains(errs, "packages") || !strings.Contains(errs, "mirror: tools:hello was rejected") ||
		strings.Count(out, "tools:hello: ") != 1 {
		t.Errorf("trust check, rejected: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestSyncCLIClientErrorHint: a run that fails on an upstream's 4xx answer
// (403 here) does not say "run again", which would fail the same way; it
// points at the configuration.
func TestSyncCLIClientErrorHint(t *testing.T) {
	cfg := syncCLIEnvWrap(t, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	})
	code, out, errs := runCLI("sync", "--config", cfg)
	if code != exitFailed || !strings.Contains(errs, "403") || !strings.Contains(errs, "running again will not help") || strings.Contains(errs, "run again (downloads") {
		t.Fatalf("sync against an upstream answering 403: exit %d\n%s%s", code, out, errs)
	}
}
