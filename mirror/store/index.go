package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Index answers Has for many blobs with one directory read per shard
// instead of one lstat per blob: a sync run with nothing new asks about
// every package of its set (20,000 of them) and finds each one stored.
//
// A shard is listed at the first question about one of its blobs. A blob
// the listing holds is reported stored without a further system call (as
// with Store.Has, it may still be removed before it is opened: readers
// handle ErrNotExist); a blob the listing lacks is looked up on disk
// (Store.Has), so blobs added since the listing are seen. The answers are
// therefore Store.Has's. An Index is safe for concurrent use.
type Index struct {
	s      *Store
	shards [256]indexShard
}

type indexShard struct {
	once sync.Once
	sums [][32]byte // sorted; nil when the listing failed (every question goes to Store.Has)
}

// Index returns a new, empty index of the store (no shard read yet).
func (s *Store) Index() *Index { return &Index{s: s} }

// Has reports whether the blob named sum is stored (Store.Has).
func (x *Index) Has(sum string) (bool, error) {
	var key [32]byte
	if !parseSum(&key, sum) {
		return x.s.Has(sum) // the error for a malformed name
	}
	sh := &x.shards[key[0]]
	sh.once.Do(func() { sh.sums = x.s.listShard(sum[:2]) })
	if _, found := slices.BinarySearchFunc(sh.sums, key, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) }); found {
		return true, nil
	}
	return x.s.Has(sum)
}

// listShard returns the sorted names of the blobs in shard dir (two hex
// digits): an empty list when the shard does not exist, nil when it cannot
// be read.
func (s *Store) listShard(dir string) [][32]byte {
	f, err := os.Open(filepath.Join(s.blob, dir))
	if errors.Is(err, fs.ErrNotExist) {
		return [][32]byte{}
	}
	if err != nil {
		return nil
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil
	}
	sums := make([][32]byte, 0, len(names))
	for _, n := range names {
		var k [32]byte
		if !parseSum(&k, n) {
			continue // not a blob (a name of another shard is never asked for here)
		}
		sums = append(sums, k)
	}
	slices.SortFunc(sums, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return sums
}

// parseSum decodes a blob name into k and reports whether it is one
// (ValidSum: 64 lowercase hex digits), in one pass through a table and
// without allocating (unlike hex.Decode of a converted string).
func parseSum(k *[32]byte, sum string) bool {
	if len(sum) != 64 {
		return false
	}
	var bad byte
	for i := range k {
		hi, lo := hexVal[sum[2*i]], hexVal[sum[2*i+1]]
		bad |= hi | lo
		k[i] = hi<<4 | lo&0x0f
	}
	return bad&0xf0 == 0
}

// hexVal maps a lowercase hex digit to its value and any other byte to
// 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
	}
	return t
}()
