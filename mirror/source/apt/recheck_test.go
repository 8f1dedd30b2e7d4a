package apt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
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
