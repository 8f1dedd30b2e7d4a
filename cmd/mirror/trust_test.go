package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const verifyFixtures = "../../fixtures/verify"

func runTrust(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"mirror", "trust", "check"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func fx(name string) string { return filepath.Join(verifyFixtures, name) }

func TestTrustCheckCLI(t *testing.T) {
	cfg := fx("trust.toml")
	at := "--at=2026-01-01T00:00:00Z"
	for _, c := range []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout bool
	}{
		{"accepted", []string{"--config", cfg, "--package", "tools:hello", at, fx("hello.txt"), fx("openpgp/ed25519.hello.txt.asc")},
			0, []string{"tools:hello: accepted", `key "pgp-ed25519"`}, nil, false},
		{"accepted two schemes", []string{"--config", cfg, "--package", "tools:critical/hello", at, fx("hello.txt"), fx("minisign/mini1.hello.txt.minisig"), fx("ssh/rsa.hello.txt.sig")},
			0, []string{"accepted: signed by 2 distinct allowed keys, 2 required"}, nil, false},
		{"tampered", []string{"--config", cfg, "--package", "tools:hello", at, fx("hello.txt.tampered"), fx("ssh/ed25519.hello.txt.sig")},
			3, []string{"rejected", "bad signature"}, []string{"rejected"}, false},
		{"out of scope", []string{"--config", cfg, "--package", "debian:jq", at, fx("hello.txt"), fx("minisign/mini2.hello.txt.minisig")},
			3, []string{`key "mini2" is not allowed to sign debian:jq`}, nil, false},
		{"threshold", []string{"--config", cfg, "--package", "tools:critical/x", at, fx("hello.txt"), fx("minisign/mini2.hello.txt.minisig")},
			3, []string{"needs valid signatures by 2 distinct"}, nil, false},
		{"expired", []string{"--config", cfg, "--package", "tools:hello", at, fx("hello.txt"), fx("openpgp/expired.hello.txt.sig")},
			3, []string{"key expired"}, nil, false},
		// As sync does, the name the package is served under is checked
		// against a minisign trusted comment's file: (a substitution).
		{"signed name", []string{"--config", cfg, "--package", "tools:x/bench-8k.bin", fx("bench-8k.bin"), fx("minisign/mini1.bench-8k.bin.minisig")},
			0, []string{"accepted"}, nil, false},
		{"substituted name", []string{"--config", cfg, "--package", "tools:x/other.bin", fx("bench-8k.bin"), fx("minisign/mini1.bench-8k.bin.minisig")},
			3, []string{"rejected", "signature made for another file", `served as "other.bin"`}, nil, false},
		{"missing config flag", []string{"--package", "tools:x", fx("hello.txt"), fx("ssh/rsa.hello.txt.sig")}, 2, nil, []string{"--config"}, true},
		{"missing package", []string{"--config", cfg, fx("hello.txt"), fx("ssh/rsa.hello.txt.sig")}, 2, nil, []string{"--package"}, true},
		{"bad package", []string{"--config", cfg, "--package", "nocolon", fx("hello.txt"), fx("ssh/rsa.hello.txt.sig")}, 2, nil, []string{"SOURCE:NAME"}, true},
		{"no signature", []string{"--config", cfg, "--package", "tools:x", fx("hello.txt")}, 2, nil, []string{"SIG"}, true},
		{"bad at", []string{"--config", cfg, "--package", "tools:x", "--at", "yesterday", fx("hello.txt"), fx("ssh/rsa.hello.txt.sig")}, 2, nil, []string{"RFC 3339"}, true},
		{"unknown flag", []string{"--config", cfg, "--nope", fx("hello.txt")}, 2, nil, nil, true},
		{"missing file", []string{"--config", cfg, "--package", "tools:x", fx("nope.txt"), fx("ssh/rsa.hello.txt.sig")}, 1, nil, []string{"nope.txt"}, true},
		{"missing sig", []string{"--config", cfg, "--package", "tools:x", fx("hello.txt"), fx("nope.sig")}, 1, nil, []string{"nope.sig"}, true},
		{"missing config", []string{"--config", fx("nope.toml"), "--package", "tools:x", fx("hello.txt"), fx("ssh/rsa.hello.txt.sig")}, 1, nil, []string{"nope.toml", "hint"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runTrust(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out, errs)
			}
			for _, w := range c.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range c.stderr {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			if c.noStdout && out != "" {
				t.Errorf("stdout on error: %q", out)
			}
		})
	}
}

func TestTrustCheckJSON(t *testing.T) {
	code, out, _ := runTrust(t, "--config", fx("trust.toml"), "--package", "tools:critical/a", "--json", "--at", "2026-01-01T00:00:00Z",
		fx("hello.txt"), fx("openpgp/two.hello.txt.sig"), fx("openpgp/revoked.hello.txt.asc"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var v struct {
		Package   string
		Accepted  bool
		Threshold int
		Passed    []struct{ Name, Scheme, ID string }
		Failures  []struct{ Signature, Reason string }
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if v.Package != "tools:critical/a" || !v.Accepted || v.Threshold != 2 || len(v.Passed) != 2 || len(v.Failures) != 1 ||
		v.Passed[0].Scheme != "openpgp" || v.Passed[0].ID == "" || !strings.Contains(v.Failures[0].Reason, "revoked") {
		t.Fatalf("json verdict: %+v", v)
	}

	code, out, _ = runTrust(t, "--config", fx("trust.toml"), "--package", "debian:jq", "--json", fx("hello.txt"), fx("ssh/rsa.hello.txt.sig"))
	if code != 3 || !strings.Contains(out, `"accepted": false`) || !strings.Contains(out, "not allowed") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// TestTrustCheckOversizedSignature: a signature file above the limit is
// rejected as malformed, not cut.
func TestTrustCheckOversizedSignature(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.minisig")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 70<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runTrust(t, "--config", fx("trust.toml"), "--package", "tools:x", fx("hello.txt"), big)
	if code != 3 || !strings.Contains(out, "larger than") {
		t.Fatalf("exit %d: %s", code, out)
	}
}
