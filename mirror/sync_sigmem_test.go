package mirror

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mirror-tool/mirror/mirror/store"
)

// TestSyncHeldSignaturesBounded: past maxHeldSigs bytes of accepted
// signatures (a hostile mirror can pad valid signatures: here minisign's
// untrusted comment, to 1 KiB), a run moves them into the cache
// instead of holding them in memory, and the bundle still carries every
// signature byte for byte.
func TestSyncHeldSignaturesBounded(t *testing.T) {
	defer func(n int64) { maxHeldSigs = n }(maxHeldSigs)
	maxHeldSigs = 2 << 10
	e := newSyncEnv(t)
	e.putRel("x.tar.gz", "x")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	names := []string{"a/one.tar.gz", "a/two.tar.gz", "a/three.tar.gz", "a/four.tar.gz"}
	padded := map[string][]byte{}
	for _, n := range names {
		e.put(n, "content of "+n, "rel-a")
		p := filepath.Join(e.up, "tools", n+".minisig")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		first, rest, _ := strings.Cut(string(b), "\n")
		if !strings.HasPrefix(first, "untrusted comment: ") {
			t.Fatalf("%s: %q", p, first)
		}
		b = []byte(first + strings.Repeat(" padding", 110) + "\n" + rest)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		e.touch(p)
		padded["tools/"+n+".minisig"] = b
	}
	e.put("b/two.tar.gz", "two", "rel-b")
	res := e.mustSync(SyncOptions{})
	if res.Rejected != 0 {
		t.Fatalf("rejected: %v", rejectedOf(res))
	}
	m, blobs := e.openBundle(res.Bundle)
	tree := treeOf(m)
	cache, err := store.Open(filepath.Join(e.dir, "state", CacheDir))
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for p, want := range padded {
		if got := blobs[tree[p]]; string(got) != string(want) {
			t.Fatalf("%s in the bundle: %d bytes, want the %d served", p, len(got), len(want))
		}
		if has, _ := cache.Has(tree[p]); has {
			moved++
		}
	}
	// 4 x 1.2 KiB against 2 KiB: the first may be held, the others must not.
	if moved < len(padded)-1 {
		t.Fatalf("%d of %d padded signatures were moved to the cache, want at least %d", moved, len(padded), len(padded)-1)
	}
}
