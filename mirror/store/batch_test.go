package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
)

// tmpWith writes content to a new file in the store's temporary folder.
func tmpWith(t *testing.T, s *Store, content string) string {
	t.Helper()
	f, err := os.CreateTemp(s.TempDir(), "dl-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return f.Name()
}

func markerExists(s *Store) bool {
	_, err := os.Lstat(filepath.Join(s.Dir(), UnsyncedMarker))
	return err == nil
}

func TestAdoptBatchedThenSync(t *testing.T) {
	s := newStore(t)
	if markerExists(s) {
		t.Fatal("fresh store has a batch marker")
	}
	for _, c := range []string{"one", "two", "three"} {
		if err := s.AdoptBatched(tmpWith(t, s, c), sumOf([]byte(c)), int64(len(c))); err != nil {
			t.Fatal(err)
		}
		if !markerExists(s) {
			t.Fatal("no marker while a batch is unsynced")
		}
		b, err := os.ReadFile(s.Path(sumOf([]byte(c))))
		if err != nil || string(b) != c {
			t.Fatalf("blob %q: %q %v", c, b, err)
		}
		fi, _ := os.Stat(s.Path(sumOf([]byte(c))))
		if fi.Mode().Perm() != 0o444 {
			t.Fatalf("blob mode %v", fi.Mode())
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if markerExists(s) {
		t.Fatal("marker left after Sync")
	}
	if ents, _ := os.ReadDir(s.TempDir()); len(ents) != 0 {
		t.Fatalf("temporary folder not empty: %v", ents)
	}
	// A second batch marks again.
	if err := s.AdoptBatched(tmpWith(t, s, "four"), sumOf([]byte("four")), 4); err != nil {
		t.Fatal(err)
	}
	if !markerExists(s) {
		t.Fatal("second batch has no marker")
	}
	if err := s.Sync(); err != nil || markerExists(s) {
		t.Fatalf("second Sync: %v, marker %v", err, markerExists(s))
	}
	// Nothing pending: Sync does nothing.
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestAdoptBatchedChecks(t *testing.T) {
	s := newStore(t)
	p := tmpWith(t, s, "content")
	err := s.AdoptBatched(p, sumOf([]byte("content")), 8)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong size: %v", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("refused file was not left in place: %v", err)
	}
	if err := s.AdoptBatched(p, "nothex", 7); !errors.Is(err, ErrBadSum) {
		t.Fatalf("bad sum: %v", err)
	}
	link := filepath.Join(s.TempDir(), "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if err := s.AdoptBatched(link, sumOf([]byte("content")), 7); err == nil {
		t.Fatal("symbolic link adopted")
	}
	if ok, _ := s.Has(sumOf([]byte("content"))); ok {
		t.Fatal("a refused file entered the store")
	}
}

// A durable copy is never replaced by an unsynced one.
func TestAdoptBatchedKeepsStoredBlob(t *testing.T) {
	s := newStore(t)
	sum, _, err := s.Add(context.Background(), strings.NewReader("same"), 100)
	if err != nil {
		t.Fatal(err)
	}
	var before syscall.Stat_t
	if err := syscall.Stat(s.Path(sum), &before); err != nil {
		t.Fatal(err)
	}
	p := tmpWith(t, s, "same")
	if err := s.AdoptBatched(p, sum, 4); err != nil {
		t.Fatal(err)
	}
	var after syscall.Stat_t
	if err := syscall.Stat(s.Path(sum), &after); err != nil {
		t.Fatal(err)
	}
	if before.Ino != after.Ino {
		t.Fatal("stored blob was replaced")
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("adopted duplicate left behind: %v", err)
	}
	if markerExists(s) {
		t.Fatal("a batch with nothing adopted left a marker")
	}
}

// A crash before Sync: a blob of the batch is torn on disk. The next Recover
// removes it and keeps the intact ones.
func TestRecoverRemovesTornBlob(t *testing.T) {
	s := newStore(t)
	old, _, err := s.Add(context.Background(), strings.NewReader("from an earlier run"), 100)
	if err != nil {
		t.Fatal(err)
	}
	good, torn := "intact content", "content cut by the crash"
	for _, c := range []string{good, torn} {
		if err := s.AdoptBatched(tmpWith(t, s, c), sumOf([]byte(c)), int64(len(c))); err != nil {
			t.Fatal(err)
		}
	}
	// The crash: no Sync, and the data of one blob never reached the disk.
	s2, removed := crashAndRecover(t, s, torn)
	if len(removed) != 1 || removed[0] != sumOf([]byte(torn)) {
		t.Fatalf("removed %v, want the torn blob only", removed)
	}
	if ok, _ := s2.Has(sumOf([]byte(torn))); ok {
		t.Fatal("torn blob still in the store")
	}
	for _, sum := range []string{sumOf([]byte(good)), old} {
		if err := s2.Verify(context.Background(), sum); err != nil {
			t.Fatalf("intact blob: %v", err)
		}
	}
	if markerExists(s2) {
		t.Fatal("marker left after Recover")
	}
	// Without a marker, Recover reads nothing: damage outside a batch is
	// not its business (Verify is).
	os.Chmod(s2.Path(old), 0o644)
	if err := os.WriteFile(s2.Path(old), []byte("changed behind the store's back"), 0o644); err != nil {
		t.Fatal(err)
	}
	if removed, err := s2.Recover(context.Background()); err != nil || len(removed) != 0 {
		t.Fatalf("Recover without marker: %v %v", removed, err)
	}
}

// AdoptBatched and Sync may run at the same time (Sync waits for adoptions
// in flight); afterwards every blob is stored and correct, and a final Sync
// leaves no marker.
func TestAdoptBatchedConcurrentWithSync(t *testing.T) {
	s := newStore(t)
	var wg sync.WaitGroup
	var sums []string
	var mu sync.Mutex
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				c := fmt.Sprintf("blob %d/%d", g, i)
				if err := s.AdoptBatched(tmpWith(t, s, c), sumOf([]byte(c)), int64(len(c))); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				sums = append(sums, sumOf([]byte(c)))
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			if err := s.Sync(); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if markerExists(s) {
		t.Fatal("marker left after the final Sync")
	}
	for _, sum := range sums {
		if err := s.Verify(context.Background(), sum); err != nil {
			t.Fatal(err)
		}
	}
	if len(sums) != 100 {
		t.Fatalf("%d blobs adopted, want 100", len(sums))
	}
}

func TestPending(t *testing.T) {
	s := newStore(t)
	if s.Pending() {
		t.Fatal("fresh store reports a pending batch")
	}
	// A blob already stored starts no batch.
	if err := s.Put(context.Background(), strings.NewReader("kept"), sumOf([]byte("kept")), 4); err != nil {
		t.Fatal(err)
	}
	if err := s.AdoptBatched(tmpWith(t, s, "kept"), sumOf([]byte("kept")), 4); err != nil || s.Pending() {
		t.Fatalf("adopting a stored blob: %v, pending %v", err, s.Pending())
	}
	if err := s.AdoptBatched(tmpWith(t, s, "new"), sumOf([]byte("new")), 3); err != nil {
		t.Fatal(err)
	}
	if !s.Pending() || !markerExists(s) {
		t.Fatalf("after AdoptBatched: pending %v, marker %v", s.Pending(), markerExists(s))
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if s.Pending() || markerExists(s) {
		t.Fatalf("after Sync: pending %v, marker %v", s.Pending(), markerExists(s))
	}
}

func TestPutBatched(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	good := []byte("a release file")
	sum := sumOf(good)
	// Mismatches store nothing, start no batch and leave no temporary file.
	for _, tc := range []struct {
		name string
		data string
		size int64
	}{
		{"other bytes", "a release fil!", int64(len(good))},
		{"short", "a release", int64(len(good))},
		{"long", "a release file, longer", int64(len(good))},
		{"long, size unknown", "a release file, longer", -1},
	} {
		err := s.PutBatched(ctx, strings.NewReader(tc.data), sum, tc.size)
		if !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: %v, want ErrMismatch", tc.name, err)
		}
		if ok, _ := s.Has(sum); ok || s.Pending() {
			t.Fatalf("%s: stored %v, pending %v", tc.name, ok, s.Pending())
		}
	}
	if err := s.PutBatched(ctx, strings.NewReader("x"), "ABC", 1); !errors.Is(err, ErrBadSum) {
		t.Errorf("bad name: %v", err)
	}
	if ents, _ := os.ReadDir(s.TempDir()); len(ents) != 0 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if err := s.PutBatched(ctx, bytes.NewReader(good), sum, int64(len(good))); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(s.Path(sum)); err != nil || !bytes.Equal(got, good) {
		t.Fatalf("stored %q %v", got, err)
	}
	if !s.Pending() || !markerExists(s) {
		t.Fatal("PutBatched did not mark its batch")
	}
	// Stored already: r is not read.
	if err := s.PutBatched(ctx, iotest.ErrReader(errors.New("must not be read")), sum, int64(len(good))); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil || markerExists(s) {
		t.Fatalf("Sync: %v, marker %v", err, markerExists(s))
	}
}

// crashAndRecover cuts the stored blob of content short, as a crash before
// Sync leaves a blob whose data never reached the disk, then opens the
// store again and runs Recover, returning the store and what it removed.
func crashAndRecover(t *testing.T, s *Store, content string) (*Store, []string) {
	t.Helper()
	p := s.Path(sumOf([]byte(content)))
	os.Chmod(p, 0o644)
	if err := os.Truncate(p, 7); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	removed, err := s2.Recover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s2, removed
}
