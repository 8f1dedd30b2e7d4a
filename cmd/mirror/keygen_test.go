package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mirror-tool/mirror/internal/minisign"
	"github.com/mirror-tool/mirror/internal/operator"
)

// keygenEnv makes keygen tests fast (small scrypt limits; the format and
// the stock tool's reading of it are tested in internal/minisign), clears
// the passphrase environment and replaces the terminal with answers (nil:
// no terminal).
func keygenEnv(t *testing.T, answers ...string) *int {
	t.Helper()
	t.Cleanup(minisign.SetKDFLimitsForTest(32768, 1<<20))
	t.Setenv(operator.EnvPassphrase, "")
	t.Setenv(operator.EnvPassphraseFile, "")
	asked := new(int)
	old := readPassword
	readPassword = func(_ context.Context, prompt string) ([]byte, error) {
		if *asked >= len(answers) {
			return nil, errNoTerminal
		}
		*asked++
		return []byte(answers[*asked-1]), nil
	}
	t.Cleanup(func() { readPassword = old })
	return asked
}

func runKeygenCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), append([]string{"mirror"}, args...), &o, &e)
	return code, o.String(), e.String()
}

func TestKeygen(t *testing.T) {
	keygenEnv(t)
	t.Setenv(operator.EnvPassphrase, "from the environment")
	dir := filepath.Join(t.TempDir(), "keys")
	code, stdout, stderr := runKeygenCLI(t, "keygen", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for name, want := range map[string]fs.FileMode{"operator.key": 0o600, "operator.pub": 0o644, "operator.asc": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	keyPath := filepath.Join(dir, "operator.key")
	k, err := operator.Load(keyPath, []byte("from the environment"))
	if err != nil {
		t.Fatal(err)
	}
	// Both key ids are printed, and they are the key's.
	if !strings.Contains(stdout, "minisign key id:     "+k.Minisign.ID.String()+"\n") {
		t.Errorf("stdout lacks the minisign key id %s:\n%s", k.Minisign.ID, stdout)
	}
	if !strings.Contains(stdout, "openpgp fingerprint: "+k.Fingerprint()+"\n") {
		t.Errorf("stdout lacks the openpgp fingerprint %s:\n%s", k.Fingerprint(), stdout)
	}
	if !regexp.MustCompile(`^[0-9A-F]{40}$`).MatchString(k.Fingerprint()) {
		t.Errorf("fingerprint %q", k.Fingerprint())
	}

	// A wrong passphrase gives the specific error, naming the file.
	_, err = operator.Load(keyPath, []byte("wrong"))
	if !errors.Is(err, operator.ErrPassphrase) || !strings.Contains(err.Error(), keyPath) {
		t.Errorf("wrong passphrase: %v, want ErrPassphrase naming %s", err, keyPath)
	}

	// The stock tool accepts a signature made with the loaded key.
	msg := filepath.Join(t.TempDir(), "bundle.tar.zst")
	os.WriteFile(msg, []byte("bundle\n"), 0o644)
	sig, err := k.Minisign.Sign(bytes.NewReader([]byte("bundle\n")), "keygen test", "mirror")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(msg+".minisig", sig.Marshal(), 0o644)
	minisignBin, err := exec.LookPath("minisign")
	if err != nil {
		t.Fatalf("minisign is needed (scripts/test installs it): %v", err)
	}
	if out, err := exec.Command(minisignBin, "-V", "-p", filepath.Join(dir, "operator.pub"), "-m", msg).CombinedOutput(); err != nil {
		t.Errorf("minisign -V -p operator.pub rejects: %v\n%s", err, out)
	}

	// gpg, in a throwaway home, imports operator.asc and lists the printed
	// fingerprint with signing capability.
	gpgBin, err := exec.LookPath("gpg")
	if err != nil {
		t.Fatalf("gpg is needed (scripts/test installs it): %v", err)
	}
	home, err := os.MkdirTemp("", "gnupg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	os.Chmod(home, 0o700)
	if out, err := exec.Command(gpgBin, "--batch", "--homedir", home, "--import", filepath.Join(dir, "operator.asc")).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	listing, err := exec.Command(gpgBin, "--batch", "--homedir", home, "--with-colons", "--list-keys").Output()
	if err != nil {
		t.Fatalf("gpg --list-keys: %v", err)
	}
	if !strings.Contains(string(listing), "\nfpr:::::::::"+k.Fingerprint()+":") ||
		!regexp.MustCompile(`(?m)^pub:[^:]*:255:22:[^:]*:\d+:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:[a-zA-Z]*s`).Match(listing) {
		t.Errorf("gpg lists no signing key %s:\n%s", k.Fingerprint(), listing)
	}

	// Never overwritten: exit 1, a message naming the file, files unchanged.
	before := map[string][]byte{}
	for _, n := range []string{"operator.key", "operator.pub", "operator.asc"} {
		before[n], _ = os.ReadFile(filepath.Join(dir, n))
	}
	code, _, stderr = runKeygenCLI(t, "keygen", "--out", dir)
	if code != 1 || !strings.Contains(stderr, keyPath+" already exists") || !strings.Contains(stderr, "mirror: hint: ") {
		t.Errorf("second keygen: exit %d, stderr:\n%s", code, stderr)
	}
	for n, b := range before {
		if now, _ := os.ReadFile(filepath.Join(dir, n)); !bytes.Equal(now, b) {
			t.Errorf("%s changed", n)
		}
	}
}

func TestKeygenRefusesWhenAnyFileExists(t *testing.T) {
	keygenEnv(t)
	t.Setenv(operator.EnvPassphrase, "pw")
	dir := t.TempDir()
	asc := filepath.Join(dir, "operator.asc")
	os.WriteFile(asc, []byte("someone else's\n"), 0o644)
	code, _, stderr := runKeygenCLI(t, "keygen", "--out", dir)
	if code != 1 || !strings.Contains(stderr, asc+" already exists") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d entries in %s after a refused keygen, want 1", len(ents), dir)
	}
}

func TestKeygenPassphraseFile(t *testing.T) {
	keygenEnv(t)
	pf := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pf, []byte("from a file\n"), 0o600)
	t.Setenv(operator.EnvPassphraseFile, pf)
	t.Setenv(operator.EnvPassphrase, "loses to the file")
	dir := t.TempDir()
	if code, _, stderr := runKeygenCLI(t, "keygen", "--out", dir); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if _, err := operator.Load(filepath.Join(dir, "operator.key"), []byte("from a file")); err != nil {
		t.Error(err)
	}
}

func TestKeygenTerminal(t *testing.T) {
	asked := keygenEnv(t, "typed twice", "typed twice")
	dir := t.TempDir()
	if code, _, stderr := runKeygenCLI(t, "keygen", "--out", dir); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if *asked != 2 {
		t.Errorf("asked %d times, want 2", *asked)
	}
	if _, err := operator.Load(filepath.Join(dir, "operator.key"), []byte("typed twice")); err != nil {
		t.Error(err)
	}

	keygenEnv(t, "one", "other")
	dir = t.TempDir()
	code, _, stderr := runKeygenCLI(t, "keygen", "--out", dir)
	if code != 1 || !strings.Contains(stderr, "differ") {
		t.Errorf("mismatched passphrases: exit %d\n%s", code, stderr)
	}
	keygenEnv(t, "")
	code, _, stderr = runKeygenCLI(t, "keygen", "--out", dir)
	if code != 1 || !strings.Contains(stderr, "empty") || !strings.Contains(stderr, "--unencrypted") {
		t.Errorf("empty passphrase: exit %d\n%s", code, stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files written after a refused passphrase: %v", ents)
	}
}

func TestKeygenNoPassphraseSource(t *testing.T) {
	keygenEnv(t) // no environment, no terminal
	dir := filepath.Join(t.TempDir(), "keys")
	code, _, stderr := runKeygenCLI(t, "keygen", "--out", dir)
	// keygen reads no config: the message does not send the operator to one.
	if code != 1 || !strings.Contains(stderr, operator.EnvPassphraseFile) || !strings.Contains(stderr, "no terminal") ||
		!strings.Contains(stderr, "mirror: hint: ") || strings.Contains(stderr, "config") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s was created: %v", dir, err)
	}
}

func TestKeygenUnencrypted(t *testing.T) {
	asked := keygenEnv(t, "never asked")
	dir := t.TempDir()
	code, stdout, stderr := runKeygenCLI(t, "keygen", "--out", dir, "--unencrypted")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if *asked != 0 {
		t.Error("asked for a passphrase with --unencrypted")
	}
	if !strings.Contains(stderr, "warning") || !strings.Contains(stdout, "NOT encrypted") {
		t.Errorf("no warning:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	keyPath := filepath.Join(dir, "operator.key")
	if need, err := operator.NeedsPassphrase(keyPath); err != nil || need {
		t.Errorf("NeedsPassphrase = %v, %v", need, err)
	}
	if _, err := operator.Load(keyPath, nil); err != nil {
		t.Error(err)
	}
}

func TestKeygenUsage(t *testing.T) {
	keygenEnv(t)
	for _, args := range [][]string{{"keygen"}, {"keygen", "--out", t.TempDir(), "extra"}, {"keygen", "--bogus"}} {
		if code, _, stderr := runKeygenCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr)
		}
	}
}
