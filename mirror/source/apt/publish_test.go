package apt

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/internal/operator"
)

func resolveFixture(t *testing.T, archs ...string) *Selection {
	t.Helper()
	url, get, _ := serveDir(t, filepath.Join(fixtures(t), "repo"))
	cfg := testConfig(url)
	cfg.Suites = []string{"stable", "testing"}
	cfg.Architectures = archs
	sel, err := Resolve(context.Background(), cfg, get, policy(t, "debian:*"), time.Now())
	if err != nil || len(sel.Rejected) != 0 {
		t.Fatal(err, sel.Rejected)
	}
	return sel
}

// TestPublishGpgv checks the generated indexes with the real tools: gpgv
// accepts InRelease and Release.gpg by the operator's key (and refuses
// them after a change), and every Release entry describes its file.
func TestPublishGpgv(t *testing.T) {
	for _, tool := range []string{"gpg", "gpgv", "xz", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for this cross-check: %v", tool, err)
		}
	}
	sel := resolveFixture(t, "amd64", "arm64")
	key, err := operator.Generate(rand.Reader, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Truncate(time.Second)
	skip := sel.Debs[0] // pretend its download failed its check
	// Only the file at skip's path failed: another file with the same bytes
	// would not bring its paragraph back.
	accepted := func(path, sum string) bool { return path != sel.Config.PublishPath(skip.Filename) }
	files, err := Publish(sel, accepted, key, at)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Publish(sel, accepted, key, at)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, f := range files {
		if again[i].Path != f.Path || !bytes.Equal(again[i].Data, f.Data) {
			t.Fatalf("%s: two publications differ", f.Path)
		}
		if !strings.HasPrefix(f.Path, "debian/dists/") {
			t.Fatalf("publish path %s", f.Path)
		}
		p := filepath.Join(dir, f.Path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	asc := filepath.Join(dir, "operator.asc")
	os.WriteFile(asc, key.ArmoredPublic(), 0o644)
	ring := filepath.Join(dir, "operator.gpg")
	gnupg := t.TempDir()
	if out, err := exec.Command("gpg", "--homedir", gnupg, "--batch", "--yes", "-o", ring, "--dearmor", asc).CombinedOutput(); err != nil {
		t.Fatalf("gpg --dearmor: %v\n%s", err, out)
	}
	for _, s := range []string{"stable", "testing"} {
		d := filepath.Join(dir, "debian", "dists", s)
		out, err := exec.Command("gpgv", "--homedir", gnupg, "--keyring", ring, "--output", "-", filepath.Join(d, "InRelease")).Output()
		if err != nil {
			t.Fatalf("%s: gpgv refused InRelease: %v", s, err)
		}
		rel, err := os.ReadFile(filepath.Join(d, "Release"))
		if err != nil || !bytes.Equal(out, rel) {
			t.Fatalf("%s: InRelease text differs from Release", s)
		}
		if out, err := exec.Command("gpgv", "--homedir", gnupg, "--keyring", ring, filepath.Join(d, "Release.gpg"), filepath.Join(d, "Release")).CombinedOutput(); err != nil {
			t.Fatalf("%s: gpgv refused Release.gpg: %v\n%s", s, err, out)
		}
		r, err := ParseRelease(rel)
		if err != nil {
			t.Fatal(err)
		}
		if r.Suite != s || !r.AcquireByHash || len(r.Files) != 6 || !r.Date.Equal(at) {
			t.Fatalf("%s: release %+v", s, r)
		}
		for p, fs := range r.Files {
			for _, q := range []string{p, ByHash(p, fs.SHA256)} {
				b, err := os.ReadFile(filepath.Join(d, q))
				if err != nil || int64(len(b)) != fs.Size || sum256(b) != fs.SHA256 {
					t.Fatalf("%s/%s: not what the release says (%v)", s, q, err)
				}
			}
		}
		// The real decompressors agree with the plain index.
		plain, _ := os.ReadFile(filepath.Join(d, "main/binary-amd64/Packages"))
		for _, c := range [][]string{{"xz", "-dc", "main/binary-amd64/Packages.xz"}, {"gzip", "-dc", "main/binary-amd64/Packages.gz"}} {
			out, err := exec.Command(c[0], c[1], filepath.Join(d, c[2])).Output()
			if err != nil || !bytes.Equal(out, plain) {
				t.Fatalf("%s: %s disagrees with Packages (%v)", s, c[0], err)
			}
		}
		pkgs, err := ParsePackages(plain)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkgs {
			if p.SHA256 == skip.SHA256 {
				t.Fatalf("%s: lists %s, whose download was not accepted", s, p.Filename)
			}
		}
		if len(pkgs) == 0 {
			t.Fatalf("%s: empty index", s)
		}
		// A changed Release is refused by gpgv.
		bad := filepath.Join(d, "Release.bad")
		os.WriteFile(bad, append(rel, "X: y\n"...), 0o644)
		if exec.Command("gpgv", "--homedir", gnupg, "--keyring", ring, filepath.Join(d, "Release.gpg"), bad).Run() == nil {
			t.Fatalf("%s: gpgv accepted a changed Release", s)
		}
	}
}

// TestPublishKeepUpstream: an unfiltered source republishes the upstream's
// files byte for byte, with by-hash copies.
func TestPublishKeepUpstream(t *testing.T) {
	url, get, _ := serveDir(t, filepath.Join(fixtures(t), "repo"))
	cfg := testConfig(url)
	cfg.Packages, cfg.KeepUpstreamSignatures = nil, true
	sel, err := Resolve(context.Background(), cfg, get, policy(t, "debian:*"), time.Now())
	if err != nil || len(sel.Rejected) != 0 {
		t.Fatal(err, sel.Rejected)
	}
	if len(sel.Debs) != 7 {
		t.Fatalf("%d debs, want the whole suite's 7", len(sel.Debs))
	}
	files, err := Publish(sel, func(string, string) bool { return true }, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		rel := strings.TrimPrefix(f.Path, "debian/")
		if !bytes.Equal(f.Data, readFixture(t, "repo/"+rel)) {
			t.Fatalf("%s differs from the upstream", f.Path)
		}
		seen[rel] = true
	}
	for _, want := range []string{"dists/stable/InRelease", "dists/stable/main/binary-amd64/Packages.xz", "dists/stable/main/binary-amd64/Packages.gz", "dists/stable/main/binary-amd64/Packages"} {
		if !seen[want] {
			t.Fatalf("%s not published (have %v)", want, seen)
		}
	}
	if len(files) != 7 { // InRelease + 3 indexes + 3 by-hash copies
		t.Fatalf("%d files", len(files))
	}
}
