package mirror

import (
	"path/filepath"
	"testing"

	"github.com/mirror-tool/mirror/mirror/store"
)

// TestSyncCollectsCache: a superseded release and a file gone from the
// package set leave the cache after the run that ships their successors;
// unchanged files stay (the next run reuses them), and a later no-op run
// needs nothing that was removed.
func TestSyncCollectsCache(t *testing.T) {
	e := newSyncEnv(t)
	e.putRel("x.tar.gz", "x v1")
	e.sums("x.tar.gz")
	e.writeConfig(`files = ["v1/*.tar.gz"]`)
	e.put("a/one.tar.gz", "one v1", "rel-a")
	e.put("a/gone.tar.gz", "gone v1", "rel-a")
	e.put("b/three.tar.gz", "three v1", "rel-b")
	if res := e.mustSync(SyncOptions{}); res.Bundle == nil || res.Rejected != 0 {
		t.Fatalf("first sync: %+v", rejectedOf(res))
	}
	cache, err := store.Open(filepath.Join(e.dir, "state", CacheDir))
	if err != nil {
		t.Fatal(err)
	}
	has := func(content string) bool {
		ok, err := cache.Has(sumOf(content))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, c := range []string{"one v1", "gone v1", "three v1", "x v1"} {
		if !has(c) {
			t.Fatalf("%q is not in the cache after the first sync", c)
		}
	}
	e.put("a/one.tar.gz", "one v2", "rel-a")
	e.remove("a/gone.tar.gz")
	res := e.mustSync(SyncOptions{})
	if res.Bundle == nil || res.Rejected != 0 {
		t.Fatalf("second sync: %v", rejectedOf(res))
	}
	if has("one v1") || has("gone v1") {
		t.Errorf("superseded or removed files still cached: one v1 %v, gone v1 %v", has("one v1"), has("gone v1"))
	}
	for _, c := range []string{"one v2", "three v1", "x v1"} {
		if !has(c) {
			t.Errorf("%q was removed from the cache", c)
		}
	}
	if res.CacheCollected.Blobs != 2 || res.CacheCollected.Bytes != int64(len("one v1")+len("gone v1")) {
		t.Errorf("CacheCollected = %+v, want 2 blobs, %d bytes", res.CacheCollected, len("one v1")+len("gone v1"))
	}
	e.mu.Lock()
	clear(e.hits)
	e.mu.Unlock()
	res = e.mustSync(SyncOptions{})
	if !res.NothingNew || res.BytesDownloaded != 0 {
		t.Fatalf("no-op after collection: nothing new %v, downloaded %d", res.NothingNew, res.BytesDownloaded)
	}
}
