package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestIndexHas: Index.Has gives Store.Has's answer for blobs stored before
// the shard was listed, blobs added or removed after it, blobs of a shard
// that does not exist, stray files and malformed names.
func TestIndexHas(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	var stored []string
	for i := range 600 { // more blobs than shards: most shards hold several
		b := []byte(fmt.Sprintf("blob %d", i))
		if err := s.Put(ctx, strings.NewReader(string(b)), sumOf(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, sumOf(b))
	}
	// Removed before the index lists its shard: not stored.
	gone := stored[0]
	if err := s.Remove(gone); err != nil {
		t.Fatal(err)
	}
	stored = stored[1:]
	// A stray file with a blob's name in the wrong shard is not that blob.
	stray := sumOf([]byte("stray"))
	wrong := "00"
	if stray[:2] == wrong {
		wrong = "01"
	}
	os.MkdirAll(filepath.Join(s.Dir(), "sha256", wrong), 0o755)
	if err := os.WriteFile(filepath.Join(s.Dir(), "sha256", wrong, stray), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	x := s.Index()
	var wg sync.WaitGroup
	for _, sum := range stored {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := x.Has(sum); !ok || err != nil {
				t.Errorf("Has(%s) = %v, %v; want stored", sum, ok, err)
			}
		}()
	}
	wg.Wait()
	for _, sum := range []string{gone, stray, sumOf([]byte("never stored"))} {
		if ok, err := x.Has(sum); ok || err != nil {
			t.Errorf("Has(%s) = %v, %v; want not stored", sum, ok, err)
		}
	}
	// Added after its shard was listed (every shard is listed by now):
	// seen through the lookup on disk.
	late := []byte("added late")
	if err := s.Put(ctx, strings.NewReader(string(late)), sumOf(late), int64(len(late))); err != nil {
		t.Fatal(err)
	}
	if ok, err := x.Has(sumOf(late)); !ok || err != nil {
		t.Errorf("Has(a blob added after the listing) = %v, %v", ok, err)
	}
	for _, bad := range []string{"", "../x", strings.ToUpper(stored[1]), stored[1][:63]} {
		if ok, err := x.Has(bad); ok || !errors.Is(err, ErrBadSum) {
			t.Errorf("Has(%q) = %v, %v; want ErrBadSum", bad, ok, err)
		}
	}
	// The answers are Store.Has's, blob by blob.
	for _, sum := range append(stored, gone, stray, sumOf(late)) {
		a, _ := x.Has(sum)
		b, _ := s.Has(sum)
		if a != b {
			t.Errorf("%s: Index.Has %v, Store.Has %v", sum, a, b)
		}
	}
}

// TestIndexUnreadableShard: a shard that cannot be listed (not a folder
// here) leaves every question about it to Store.Has.
func TestIndexUnreadableShard(t *testing.T) {
	s := newStore(t)
	b := []byte("in a shard that is a file")
	sum := sumOf(b)
	if err := os.WriteFile(filepath.Join(s.Dir(), "sha256", sum[:2]), b, 0o644); err != nil {
		t.Fatal(err)
	}
	ok, err := s.Index().Has(sum)
	wantOK, wantErr := s.Has(sum)
	if ok != wantOK || (err == nil) != (wantErr == nil) || ok {
		t.Fatalf("Index.Has = %v, %v; Store.Has = %v, %v", ok, err, wantOK, wantErr)
	}
}

// FuzzParseSum: parseSum accepts exactly what ValidSum accepts, and decodes
// it as hex.DecodeString does.
func FuzzParseSum(f *testing.F) {
	seeds := []string{sumOf([]byte("a")), strings.ToUpper(sumOf([]byte("a"))), "", "0", strings.Repeat("g", 64), strings.Repeat("f", 64), strings.Repeat("0", 63) + "/"}
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var k [32]byte
		ok := parseSum(&k, s)
		if ok != ValidSum(s) {
			t.Fatalf("parseSum(%q) = %v, ValidSum %v", s, ok, ValidSum(s))
		}
		if ok {
			want, err := hex.DecodeString(s)
			if err != nil || !bytes.Equal(k[:], want) {
				t.Fatalf("parseSum(%q) = %x, want %x (%v)", s, k, want, err)
			}
		}
	})
}
