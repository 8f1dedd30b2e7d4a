package apt

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/internal/operator"
)

func TestParseSourcesFixture(t *testing.T) {
	srcs, err := ParseSources(readFixture(t, "repo/dists/stable/main/source/Sources"))
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 6 {
		t.Fatalf("%d sources", len(srcs))
	}
	for _, s := range srcs {
		if s.Name != "hello" {
			continue
		}
		if s.Version != "1.0" || s.Directory != "pool/main/h/hello" || len(s.Files) != 2 {
			t.Fatalf("hello: %+v", s)
		}
		for _, f := range s.Files {
			b := readFixture(t, "repo/"+s.Path(f))
			if int64(len(b)) != f.Size || sum256(b) != f.SHA256 {
				t.Fatalf("%s: not what Sources says", f.Name)
			}
		}
	}
	good := "Package: aa\nVersion: 1\nDirectory: pool/a\nChecksums-Sha256:\n " + strings.Repeat("ab", 32) + " 3 aa_1.dsc\n"
	if _, err := ParseSources([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"dir":      strings.Replace(good, "pool/a", "../a", 1),
		"file":     strings.Replace(good, "aa_1.dsc", "../aa_1.dsc", 1),
		"file dir": strings.Replace(good, "aa_1.dsc", "x/aa_1.dsc", 1),
		"no sums":  strings.Replace(good, "Checksums-Sha256", "Checksums-Sha1", 1),
		"size":     strings.Replace(good, " 3 ", " -3 ", 1),
	} {
		if s, err := ParseSources([]byte(bad)); err == nil || s != nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSourceOf(t *testing.T) {
	for src, want := range map[string]string{"": "bin 2.0-1+b1", "foo": "foo 2.0-1+b1", "foo (2.0-1)": "foo 2.0-1"} {
		text := "Package: bin\nVersion: 2.0-1+b1\nArchitecture: amd64\nFilename: p/b.deb\nSize: 1\nSHA256: " + strings.Repeat("a", 64) + "\n"
		if src != "" {
			text += "Source: " + src + "\n"
		}
		ps, err := ParsePackages([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if n, v := SourceOf(&ps[0]); n+" "+v != want {
			t.Errorf("Source %q: %s %s, want %s", src, n, v, want)
		}
	}
}

// TestResolveSources: with source_packages, the source files of every
// binary taken come too, checked by the Sources index; a binary whose
// source is missing is reported; the generated Sources lists them and the
// Rechecker proves them.
func TestResolveSources(t *testing.T) {
	ctx := context.Background()
	url, get, _ := serveDir(t, filepath.Join(fixtures(t), "repo"))
	cfg := testConfig(url)
	cfg.SourcePackages = true
	cfg.Packages = []string{"hello", "bigtool"}
	cfg.WithDependencies = false
	sel, err := Resolve(ctx, cfg, get, policy(t, "debian:*"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(sel.Rejected) != 1 || sel.Rejected[0].Name != "bigtool (source)" || !strings.Contains(sel.Rejected[0].Reason, "not in the Sources") {
		t.Fatalf("rejected %+v", sel.Rejected)
	}
	if got := strings.Join(debNames(sel), " "); got != "bigtool_1.0_amd64 hello_1.0_amd64 hello_1.0_source hello_1.0_source" {
		t.Fatalf("debs %s", got)
	}
	blobs := map[string][]byte{}
	for _, f := range sel.UpstreamFiles() {
		blobs[sum256(f.Data)] = f.Data
	}
	rc := NewRechecker(policy(t, "debian:*"), time.Now())
	for _, d := range sel.Debs {
		if d.Architecture != "source" {
			continue
		}
		b := readFixture(t, "repo/"+d.Filename)
		if sum256(b) != d.SHA256 || int64(len(b)) != d.Size || d.Evidence[1].Scheme != SchemeSources {
			t.Fatalf("%s: %+v", d.Filename, d)
		}
		if v, err := rc.Check(ctx, "debian", d.Name, "debian/"+d.Filename, d.SHA256, d.Size, d.Evidence, loaderOf(blobs)); err != nil || !v.Accepted {
			t.Fatalf("recheck %s: %v %v", d.Filename, err, v.Err)
		}
		if _, err := rc.Check(ctx, "debian", d.Name, "debian/"+d.Filename, d.SHA256, d.Size+1, d.Evidence, loaderOf(blobs)); !errors.Is(err, ErrEvidence) {
			t.Fatalf("recheck with another size: %v", err)
		}
	}
	key, err := operator.Generate(rand.Reader, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	files, err := Publish(sel, func(string, string) bool { return true }, key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var srcIdx []byte
	var rel []byte
	for _, f := range files {
		switch f.Path {
		case "debian/dists/stable/main/source/Sources":
			srcIdx = f.Data
		case "debian/dists/stable/Release":
			rel = f.Data
		}
	}
	srcs, err := ParseSources(srcIdx)
	if err != nil || len(srcs) != 1 || srcs[0].Name != "hello" {
		t.Fatalf("generated Sources: %v %v", srcs, err)
	}
	if !bytes.Contains(rel, []byte(" main/source/Sources.xz\n")) || !bytes.Contains(rel, []byte(sum256(srcIdx))) {
		t.Fatalf("generated Release does not list the Sources index:\n%s", rel)
	}
}
