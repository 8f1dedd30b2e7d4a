package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// benchBlobs lays out n empty files under their names in a new store, as
// the cache of an n-package sync holds them (the content does not matter
// to Has), and returns the store and the names.
func benchBlobs(b *testing.B, n int) (*Store, []string) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	sums := make([]string, n)
	for i := range sums {
		sums[i] = sumOf(fmt.Appendf(nil, "blob %d", i))
		dir := filepath.Join(s.Dir(), "sha256", sums[i][:2])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, sums[i]), nil, 0o444); err != nil {
			b.Fatal(err)
		}
	}
	return s, sums
}

// BenchmarkHas20000: is each of 20,000 cached blobs stored, as a sync
// with nothing new asks: one lstat each (Store.Has) against one listing
// per shard (a new Index each round, so its listings are included).
func BenchmarkHas20000(b *testing.B) {
	s, sums := benchBlobs(b, 20000)
	b.Run("Store.Has", func(b *testing.B) {
		for b.Loop() {
			for _, sum := range sums {
				if ok, err := s.Has(sum); !ok || err != nil {
					b.Fatal(sum, err)
				}
			}
		}
	})
	b.Run("Index.Has", func(b *testing.B) {
		for b.Loop() {
			x := s.Index()
			for _, sum := range sums {
				if ok, err := x.Has(sum); !ok || err != nil {
					b.Fatal(sum, err)
				}
			}
		}
	})
}
