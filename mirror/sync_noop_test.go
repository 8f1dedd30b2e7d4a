package mirror

import (
	"errors"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/mirror/state"
)

// digestSeeds are strings that take each branch of appendJSONString: plain
// ASCII, the characters encoding/json escapes for HTML, quotes and
// backslashes, control characters, DEL, U+2028/U+2029, other UTF-8 and
// invalid UTF-8.
var digestSeeds = []string{"", "p/f000001.tgz", "a<b", "a>b", "a&b", `q"q`, `q\q`, "tab\t", "nl\n", "nul\x00", "\x1f", "\x7f", "x\u2028y", "x\u2029y", "é", "\xff\xfe", "https://example.org/?a=1&b=<2>"}

// FuzzSetDigestIsJSON: the hand-appended digest is the SHA-256 of
// json.Marshal of the same fields, for any strings and sizes (the state's
// Digest written by earlier versions must still compare equal).
func FuzzSetDigestIsJSON(f *testing.F) {
	if len(digestSeeds) == 0 {
		f.Fatal("no seeds")
	}
	for i, s := range digestSeeds {
		f.Add(s, digestSeeds[(i+1)%len(digestSeeds)], int64(i)*-7919, uint8(i))
	}
	f.Fuzz(func(t *testing.T, a, b string, size int64, shape uint8) {
		pkg := bundle.Package{Source: a, Name: b, Version: a + b, Path: b + a, Size: size, SHA256: a,
			Signatures: []bundle.PackageSignature{{Path: a, SHA256: b, Scheme: a}, {Path: b}}, Keys: []string{b, a}}
		if shape&1 != 0 {
			pkg.Signatures = nil
		}
		if shape&2 != 0 {
			pkg.Keys = nil
		}
		if shape&4 != 0 {
			pkg.Keys = []string{}
		}
		tc := digestFields{Sources: []bundle.Source{{Name: a, Type: b, URL: a}}, Trust: b,
			Packages: []bundle.Package{pkg, {}}, Tree: []bundle.Entry{{Path: a, SHA256: b, Size: -size}, {}}}
		if shape&8 != 0 {
			tc.Sources, tc.Packages, tc.Tree = nil, nil, nil
		}
		checkDigestIsJSON(t, "fuzzed set", tc)
	})
}

// TestSetDigestLargeSet: a set larger than setDigest's buffer (flushed to
// the hash as it fills) still hashes json.Marshal's bytes.
func TestSetDigestLargeSet(t *testing.T) {
	var tc digestFields
	for i := range 3000 {
		s := digestSeeds[i%len(digestSeeds)]
		tc.Packages = append(tc.Packages, bundle.Package{Source: "s", Name: s, Path: "p/" + s, Size: int64(i), SHA256: sumOf(s),
			Signatures: []bundle.PackageSignature{{Path: "p/" + s + ".minisig", SHA256: sumOf(s + "sig"), Scheme: "minisign"}}, Keys: []string{"k"}})
		tc.Tree = append(tc.Tree, bundle.Entry{Path: "p/" + s, SHA256: sumOf(s), Size: int64(i)})
	}
	checkDigestIsJSON(t, "3,000 packages", tc)
}

// TestSyncRefetchesRemovedCacheBlob: a package whose cached blob was removed
// between runs (one with detached signatures, one from the signed checksum
// list) is fetched again in the same run, although the cache's shards were
// read before; the run then has nothing new for the inside, and a --full
// bundle made next carries the right content.
func TestSyncRefetchesRemovedCacheBlob(t *testing.T) {
	e := newSyncEnv(t)
	e.put("a/one.tar.gz", "one v1", "rel-a")
	e.put("b/two.tar.gz", "two v1", "rel-b")
	e.putRel("x.tar.gz", "x v1")
	e.putRel("y.tar.gz", "y v1")
	e.sums("x.tar.gz", "y.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	first := e.mustSync(SyncOptions{})
	if first.Bundle == nil || first.New != 4 {
		t.Fatalf("first sync = %+v", first)
	}
	for _, c := range []string{"one v1", "x v1"} {
		if err := os.Remove(e.cachedBlob(c)); err != nil {
			t.Fatal(err)
		}
	}
	fetched := func(res *SyncResult) map[string]bool {
		m := map[string]bool{}
		for _, p := range res.Packages {
			if p.Fetched {
				m[p.Source+":"+p.Name] = true
			}
		}
		return m
	}
	res := e.mustSync(SyncOptions{})
	if got := fetched(res); len(got) != 2 || !got["tools:a/one.tar.gz"] || !got["rel:v1/x.tar.gz"] {
		t.Fatalf("fetched after the cache lost two blobs: %v", got)
	}
	if !res.NothingNew || res.Bundle != nil || res.Unchanged != 4 || res.Rejected != 0 {
		t.Fatalf("the run after the loss = %+v (bundle %+v)", res, res.Bundle)
	}
	for _, c := range []string{"one v1", "x v1"} {
		if b, err := os.ReadFile(e.cachedBlob(c)); err != nil || string(b) != c {
			t.Fatalf("cache %s after the run: %q, %v", c, b, err)
		}
	}
	if got := fetched(e.mustSync(SyncOptions{})); len(got) != 0 {
		t.Fatalf("the next run fetched %v, want nothing", got)
	}
	res = e.mustSync(SyncOptions{Full: true})
	m, blobs := e.openBundle(res.Bundle)
	tree := treeOf(m)
	for p, content := range map[string]string{"tools/a/one.tar.gz": "one v1", "tools/b/two.tar.gz": "two v1", "rel/v1/x.tar.gz": "x v1", "rel/v1/y.tar.gz": "y v1"} {
		if tree[p] != sumOf(content) || string(blobs[tree[p]]) != content {
			t.Errorf("full bundle: %s = %s (blob %q), want %q", p, tree[p], blobs[tree[p]], content)
		}
	}
}

// TestSigsDigest: sigsDigest (hashed from a stack buffer) is the SHA-256 of
// a line "URL SHA256" per signature, as remembered verdicts of earlier
// versions recorded it, also for signature URLs longer than that buffer;
// sigsAre agrees with it.
func TestSigsDigest(t *testing.T) {
	long := "https://example.org/" + strings.Repeat("d/", 400) + "f.tgz.minisig"
	for _, sigs := range [][]small{
		nil,
		{{url: "https://example.org/p/f.tgz.minisig", sha: sumOf("sig")}},
		{{url: "https://example.org/p/f.tgz.asc", sha: sumOf("a")}, {url: "https://example.org/p/f.tgz.minisig", sha: sumOf("b")}},
		{{url: long, sha: sumOf("long")}},
	} {
		var lines string
		for _, s := range sigs {
			lines += s.url + " " + s.sha + "\n"
		}
		want := sumOf(lines)
		if got := sigsDigest(sigs); got != want {
			t.Errorf("sigsDigest(%d signatures) = %s, want %s", len(sigs), got, want)
		}
		it := &item{sigs: sigs}
		if it.sigsAre(sumOf("other")) || it.sigsDigest != "" {
			t.Errorf("sigsAre accepts another digest (or kept it)")
		}
		if !it.sigsAre(want) || it.sigsSum() != want {
			t.Errorf("sigsAre refuses the digest, or sigsSum %s differs", it.sigsSum())
		}
	}
}

// TestSyncErrorOrderWithPreparedListing: the listing is read while the
// state is (prepare), but a damaged state is still the error reported
// first, and a missing listing is reported as before once the state is
// fine; neither run writes a bundle.
func TestSyncErrorOrderWithPreparedListing(t *testing.T) {
	e := newOneFileSyncEnv(t)
	e.mustSync(SyncOptions{})
	listing := filepath.Join(e.dir, "listing.txt")
	if err := os.Rename(listing, listing+".away"); err != nil {
		t.Fatal(err)
	}
	stateFile := filepath.Join(e.dir, "state", state.FileName)
	good, err := os.ReadFile(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stateFile, append([]byte{}, good[:len(good)-1]...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sync(SyncOptions{}); !errors.Is(err, state.ErrCorrupt) {
		t.Fatalf("damaged state and missing listing: %v, want state.ErrCorrupt", err)
	}
	if err := os.WriteFile(stateFile, good, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = e.sync(SyncOptions{})
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "listing") || !strings.Contains(err.Error(), `source "tools"`) {
		t.Fatalf("missing listing: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.dir, "bundles")); len(ents) != 2 {
		t.Fatalf("bundles folder after the failed runs: %v", ents)
	}
	if err := os.Rename(listing+".away", listing); err != nil {
		t.Fatal(err)
	}
	if res := e.mustSync(SyncOptions{}); !res.NothingNew {
		t.Fatalf("with the listing back: %+v", res)
	}
}

// FuzzSigName: sigName's fast path (plainBase) gives url.Parse and
// path.Base's answer for every URL it takes.
func FuzzSigName(f *testing.F) {
	seeds := []string{"http://127.0.0.1:38123/small/p/f000001.tgz.minisig", "https://example.org/a/b.asc", "http://h/x", "http://h/", "http://h", "http://h:/x", "http://:1/x", "http://h:1:2/x",
		"http://H/x", "http://h/a/..", "http://h/a/.", "http://h/a%2Fb", "http://h/a?b=c/d", "http://h/a#x/y", "ftp://h/x", "http://h/a b", "http://[::1]/x", "http://u@h/x"}
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		b, ok := plainBase(u)
		if !ok {
			return
		}
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatalf("plainBase(%q) = %q, but url.Parse fails: %v", u, b, err)
		}
		if want := path.Base(pu.Path); b != want {
			t.Fatalf("plainBase(%q) = %q, want %q", u, b, want)
		}
	})
}

// TestPlainBaseTaken: the signature URLs of a usual files source take
// sigName's fast path.
func TestPlainBaseTaken(t *testing.T) {
	for u, want := range map[string]string{"http://127.0.0.1:38123/small/p/f000001.tgz.minisig": "f000001.tgz.minisig", "https://downloads.example.org/v1.2/tool-1.2.tar.gz.asc": "tool-1.2.tar.gz.asc"} {
		if b, ok := plainBase(u); !ok || b != want || sigName(u) != want {
			t.Errorf("plainBase(%q) = %q, %v; sigName %q; want %q", u, b, ok, sigName(u), want)
		}
	}
}

// TestRollbackMarkCapIsTheRunsSecond: a future-dated signature's mark is
// capped at the second of the run that accepted it, so that the next
// release, signed later in that same second (signing times have one-second
// resolution), is not refused as a rollback; an older one still is.
func TestRollbackMarkCapIsTheRunsSecond(t *testing.T) {
	run1 := time.Date(2026, 11, 25, 14, 52, 24, 300_000_000, time.UTC)
	r := &run{now: run1, st: state.New()}
	mark, why := r.notRolledBack("tools:a/one.tar.gz", sumOf("v2"), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	if why != "" || !mark.Equal(run1.Truncate(time.Second)) {
		t.Fatalf("future-dated v2: mark %v, %q; want the run's second", mark, why)
	}
	r2 := &run{now: run1.Add(time.Second), st: state.New()}
	r2.st.Verified["tools:a/one.tar.gz"] = state.Verified{File: sumOf("v2"), Signed: mark}
	if _, why := r2.notRolledBack("tools:a/one.tar.gz", sumOf("v3"), run1.Truncate(time.Second)); why != "" {
		t.Fatalf("v3 signed in the same second as the run that set the mark: %s", why)
	}
	if _, why := r2.notRolledBack("tools:a/one.tar.gz", sumOf("v1"), run1.Add(-time.Hour)); !strings.Contains(why, ErrUpstreamRollback.Error()) {
		t.Fatalf("v1 signed before the mark: %q, want a rollback", why)
	}
}
