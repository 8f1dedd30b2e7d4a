package mirror

import (
	"fmt"

	"github.com/mirror-tool/mirror/bundle"
	"github.com/mirror-tool/mirror/mirror/state"
	"github.com/mirror-tool/mirror/mirror/store"
)

// CacheCollected is what a run removed from the sync cache.
type CacheCollected struct {
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
}

// collectCache removes from the cache every blob that the state just saved
// no longer points to (its upstream records: the packages, checksum lists
// and release files last verified) and that the current tree does not hold.
// Those are superseded versions and files gone from the package set: no
// later run reads them (an unchanged file is found through its record, and
// `--since` builds its delta from the current tree), so without this the
// cache of a cron job grows by every release it ever fetched.
//
// It runs only after the state was saved and the run's blobs were synced,
// so a crash at any point leaves at worst blobs that the next run removes.
// A failure to remove is reported, not fatal: the bundle and state are
// complete, and the next run tries again.
func collectCache(cache *store.Store, next *state.State, tree []bundle.Blob) (CacheCollected, error) {
	keep := make(map[string]bool, len(next.Upstreams)+len(tree))
	for _, u := range next.Upstreams {
		keep[u.SHA256] = true
	}
	for _, b := range tree {
		keep[b.SHA256] = true
	}
	type blob struct {
		sum  string
		size int64
	}
	var drop []blob
	var c CacheCollected
	if err := cache.Walk(func(sum string, size int64) error {
		if !keep[sum] {
			drop = append(drop, blob{sum, size})
		}
		return nil
	}); err != nil {
		return c, fmt.Errorf("collect the cache: %w", err)
	}
	for _, b := range drop {
		if err := cache.Remove(b.sum); err != nil {
			return c, fmt.Errorf("collect the cache: %w", err)
		}
		c.Blobs++
		c.Bytes += b.size
	}
	return c, nil
}
