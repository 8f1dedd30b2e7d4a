package apt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// recheckFixture resolves the fixture and returns the selection with a
// loader over the upstream files it carries.
func recheckFixture(t *testing.T, inRelease bool) (*Selection, map[string][]byte) {
	t.Helper()
	root := filepath.Join(fixtures(t), "repo")
	if !inRelease {
		root = copyRepo(t)
		if err := removeFile(filepath.Join(root, "dists/stable/InRelease")); err != nil {
			t.Fatal(err)
		}
	}
	url, get, _ := serveDir(t, root)
	sel, err := Resolve(context.Background(), testConfig(url), get, policy(t, "debian:*"), time.Now())
	if err != nil || len(sel.Debs) != 5 {
		t.Fatal(err, sel.Rejected)
	}
	blobs := map[string][]byte{}
	for _, f := range sel.UpstreamFiles() {
		blobs[sum256(f.Data)] = f.Data
	}
	return sel, blobs
}

func loaderOf(blobs map[string][]byte) Loader {
	return func(sum string, max int64) ([]byte, error) {
		b, ok := blobs[sum]
		if !ok {
			return nil, fmt.Errorf("no blob %s", sum)
		}
		if int64(len(b)) > max {
			return nil, errors.New("too large")
		}
		return b, nil
	}
}

func TestRecheck(t *testing.T) {
	ctx := context.Background()
	for _, inRelease := range []bool{true, false} {
		sel, blobs := recheckFixture(t, inRelease)
		rc := NewRechecker(policy(t, "debian:*"), time.Now())
		for _, d := range sel.Debs {
			v, err := rc.Check(ctx, "debian", d.Name, "debian/"+d.Filename, d.SHA256, d.Size, d.Evidence, loaderOf(blobs))
			if err != nil || !v.Accepted {
				t.Fatalf("InRelease %v: %s: %v %v", inRelease, d.Name, err, v.Err)
			}
		}
	}
	sel, blobs := recheckFixture(t, true)
	d := sel.Debs[0]
	load := loaderOf(blobs)
	// A .deb the index does not list with that hash.
	if _, err := NewRechecker(policy(t, "debian:*"), time.Now()).Check(ctx, "debian", d.Name, "debian/"+d.Filename, strings.Repeat("0", 64), d.Size, d.Evidence, load); !errors.Is(err, ErrEvidence) {
		t.Fatalf("other hash: %v", err)
	}
	// A key allowed only for another source: not accepted.
	v, err := NewRechecker(policy(t, "other:*"), time.Now()).Check(ctx, "debian", d.Name, "debian/"+d.Filename, d.SHA256, d.Size, d.Evidence, load)
	if err != nil || v.Accepted || !strings.Contains(v.Reason, "debian:InRelease") {
		t.Fatalf("other source's key: %v %+v", err, v)
	}
	// Scope per package.
	v, err = NewRechecker(policy(t, "debian:InRelease", "debian:hello"), time.Now()).Check(ctx, "debian", d.Name, "debian/"+d.Filename, d.SHA256, d.Size, d.Evidence, load)
	if err != nil || v.Accepted != (d.Name == "hello") {
		t.Fatalf("%s with a hello-only key: %v %+v", d.Name, err, v)
	}
	// After Valid-Until.
	rel := sel.Suites[0].Release
	if _, err := NewRechecker(policy(t, "debian:*"), rel.ValidUntil.Add(time.Hour)).Check(ctx, "debian", d.Name, "debian/"+d.Filename, d.SHA256, d.Size, d.Evidence, load); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	// An index that is not the one the release lists.
	bad := append([]Evidence{}, d.Evidence...)
	bad[len(bad)-1].SHA256 = sum256([]byte("x"))
	blobs[bad[len(bad)-1].SHA256] = []byte("x")
	if _, err := NewRechecker(policy(t, "debian:*"), time.Now()).Check(ctx, "debian", d.Name, "debian/"+d.Filename, d.SHA256, d.Size, bad, load); !errors.Is(err, ErrEvidence) {
		t.Fatalf("other index: %v", err)
	}
	// A changed InRelease.
	bad = append([]Evidence{}, d.Evidence...)
	changed := []byte(strings.Replace(string(blobs[bad[0].SHA256]), "Suite: stable", "Suite: stablE", 1))
	bad[0].SHA256 = sum256(changed)
	blobs[bad[0].SHA256] = changed
	if v, err := NewRechecker(policy(t, "debian:*"), time.Now()).Check(ctx, "debian", d.Name, "debian/"+d.Filename, d.SHA256, d.Size, bad, load); err == nil && v.Accepted {
		t.Fatal("changed InRelease accepted")
	}
}

// TestRecheckBindsName: the re-check inside the gap decides a file under
// the name its index gives it. A manifest (signed by the operator, but
// the re-check exists so as not to take its word) that names the .deb the
// index lists as libgreet1 "hello", or a source package's file by another
// source's name, is refused, even though a key allowed for hello would
// then accept it.
func TestRecheckBindsName(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(fixtures(t), "repo")
	url, get, _ := serveDir(t, root)
	cfg := testConfig(url)
	cfg.SourcePackages = true
	sel, err := Resolve(ctx, cfg, get, policy(t, "debian:*"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[string][]byte{}
	for _, f := range sel.UpstreamFiles() {
		blobs[sum256(f.Data)] = f.Data
	}
	var lib, src *Deb
	for _, d := range sel.Debs {
		switch {
		case d.Name == "libgreet1" && d.Architecture != "source":
			lib = d
		case d.Name == "hello" && d.Architecture == "source":
			src = d
		}
	}
	if lib == nil || src == nil {
		t.Fatalf("the fixture selection lacks libgreet1's .deb or hello's source: %v", sel.Rejected)
	}
	rc := NewRechecker(policy(t, "debian:InRelease", "debian:hello"), time.Now())
	for _, tc := range []struct {
		d    *Deb
		name string
	}{{lib, "hello"}, {src, "greet"}} {
		if v, err := rc.Check(ctx, "debian", tc.d.Name, "debian/"+tc.d.Filename, tc.d.SHA256, tc.d.Size, tc.d.Evidence, loaderOf(blobs)); err != nil {
			t.Fatalf("%s under its own name: %v", tc.d.Filename, err)
		} else if v.Accepted != (tc.d.Name == "hello") {
			t.Fatalf("%s under its own name %s with a hello-only key: %+v", tc.d.Filename, tc.d.Name, v)
		}
		v, err := rc.Check(ctx, "debian", tc.name, "debian/"+tc.d.Filename, tc.d.SHA256, tc.d.Size, tc.d.Evidence, loaderOf(blobs))
		if !errors.Is(err, ErrEvidence) || v.Accepted {
			t.Fatalf("%s (listed as %s) under the name %q: %v %+v, want ErrEvidence", tc.d.Filename, tc.d.Name, tc.name, err, v)
		}
	}
}

// TestRecheckIndexListsTwice: an index that lists one Filename twice with
// another hash or size proves nothing about that file; the same entry
// twice, and the other files, still count; the same file under two
// package names belongs to both.
func TestRecheckIndexListsTwice(t *testing.T) {
	para := func(name, fn, sum string) string {
		return fmt.Sprintf("Package: %s\nVersion: 1.0\nArchitecture: amd64\nFilename: %s\nSize: 3\nSHA256: %s\n", name, fn, sum)
	}
	a, b := sum256([]byte("a")), sum256([]byte("b"))
	index := []byte(strings.Join([]string{
		para("hello", "pool/h/hello.deb", a),
		para("evil", "pool/h/hello.deb", a),
		para("other", "pool/o/other.deb", b),
		para("other", "pool/o/other.deb", b),
		para("third", "pool/t/third.deb", a),
		para("third", "pool/t/third.deb", b),
	}, "\n"))
	sum := sum256(index)
	rel := &Release{Files: map[string]FileSum{"main/binary-amd64/Packages": {SHA256: sum, Size: int64(len(index))}}}
	e := Evidence{Path: "debian/_upstream/dists/stable/main/binary-amd64/Packages", SHA256: sum, Scheme: SchemePackages}
	got, err := NewRechecker(policy(t, "debian:*"), time.Now()).checkIndex("stable", rel, e, loaderOf(map[string][]byte{sum: index}), false)
	if err != nil {
		t.Fatal(err)
	}
	for fn, ambiguous := range map[string]bool{"pool/h/hello.deb": false, "pool/o/other.deb": false, "pool/t/third.deb": true} {
		if got[fn].ambiguous != ambiguous {
			t.Errorf("%s: ambiguous %v, want %v", fn, got[fn].ambiguous, ambiguous)
		}
	}
	// One file under two names (each decided by the policy for itself, as
	// sync does) belongs to both.
	if p := got["pool/h/hello.deb"].Packages; !slices.Equal(p, []string{"hello", "evil"}) {
		t.Errorf("pool/h/hello.deb belongs to %v, want hello and evil", p)
	}
}

// TestTwice: a file that one index lists with two hashes or sizes is
// caught; the same file listed alike, or differently in two indexes (which
// the cross-index check in Resolve handles), is not.
func TestTwice(t *testing.T) {
	a, b := FileSum{SHA256: sum256([]byte("a")), Size: 1}, FileSum{SHA256: sum256([]byte("b")), Size: 1}
	tw := newTwice()
	tw.index()
	tw.add("pool/x.deb", a)
	tw.add("pool/x.deb", b) // twice in one index
	tw.add("pool/y.deb", a)
	tw.add("pool/y.deb", a) // alike
	tw.add("pool/z.dsc", a)
	tw.index()
	tw.add("pool/z.dsc", b) // another index
	if !tw.files["pool/x.deb"] || tw.files["pool/y.deb"] || tw.files["pool/z.dsc"] || len(tw.files) != 1 {
		t.Fatalf("twice = %v, want pool/x.deb only", tw.files)
	}
}
