package verify

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func writeTrust(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	abs, err := filepath.Abs(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mirror.toml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(body, "FIX", abs)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadTrustFileErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		body string
		line int
		want []string // substrings of the message
	}{
		{"no trust table", "jobs = 3\n", 0, []string{"no [trust] table"}},
		{"empty keyring", "[trust]\n", 0, []string{"no keys"}},
		{"unknown key field", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"*\"]\nalow = [\"x\"]\n", 5, []string{"unknown field \"alow\""}},
		{"unknown rule field", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"*\"]\n[[trust.rule]]\npackages = [\"*\"]\nthreshhold = 1\n", 7, []string{"unknown field \"threshhold\""}},
		{"missing allow", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\n", 1, []string{`key "a"`, "allow", "\"*\" for everything"}},
		{"empty allow", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = []\n", 4, []string{`key "a"`, "allow"}},
		{"missing name", "[[trust.key]]\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"*\"]\n", 1, []string{"key #1", "name"}},
		{"duplicate name", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"*\"]\n\n[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini2.pub\"\nallow = [\"*\"]\n", 7, []string{"duplicate key name"}},
		{"same key twice", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"*\"]\n\n[[trust.key]]\nname = \"b\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"*\"]\n", 8, []string{`key "b"`, "also in key \"a\""}},
		{"same pgp key twice", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/openpgp/team.asc\"\nallow = [\"*\"]\n\n[[trust.key]]\nname = \"b\"\nfile = \"FIX/openpgp/ed25519.gpg\"\nallow = [\"*\"]\n", 8, []string{"also in key \"a\""}},
		{"two materials", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nssh = \"ssh-ed25519 AAAA\"\nallow = [\"*\"]\n", 1, []string{"exactly one of"}},
		{"no material", "[[trust.key]]\nname = \"a\"\nallow = [\"*\"]\n", 1, []string{"exactly one of"}},
		{"missing file", "[[trust.key]]\nname = \"a\"\nfile = \"keys/nope.asc\"\nallow = [\"*\"]\n", 3, []string{"nope.asc"}},
		{"bad minisign", "[[trust.key]]\nname = \"a\"\nminisign = \"RWQnope\"\nallow = [\"*\"]\n", 3, []string{"minisign public key"}},
		{"bad ssh", "[[trust.key]]\nname = \"a\"\nssh = \"ssh-ed25519 !!!\"\nallow = [\"*\"]\n", 3, []string{"SSH public key"}},
		{"bad openpgp", "[[trust.key]]\nname = \"a\"\nopenpgp = \"-----BEGIN PGP PUBLIC KEY BLOCK-----\\n\\nxx\\n-----END PGP PUBLIC KEY BLOCK-----\"\nallow = [\"*\"]\n", 3, []string{"OpenPGP key"}},
		{"glob without source", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"hello/*\"]\n", 4, []string{"source:"}},
		{"bad glob", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"tools:[\"]\n", 4, []string{"syntax error"}},
		{"local datetime", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"*\"]\nnot_after = 2027-01-01T00:00:00\n", 5, []string{"not_after", "time zone"}},
		{"window backwards", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"*\"]\nnot_before = 2027-01-01T00:00:00Z\nnot_after = 2026-01-01T00:00:00Z\n", 6, []string{"after not_before"}},
		{"namespace on minisign", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"*\"]\nnamespace = \"x\"\n", 5, []string{"only SSH keys"}},
		{"threshold zero", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"*\"]\n[[trust.rule]]\npackages = [\"*\"]\nthreshold = 0\n", 7, []string{"rule #1", "threshold"}},
		{"threshold above keys", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"*\"]\n[[trust.rule]]\npackages = [\"*\"]\nthreshold = 2\n", 7, []string{"rule #1", "threshold"}},
		{"rule without packages", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = [\"*\"]\n[[trust.rule]]\nthreshold = 1\n", 5, []string{"rule #1", "packages"}},
		{"toml syntax", "[[trust.key]]\nname = \"a\nallow = [\"*\"]\n", 2, []string{}},
		{"wrong type", "[[trust.key]]\nname = \"a\"\nfile = \"FIX/minisign/mini1.pub\"\nallow = \"*\"\n", 0, []string{"allow"}},
		{"secret key", "[[trust.key]]\nname = \"a\"\nopenpgp = \"-----BEGIN PGP PRIVATE KEY BLOCK-----\\n\\nxx\\n-----END PGP PRIVATE KEY BLOCK-----\"\nallow = [\"*\"]\n", 3, []string{"secret key"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeTrust(t, c.body)
			p, raw, err := LoadTrustFile(path)
			if err == nil || p != nil || raw != nil {
				t.Fatalf("want an error and nothing else, got %v %v %d bytes", err, p, len(raw))
			}
			if !errors.Is(err, ErrTrustFile) {
				t.Errorf("not ErrTrustFile: %v", err)
			}
			var te *TrustFileError
			if !errors.As(err, &te) || te.File != path {
				t.Fatalf("error does not name the file: %v", err)
			}
			if c.line != 0 && te.Line != c.line {
				t.Errorf("line %d, want %d: %v", te.Line, c.line, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestLoadMirrorToml: the trust table of a whole mirror.toml loads; the
// other tables are left to their owner; file paths resolve against the
// file's folder.
func TestLoadMirrorToml(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "m.pub"), readFixture(t, "minisign/mini1.pub"), 0o644); err != nil {
		t.Fatal(err)
	}
	body := `jobs = 8

[operator]
key = "keys/operator.key"

[[trust.key]]
name = "hello-release"
file = "keys/m.pub"
allow = ["tools:hello/*"]
not_after = 2027-06-30T00:00:00Z

[[trust.key]]
name = "ssh"
ssh = "` + strings.TrimSpace(string(readFixture(t, "ssh/ed25519.pub"))) + `"
allow = ["*"]
namespace = "releases"

[[trust.rule]]
packages = ["tools:critical/**"]
threshold = 2

[[source]]
name = "tools"
type = "files"
not_after = 2027-01-01T00:00:00 # another table's field: not the trust file's business
`
	path := filepath.Join(dir, "mirror.toml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	p, raw, err := LoadTrustFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != body {
		t.Fatal("raw bytes differ from the file")
	}
	keys := p.Keys()
	if len(keys) != 2 || keys[0].Name != "hello-release" || keys[0].NotAfter == nil || keys[0].NotAfter.Year() != 2027 || keys[1].Namespace != "releases" {
		t.Fatalf("keys: %+v", keys)
	}
	// Keys returns copies.
	keys[0].Allow[0] = "changed"
	if p.Keys()[0].Allow[0] != "tools:hello/*" {
		t.Fatal("Keys exposes the policy's slices")
	}
	if p.threshold("tools:critical/a/b") != 2 || p.threshold("tools:hello/x") != 1 {
		t.Fatal("thresholds")
	}
}

func TestEmptyConfig(t *testing.T) {
	if _, err := NewPolicy(Config{}, "."); !errors.Is(err, ErrTrustFile) {
		t.Fatalf("empty keyring: %v", err)
	}
}

func TestThresholdHighestWins(t *testing.T) {
	p, err := NewPolicy(Config{
		Keys: []KeyConfig{{Name: "a", File: "minisign/mini1.pub", Allow: []string{"*"}}, {Name: "b", File: "minisign/mini2.pub", Allow: []string{"*"}}},
		Rules: []RuleConfig{
			{Packages: []string{"tools:**"}, Threshold: 1},
			{Packages: []string{"tools:critical/*"}, Threshold: 2},
		},
	}, fixtures)
	if err != nil {
		t.Fatal(err)
	}
	for pkg, want := range map[string]int{"tools:critical/x": 2, "tools:critical/x/y": 1, "tools:x": 1, "debian:x": 1} {
		if got := p.threshold(pkg); got != want {
			t.Errorf("%s: threshold %d, want %d", pkg, got, want)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		glob, name string
		want       bool
	}{
		{"*", "tools:a/b/c", true},
		{"**", "tools:a/b/c", true},
		{"tools:*", "tools:hello", true},
		{"tools:*", "tools:hello/x", false},
		{"tools:hello/*", "tools:hello/hello-2.12.tar.gz", true},
		{"tools:hello/*", "tools:hello/sub/x", false},
		{"tools:hello/**", "tools:hello/sub/x", true},
		{"tools:hello/**", "tools:hello/", true},
		{"tools:**/x.tar.gz", "tools:a/b/x.tar.gz", true},
		{"tools:**/x.tar.gz", "tools:a/b/y.tar.gz", false},
		{"tools:**.gz", "tools:a/b/y.tar.gz", true},
		{"debian:lib?", "debian:libc", true},
		{"debian:lib?", "debian:lib/", false},
		{"debian:lib[a-c]*", "debian:libbz2", true},
		{"debian:lib[a-c]*", "debian:libz", false},
		{"debian:lib[^a]", "debian:lib/", false},
		{"debian:\\*", "debian:*", true},
		{"debian:\\*", "debian:x", false},
		{"debian:jq", "debian:jq", true},
		{"debian:jq", "debian:jqx", false},
		{"debian:*", "tools:jq", false},
		{"tools:a*b*c*d*e*f*g", "tools:" + strings.Repeat("a", 900), false},
		{"tools:**a**a**a**a**a**b", "tools:" + strings.Repeat("a/", 400), false},
		{"tools:héllo/*", "tools:héllo/x", true},
		{"tools:h?llo", "tools:héllo", true},
	} {
		g, err := parseGlob(c.glob)
		if err != nil {
			t.Fatalf("%q: %v", c.glob, err)
		}
		if got := g.match(c.name); got != c.want {
			t.Errorf("%q match %q = %v, want %v", c.glob, c.name, got, c.want)
		}
	}
	for _, bad := range []string{"", "nocolon", "tools:[", "tools:\\", strings.Repeat("a", MaxGlobLength+1)} {
		if _, err := parseGlob(bad); err == nil {
			t.Errorf("%q: want error", bad)
		}
	}
}

// TestDocExample: the complete example of docs/trust.md is a valid trust
// table (its keys are placeholders, so only the decoding is checked).
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/trust.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```toml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/trust.md has no ```toml block")
	}
	cfg, err := ParseConfig("docs/trust.md", []byte(block))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Keys) != 5 || len(cfg.Rules) != 1 || cfg.Keys[3].Revoked == nil || cfg.Keys[2].Namespace != "file" || cfg.Rules[0].Threshold != 2 {
		t.Fatalf("example decoded as %+v", cfg)
	}
}

// TestSmallSSHRSAKeyRefused: an SSH RSA key below 2048 bits cannot be put in
// the trust file.
func TestSmallSSHRSAKeyRefused(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewPolicy(Config{Keys: []KeyConfig{{Name: "small", SSH: string(ssh.MarshalAuthorizedKey(pub)), Allow: []string{"*"}}}}, ".")
	if !errors.Is(err, ErrUnsupported) || !errors.Is(err, ErrTrustFile) || !strings.Contains(err.Error(), "2048") {
		t.Fatalf("want unsupported: %v", err)
	}
}
