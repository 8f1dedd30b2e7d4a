package mirror

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const exampleConfig = `jobs = 6

[operator]
key = "keys/operator.key"
passphrase_file = "/etc/mirror/passphrase"

[output]
dir = "bundles"
state = "/var/lib/mirror"
expires = "720h"
max_part_size = "4GiB"

[[trust.key]]
name = "hello-release"
minisign = "RWQ..."
allow = ["tools:hello/*"]
not_after = 2027-06-30T00:00:00Z

[[trust.rule]]
packages = ["tools:critical/*"]
threshold = 2

[[source]]
name = "tools"
type = "files"
url = "https://downloads.example.org/releases/"
files = ["hello/hello-2.12.tar.gz"]
signatures = ["{file}.minisig"]
timeout = "2m"
user_agent = "mirror-test"
pipelining = false

[[source]]
name = "node"
type = "files"
url = "https://nodejs.example.org/dist/"
files = ["v22.1.0/*.tar.xz"]
checksums = "v22.1.0/SHASUMS256.txt.asc"
listing = "node-listing.txt"
ca_file = "ca.pem"
`

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mirror.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigExample(t *testing.T) {
	p := writeConfig(t, exampleConfig)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	if c.Jobs != 6 || c.Operator.Key != filepath.Join(dir, "keys/operator.key") || c.Operator.PassphraseFile != "/etc/mirror/passphrase" {
		t.Fatalf("config = %+v", c)
	}
	if c.Output.Dir != filepath.Join(dir, "bundles") || c.Output.State != "/var/lib/mirror" {
		t.Fatalf("output = %+v", c.Output)
	}
	if time.Duration(c.Output.Expires) != 720*time.Hour || c.Output.MaxPartSize != 4<<30 {
		t.Fatalf("output = %+v", c.Output)
	}
	if len(c.Trust.Keys) != 1 || c.Trust.Keys[0].Name != "hello-release" || len(c.Trust.Rules) != 1 || c.Trust.Rules[0].Threshold != 2 {
		t.Fatalf("trust = %+v", c.Trust)
	}
	if len(c.Sources) != 2 {
		t.Fatalf("sources = %+v", c.Sources)
	}
	s := c.Sources[0]
	if s.Name != "tools" || s.Files == nil || s.Files.Signatures[0] != "{file}.minisig" || s.Timeout != 2*time.Minute || s.UserAgent != "mirror-test" || !s.NoPipelining {
		t.Fatalf("source 0 = %+v %+v", s, s.Files)
	}
	s = c.Sources[1]
	if s.NoPipelining || s.Files.Checksums != "v22.1.0/SHASUMS256.txt.asc" || s.Files.Listing != filepath.Join(dir, "node-listing.txt") || s.CAFile != filepath.Join(dir, "ca.pem") {
		t.Fatalf("source 1 = %+v %+v", s, s.Files)
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Jobs != DefaultJobs() || time.Duration(c.Output.Expires) != DefaultExpires || filepath.Base(c.Output.Dir) != DefaultOutputDir || filepath.Base(c.Output.State) != DefaultStateDir || c.Output.MaxPartSize != 0 {
		t.Fatalf("defaults = %+v", c)
	}
}

const minimalConfig = `[operator]
key = "k/operator.key"

[[trust.key]]
name = "a"
minisign = "RW"
allow = ["*"]

[[source]]
name = "tools"
type = "files"
url = "http://127.0.0.1/"
files = ["a.tar.gz"]
signatures = ["{file}.minisig"]
`

// TestConfigErrors checks that each mistake is reported with the file, the
// line and the field, and says what is expected.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, edit string
		line       int
		want       []string
	}{
		{"unknown source field", strings.Replace(minimalConfig, `signatures =`, `signaturs =`, 1), 14, []string{"source.signaturs", "unknown field", "signatures"}},
		{"unknown trust field", strings.Replace(minimalConfig, `allow =`, `alow =`, 1), 7, []string{"trust.key.alow", "docs/trust.md"}},
		{"unknown top-level field", "max_filesize = 1\n" + minimalConfig, 1, []string{`unknown field "max_filesize"`, "max_file_size"}},
		{"output.dir with ~", minimalConfig + "\n[output]\ndir = \"~/bundles\"\n", 17, []string{"output.dir", `"~/bundles"`, "not expanded", "/home/USER/bundles"}},
		{"operator.key with ~", strings.Replace(minimalConfig, `"k/operator.key"`, `"~/k/operator.key"`, 1), 2, []string{"operator.key", "not expanded"}},
		{"listing with ~", minimalConfig + "listing = \"~/listing.txt\"\n", 15, []string{`source "tools": listing`, "not expanded"}},
		{"unknown table", minimalConfig + "\n[outptu]\ndir = \"x\"\n", 16, []string{"outptu", "[output]"}},
		{"unknown output field", minimalConfig + "\n[output]\nmax_part = 1\n", 17, []string{"output.max_part", "max_part_size"}},
		{"bad type", strings.Replace(minimalConfig, `"files"`, `"ftp"`, 1), 11, []string{`unknown source type "ftp"`, `"files"`}},
		{"apt with files fields", strings.Replace(minimalConfig, `"files"`, `"apt"`, 1), 13, []string{"source.files", "unknown field", "an apt [[source]] has", "suites"}},
		{"apt without suites", strings.Replace(strings.Replace(strings.Replace(minimalConfig, `"files"`, `"apt"`, 1), `files = ["a.tar.gz"]`, ``, 1), `signatures = ["{file}.minisig"]`, `components = ["main"]`, 1), 9, []string{"suites: empty"}},
		{"apt bad architecture", strings.Replace(strings.Replace(strings.Replace(minimalConfig, `"files"`, `"apt"`, 1), `files = ["a.tar.gz"]`, `suites = ["stable"]`, 1), `signatures = ["{file}.minisig"]`, "components = [\"main\"]\narchitectures = [\"all\"]", 1), 15, []string{`source "tools": architectures: "all" is not an architecture`}},
		{"bad signature template", strings.Replace(minimalConfig, `"{file}.minisig"`, `"{nope}.minisig"`, 1), 14, []string{`source "tools": signatures: `}},
		{"bad files glob", strings.Replace(minimalConfig, `["a.tar.gz"]`, `["a[.tar.gz"]`, 1), 13, []string{`source "tools": files: bad glob`}},
		{"jobs type", "jobs = \"many\"\n" + minimalConfig, 1, []string{"jobs: want an integer, got a string"}},
		{"source field type", strings.Replace(minimalConfig, `files = ["a.tar.gz"]`, `files = "a.tar.gz"`, 1), 13, []string{"source.files: want a list [...], got a string"}},
		{"operator field type", strings.Replace(minimalConfig, `key = "k/operator.key"`, `key = 5`, 1), 2, []string{"operator.key: want a string (in quotes), got an integer"}},
		{"duration without unit", minimalConfig + "\n[output]\nexpires = 720\n", 17, []string{"expires", "720 has no unit", `"720h"`}},
		{"pipelining type", minimalConfig + "pipelining = \"no\"\n", 15, []string{"pipelining"}},
		{"jobs range", "jobs = 0\n" + minimalConfig, 1, []string{"jobs", "out of range"}},
		{"max_file_size above the blob limit", "max_file_size = \"65GiB\"\n" + minimalConfig, 1, []string{"max_file_size", "at most"}},
		{"max_file_size not a size", "max_file_size = \"huge\"\n" + minimalConfig, 1, []string{"max_file_size"}},
		{"bad size", minimalConfig + "\n[output]\nmax_part_size = \"4 gigs\"\n", 17, []string{"max_part_size", "4GiB"}},
		{"expires zero", minimalConfig + "\n[output]\nexpires = \"0s\"\n", 17, []string{"output.expires", "too short", "at least 1h0m0s"}},
		{"expires too short", minimalConfig + "\n[output]\nexpires = \"1ns\"\n", 17, []string{"output.expires", "1ns is too short"}},
		{"bad duration", minimalConfig + "\n[output]\nexpires = \"a month\"\n", 17, []string{"expires", "720h"}},
		{"no key", strings.Replace(minimalConfig, `key = "k/operator.key"`, ``, 1), 1, []string{"operator.key", "mirror keygen"}},
		{"bad source name", strings.Replace(minimalConfig, `name = "tools"`, `name = "../x"`, 1), 10, []string{"name", "a-z"}},
		{"bad url", strings.Replace(minimalConfig, `http://127.0.0.1/`, `file:///etc`, 1), 12, []string{`source "tools": url: "file:///etc": want an http:// or https://`}},
		{"url without a scheme", strings.Replace(minimalConfig, `http://127.0.0.1/`, `127.0.0.1:18301`, 1), 12, []string{`source "tools": url: "127.0.0.1:18301": want an http:// or https://`}},
		{"url with a space", strings.Replace(minimalConfig, `http://127.0.0.1/`, `http://127.0.0.1/my files/`, 1), 12, []string{"url", "space", "%20"}},
		{"toml syntax", minimalConfig + "\nfoo = = 1\n", 16, []string{"mirror.toml:16"}},
		{"no sources", minimalConfig[:strings.Index(minimalConfig, "[[source]]")], 0, []string{"no [[source]]"}},
	} {
		p := writeConfig(t, tc.edit)
		c, err := LoadConfig(p)
		if err == nil {
			t.Errorf("%s: no error (config %+v)", tc.name, c)
			continue
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) || c != nil {
			t.Errorf("%s: error %T %v is not a ConfigError", tc.name, err, err)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, p) {
			t.Errorf("%s: %q does not name the file", tc.name, msg)
		}
		if ce.Line != tc.line {
			t.Errorf("%s: line %d, want %d (%s)", tc.name, ce.Line, tc.line, msg)
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not contain %q", tc.name, msg, w)
			}
		}
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, ErrConfig) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{"0": 0, "1000": 1000, "4GiB": 4 << 30, "700MB": 700e6, "512KiB": 512 << 10, "2TB": 2e12, "7B": 7} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "4gb", "1.5GiB", "GiB", "99999999999999999999", "9999999999TiB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d; want an error", in, got)
		}
	}
}

// TestREADMEExample keeps the README's commented example a valid
// configuration.
func TestREADMEExample(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "## Configuration example")
	if !ok {
		t.Fatal("README has no configuration example section")
	}
	_, rest, ok = strings.Cut(rest, "```toml\n")
	text, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README's configuration example has no toml block")
	}
	c, err := ParseConfig("/etc/mirror/mirror.toml", []byte(text))
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	if len(c.Sources) != 2 || len(c.Trust.Keys) != 2 || c.Sources[1].Files.Checksums == "" {
		t.Fatalf("README example decoded to %+v", c)
	}
}
