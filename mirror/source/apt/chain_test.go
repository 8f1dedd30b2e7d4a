package apt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func debNames(sel *Selection) []string {
	var out []string
	for _, d := range sel.Debs {
		out = append(out, d.Name+"_"+d.Version+"_"+d.Architecture)
	}
	sort.Strings(out)
	return out
}

func TestSelectClosure(t *testing.T) {
	pkgs, err := ParsePackages(readFixture(t, "repo/dists/stable/main/binary-amd64/Packages"))
	if err != nil {
		t.Fatal(err)
	}
	u := NewUniverse(pkgs)
	names := func(ps []*Package) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.Name)
		}
		sort.Strings(s)
		return strings.Join(s, " ")
	}
	// greet-data (first alternative), tinymta (provides the virtual
	// mail-transport-agent, default-mta does not exist), greet-base
	// (Pre-Depends); not greet-data-alt, not bigtool.
	got, unres := u.Select([]string{"hello"}, true)
	if names(got) != "greet-base greet-data hello libgreet1 tinymta" || len(unres) != 0 {
		t.Fatalf("hello closure: %s, unresolved %v", names(got), unres)
	}
	if got, _ := u.Select([]string{"hello"}, false); names(got) != "hello" {
		t.Fatalf("without deps: %s", names(got))
	}
	// The first alternative is taken even when another one was chosen
	// (apt would install it from the upstream for libgreet1 alone).
	if got, _ := u.Select([]string{"greet-data-alt", "libgreet1"}, true); names(got) != "greet-data greet-data-alt libgreet1" {
		t.Fatalf("chosen alternative: %s", names(got))
	}
	if got, _ := u.Select([]string{"greet-*"}, false); names(got) != "greet-base greet-data greet-data-alt" {
		t.Fatalf("glob: %s", names(got))
	}
	got, unres = u.Select([]string{"bigtool", "nosuch"}, true)
	if names(got) != "bigtool" || len(unres) != 2 || unres[0].Name != "nosuch" || unres[1].Name != "libbig" {
		t.Fatalf("unsatisfiable: %s %v", names(got), unres)
	}
	if got, _ := u.Select(nil, true); len(got) != len(pkgs) {
		t.Fatalf("no filter: %d of %d", len(got), len(pkgs))
	}
	// A versioned dependency no version meets is unresolved.
	tp, err := ParsePackages(readFixture(t, "repo/dists/testing/main/binary-amd64/Packages"))
	if err != nil {
		t.Fatal(err)
	}
	var mixed []Package
	for _, p := range tp {
		if p.Name != "libgreet1" {
			mixed = append(mixed, p)
		}
	}
	for _, p := range pkgs {
		if p.Name == "libgreet1" {
			mixed = append(mixed, p) // 1.0, but hello 2.0 needs >= 2.0
		}
	}
	if _, unres := NewUniverse(mixed).Select([]string{"hello"}, true); len(unres) != 1 || unres[0].Name != "libgreet1 (>= 2.0)" {
		t.Fatalf("versioned: %v", unres)
	}
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	url, get, _ := serveDir(t, filepath.Join(fixtures(t), "repo"))
	cfg := testConfig(url)
	cfg.Suites = []string{"stable", "testing"}
	cfg.Architectures = []string{"amd64", "arm64"}
	sel, err := Resolve(ctx, cfg, get, policy(t, "debian:*"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(sel.Rejected) != 0 {
		t.Fatalf("rejected: %v", sel.Rejected)
	}
	want := "greet-base_1.0_amd64 greet-base_1.0_arm64 greet-data_1.0_all hello_1.0_amd64 hello_1.0_arm64 hello_2.0_amd64 hello_2.0_arm64 " +
		"libgreet1_1.0_amd64 libgreet1_1.0_arm64 libgreet1_2.0_amd64 libgreet1_2.0_arm64 tinymta_1.0_amd64 tinymta_1.0_arm64"
	if got := strings.Join(debNames(sel), " "); got != want {
		t.Fatalf("debs:\n got %s\nwant %s", got, want)
	}
	for _, d := range sel.Debs {
		st, err := os.Stat(filepath.Join(fixtures(t), "repo", d.Filename))
		if err != nil || st.Size() != d.Size || sum256(readFixture(t, "repo/"+d.Filename)) != d.SHA256 {
			t.Fatalf("%s: size/hash from the index do not describe the fixture file", d.Filename)
		}
		if len(d.Keys) != 1 || d.Keys[0] != "archive" || len(d.Evidence) != 2 || d.Evidence[0].Scheme != "openpgp-clearsigned" {
			t.Fatalf("%s: keys %v evidence %+v", d.Filename, d.Keys, d.Evidence)
		}
	}
	if len(sel.Suites) != 2 || len(sel.Suites[0].Packages["main/amd64"]) != 5 {
		t.Fatalf("suites: %d, stable amd64 %d", len(sel.Suites), len(sel.Suites[0].Packages["main/amd64"]))
	}
}

// TestResolveRejects: every broken link rejects the suite with its reason.
func TestResolveRejects(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	tamper := func(t *testing.T, repo, rel string) {
		// Change one byte of the file and of its by-hash copies.
		p := filepath.Join(repo, "dists", "stable", rel)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		old := sum256(b)
		b[len(b)/2] ^= 1
		for _, q := range []string{p, filepath.Join(filepath.Dir(p), "by-hash", "SHA256", old)} {
			if err := os.WriteFile(q, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		suite  string
		allow  []string
		change func(t *testing.T, repo string)
		want   string
		is     error
	}{
		{name: "unknown key", suite: "stable", allow: nil, want: "unknown"},
		{name: "key for another source", suite: "stable", allow: []string{"other:*"}, want: "not allowed"},
		{name: "expired", suite: "expired", allow: []string{"debian:*"}, want: "Valid-Until", is: ErrExpired},
		{name: "index hash", suite: "stable", allow: []string{"debian:*"}, want: "hash mismatch", is: ErrHash,
			change: func(t *testing.T, repo string) { tamper(t, repo, "main/binary-amd64/Packages.gz") }},
		{name: "index by-hash only", suite: "stable", allow: []string{"debian:*"}, want: "hash mismatch",
			change: func(t *testing.T, repo string) {
				rel, _ := ParseRelease(readFixture(t, "repo/dists/stable/Release"))
				fs := rel.Files["main/binary-amd64/Packages.gz"]
				os.WriteFile(filepath.Join(repo, "dists/stable/main/binary-amd64/by-hash/SHA256", fs.SHA256), []byte("evil"), 0o644)
			}},
		{name: "inrelease text", suite: "stable", allow: []string{"debian:*"}, want: "bad signature",
			change: func(t *testing.T, repo string) {
				p := filepath.Join(repo, "dists/stable/InRelease")
				b, _ := os.ReadFile(p)
				os.WriteFile(p, []byte(strings.Replace(string(b), "Suite: stable", "Suite: stabla", 1)), 0o644)
			}},
		{name: "replayed suite", suite: "stable", allow: []string{"debian:*"}, want: "another suite", is: ErrSuite,
			change: func(t *testing.T, repo string) {
				b, _ := os.ReadFile(filepath.Join(repo, "dists/testing/InRelease"))
				os.WriteFile(filepath.Join(repo, "dists/stable/InRelease"), b, 0o644)
			}},
		{name: "huge InRelease", suite: "stable", allow: []string{"debian:*"}, want: "limit exceeded",
			change: func(t *testing.T, repo string) {
				os.WriteFile(filepath.Join(repo, "dists/stable/InRelease"), make([]byte, MaxReleaseSize+1), 0o644)
			}},
		{name: "unsigned", suite: "stable", allow: []string{"debian:*"}, want: "unsigned",
			change: func(t *testing.T, repo string) {
				os.Remove(filepath.Join(repo, "dists/stable/InRelease"))
				os.Remove(filepath.Join(repo, "dists/stable/Release.gpg"))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := copyRepo(t)
			if tc.change != nil {
				tc.change(t, repo)
			}
			url, get, _ := serveDir(t, repo)
			cfg := testConfig(url)
			cfg.Suites = []string{tc.suite}
			sel, err := Resolve(ctx, cfg, get, policy(t, tc.allow...), now)
			if err != nil {
				t.Fatal(err)
			}
			if len(sel.Debs) != 0 || len(sel.Suites) != 0 {
				t.Fatalf("took %v", debNames(sel))
			}
			if len(sel.Rejected) != 1 || !strings.Contains(sel.Rejected[0].Reason, tc.want) || sel.Rejected[0].Name != "dists/"+tc.suite {
				t.Fatalf("rejected %+v; want one for dists/%s with %q", sel.Rejected, tc.suite, tc.want)
			}
			if tc.is != nil && !strings.Contains(sel.Rejected[0].Reason, tc.is.Error()) {
				t.Fatalf("reason %q does not carry %v", sel.Rejected[0].Reason, tc.is)
			}
		})
	}
}

// TestResolveReleaseGPG: without InRelease, Release + Release.gpg.
func TestResolveReleaseGPG(t *testing.T) {
	repo := copyRepo(t)
	os.Remove(filepath.Join(repo, "dists/stable/InRelease"))
	url, get, _ := serveDir(t, repo)
	sel, err := Resolve(context.Background(), testConfig(url), get, policy(t, "debian:*"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(sel.Rejected) != 0 || len(sel.Debs) != 5 || sel.Debs[0].Evidence[1].Scheme != "openpgp" {
		t.Fatalf("rejected %v, debs %v", sel.Rejected, debNames(sel))
	}
	// A Release.gpg over another text is refused.
	os.WriteFile(filepath.Join(repo, "dists/stable/Release.gpg"), readFixture(t, "repo/dists/testing/Release.gpg"), 0o644)
	sel, err = Resolve(context.Background(), testConfig(url), get, policy(t, "debian:*"), time.Now())
	if err != nil || len(sel.Debs) != 0 || len(sel.Rejected) != 1 {
		t.Fatalf("wrong Release.gpg: %v %v %v", err, debNames(sel), sel.Rejected)
	}
}

// TestResolvePackageScope: the Release signer must be allowed for each
// package taken, as for a checksum list.
func TestResolvePackageScope(t *testing.T) {
	url, get, _ := serveDir(t, filepath.Join(fixtures(t), "repo"))
	sel, err := Resolve(context.Background(), testConfig(url), get, policy(t, "debian:InRelease", "debian:hello", "debian:greet-*"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(debNames(sel), " "); got != "greet-base_1.0_amd64 greet-data_1.0_all hello_1.0_amd64" {
		t.Fatalf("debs %s", got)
	}
	var rej []string
	for _, r := range sel.Rejected {
		rej = append(rej, r.Name)
		if !strings.Contains(r.Reason, "not allowed") {
			t.Errorf("%s: %s", r.Name, r.Reason)
		}
	}
	if strings.Join(rej, " ") != "libgreet1 tinymta" {
		t.Fatalf("rejected %v", rej)
	}
	// Without "debian:InRelease" nothing of the release is used.
	sel, _ = Resolve(context.Background(), testConfig(url), get, policy(t, "debian:hello"), time.Now())
	if len(sel.Debs) != 0 || len(sel.Rejected) != 1 || !strings.Contains(sel.Rejected[0].Reason, "debian:InRelease") {
		t.Fatalf("release not allowed: %v %v", debNames(sel), sel.Rejected)
	}
}

func TestResolveUnresolved(t *testing.T) {
	url, get, _ := serveDir(t, filepath.Join(fixtures(t), "repo"))
	cfg := testConfig(url)
	cfg.Packages = []string{"bigtool", "nosuch"}
	sel, err := Resolve(context.Background(), cfg, get, policy(t, "debian:*"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(debNames(sel), " "); got != "bigtool_1.0_amd64" || len(sel.Rejected) != 2 {
		t.Fatalf("debs %s rejected %v", got, sel.Rejected)
	}
}

func TestResolveNetworkError(t *testing.T) {
	get := func(ctx context.Context, req Request) ([]byte, error) {
		return nil, errors.New("connection refused")
	}
	if _, err := Resolve(context.Background(), testConfig("http://127.0.0.1:1/"), get, policy(t, "debian:*"), time.Now()); err == nil {
		t.Fatal("a network failure is not a rejection")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := testConfig("http://deb.example.org/debian")
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(c *Config){
		"url":        func(c *Config) { c.URL = "ftp://x/" },
		"no suites":  func(c *Config) { c.Suites = nil },
		"suite":      func(c *Config) { c.Suites = []string{"../x"} },
		"no comps":   func(c *Config) { c.Components = nil },
		"arch":       func(c *Config) { c.Architectures = []string{"all"} },
		"glob":       func(c *Config) { c.Packages = []string{"["} },
		"keep+files": func(c *Config) { c.KeepUpstreamSignatures = true },
	} {
		c := *testConfig("http://deb.example.org/debian")
		f(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
