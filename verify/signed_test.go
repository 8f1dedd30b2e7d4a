package verify

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSignedTimeAndFileName signs with the real minisign and gpg: the time a
// signature states reaches Result.Signed and Verdict.Signed (the newest of
// the signatures that counted), and a minisign signature whose trusted
// comment names another file than the one it is served as fails with
// ErrWrongFile (substitution of one validly signed file for another).
func TestSignedTimeAndFileName(t *testing.T) {
	mini, gpg := needTool(t, "minisign"), needTool(t, "gpg")
	dir := t.TempDir()
	run := func(env []string, name string, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return out
	}
	file := filepath.Join(dir, "pkg-1.0.tar.gz")
	if err := os.WriteFile(file, []byte("release 1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(nil, mini, "-G", "-W", "-p", filepath.Join(dir, "m.pub"), "-s", filepath.Join(dir, "m.key"))
	run(nil, mini, "-S", "-s", filepath.Join(dir, "m.key"), "-m", file, "-x", file+".minisig")
	run(nil, mini, "-S", "-s", filepath.Join(dir, "m.key"), "-m", file, "-x", file+".custom.minisig", "-t", "release 1.0, no timestamp")
	defSig, _ := os.ReadFile(file + ".minisig")
	customSig, _ := os.ReadFile(file + ".custom.minisig")
	// What the stock tool wrote into the default trusted comment.
	m := regexp.MustCompile(`(?m)^trusted comment: timestamp:(\d+)\tfile:([^\t\n]+)`).FindSubmatch(defSig)
	if m == nil || string(m[2]) != "pkg-1.0.tar.gz" {
		t.Fatalf("minisign's default trusted comment is not what this test expects:\n%s", defSig)
	}
	ts, _ := strconv.ParseInt(string(m[1]), 10, 64)
	miniSigned := time.Unix(ts, 0).UTC()

	// gpg with a faked clock: the key and the signature are dated 2025-01-02.
	gnupg := filepath.Join(dir, "gnupg")
	os.Mkdir(gnupg, 0o700)
	env := []string{"GNUPGHOME=" + gnupg}
	fake := "--faked-system-time=20250102T030405!"
	run(env, gpg, "--batch", fake, "--passphrase", "", "--quick-gen-key", "rel@example.org", "ed25519", "sign", "never")
	run(env, gpg, "--batch", fake, "--detach-sign", "--armor", "-o", file+".asc", file)
	pgpPub := run(env, gpg, "--batch", "--export", "--armor", "rel@example.org")
	pgpSig, _ := os.ReadFile(file + ".asc")
	pgpSigned := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

	miniPub := strings.Split(strings.TrimSpace(string(mustRead(t, filepath.Join(dir, "m.pub")))), "\n")[1]
	p, err := NewPolicy(Config{Keys: []KeyConfig{
		{Name: "m", Minisign: miniPub, Allow: []string{"tools:*"}},
		{Name: "o", OpenPGP: string(pgpPub), Allow: []string{"tools:*"}},
	}, Rules: []RuleConfig{{Packages: []string{"tools:both"}, Threshold: 2}}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	content := mustRead(t, file)
	check := func(pkg string, ss ...Signature) Verdict {
		t.Helper()
		v, err := p.Check(context.Background(), pkg, bytes.NewReader(content), ss, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tt := range []struct {
		name   string
		pkg    string
		sigs   []Signature
		ok     bool
		err    error
		signed time.Time
	}{
		{"minisign, served under its signed name", "tools:a", []Signature{{Name: "a.minisig", Data: defSig, File: "pkg-1.0.tar.gz"}}, true, nil, miniSigned},
		{"minisign, name not checked", "tools:a", []Signature{{Name: "a.minisig", Data: defSig}}, true, nil, miniSigned},
		{"minisign, served as another file", "tools:a", []Signature{{Name: "a.minisig", Data: defSig, File: "pkg-2.0.tar.gz"}}, false, ErrWrongFile, time.Time{}},
		{"minisign, own comment: no time, no name", "tools:a", []Signature{{Name: "a.minisig", Data: customSig, File: "pkg-2.0.tar.gz"}}, true, nil, time.Time{}},
		{"openpgp creation time", "tools:a", []Signature{{Name: "a.asc", Data: pgpSig, File: "pkg-1.0.tar.gz"}}, true, nil, pgpSigned},
		{"two keys: the newest time", "tools:both", []Signature{{Name: "a.asc", Data: pgpSig}, {Name: "a.minisig", Data: defSig, File: "pkg-1.0.tar.gz"}}, true, nil, miniSigned},
		{"a failing signature's time does not count", "tools:a", []Signature{{Name: "a.asc", Data: pgpSig}, {Name: "a.minisig", Data: defSig, File: "other"}}, true, nil, pgpSigned},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := check(tt.pkg, tt.sigs...)
			if v.Accepted != tt.ok || (tt.err != nil && !errors.Is(v.Err, tt.err)) {
				t.Fatalf("accepted %v, err %v; want %v, %v\n%s", v.Accepted, v.Err, tt.ok, tt.err, v)
			}
			if tt.ok && !v.Signed.Equal(tt.signed) {
				t.Errorf("Verdict.Signed = %v, want %v", v.Signed, tt.signed)
			}
		})
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
